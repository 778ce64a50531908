/* error.h: user-facing errors and internal invariant checks.
 *
 * User-facing failures (bad files, bad flags, out of budget) are reported by
 * returning -1 from the failing function after filling an OwError with a
 * message that names the file, the field and a hint. The command prints it
 * and exits non-zero. Internal invariants use OW_CHECK, which aborts with
 * file:line: those are bugs, not user errors. */
#ifndef OWLORE_CORE_ERROR_H
#define OWLORE_CORE_ERROR_H

#include <stddef.h>

#define OW_ERROR_MSG_MAX 4096

typedef struct OwError {
    char msg[OW_ERROR_MSG_MAX];
} OwError;

/* Formats the message into err (if non-NULL) and returns -1, so a caller can
 * write `return ow_fail(err, "...")`. */
int ow_fail(OwError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (for adding context on the way up). */
int ow_fail_prefix(OwError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends "; suffix" to an existing message (a hint or consequence that follows it). */
int ow_fail_suffix(OwError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ow_error_clear(OwError *err);

void ow_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define OW_CHECK(cond)                                                 \
    do {                                                               \
        if (!(cond)) ow_check_failed(__FILE__, __LINE__, #cond, NULL); \
    } while (0)

#define OW_CHECKF(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond)) ow_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

/* Allocation that aborts on failure: for host memory that is small next to
 * what the machine has; large user-sized buffers use ow_try_malloc. */
void *ow_xmalloc(size_t n);
void *ow_xcalloc(size_t n, size_t size);
void *ow_xrealloc(void *p, size_t n);
char *ow_xstrdup(const char *s);
/* Returns NULL with a message naming what was being allocated. */
void *ow_try_malloc(size_t n, const char *what, OwError *err);
/* ow_try_malloc, with the pages touched by all cores: a large buffer that a
 * device copy fills next would otherwise take its page faults one at a time
 * inside the copy (1.6 GB: 1.2 s fresh, 0.2 s touched first, on an H200 host). */
void *ow_try_malloc_touched(size_t n, const char *what, OwError *err);
/* memcpy of n bytes by all cores (in 1 MiB pieces; one thread below 4 MiB). */
void ow_parallel_memcpy(void *dst, const void *src, size_t n);

#endif
