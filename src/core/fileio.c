/* fileio.c: see fileio.h. */
#define _GNU_SOURCE
#include "core/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a non-regular file is, for the message. */
static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* Opens path for reading, following symlinks, and checks it is a regular file of at
 * most max_bytes. O_NONBLOCK: opening a FIFO without a writer must not block. */
static int open_regular(const char *path, size_t max_bytes, int *fd_out, size_t *size, OwError *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ow_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = ow_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = ow_fail(err, "%s: is %s, not a regular file (hint: pass the file itself)", path, file_kind(st.st_mode));
    else if ((uint64_t)st.st_size > (uint64_t)max_bytes)
        rc = ow_fail(
            err, "%s: %lld bytes, more than the %zu bytes a file of this kind may have (hint: is it the right file?)",
            path, (long long)st.st_size, max_bytes);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    *size = (size_t)st.st_size;
    return 0;
}

int ow_read_file(const char *path, char **out, size_t *len, OwError *err) {
    return ow_read_file_max(path, OW_READ_FILE_MAX, out, len, err);
}

int ow_read_file_max(const char *path, size_t max_bytes, char **out, size_t *len, OwError *err) {
    *out = NULL;
    if (len) *len = 0;
    int fd;
    size_t size;
    if (open_regular(path, max_bytes, &fd, &size, err) != 0) return -1;
    /* the file may grow while it is read: read to the end, but never past max_bytes */
    size_t cap = size + 1, n = 0;
    char *buf = ow_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) break;
            cap = cap > max_bytes / 2 ? max_bytes + 1 : cap * 2;
            buf = ow_xrealloc(buf, cap + 1);
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return ow_fail(err, "%s: read error: %s", path, strerror(e));
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (n > max_bytes) {
        free(buf);
        return ow_fail(err, "%s: grew past the %zu bytes a file of this kind may have while it was read", path,
                       max_bytes);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return 0;
}

int ow_map_file(const char *path, MappedFile *mf, OwError *err) {
    memset(mf, 0, sizeof *mf);
    int fd;
    if (open_regular(path, SIZE_MAX, &fd, &mf->size, err) != 0) return -1;
    if (mf->size > 0) {
        void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return ow_fail(err, "%s: cannot map: %s", path, strerror(errno));
        }
        mf->data = p;
    }
    close(fd);
    mf->path = ow_xstrdup(path);
    return 0;
}

void ow_unmap_file(MappedFile *mf) {
    if (mf->data) munmap(mf->data, mf->size);
    free(mf->path);
    memset(mf, 0, sizeof *mf);
}

int atomic_file_open(AtomicFile *af, const char *path, OwError *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->tmp_path = ow_xmalloc(n);
    snprintf(af->tmp_path, n, "%s.tmp-%ld", path, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL;
        return ow_fail(err, "%s: cannot create: %s", path, strerror(e));
    }
    af->path = ow_xstrdup(path);
    return 0;
}

int atomic_file_write(AtomicFile *af, const void *data, size_t len, OwError *err) {
    if (af->failed) return -1;
    if (len && fwrite(data, 1, len, af->fp) != len) {
        af->failed = 1;
        return ow_fail(err, "%s: write failed: %s", af->path, strerror(errno));
    }
    return 0;
}

static void atomic_free(AtomicFile *af) {
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

void atomic_file_abort(AtomicFile *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    atomic_free(af);
}

int atomic_file_commit(AtomicFile *af, OwError *err) {
    if (af->failed) {
        atomic_file_abort(af);
        return -1;
    }
    int rc = 0;
    if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0)
        rc = ow_fail(err, "%s: flush failed: %s", af->path, strerror(errno));
    if (fclose(af->fp) != 0 && rc == 0) rc = ow_fail(err, "%s: close failed: %s", af->path, strerror(errno));
    af->fp = NULL;
    if (rc == 0 && rename(af->tmp_path, af->path) != 0)
        rc = ow_fail(err, "%s: rename failed: %s", af->path, strerror(errno));
    if (rc != 0) {
        unlink(af->tmp_path);
        atomic_free(af);
        return rc;
    }
    char *dir = ow_path_dirname(af->path);
    rc = ow_fsync_dir(dir, err);
    free(dir);
    atomic_free(af);
    return rc;
}

int append_file_open(AppendFile *f, const char *path, int64_t keep, OwError *err) {
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_WRONLY | O_CLOEXEC | (keep < 0 ? O_CREAT | O_TRUNC : 0), 0644);
    if (f->fd < 0) return ow_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(f->fd, &st) != 0)
        rc = ow_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    else if (keep > (int64_t)st.st_size)
        rc = ow_fail(err, "%s: %lld bytes, shorter than the %lld expected", path, (long long)st.st_size,
                     (long long)keep);
    else if (keep >= 0 && ftruncate(f->fd, (off_t)keep) != 0)
        rc = ow_fail(err, "%s: cannot cut back to %lld bytes: %s", path, (long long)keep, strerror(errno));
    if (rc != 0) {
        close(f->fd);
        f->fd = -1;
        return rc;
    }
    f->path = ow_xstrdup(path);
    f->size = keep < 0 ? 0 : keep;
    return 0;
}

int append_file_write(AppendFile *f, const void *data, size_t len, OwError *err) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, (const char *)data + done, len - done, (off_t)(f->size + (int64_t)done));
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        int e = n < 0 ? errno : ENOSPC;
        /* cut the partial record; a file cut back to its records is all a resume needs */
        if (ftruncate(f->fd, (off_t)f->size) != 0)
            return ow_fail(err, "%s: write failed: %s (and the partial record could not be cut: %s)", f->path,
                           strerror(e), strerror(errno));
        return ow_fail(err, "%s: write failed: %s", f->path, strerror(e));
    }
    f->size += (int64_t)len;
    return 0;
}

int append_file_sync(AppendFile *f, OwError *err) {
    if (fsync(f->fd) != 0 && errno != EINVAL) return ow_fail(err, "%s: flush failed: %s", f->path, strerror(errno));
    return 0;
}

void append_file_close(AppendFile *f) {
    if (f->path && f->fd >= 0) close(f->fd);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

void ow_remove_stale_tmp(const char *path) {
    char *dir = ow_path_dirname(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t nb = strlen(base);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, nb) != 0 || strncmp(e->d_name + nb, ".tmp-", 5) != 0) continue;
        char *end;
        long pid = strtol(e->d_name + nb + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *p = ow_path_join(dir, e->d_name);
        OwError ignored;
        (void)ow_remove_tree(p, &ignored);
        free(p);
    }
    if (d) closedir(d);
    free(dir);
}

int ow_write_file_atomic(const char *path, const void *data, size_t len, OwError *err) {
    AtomicFile af;
    if (atomic_file_open(&af, path, err) != 0) return -1;
    if (atomic_file_write(&af, data, len, err) != 0) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err);
}

int ow_fsync_dir(const char *dir, OwError *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ow_fail(err, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 && errno != EINVAL) return ow_fail(err, "%s: fsync failed: %s", dir, strerror(errno));
    return 0;
}

int ow_mkdir_p(const char *path, OwError *err) {
    char *p = ow_xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = ow_fail(err, "%s: cannot create directory: %s", p, strerror(e));
            free(p);
            return rc;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = ow_fail(err, "%s: cannot create directory: %s", p, strerror(errno));
    if (rc == 0 && !ow_is_dir(p)) rc = ow_fail(err, "%s: exists and is not a directory", p);
    free(p);
    return rc;
}

int ow_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int ow_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *ow_path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = ow_xmalloc(na + nb + 2);
    memcpy(s, a, na);
    size_t off = na;
    if (na && a[na - 1] != '/') s[off++] = '/';
    memcpy(s + off, b, nb + 1);
    return s;
}

char *ow_path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return ow_xstrdup(".");
    if (slash == path) return ow_xstrdup("/");
    size_t n = (size_t)(slash - path);
    char *d = ow_xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

int ow_remove_tree(const char *path, OwError *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : ow_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0) return ow_fail(err, "%s: cannot remove: %s", path, strerror(errno));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return ow_fail(err, "%s: cannot open directory: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *child = ow_path_join(path, e->d_name);
        rc = ow_remove_tree(child, err);
        free(child);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0) rc = ow_fail(err, "%s: cannot remove directory: %s", path, strerror(errno));
    return rc;
}

int ow_copy_file(const char *src, const char *dst, OwError *err) {
    MappedFile mf;
    if (ow_map_file(src, &mf, err) != 0) return -1;
    int rc = ow_write_file_atomic(dst, mf.data, mf.size, err);
    ow_unmap_file(&mf);
    return rc;
}
