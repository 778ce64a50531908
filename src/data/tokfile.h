/* tokfile.h: the binary token-id file that `owlore train` reads directly.
 *
 * Layout (little-endian), version 1:
 *   offset  size  field
 *   0       8     magic "OWLTOKS\0"
 *   8       4     version (1)
 *   12      4     id width in bytes (2 or 4)
 *   16      8     vocab_size (every id < vocab_size)
 *   24      8     count: number of tokens
 *   32      8     flags: bit 0 = a loss mask follows the ids
 *   40      8     ndocs: number of documents (0 = unknown); if > 0 a table of
 *                 ndocs + 1 u64 token offsets follows (the mask if present)
 *   48      8     tokenizer hash (xxh64 of tokenizer.json; 0 = none / bytes)
 *   56      8     source hash (xxh64 of the input it was made from; 0 = unknown)
 *   64      8     payload checksum: xxh64 of everything after the header
 *   72      48    reserved, zero
 *   120     8     header checksum: xxh64 of bytes 0..119
 *   128     ...   ids [count] (u16 or u32), mask [count] (u8, 1 = in the loss),
 *                 doc offsets [ndocs + 1] (u64, first 0, last count)
 * Readers check magic, version, sizes against the file length, both
 * checksums, offsets monotone, and that every id is < vocab_size. */
#ifndef OWLORE_DATA_TOKFILE_H
#define OWLORE_DATA_TOKFILE_H

#include "core/error.h"
#include "core/fileio.h"

#include <stdint.h>

#define TOKFILE_HEADER_BYTES 128

typedef struct TokData {
    int64_t count;
    int64_t vocab_size;
    int width;           /* 2 or 4 */
    const void *ids;     /* count ids of `width` bytes */
    const uint8_t *mask; /* count flags, or NULL (all tokens in the loss) */
    int64_t ndocs;
    const uint64_t *doc_offsets; /* ndocs + 1, or NULL */
    uint64_t tokenizer_hash, source_hash;
    /* ownership: either a mapping or a heap buffer */
    MappedFile map;
    void *heap;
} TokData;

static inline int32_t tokdata_id(const TokData *d, int64_t i) {
    return d->width == 2 ? (int32_t)((const uint16_t *)d->ids)[i] : (int32_t)((const uint32_t *)d->ids)[i];
}

int tokfile_read(const char *path, TokData *out, OwError *err);
/* Writes atomically. mask and doc_offsets may be NULL. */
int tokfile_write(const char *path, const int32_t *ids, const uint8_t *mask, int64_t count, int64_t vocab_size,
                  const uint64_t *doc_offsets, int64_t ndocs, uint64_t tokenizer_hash, uint64_t source_hash,
                  OwError *err);
/* Token data held in memory (from text read as bytes, or a tokenizer). Takes ownership of ids. */
void tokdata_from_ids(TokData *out, int32_t *ids, int64_t count, int64_t vocab_size);
/* Reads a text file as bytes: byte-level ids 0..255. */
int tokdata_from_bytes_file(const char *path, int64_t vocab_size, TokData *out, OwError *err);
void tokdata_free(TokData *d);

#endif
