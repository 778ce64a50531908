/* cmd_train.c: `owlore train`. */
#include "cmd/commands.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>

int cmd_train(int argc, char **argv) {
    TrainConfig cfg;
    OwError err;
    int rc = train_config_from_args(&cfg, argc, argv, &err);
    if (rc == 1) return 0;
    if (rc != 0) {
        cmd_report_error("train", &err);
        return 2;
    }
    TrainSummary s;
    if (train_run(&cfg, &s, &err) != 0) return cmd_report_error("train", &err);
    printf("trained %lld steps in %.1f s (%.0f tokens/s): loss %.4f -> %.4f", (long long)s.steps, s.seconds,
           s.tokens_per_s, s.first_loss, s.last_loss);
    if (!isnan(s.first_val)) printf(", validation loss %.4f -> %.4f", s.first_val, s.last_val);
    printf("\n");
    return 0;
}
