/* metrics_resume.c: see metrics_resume.h. */
#include "train/metrics_resume.h"

#include "core/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Whether the first keep bytes of path end with a complete record. */
static int ends_on_record(const char *path, int64_t keep, OwError *err) {
    if (keep == 0) return 0;
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    const char *s = mf.data;
    int64_t b = keep - 1; /* the record before the newline at keep - 1 starts after the newline before it */
    while (b > 0 && s[b - 1] != '\n') b--;
    cJSON *o = s[keep - 1] == '\n' ? cJSON_ParseWithLength(s + b, (size_t)(keep - 1 - b)) : NULL;
    int ok = cJSON_IsObject(o);
    cJSON_Delete(o);
    ow_unmap_file(&mf);
    if (!ok)
        return ow_fail(err,
                       "%s: the checkpoint's length of it, %lld bytes, does not end a complete record (the file was "
                       "changed; the run cannot continue it)",
                       path, (long long)keep);
    return 0;
}

int metrics_resume_open(AppendFile *f, const char *path, int64_t keep, OwError *err) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return ow_fail(err,
                       "%s: %s, but the checkpoint recorded %lld bytes of it (the run's history is lost; restore the "
                       "file, or start the run again in a new directory)",
                       path, strerror(errno), (long long)keep);
    if (!S_ISREG(st.st_mode)) return ow_fail(err, "%s: not a regular file", path);
    if ((int64_t)st.st_size < keep)
        return ow_fail(err,
                       "%s: %lld bytes, shorter than the %lld the checkpoint recorded (the file was changed or cut; "
                       "the run cannot continue it)",
                       path, (long long)st.st_size, (long long)keep);
    if (ends_on_record(path, keep, err) != 0) return -1;
    if ((int64_t)st.st_size > keep)
        OW_INFO("%s: dropping %lld bytes written after the checkpoint (the lines the resumed steps write again, or a "
                "torn record)",
                path, (long long)st.st_size - keep);
    return append_file_open(f, path, keep, err);
}
