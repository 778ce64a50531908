/* error.c: see error.h. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ow_fail(OwError *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ow_fail_prefix(OwError *err, const char *fmt, ...) {
    if (err) {
        char prefix[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        char old[OW_ERROR_MSG_MAX];
        memcpy(old, err->msg, sizeof old);
        size_t np = strlen(prefix);
        if (np > sizeof err->msg - 3) np = sizeof err->msg - 3;
        memcpy(err->msg, prefix, np);
        memcpy(err->msg + np, ": ", 2);
        size_t room = sizeof err->msg - np - 3;
        size_t no = strnlen(old, room);
        memcpy(err->msg + np + 2, old, no);
        err->msg[np + 2 + no] = '\0';
    }
    return -1;
}

int ow_fail_suffix(OwError *err, const char *fmt, ...) {
    if (err) {
        size_t n = strnlen(err->msg, sizeof err->msg - 1);
        if (n + 2 < sizeof err->msg) {
            memcpy(err->msg + n, "; ", 3);
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err->msg + n + 2, sizeof err->msg - n - 2, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

void ow_error_clear(OwError *err) {
    if (err) err->msg[0] = '\0';
}

void ow_check_failed(const char *file, int line, const char *expr, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "owlore: internal check failed at %s:%d: %s", file, line, expr);
    if (fmt) {
        fputs(": ", stderr);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputs("\n(this is a bug in owlore; please report it with the command line)\n", stderr);
    abort();
}

static void oom(size_t n) {
    fprintf(stderr, "owlore: out of host memory allocating %zu bytes\n", n);
    abort();
}

void *ow_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *ow_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *ow_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *ow_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ow_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* dst = src (or zeros when src is NULL), n bytes, by all cores in pieces of `piece` bytes
 * (one thread up to 4 pieces). */
static void parallel_fill(char *dst, const char *src, size_t n, size_t piece) {
    const long npieces = (long)((n + piece - 1) / piece);
#pragma omp parallel for schedule(static) if (npieces > 4)
    for (long i = 0; i < npieces; i++) {
        size_t off = (size_t)i * piece, len = n - off < piece ? n - off : piece;
        if (src)
            memcpy(dst + off, src + off, len);
        else
            memset(dst + off, 0, len);
    }
}

void *ow_try_malloc_touched(size_t n, const char *what, OwError *err) {
    char *p = ow_try_malloc(n, what, err);
    if (p) parallel_fill(p, NULL, n, (size_t)4 << 20);
    return p;
}

void ow_parallel_memcpy(void *dst, const void *src, size_t n) { parallel_fill(dst, src, n, (size_t)1 << 20); }

void *ow_try_malloc(size_t n, const char *what, OwError *err) {
    void *p = malloc(n ? n : 1);
    if (!p)
        ow_fail(err, "out of host memory: %s needs %.1f MiB (hint: free memory, or lower the batch size)", what,
                (double)n / (1024.0 * 1024.0));
    return p;
}
