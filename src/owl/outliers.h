/* outliers.h: OWL outlier ratios of a model's decoder blocks.
 *
 * Calibration sequences run through the frozen model block by block: the
 * residual stream of all sequences is kept in host memory, and only one
 * block's activations (for one micro-batch) are alive on the device. For
 * every linear input feature j the statistic s_j = (1/nsamples) * sum over
 * sequences and tokens of x_j^2 is accumulated in F32. Scores
 * A_ij = |W_ij| sqrt(s_j) of a block's 7 linears are pooled: mu_l is their
 * mean and the block's outlier ratio D_l = 100 * #{A > M mu_l} / #A.
 * Probabilities p_l = D_l / sum_k D_k. */
#ifndef OWLORE_OWL_OUTLIERS_H
#define OWLORE_OWL_OUTLIERS_H

#include "data/tokfile.h"
#include "model/model.h"

#define OWL_MODULES 7

typedef struct OutlierResult {
    int num_layers;
    double M;
    int64_t nsamples, seqlen;
    double *ratios;     /* D_l in percent [L] */
    double *probs;      /* [L] */
    double *block_mean; /* mu_l [L] */
    int64_t *mod_count; /* [L * 7] outliers per module (threshold of its block) */
    int64_t *mod_numel; /* [L * 7] */
} OutlierResult;

extern const char *const k_owl_module_names[OWL_MODULES]; /* "self_attn.q_proj", ... */

/* Picks nsamples windows of seqlen tokens (seeded) from data and computes the
 * ratios. micro_batch sequences go through a block at a time. */
int owl_compute(Model *m, const TokData *data, int64_t nsamples, int64_t seqlen, double M, int64_t micro_batch,
                uint64_t seed, OutlierResult *res, OwError *err);
/* Same from explicit sequences: ids host I32 [nsamples * seqlen]. */
int owl_compute_ids(Model *m, const int32_t *ids, int64_t nsamples, int64_t seqlen, double M, int64_t micro_batch,
                    OutlierResult *res, OwError *err);
void owl_result_free(OutlierResult *r);
/* Writes ratios, probabilities and per-module detail as JSON (atomically). */
int owl_write_json(const OutlierResult *r, const char *model_name, const char *path, OwError *err);
/* Reads per-block scores from an `owlore outliers` JSON ({"ratios": [...]}),
 * a JSON array, or a text file of numbers; checks the count and values. */
int owl_read_ratios(const char *path, int num_layers, double *ratios, OwError *err);

#endif
