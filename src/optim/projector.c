/* projector.c: see projector.h. */
#include "optim/projector.h"

#include "core/cancel.h"
#include "optim/optimizer.h"

const char *const projector_kind_names[] = {"exact", "randomized", NULL};

static int alloc_ws(Backend *be, Tensor *t, Tensor desc, OwError *err) {
    *t = desc;
    return be->ops->alloc(be, t, MEM_WORKSPACE, "projector workspace", err);
}

int galore_projector(Backend *be, Tensor *P, const Tensor *G, int rank, int right, ProjectorKind kind, int oversample,
                     int iters, uint64_t seed, OwError *err) {
    int64_t m = G->shape[0], n = G->shape[1];
    int64_t small = m < n ? m : n;
    int64_t k = rank + oversample;
    if (kind == PROJ_EXACT || k >= small) return be->ops->svd_top(be, P, G, rank, right, err);
    /* Randomized range finder with subspace iteration. Right: basis Y of the
     * row space [n, k]; left: basis Y of the column space [m, k]. The sketches
     * may use fast (TF32) GEMMs: they only shape the subspace, and the final
     * projector is computed exactly from G within it. */
    int64_t dim = right ? n : m, other = right ? m : n;
    Tensor Om = {0}, Y = {0}, Z = {0}, B = {0}, Sm = {0};
    int rc = -1;
    if (alloc_ws(be, &Om, tensor_2d(OW_F32, other, k), err) || alloc_ws(be, &Y, tensor_2d(OW_F32, dim, k), err) ||
        alloc_ws(be, &Z, tensor_2d(OW_F32, other, k), err))
        goto done;
    be->ops->fill_normal(be, &Om, seed, 1.0f);
    /* Y = G^T Om (right) or G Om (left) */
    be->ops->matmul_prec(be, &Y, G, right, &Om, 0, 1.0f, 0.0f, MATMUL_FAST_F32);
    if (be->ops->orthonormalize(be, &Y, err) != 0) goto done;
    for (int it = 0; it < iters; it++) {
        if (ow_cancelled()) {
            ow_fail_cancelled(err, "randomized projector");
            goto done;
        }
        /* Z = G Y (right) or G^T Y (left) */
        be->ops->matmul_prec(be, &Z, G, !right, &Y, 0, 1.0f, 0.0f, MATMUL_FAST_F32);
        if (be->ops->orthonormalize(be, &Z, err) != 0) goto done;
        be->ops->matmul_prec(be, &Y, G, right, &Z, 0, 1.0f, 0.0f, MATMUL_FAST_F32);
        if (be->ops->orthonormalize(be, &Y, err) != 0) goto done;
    }
    /* Within span(Y): B = G Y (right, [m, k]) or G^T Y (left, [n, k]) exactly; the
     * projector comes from the top right singular vectors of B (rows of Vb^T, [r, k]), a
     * [k, k] problem however tall B is (the backends take B's Gram matrix or factor it).
     * right: P = Vb^T Y^T [r, n]; left: B = G^T Y, so B^T = Y^T G and the top left singular
     * vectors of Y^T G are the top right singular vectors of B: P = Y Vb [m, r] */
    int64_t tall = right ? m : n;
    if (alloc_ws(be, &B, tensor_2d(OW_F32, tall, k), err) || alloc_ws(be, &Sm, tensor_2d(OW_F32, rank, k), err))
        goto done;
    be->ops->matmul(be, &B, G, !right, &Y, 0, 1.0f, 0.0f);
    if (be->ops->svd_top(be, &Sm, &B, rank, 1, err) != 0) goto done;
    if (right)
        be->ops->matmul(be, P, &Sm, 0, &Y, 1, 1.0f, 0.0f);
    else
        be->ops->matmul(be, P, &Y, 0, &Sm, 1, 1.0f, 0.0f);
    be->ops->canonicalize_signs(be, P, right);
    rc = 0;
done:
    be->ops->release(be, &Om, MEM_WORKSPACE);
    be->ops->release(be, &Y, MEM_WORKSPACE);
    be->ops->release(be, &Z, MEM_WORKSPACE);
    be->ops->release(be, &B, MEM_WORKSPACE);
    be->ops->release(be, &Sm, MEM_WORKSPACE);
    return rc;
}

int galore_warm_up(Backend *be, const OptimConfig *cfg, OwError *err) {
    /* A [2k, 2k] normal matrix (k = rank + oversample) takes the randomized path
     * (k < 2k), touching every kernel and solver a refresh uses, at the solvers'
     * real size k; its workspaces are a few MiB, inside the plan's budget. */
    int64_t s = 2 * ((int64_t)cfg->rank + (cfg->rf_oversample > 0 ? cfg->rf_oversample : 0));
    Tensor G = {0}, P = {0};
    int rc = -1;
    if (alloc_ws(be, &G, tensor_2d(OW_F32, s, s), err) || alloc_ws(be, &P, tensor_2d(OW_F32, cfg->rank, s), err))
        goto done;
    be->ops->fill_normal(be, &G, 0x5EEDull, 1.0f);
    if (galore_projector(be, &P, &G, cfg->rank, 1, cfg->projector, cfg->rf_oversample, cfg->rf_iters, 1, err) != 0)
        goto done;
    be->ops->sync(be);
    rc = 0;
done:
    be->ops->release(be, &G, MEM_WORKSPACE);
    be->ops->release(be, &P, MEM_WORKSPACE);
    return rc;
}
