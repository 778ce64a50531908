/* metrics_resume.h: reopening RUN_DIR/metrics.jsonl when a run resumes.
 *
 * The checkpoint records the file's length after its step (metrics_bytes).
 * Whatever follows was written after that checkpoint, possibly a torn
 * record (a kill or a full disk mid-write): the file is cut back to that
 * length, so the resumed run appends the same lines an uninterrupted run
 * would. The kept part must end on a complete record (a newline after a
 * JSON object); a missing or shorter file, or a length that ends inside a
 * record, means the file was changed, and the run refuses to continue it. */
#ifndef OWLORE_TRAIN_METRICS_RESUME_H
#define OWLORE_TRAIN_METRICS_RESUME_H

#include "core/fileio.h"

/* Opens path for appending, cut back to keep bytes (checked as above). */
int metrics_resume_open(AppendFile *f, const char *path, int64_t keep, OwError *err);

#endif
