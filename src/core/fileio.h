/* fileio.h: reading, mapping and atomically writing files.
 *
 * Atomic writes: data goes to "<path>.tmp-<pid>" in the same directory, is
 * fsynced, renamed over <path>, and the directory is fsynced; on any failure
 * the temporary is removed and <path> is untouched. A crash at any moment
 * leaves either the old file or the new one, never a mix.
 *
 * Appended records (AppendFile, for metrics.jsonl): each record is written
 * whole or not at all; a failed or short write (full disk, file size limit)
 * cuts the file back to its last complete record and names the file and the
 * errno text, so a run can stop with the file intact. */
#ifndef OWLORE_CORE_FILEIO_H
#define OWLORE_CORE_FILEIO_H

#include "core/error.h"

#include <stdint.h>
#include <stdio.h>

/* Every reader opens its file without blocking and refuses, naming the file, anything
 * but a regular file (a symlink to one is fine): a directory, a FIFO, /dev/zero. */

/* Generic cap of ow_read_file; JSON files have their own (json.h). */
#define OW_READ_FILE_MAX ((size_t)1 << 30)

/* Reads a whole file into a NUL-terminated heap buffer (*len excludes the NUL). */
int ow_read_file(const char *path, char **out, size_t *len, OwError *err);
/* Same, refusing a file of more than max_bytes. */
int ow_read_file_max(const char *path, size_t max_bytes, char **out, size_t *len, OwError *err);

typedef struct MappedFile {
    void *data;
    size_t size;
    char *path;
} MappedFile;

/* Maps a file read-only. An empty file maps to data == NULL, size == 0. */
int ow_map_file(const char *path, MappedFile *mf, OwError *err);
void ow_unmap_file(MappedFile *mf);

typedef struct AtomicFile {
    FILE *fp;
    char *path;
    char *tmp_path;
    int failed; /* a write failed: commit will refuse */
} AtomicFile;

int atomic_file_open(AtomicFile *af, const char *path, OwError *err);
/* Writes len bytes; records failure for commit. Returns 0 or -1. */
int atomic_file_write(AtomicFile *af, const void *data, size_t len, OwError *err);
/* Flushes, fsyncs, renames, fsyncs the directory. Frees af's memory either way. */
int atomic_file_commit(AtomicFile *af, OwError *err);
/* Removes the temporary; frees af's memory. Safe on a committed or zeroed af. */
void atomic_file_abort(AtomicFile *af);

typedef struct AppendFile {
    int fd; /* -1 when closed */
    char *path;
    int64_t size; /* bytes of complete records */
} AppendFile;

/* Opens path for appending records: a new empty file when keep < 0, else the
 * file cut back to its first keep bytes (it must exist and hold that many). */
int append_file_open(AppendFile *f, const char *path, int64_t keep, OwError *err);
/* Appends len bytes whole, or cuts the file back and fails. */
int append_file_write(AppendFile *f, const void *data, size_t len, OwError *err);
/* fsync. */
int append_file_sync(AppendFile *f, OwError *err);
/* Closes; safe on a closed or zeroed f. */
void append_file_close(AppendFile *f);

/* Removes "<path>.tmp-<pid>" entries beside path whose process is gone
 * (left by a killed writer); those of live processes stay. */
void ow_remove_stale_tmp(const char *path);

int ow_write_file_atomic(const char *path, const void *data, size_t len, OwError *err);

/* fsync a directory (after renames inside it). */
int ow_fsync_dir(const char *dir, OwError *err);
/* mkdir -p. */
int ow_mkdir_p(const char *path, OwError *err);
int ow_path_exists(const char *path);
int ow_is_dir(const char *path);
/* "<a>/<b>" in a new heap string. */
char *ow_path_join(const char *a, const char *b);
/* Directory part of a path ("." when none), new heap string. */
char *ow_path_dirname(const char *path);
/* Removes a directory tree (for replacing checkpoint directories). */
int ow_remove_tree(const char *path, OwError *err);
/* Copies a file (atomically at the destination). */
int ow_copy_file(const char *src, const char *dst, OwError *err);

#endif
