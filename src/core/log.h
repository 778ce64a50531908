/* log.h: the logger, the one piece of global mutable state.
 *
 * Messages go to stderr with a level prefix. A progress line (one that is
 * redrawn in place on a terminal, printed whole otherwise) is for long work. */
#ifndef OWLORE_CORE_LOG_H
#define OWLORE_CORE_LOG_H

typedef enum { OW_LOG_DEBUG = 0, OW_LOG_INFO = 1, OW_LOG_WARN = 2, OW_LOG_ERROR = 3, OW_LOG_QUIET = 4 } OwLogLevel;

void ow_log_set_level(OwLogLevel level);
OwLogLevel ow_log_get_level(void);
void ow_log(OwLogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A progress line: on a terminal it overwrites the previous progress line. */
void ow_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends a progress line (prints the newline on a terminal). */
void ow_progress_end(void);

#define OW_DEBUG(...) ow_log(OW_LOG_DEBUG, __VA_ARGS__)
#define OW_INFO(...) ow_log(OW_LOG_INFO, __VA_ARGS__)
#define OW_WARN(...) ow_log(OW_LOG_WARN, __VA_ARGS__)

/* Monotonic wall clock in seconds. */
double ow_now(void);

#endif
