/* preset.c: see preset.h. */
#include "model/preset.h"

#include "core/fileio.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef OWLORE_SOURCE_DIR
#error "OWLORE_SOURCE_DIR must be defined by the build (CMakeLists.txt)"
#endif

char *model_preset_dir(void) {
    const char *env = getenv("OWLORE_CONFIG_DIR");
    if (env && *env) return ow_xstrdup(env);
    return ow_path_join(OWLORE_SOURCE_DIR, "configs/models");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int model_preset_list(char ***names) {
    *names = NULL;
    char *dir = model_preset_dir();
    DIR *d = opendir(dir);
    free(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            v = ow_xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[n] = ow_xstrdup(e->d_name);
        v[n][len - 5] = '\0';
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    return n;
}

void model_preset_list_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int model_preset_path(const char *name_or_path, char **config_path, OwError *err) {
    *config_path = NULL;
    if (!name_or_path || !*name_or_path) return ow_fail(err, "no model given (hint: a model directory or a preset name)");
    if (ow_is_dir(name_or_path)) {
        char *p = ow_path_join(name_or_path, "config.json");
        if (!ow_path_exists(p)) {
            free(p);
            return ow_fail(err, "%s: the directory has no config.json (hint: point at a Hugging Face model directory)",
                           name_or_path);
        }
        *config_path = p;
        return 0;
    }
    if (ow_path_exists(name_or_path)) {
        *config_path = ow_xstrdup(name_or_path);
        return 0;
    }
    char *dir = model_preset_dir();
    if (!strchr(name_or_path, '/')) {
        size_t n = strlen(name_or_path);
        int has_ext = n > 5 && strcmp(name_or_path + n - 5, ".json") == 0;
        char *file = ow_xmalloc(n + 6);
        snprintf(file, n + 6, "%s%s", name_or_path, has_ext ? "" : ".json");
        char *p = ow_path_join(dir, file);
        free(file);
        if (ow_path_exists(p)) {
            free(dir);
            *config_path = p;
            return 0;
        }
        free(p);
    }
    char **names;
    int n = model_preset_list(&names);
    char list[2048] = "";
    size_t off = 0;
    for (int i = 0; i < n && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", names[i]);
    model_preset_list_free(names, n);
    int rc = ow_fail(err, "%s: not a model directory, a config file or a preset (available presets in %s: %s)", name_or_path, dir,
                     n ? list : "none");
    free(dir);
    return rc;
}
