/* embedded.c: lookup in the generated table (see embedded.h). */
#include "core/embedded.h"

#include <string.h>

const EmbeddedFile *embedded_find(const char *path) {
    for (const EmbeddedFile *f = k_embedded_files; f->path; f++)
        if (strcmp(f->path, path) == 0) return f;
    return NULL;
}
