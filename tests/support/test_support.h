/* test_support.h: helpers shared by the Criterion tests: where the source
 * tree, fixtures, ../shared and the owlore binary are; running the binary;
 * temporary directories; comparing arrays. */
#ifndef OWLORE_TEST_SUPPORT_H
#define OWLORE_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Heap strings; the caller frees them. */
char *ts_source_path(const char *rel);  /* <source dir>/rel */
char *ts_fixture_path(const char *rel); /* <source dir>/tests/fixtures/rel */
char *ts_shared_path(const char *rel);  /* ../shared/rel, fails the test when ../shared is missing */
const char *ts_owlore_binary(void);
/* The SmolLM2 GGUF that scripts/get-smollm2.sh --path prints (the cached file, or $OWLORE_SMOLLM2_GGUF); NULL
 * when absent (the test then skips, saying so). */
char *ts_smollm2_gguf(void);
/* A fresh directory under $TMPDIR (removed by ts_rmtree). */
char *ts_tmpdir(void);
void ts_rmtree(const char *path);
/* A whole file as a heap string; fails the test when it cannot be read. */
char *ts_read_text(const char *path);
/* Writes bytes to a file (not atomically; for test inputs). */
void ts_write_file(const char *path, const void *data, size_t len);
/* Runs `sh -c cmd`, captures stdout+stderr into *output (heap, may be NULL),
 * returns the exit status (or 128 + signal). */
int ts_run(const char *cmd, char **output);
/* Starts `sh -c cmd` in the background, its stdout and stderr appended to log
 * (when not NULL), with OWLORE_TEST_SLOW_SAVE_MS=slow_ms (when not NULL;
 * checkpoint.h); returns the shell's pid ("exec PROGRAM ..." makes it the
 * program's, so a signal reaches the program). */
pid_t ts_spawn(const char *cmd, const char *log, const char *slow_ms);
void ts_sleep_ms(int ms);
/* Forks a child that, in its own user and mount namespace, mounts a tmpfs of `size` (e.g.
 * "64k") with mount_flags (0, MS_RDONLY) at a fresh directory and returns body(mnt)'s exit
 * status; skips the test where namespaces or the mount are not allowed (the child exits 77). */
int ts_on_private_tmpfs(const char *size, unsigned long mount_flags, int (*body)(const char *mnt));
/* Whether RUN/checkpoints holds a save in progress (*.tmp-*). */
int ts_save_in_progress(const char *run);
/* A token file of n ids drawn below vocab from the Rng (seed, stream 2). */
void ts_write_random_tokens(const char *path, int n, int32_t vocab, uint64_t seed);
/* XORs the byte at off (from the end when negative) with 0x5a. */
void ts_corrupt_byte(const char *path, long off);
/* max |a - ref| / max |ref| (max |a - ref| when ref is all zero). */
double ts_rel_err(const float *a, const float *ref, size_t n);
double ts_max_abs(const float *a, size_t n);
/* Reads `key` of the first n step records (lines with a "loss") of
 * RUN_DIR/metrics.jsonl into out; fails the test when there are fewer. */
void ts_read_metric(const char *run_dir, const char *key, double *out, int n);
/* Modified Gram-Schmidt, in place, on the k columns of an m x k matrix whose
 * entry (i, j) is at A[i * rs + j * cs] (row-major: rs = k, cs = 1; column-major:
 * rs = 1, cs = m). */
void ts_gram_schmidt(double *A, int64_t m, int64_t k, int64_t rs, int64_t cs);

#endif
