/* run_dir.c: see run_dir.h. */
#define _GNU_SOURCE /* realpath */
#include "train/run_dir.h"

#include "core/fileio.h"
#include "train/run_model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int run_dir_same_path(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int run_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && strcmp(e->d_name, RUN_LOCK_FILE) != 0;
    if (d) closedir(d);
    return n;
}

int run_dir_within(const char *path, const char *dir) {
    char p[PATH_MAX], d[PATH_MAX];
    if (!realpath(path, p) || !realpath(dir, d)) return 0;
    size_t n = strlen(d);
    if (n == 1) return 1; /* "/" holds everything */
    return strncmp(p, d, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* The nearest existing ancestor of path (path itself when it exists), heap. */
static char *existing_ancestor(const char *path) {
    char *p = ow_xstrdup(path);
    while (!ow_path_exists(p)) {
        char *up = ow_path_dirname(p);
        int same = strcmp(up, p) == 0;
        free(p);
        p = up;
        if (same) break;
    }
    return p;
}

int run_dir_check_out(const char *out, const char *model, int overwrite, OwError *err) {
    /* a new --out inside the model directory would land there too: judge its nearest existing ancestor */
    char *anc = existing_ancestor(out);
    int inside = ow_is_dir(model) && run_dir_within(anc, model);
    free(anc);
    if (inside)
        return ow_fail(err,
                       "--out %s is the base model's directory %s or lies inside it; the run would overwrite the "
                       "model (hint: choose a new directory for the run)",
                       out, model);
    if (!ow_path_exists(out)) return 0;
    if (!ow_is_dir(out)) return ow_fail(err, "--out %s exists and is not a directory", out);
    if (overwrite || run_dir_entries(out) == 0 || run_dir_detect(out)) return 0;
    return ow_fail(err,
                   "--out %s exists, is not empty and is not an owlore run directory; the run would overwrite its "
                   "config.json and metrics.jsonl (hint: choose a new or empty directory, or pass --overwrite-out to "
                   "write into it anyway)",
                   out);
}

/* The pid written in the lock file, or -1. */
static long holder_pid(int fd) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : -1;
}

static int busy(const char *path, int fd, const char *what, OwError *err) {
    long pid = holder_pid(fd);
    char who[64];
    if (pid > 0)
        snprintf(who, sizeof who, "process %ld", pid);
    else
        snprintf(who, sizeof who, "another process");
    return ow_fail(err,
                   "%s is locked by %s (%s); %s (hint: wait for it to finish, or stop it; the lock goes with the "
                   "process)",
                   path, who, "an `owlore train` writing the run, or a reader of it", what);
}

/* Locks path's file with op, retrying when the file was replaced between open and flock. */
static int lock_file(const char *path, int flags, int op, const char *what, RunLock *lk, OwError *err) {
    lk->fd = -1;
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, flags | O_CLOEXEC, 0644);
        if (fd < 0) {
            if (errno == ENOENT && !(flags & O_CREAT)) return 0;
            return ow_fail(err, "%s: cannot open the run's lock file: %s (hint: the run directory must be writable)",
                           path, strerror(errno));
        }
        if (flock(fd, op | LOCK_NB) != 0) {
            int e = errno, rc = e == EWOULDBLOCK ? busy(path, fd, what, err)
                                                 : ow_fail(err, "%s: cannot lock: %s", path, strerror(e));
            close(fd);
            return rc;
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            lk->fd = fd;
            return 0;
        }
        close(fd); /* removed or replaced while we locked it: lock the file that is there now */
    }
    return ow_fail(err, "%s: the lock file keeps changing", path);
}

int run_lock_exclusive(const char *run_dir, RunLock *lk, OwError *err) {
    char *p = ow_path_join(run_dir, RUN_LOCK_FILE);
    int rc = lock_file(p, O_RDWR | O_CREAT, LOCK_EX, "two runs cannot write one directory", lk, err);
    if (rc == 0) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(lk->fd, 0) != 0 || pwrite(lk->fd, buf, (size_t)n, 0) != n) {
            rc = ow_fail(err, "%s: cannot write: %s", p, strerror(errno));
            run_lock_release(lk);
        }
    }
    free(p);
    return rc;
}

int run_lock_shared(const char *run_dir, RunLock *lk, OwError *err) {
    char *p = ow_path_join(run_dir, RUN_LOCK_FILE);
    int rc = lock_file(p, O_RDONLY, LOCK_SH, "it is being written; read it when the run has stopped", lk, err);
    free(p);
    return rc;
}

void run_lock_release(RunLock *lk) {
    if (lk->fd >= 0) close(lk->fd); /* closing the only descriptor drops the flock */
    lk->fd = -1;
}

void run_dir_remove_unused(const char *run_dir, RunLock *lk) {
    char *p = ow_path_join(run_dir, RUN_LOCK_FILE);
    if (lk->fd >= 0) (void)unlink(p);
    free(p);
    run_lock_release(lk);
    (void)rmdir(run_dir);
}
