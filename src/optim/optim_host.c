/* optim_host.c: see optim_host.h. */
#include "optim/optim_host.h"

#include "offload/host_mem.h"

#include <string.h>

/* One host buffer of the optimizer (zeroed), counted in the model's HostMem and in Optimizer.host. */
static void *host_buffer(Optimizer *o, size_t bytes, HostKind kind, const char *what, OwError *err) {
    Model *m = o->model;
    void *p = host_mem_alloc(&m->host, m->be, bytes, kind, kind == HOST_MOMENTS, what, err);
    if (!p) return NULL;
    int rc = memstats_add(&o->host, MEM_OPTIM, bytes, what, "host", err);
    OW_CHECK(rc == 0); /* Optimizer.host has no cap: HostMem's is the one */
    return p;
}

/* Frees a buffer of host_buffer (NULL is fine). */
static void host_buffer_free(Optimizer *o, void *p) {
    memstats_sub(&o->host, MEM_OPTIM, host_mem_free(&o->model->host, o->model->be, p));
}

/* ---- host-resident moments ---- */

int optim_host_moments_alloc(Optimizer *o, ParamState *s, const Param *p, const char *what, OwError *err) {
    Backend *be = o->model->be;
    /* page-locked host memory, zeroed; m.data/v.data stay NULL (shapes only) */
    size_t nb = tensor_nbytes(&s->m);
    if (be->ops->host_state_reserve(be, err) != 0) return -1;
    s->hm = host_buffer(o, nb, HOST_MOMENTS, what, err);
    s->hv = s->hm ? host_buffer(o, nb, HOST_MOMENTS, what, err) : NULL;
    if (!s->hv) {
        host_buffer_free(o, s->hm);
        s->hm = NULL;
        return ow_fail_prefix(err,
                              "optimizer state of %s in host memory (hint: --offload-optimizer off keeps it "
                              "on the device)",
                              p->name);
    }
    return 0;
}

void optim_host_moments_free(Optimizer *o, ParamState *s) {
    host_buffer_free(o, s->hm);
    host_buffer_free(o, s->hv);
    s->hm = s->hv = NULL;
}

void optim_moments_from_host(Optimizer *o, ParamState *s, const float *m, const float *v) {
    Backend *be = o->model->be;
    if (!s->host_state) {
        be->ops->upload(be, &s->m, m, OW_F32);
        be->ops->upload(be, &s->v, v, OW_F32);
        return;
    }
    be->ops->sync(be);
    memcpy(s->hm, m, tensor_nbytes(&s->m));
    memcpy(s->hv, v, tensor_nbytes(&s->v));
}

void optim_moments_to_host(Optimizer *o, ParamState *s, float *m, float *v) {
    Backend *be = o->model->be;
    if (!s->host_state) {
        be->ops->download(be, m, OW_F32, &s->m);
        be->ops->download(be, v, OW_F32, &s->v);
        return;
    }
    be->ops->sync(be);
    memcpy(m, s->hm, tensor_nbytes(&s->m));
    memcpy(v, s->hv, tensor_nbytes(&s->v));
}

/* ---- parked state ---- */

/* One host buffer of a park, made when missing (pageable, its pages touched: the copy into it runs at full
 * speed). */
static int park_buffer(Optimizer *o, float **buf, size_t bytes, const char *what, OwError *err) {
    if (*buf || bytes == 0) return 0;
    *buf = host_buffer(o, bytes, HOST_PARKED, what, err);
    return *buf ? 0 : -1;
}

int optim_host_park_buffers(Optimizer *o, ParamState *s, size_t nb, size_t pb, OwError *err) {
    return park_buffer(o, &s->host_m, nb, "parked optimizer state", err) ||
           park_buffer(o, &s->host_v, nb, "parked optimizer state", err) ||
           park_buffer(o, &s->host_P, pb, "parked projector", err);
}

int optim_host_park(Optimizer *o, ParamState *s, OwError *err) {
    Backend *be = o->model->be;
    size_t nb = tensor_nbytes(&s->m);
    size_t pb = s->galore && s->has_P ? tensor_nbytes(&s->P) : 0;
    if (optim_host_park_buffers(o, s, nb, pb, err) != 0) return -1;
    optim_moments_to_host(o, s, s->host_m, s->host_v);
    if (pb) be->ops->download(be, s->host_P, OW_F32, &s->P);
    s->parked = 1;
    return 0;
}

void optim_host_unpark(Optimizer *o, ParamState *s) {
    Backend *be = o->model->be;
    optim_moments_from_host(o, s, s->host_m, s->host_v);
    if (s->galore && s->has_P) be->ops->upload(be, &s->P, s->host_P, OW_F32);
    s->parked = 0;
}

void optim_host_park_free(Optimizer *o, ParamState *s) {
    host_buffer_free(o, s->host_m);
    host_buffer_free(o, s->host_v);
    host_buffer_free(o, s->host_P);
    s->host_m = s->host_v = s->host_P = NULL;
    s->parked = 0;
}
