/* tokfile.c: see tokfile.h. */
#include "data/tokfile.h"

#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

static const char k_magic[8] = {'O', 'W', 'L', 'T', 'O', 'K', 'S', '\0'};

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

int tokfile_read(const char *path, TokData *out, OwError *err) {
    memset(out, 0, sizeof *out);
    if (ow_map_file(path, &out->map, err) != 0) return -1;
    const uint8_t *b = out->map.data;
    size_t size = out->map.size;
    int rc = -1;
    if (size < TOKFILE_HEADER_BYTES || memcmp(b, k_magic, 8) != 0) {
        ow_fail(err,
                "%s: not an owlore token file (bad magic or shorter than the %d-byte header) "
                "(hint: make one with `owlore tokenize`, or pass a .txt/.jsonl file)",
                path, TOKFILE_HEADER_BYTES);
        goto fail;
    }
    if (xxh64(b, 120, 0) != rd64(b + 120)) {
        ow_fail(err, "%s: header checksum mismatch: the file is corrupt", path);
        goto fail;
    }
    uint32_t version = rd32(b + 8), width = rd32(b + 12);
    if (version != 1) {
        ow_fail(err, "%s: token file version %u is not supported (this owlore reads version 1)", path, version);
        goto fail;
    }
    if (width != 2 && width != 4) {
        ow_fail(err, "%s: field id_width is %u, must be 2 or 4", path, width);
        goto fail;
    }
    uint64_t vocab = rd64(b + 16), count = rd64(b + 24), flags = rd64(b + 32), ndocs = rd64(b + 40);
    if (vocab == 0 || vocab > (1ull << 31)) {
        ow_fail(err, "%s: field vocab_size %llu is out of range", path, (unsigned long long)vocab);
        goto fail;
    }
    if (flags & ~1ull) {
        ow_fail(err, "%s: unknown flags 0x%llx", path, (unsigned long long)flags);
        goto fail;
    }
    uint64_t room = size - TOKFILE_HEADER_BYTES;
    uint64_t per_token = width + ((flags & 1) ? 1 : 0);
    if (count > room / per_token || (ndocs > 0 && (ndocs + 1) > (room - count * per_token) / 8) ||
        TOKFILE_HEADER_BYTES + count * per_token + (ndocs ? (ndocs + 1) * 8 : 0) != size) {
        ow_fail(err, "%s: size %zu does not match the header (count %llu, ndocs %llu): truncated or corrupt", path,
                size, (unsigned long long)count, (unsigned long long)ndocs);
        goto fail;
    }
    if (xxh64(b + TOKFILE_HEADER_BYTES, size - TOKFILE_HEADER_BYTES, 0) != rd64(b + 64)) {
        ow_fail(err, "%s: payload checksum mismatch: the file is corrupt", path);
        goto fail;
    }
    out->count = (int64_t)count;
    out->vocab_size = (int64_t)vocab;
    out->width = (int)width;
    out->ids = b + TOKFILE_HEADER_BYTES;
    out->mask = (flags & 1) ? b + TOKFILE_HEADER_BYTES + count * width : NULL;
    out->ndocs = (int64_t)ndocs;
    out->tokenizer_hash = rd64(b + 48);
    out->source_hash = rd64(b + 56);
    if (ndocs) {
        /* offsets may be unaligned in the mapping when width/mask make it so: copy them */
        const uint8_t *ob = b + TOKFILE_HEADER_BYTES + count * per_token;
        uint64_t *offs = ow_xmalloc((ndocs + 1) * 8);
        memcpy(offs, ob, (ndocs + 1) * 8);
        out->heap = offs;
        out->doc_offsets = offs;
        if (offs[0] != 0 || offs[ndocs] != count) {
            ow_fail(err, "%s: document offsets must start at 0 and end at the token count", path);
            goto fail;
        }
        for (uint64_t i = 0; i < ndocs; i++) {
            if (offs[i] > offs[i + 1]) {
                ow_fail(err, "%s: document offsets are not increasing at document %llu", path, (unsigned long long)i);
                goto fail;
            }
        }
    }
    for (int64_t i = 0; i < out->count; i++) {
        int32_t id = tokdata_id(out, i);
        if (id < 0 || (uint64_t)id >= vocab) {
            ow_fail(err,
                    "%s: token %lld has id %d, outside the vocabulary of %llu (hint: the file was made for "
                    "another tokenizer)",
                    path, (long long)i, id, (unsigned long long)vocab);
            goto fail;
        }
    }
    return 0;
fail:
    tokdata_free(out);
    return rc;
}

int tokfile_write(const char *path, const int32_t *ids, const uint8_t *mask, int64_t count, int64_t vocab_size,
                  const uint64_t *doc_offsets, int64_t ndocs, uint64_t tokenizer_hash, uint64_t source_hash,
                  OwError *err) {
    if (vocab_size <= 0 || vocab_size > (1ll << 31))
        return ow_fail(err, "%s: vocab size %lld out of range", path, (long long)vocab_size);
    int width = vocab_size <= 65536 ? 2 : 4;
    for (int64_t i = 0; i < count; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size)
            return ow_fail(err, "%s: token %lld has id %d outside the vocabulary of %lld", path, (long long)i, ids[i],
                           (long long)vocab_size);
    size_t payload = (size_t)count * (size_t)width + (mask ? (size_t)count : 0) + (ndocs ? (size_t)(ndocs + 1) * 8 : 0);
    uint8_t *buf = ow_try_malloc(TOKFILE_HEADER_BYTES + payload, "token file buffer", err);
    if (!buf) return -1;
    memset(buf, 0, TOKFILE_HEADER_BYTES);
    uint8_t *p = buf + TOKFILE_HEADER_BYTES;
    for (int64_t i = 0; i < count; i++) {
        if (width == 2) {
            uint16_t v = (uint16_t)ids[i];
            memcpy(p + i * 2, &v, 2);
        } else {
            uint32_t v = (uint32_t)ids[i];
            memcpy(p + i * 4, &v, 4);
        }
    }
    p += (size_t)count * (size_t)width;
    if (mask) {
        memcpy(p, mask, (size_t)count);
        p += count;
    }
    if (ndocs) memcpy(p, doc_offsets, (size_t)(ndocs + 1) * 8);
    uint32_t version = 1, w = (uint32_t)width;
    uint64_t vals[] = {(uint64_t)vocab_size,
                       (uint64_t)count,
                       mask ? 1ull : 0ull,
                       (uint64_t)ndocs,
                       tokenizer_hash,
                       source_hash,
                       xxh64(buf + TOKFILE_HEADER_BYTES, payload, 0)};
    memcpy(buf, k_magic, 8);
    memcpy(buf + 8, &version, 4);
    memcpy(buf + 12, &w, 4);
    memcpy(buf + 16, vals, sizeof vals);
    uint64_t hh = xxh64(buf, 120, 0);
    memcpy(buf + 120, &hh, 8);
    int rc = ow_write_file_atomic(path, buf, TOKFILE_HEADER_BYTES + payload, err);
    free(buf);
    return rc;
}

void tokdata_from_ids(TokData *out, int32_t *ids, int64_t count, int64_t vocab_size) {
    memset(out, 0, sizeof *out);
    out->ids = ids;
    out->heap = ids;
    out->width = 4;
    out->count = count;
    out->vocab_size = vocab_size;
}

int tokdata_from_bytes_file(const char *path, int64_t vocab_size, TokData *out, OwError *err) {
    memset(out, 0, sizeof *out);
    if (vocab_size < 256)
        return ow_fail(err,
                       "%s: reading text as bytes needs a vocabulary of at least 256 (the model has %lld) "
                       "(hint: give the model a tokenizer.json or pass a token file)",
                       path, (long long)vocab_size);
    MappedFile mf;
    if (ow_map_file(path, &mf, err) != 0) return -1;
    int32_t *ids = ow_try_malloc(mf.size * sizeof(int32_t) + 1, "token ids", err);
    if (!ids) {
        ow_unmap_file(&mf);
        return -1;
    }
    const uint8_t *b = mf.data;
    for (size_t i = 0; i < mf.size; i++) ids[i] = b[i];
    tokdata_from_ids(out, ids, (int64_t)mf.size, vocab_size);
    ow_unmap_file(&mf);
    return 0;
}

void tokdata_free(TokData *d) {
    if (d->map.path) ow_unmap_file(&d->map);
    free(d->heap);
    memset(d, 0, sizeof *d);
}
