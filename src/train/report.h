/* report.h: RUN_DIR/report.html, one self-contained page about a run (inline
 * CSS and SVG; no scripts, fonts or other external assets), made from
 * RUN_DIR/config.json, metrics.jsonl, summary.json (when present) and the
 * outlier ratios (RUN_DIR/ratios.json or the run's --ratios file):
 *   - training loss per step with the validation loss over it,
 *   - learning rate, gradient norm, tokens/s, and memory (device peak, parked
 *     optimizer state in host memory) per step,
 *   - per-block OWL outlier ratios and sampling probabilities,
 *   - a heatmap of which blocks were trainable at which step (from
 *     metrics.jsonl active_blocks; long runs are bucketed, a cell's shade is
 *     the fraction of its steps in which the block trained).
 * Every chart is an <svg class="chart" id="chart-NAME">; each data series is
 * a <path class="series"> (a polyline through its points; long series are
 * thinned to each bucket's minimum and maximum). A metrics line that does not
 * parse (a crash mid-write) is skipped. */
#ifndef OWLORE_TRAIN_REPORT_H
#define OWLORE_TRAIN_REPORT_H

#include "core/error.h"

/* Writes RUN_DIR/report.html atomically. */
int report_write(const char *run_dir, OwError *err);

#endif
