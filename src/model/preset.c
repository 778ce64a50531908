/* preset.c: see preset.h. */
#include "model/preset.h"

#include "core/embedded.h"
#include "core/fileio.h"
#include "core/json.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRESET_PREFIX "configs/models/"

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void add_name(char ***v, int *n, int *cap, const char *name, size_t len) {
    for (int i = 0; i < *n; i++)
        if (strlen((*v)[i]) == len && strncmp((*v)[i], name, len) == 0) return;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *v = ow_xrealloc(*v, (size_t)*cap * sizeof **v);
    }
    char *s = ow_xmalloc(len + 1);
    memcpy(s, name, len);
    s[len] = '\0';
    (*v)[(*n)++] = s;
}

int model_preset_list(char ***names) {
    char **v = NULL;
    int n = 0, cap = 0;
    const char *env = getenv("OWLORE_CONFIG_DIR");
    DIR *d = env && *env ? opendir(env) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len > 5 && e->d_name[0] != '.' && strcmp(e->d_name + len - 5, ".json") == 0)
                add_name(&v, &n, &cap, e->d_name, len - 5);
        }
        closedir(d);
    }
    size_t plen = strlen(PRESET_PREFIX);
    for (const EmbeddedFile *f = k_embedded_files; f->path; f++) {
        size_t len = strlen(f->path);
        if (strncmp(f->path, PRESET_PREFIX, plen) == 0 && len > plen + 5)
            add_name(&v, &n, &cap, f->path + plen, len - plen - 5);
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    return n;
}

void model_preset_list_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int model_preset_resolve(const char *name_or_path, ModelConfig *cfg, char **source, int *is_dir, OwError *err) {
    *source = NULL;
    *is_dir = 0;
    if (!name_or_path || !*name_or_path)
        return ow_fail(err, "no model given (hint: a model directory or a preset name)");
    if (ow_is_dir(name_or_path)) {
        char *p = ow_path_join(name_or_path, "config.json");
        if (!ow_path_exists(p)) {
            free(p);
            return ow_fail(err, "%s: the directory has no config.json (hint: point at a Hugging Face model directory)",
                           name_or_path);
        }
        *is_dir = 1;
        *source = p;
        return model_config_load(p, cfg, err);
    }
    if (ow_path_exists(name_or_path)) {
        *source = ow_xstrdup(name_or_path);
        return model_config_load(name_or_path, cfg, err);
    }
    if (!strchr(name_or_path, '/')) {
        size_t n = strlen(name_or_path);
        int has_ext = n > 5 && strcmp(name_or_path + n - 5, ".json") == 0;
        char file[512];
        snprintf(file, sizeof file, "%.*s.json", (int)(has_ext ? n - 5 : n), name_or_path);
        const char *env = getenv("OWLORE_CONFIG_DIR");
        if (env && *env) {
            char *p = ow_path_join(env, file);
            if (ow_path_exists(p)) {
                *source = p;
                return model_config_load(p, cfg, err);
            }
            free(p);
        }
        char emb[600];
        snprintf(emb, sizeof emb, PRESET_PREFIX "%s", file);
        const EmbeddedFile *f = embedded_find(emb);
        if (f) {
            char src[600];
            snprintf(src, sizeof src, "preset %.*s", (int)(strlen(file) - 5), file);
            *source = ow_xstrdup(src);
            cJSON *j = json_parse(f->data, f->size, emb, err);
            if (!j) return -1;
            int rc = model_config_from_json(j, emb, cfg, err);
            cJSON_Delete(j);
            return rc;
        }
    }
    char **names;
    int n = model_preset_list(&names);
    char list[2048] = "";
    size_t off = 0;
    for (int i = 0; i < n && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", names[i]);
    model_preset_list_free(names, n);
    return ow_fail(err, "%s: not a model directory, a config file or a preset (presets: %s)", name_or_path,
                   n ? list : "none");
}
