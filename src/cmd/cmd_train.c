/* cmd_train.c: `owlore train`: runs train_run with SIGINT/SIGTERM caught
 * (interrupt.h): on the first signal the run finishes its step, saves a
 * checkpoint and the command exits with 128 + the signal number and says
 * how to resume; during setup and the first step the signal stops the work
 * within a second and nothing is saved (same exit status); a second signal
 * ends the process at once. */
#include "cmd/commands.h"
#include "train/interrupt.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>

int cmd_train(int argc, char **argv) {
    TrainConfig cfg;
    OwError err;
    int rc = train_config_from_args(&cfg, argc, argv, &err);
    if (rc == 1) {
        train_config_help(
            stdout,
            "owlore train --model DIR --data FILE --out RUN_DIR [--method owlore] [--recipe FILE] [--KEY VALUE ...]",
            "Fine-tunes a LLaMA-family model. The method's recipe (configs/recipes/<method>.json) sets the defaults;\n"
            "a --recipe file and then flags override any key (flags use dashes, recipe keys underscores).");
        return 0;
    }
    if (rc != 0) {
        cmd_report_error("train", &err);
        return 2;
    }
    TrainSummary s;
    TrainInterrupt saved;
    train_interrupt_install(&saved);
    rc = train_run(&cfg, &s, &err);
    train_interrupt_restore(&saved);
    if (rc < 0) return cmd_report_error("train", &err);
    if (rc == TRAIN_INTERRUPTED) {
        fflush(stdout);
        if (s.before_first_step && cfg.resume[0])
            fprintf(stderr,
                    "owlore train: interrupted by %s before the first step of this session finished (%s); the run is "
                    "as it was\nresume with: owlore train --resume %s\n",
                    train_signal_name(s.interrupted), err.msg, cfg.out);
        else if (s.before_first_step)
            fprintf(stderr,
                    "owlore train: interrupted by %s before the first step finished (%s); nothing was saved (start "
                    "the run again)\n",
                    train_signal_name(s.interrupted), err.msg);
        else if (s.checkpoint[0])
            fprintf(stderr,
                    "owlore train: interrupted by %s after step %lld of %lld; saved the checkpoint %s\n"
                    "resume with: owlore train --resume %s\n",
                    train_signal_name(s.interrupted), (long long)s.steps, (long long)s.total_steps, s.checkpoint,
                    cfg.out);
        else
            fprintf(stderr,
                    "owlore train: interrupted by %s after step %lld of %lld; no checkpoint (--save-every -1)\n",
                    train_signal_name(s.interrupted), (long long)s.steps, (long long)s.total_steps);
        return 128 + s.interrupted;
    }
    printf("RESULT %s\n", s.result);
    printf("trained %lld steps in %.1f s (%.0f tokens/s): loss %.4f -> %.4f", (long long)s.steps, s.seconds,
           s.tokens_per_s, s.first_loss, s.last_loss);
    if (!isnan(s.first_val)) printf(", validation loss %.4f -> %.4f", s.first_val, s.last_val);
    printf("\n");
    return 0;
}
