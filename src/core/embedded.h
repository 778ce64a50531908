/* embedded.h: the files of configs/ compiled into the binary (recipes and
 * model presets), so `owlore` works from any directory. The table ends with
 * a zeroed entry; paths are relative to the source root ("configs/...").
 * Files on disk override them where a command takes a path. */
#ifndef OWLORE_CORE_EMBEDDED_H
#define OWLORE_CORE_EMBEDDED_H

#include <stddef.h>

typedef struct EmbeddedFile {
    const char *path;
    const char *data; /* NUL-terminated */
    size_t size;
} EmbeddedFile;

extern const EmbeddedFile k_embedded_files[];

/* NULL when absent. */
const EmbeddedFile *embedded_find(const char *path);

#endif
