/* cancel.c: see cancel.h. */
#include "core/cancel.h"

#include <signal.h>

static volatile sig_atomic_t g_signal; /* the recorded signal; see cancel.h */
static int g_armed;                    /* set and read by the main thread only */

void ow_cancel_request(int sig) { g_signal = sig; }
int ow_cancel_signal(void) { return (int)g_signal; }

void ow_cancel_clear(void) {
    g_signal = 0;
    g_armed = 0;
}

void ow_cancel_arm(int on) { g_armed = on; }
int ow_cancelled(void) { return g_armed && g_signal != 0; }
int ow_fail_cancelled(OwError *err, const char *what) { return ow_fail(err, "%s: interrupted by a signal", what); }
