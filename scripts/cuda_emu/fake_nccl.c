/* fake_nccl.c: NCCL's entry points (the ones cuda/cuda_group.cu opens) for
 * the CPU emulator, where device memory is host memory and every stream runs
 * its work when it is queued: an all-reduce is MPI_Allreduce over the ranks'
 * buffers, at once. Loaded through OWLORE_NCCL_LIBRARY by `run.sh dist`.
 * It checks what a real NCCL would refuse or get wrong: a rank or size
 * other than MPI's, ranks holding different ids (the id was not sent), a
 * dtype or op other than f32 sum, a sum before the communicator exists. */
#include <mpi.h>
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

static int mpi_up(void) {
    int up = 0;
    MPI_Initialized(&up);
    return up;
}

int ncclCommInitRank(FakeComm **comm, int nranks, ncclUniqueId id, int rank) {
    int size = 1, r = 0;
    if (mpi_up()) { /* else a group of one (OWLORE_TEST_GROUP_OF_ONE), as NCCL allows */
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
    }
    if (nranks != size || rank != r) {
        fprintf(stderr, "fake NCCL: rank %d of %d, but MPI says %d of %d\n", rank, nranks, r, size);
        return INVALID_ARGUMENT;
    }
    ncclUniqueId root = id;
    int same = 1, all = 1;
    if (size > 1) {
        MPI_Bcast(&root, sizeof root, MPI_BYTE, 0, MPI_COMM_WORLD);
        same = memcmp(&root, &id, sizeof id) == 0;
        MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    }
    if (!all) {
        fprintf(stderr, "fake NCCL: rank %d holds another id than rank 0\n", rank);
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
    if (!c || dtype != 7 || op != 0 || count > (size_t)1 << 30) return INVALID_ARGUMENT;
    if (send != recv) memcpy(recv, send, count * sizeof(float));
    if (c->size > 1 && MPI_Allreduce(MPI_IN_PLACE, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return INVALID_USAGE;
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
