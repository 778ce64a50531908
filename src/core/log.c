/* log.c: see log.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static struct {
    OwLogLevel level;
    int progress_open; /* a progress line is on screen without its newline */
} g_log = {OW_LOG_INFO, 0};

void ow_log_set_level(OwLogLevel level) { g_log.level = level; }
OwLogLevel ow_log_get_level(void) { return g_log.level; }

static void close_progress(void) {
    if (g_log.progress_open) {
        fputc('\n', stderr);
        g_log.progress_open = 0;
    }
}

void ow_log(OwLogLevel level, const char *fmt, ...) {
    if (level < g_log.level) return;
    close_progress();
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level != OW_LOG_INFO) fprintf(stderr, "%s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ow_progress(const char *fmt, ...) {
    if (g_log.level > OW_LOG_INFO) return;
    int tty = isatty(fileno(stderr));
    if (tty) fputs("\r\033[K", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (tty) {
        g_log.progress_open = 1;
    } else {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

void ow_progress_end(void) { close_progress(); }

double ow_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
