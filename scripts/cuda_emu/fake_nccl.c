/* fake_nccl.c: NCCL's entry points (the ones cuda/cuda_group.cu opens) for
 * the CPU emulator, where device memory is host memory and every stream runs
 * its work when it is queued, so an all-reduce can be done at once, by the
 * host. It sums through owlore's own rank transport (dist/comm.h: MPI, or the
 * local launcher's shared memory), whose symbols the emulated owlore binary
 * exports (-rdynamic); loaded through OWLORE_NCCL_LIBRARY by `run.sh dist`.
 * It checks what a real NCCL would refuse or get wrong: a rank or size other
 * than the transport's, ranks holding different ids (the id was not sent),
 * a dtype or op other than f32 sum, a sum before the communicator exists. */
#include "dist/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char internal[128];
} ncclUniqueId;

typedef struct FakeComm {
    int rank, size;
    long long sums, floats;
} FakeComm;

enum { OK = 0, INVALID_ARGUMENT = 4, INVALID_USAGE = 5 };

int ncclGetVersion(int *v) {
    *v = 0; /* the emulator's stand-in */
    return OK;
}

const char *ncclGetErrorString(int r) {
    return r == OK ? "no error" : r == INVALID_ARGUMENT ? "invalid argument (fake NCCL)" : "invalid usage (fake NCCL)";
}

int ncclGetUniqueId(ncclUniqueId *id) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 32);
    for (int i = 0; i < 128; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        id->internal[i] = (char)(x >> 56);
    }
    return OK;
}

int ncclCommInitRank(FakeComm **comm, int nranks, ncclUniqueId id, int rank) {
    Comm *w = comm_world();
    if (nranks != w->size || rank != w->rank) {
        fprintf(stderr, "fake NCCL: rank %d of %d, but the transport says %d of %d\n", rank, nranks, w->rank, w->size);
        return INVALID_ARGUMENT;
    }
    ncclUniqueId root = id;
    OwError err;
    int64_t differ = 0;
    if (comm_bcast(w, &root, sizeof root, 0, &err) != 0) return INVALID_USAGE;
    differ = memcmp(&root, &id, sizeof id) != 0;
    if (comm_max_i64(w, &differ, &err) != 0 || differ) {
        fprintf(stderr, "fake NCCL: rank %d: the ranks hold different ids\n", rank);
        return INVALID_USAGE;
    }
    FakeComm *c = calloc(1, sizeof *c);
    c->rank = rank;
    c->size = nranks;
    *comm = c;
    return OK;
}

int ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, FakeComm *c, void *stream) {
    (void)stream;
    if (!c || dtype != 7 || op != 0) return INVALID_ARGUMENT;
    if (send != recv) memcpy(recv, send, count * sizeof(float));
    OwError err;
    if (comm_sum_f32(comm_world(), recv, (int64_t)count, &err) != 0) {
        fprintf(stderr, "fake NCCL: %s\n", err.msg);
        return INVALID_USAGE;
    }
    c->sums++;
    c->floats += (long long)count;
    return OK;
}

int ncclCommDestroy(FakeComm *c) {
    if (!c) return INVALID_ARGUMENT;
    fprintf(stderr, "fake NCCL: rank %d of %d summed %lld buffers, %lld floats\n", c->rank, c->size, c->sums,
            c->floats);
    free(c);
    return OK;
}
