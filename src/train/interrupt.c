/* interrupt.c: see interrupt.h. */
#include "train/interrupt.h"

#include <string.h>

static volatile sig_atomic_t g_signal; /* the received signal; see interrupt.h */

static void on_signal(int sig) { g_signal = sig; }

void train_interrupt_install(TrainInterrupt *saved) {
    g_signal = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGINT, &sa, &saved->old_int);
    sigaction(SIGTERM, &sa, &saved->old_term);
}

void train_interrupt_restore(const TrainInterrupt *saved) {
    sigaction(SIGINT, &saved->old_int, NULL);
    sigaction(SIGTERM, &saved->old_term, NULL);
}

int train_interrupt_pending(void) { return (int)g_signal; }

const char *train_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }
