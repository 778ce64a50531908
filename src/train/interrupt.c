/* interrupt.c: see interrupt.h. */
#include "train/interrupt.h"

#include "core/cancel.h"

#include <string.h>

static void on_signal(int sig) { ow_cancel_request(sig); }

void train_interrupt_install(TrainInterrupt *saved) {
    ow_cancel_clear();
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

int train_interrupt_pending(void) { return ow_cancel_signal(); }

const char *train_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }
