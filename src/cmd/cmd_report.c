/* cmd_report.c: `owlore report`: RUN_DIR/report.html. */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/fileio.h"
#include "train/report.h"
#include "train/run_dir.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_report(int argc, char **argv) {
    ArgsResult res;
    OwError err;
    int parsed =
        cmd_args("report", argc, argv, NULL, 0, "owlore report RUN_DIR",
                 "Writes RUN_DIR/report.html: one self-contained page (inline CSS and SVG, no scripts or external\n"
                 "assets) with the loss and validation curves, learning rate, gradient norm, tokens/s, memory,\n"
                 "the per-block outlier ratios and sampling probabilities, and a heatmap of the trainable blocks\n"
                 "per step. `owlore train` writes it at the end of a run and when a run is interrupted.",
                 &res);
    if (parsed >= 0) return parsed;
    if (res.npos != 1) {
        ow_fail(&err, "usage: owlore report RUN_DIR (see --help)");
        cmd_report_error("report", &err);
        return 2;
    }
    RunLock lk; /* the trainer writes the report under its own lock; a separate report reads under a shared one */
    if (run_lock_shared(res.pos[0], &lk, &err) != 0) return cmd_report_error("report", &err);
    int rc = report_write(res.pos[0], &err);
    run_lock_release(&lk);
    if (rc != 0) return cmd_report_error("report", &err);
    char *p = ow_path_join(res.pos[0], "report.html");
    printf("wrote %s\n", p);
    free(p);
    return 0;
}
