/* ts_sha256.h: SHA-256 (FIPS 180-4) for tests that compare against digests
 * recorded by the Python reference scripts (hashlib.sha256). */
#ifndef OWLORE_TESTS_TS_SHA256_H
#define OWLORE_TESTS_TS_SHA256_H

#include <stddef.h>

/* The lowercase hex digest (64 characters + NUL) of len bytes. */
void ts_sha256_hex(const void *data, size_t len, char out[65]);

#endif
