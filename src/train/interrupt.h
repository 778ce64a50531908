/* interrupt.h: stopping a training run cleanly on SIGINT / SIGTERM.
 *
 * train_interrupt_install sets handlers that only record the signal number
 * (core/cancel.h: one `volatile sig_atomic_t`, the one piece of global
 * mutable state besides the logger and the first signal's time here: a
 * signal handler can reach nothing else). A second signal gets the default
 * action and ends the process at once, unless it comes within
 * TRAIN_SIGNAL_REPEAT_NS of the first: that is the same request delivered
 * twice (timeout(1) signals the process and then its process group, a
 * supervisor may signal both too), and killing the run for it would lose the
 * steps since the last checkpoint and the save in progress. The loop polls
 * train_interrupt_pending after each step: it finishes the step, saves a
 * checkpoint and returns. During setup and the first step of a session the
 * trainer arms the request (ow_cancel_arm), so long setup work stops within
 * a second instead.
 * The command that installs the handlers restores the previous ones. */
#ifndef OWLORE_TRAIN_INTERRUPT_H
#define OWLORE_TRAIN_INTERRUPT_H

#include <signal.h>

/* A signal this soon after the first (50 ms) repeats the first request (see above). */
#define TRAIN_SIGNAL_REPEAT_NS 50000000

typedef struct TrainInterrupt {
    struct sigaction old_int, old_term;
} TrainInterrupt;

void train_interrupt_install(TrainInterrupt *saved);
void train_interrupt_restore(const TrainInterrupt *saved);
/* The signal received (SIGINT or SIGTERM), 0 when none. */
int train_interrupt_pending(void);
const char *train_signal_name(int sig);

#endif
