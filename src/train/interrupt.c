/* interrupt.c: see interrupt.h. */
#include "train/interrupt.h"

#include "core/cancel.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* When the first signal came (CLOCK_MONOTONIC ns; 0: none yet). Atomic: handlers may run on two threads. */
static _Atomic int64_t g_first_ns;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_signal(int sig) {
    int64_t now = now_ns(), none = 0;
    if (atomic_compare_exchange_strong(&g_first_ns, &none, now)) {
        ow_cancel_request(sig);
        return;
    }
    if (now - atomic_load(&g_first_ns) < TRAIN_SIGNAL_REPEAT_NS) return; /* the first request, delivered again */
    signal(sig, SIG_DFL);
    raise(sig);
}

void train_interrupt_install(TrainInterrupt *saved) {
    ow_cancel_clear();
    atomic_store(&g_first_ns, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &saved->old_int);
    sigaction(SIGTERM, &sa, &saved->old_term);
}

void train_interrupt_restore(const TrainInterrupt *saved) {
    sigaction(SIGINT, &saved->old_int, NULL);
    sigaction(SIGTERM, &saved->old_term, NULL);
}

int train_interrupt_pending(void) { return ow_cancel_signal(); }

const char *train_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }
