/* comm.c: see comm.h. */
#include "dist/comm.h"

#include <stdlib.h>
#include <string.h>

#ifdef OWLORE_HAVE_MPI
#include <mpi.h>
#endif

static Comm world = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};

Comm *comm_world(void) { return &world; }

/* An integer environment variable, or -1 when unset or not a number. */
static int env_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 || v > 1 << 20 ? -1 : (int)v;
}

static int launched_size(void) {
    int n = env_int("OMPI_COMM_WORLD_SIZE");
    if (n < 0) n = env_int("PMIX_SIZE");
    if (n < 0) n = env_int("PMI_SIZE");
    return n;
}

int comm_launched(void) { return launched_size() > 1; }

#ifdef OWLORE_HAVE_MPI
/* An MPI call's failure as an OwError (the communicator returns errors instead of aborting). */
static int mpi_check(int rc, const char *what, OwError *err) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ow_fail(err, "%s across the ranks failed: %.*s (a rank stopped?)", what, len, msg);
}
#endif

int comm_init(Comm *c, OwError *err) {
    int n = launched_size();
    if (n <= 1) return 0;
#ifdef OWLORE_HAVE_MPI
    int provided = 0;
    if (mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init", err) != 0) return -1;
    c->mpi = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &c->local_rank);
        MPI_Comm_size(local, &c->local_size);
        MPI_Comm_free(&local);
    }
    return 0;
#else
    (void)c;
    return ow_fail(err,
                   "started as one of %d ranks, but this owlore was built without MPI (hint: install libopenmpi-dev "
                   "(scripts/install-deps.sh) and rebuild, or run one process)",
                   n);
#endif
}

void comm_finalize(Comm *c) {
#ifdef OWLORE_HAVE_MPI
    if (!c->mpi) return;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    c->mpi = 0;
#else
    (void)c;
#endif
}

void comm_abort(Comm *c, int code) {
#ifdef OWLORE_HAVE_MPI
    if (c->mpi && c->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)c;
#endif
    exit(code);
}

/* In-place sum of n elements (double when f64, else float), in pieces MPI's int count can hold. */
static int sum_in_place(Comm *c, void *buf, int64_t n, int f64, OwError *err) {
    if (c->size <= 1 || n <= 0) return 0;
#ifdef OWLORE_HAVE_MPI
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    const int64_t piece = 1 << 28;
    for (int64_t i = 0; i < n; i += piece) {
        int k = (int)(n - i < piece ? n - i : piece);
        if (mpi_check(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * elem, k, f64 ? MPI_DOUBLE : MPI_FLOAT,
                                    MPI_SUM, MPI_COMM_WORLD),
                      "a gradient sum", err) != 0)
            return -1;
    }
#else
    (void)buf;
    (void)f64;
    (void)err;
#endif
    return 0;
}

int comm_sum_f32(Comm *c, float *buf, int64_t n, OwError *err) { return sum_in_place(c, buf, n, 0, err); }

int comm_sum_f64(Comm *c, double *buf, int64_t n, OwError *err) { return sum_in_place(c, buf, n, 1, err); }

int comm_max_i64(Comm *c, int64_t *v, OwError *err) {
    if (c->size <= 1) return 0;
#ifdef OWLORE_HAVE_MPI
    long long x = (long long)*v;
    if (mpi_check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD), "a flag", err) != 0)
        return -1;
    *v = (int64_t)x;
    return 0;
#else
    (void)err;
    return 0;
#endif
}

int comm_gather_u64(Comm *c, uint64_t v, uint64_t *all, OwError *err) {
    if (c->size <= 1) {
        all[0] = v;
        return 0;
    }
#ifdef OWLORE_HAVE_MPI
    unsigned long long x = v, *got = (unsigned long long *)all;
    _Static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "u64");
    if (mpi_check(MPI_Allgather(&x, 1, MPI_UNSIGNED_LONG_LONG, got, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD),
                  "a hash exchange", err) != 0)
        return -1;
    return 0;
#else
    (void)err;
    all[0] = v;
    return 0;
#endif
}

int comm_barrier(Comm *c, OwError *err) {
    if (c->size <= 1) return 0;
#ifdef OWLORE_HAVE_MPI
    return mpi_check(MPI_Barrier(MPI_COMM_WORLD), "a barrier", err);
#else
    (void)err;
    return 0;
#endif
}
