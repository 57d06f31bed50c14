// svr_hmac: HMAC-SHA256 / HMAC-SHA1 over precomputed inner and outer digest states.
//
// OpenSSL 3.0's EVP digest re-init frees and re-creates the provider's context (a
// malloc/free per init, about five per data packet through two routers). These helpers use
// the low-level SHA256_CTX / SHA_CTX API instead (deprecated in 3.0 but present, and backed
// by the same assembly block functions as the provider): keying hashes key ⊕ ipad and
// key ⊕ opad once; each message copies the two states by value on the stack, so it never
// allocates and skips two compression calls per message.
#ifndef SVR_HMAC_H
#define SVR_HMAC_H

#include <stddef.h>
#include <stdint.h>

/// Opaque keyed HMAC state (inner and outer digest states).
typedef struct svr_hmac svr_hmac;

enum { SVR_HMAC_SHA256 = 0, SVR_HMAC_SHA1 = 1 };

/// A new state for `algorithm` keyed with the all-zero empty key; NULL if out of memory or
/// `algorithm` is unknown. Free with svr_hmac_free.
svr_hmac *svr_hmac_new(int algorithm);
void svr_hmac_free(svr_hmac *h);
/// Digest length in bytes (32 or 20).
int svr_hmac_digest_length(const svr_hmac *h);
/// Installs a key (RFC 2104: hashed first when longer than the 64-byte block). No allocation.
void svr_hmac_set_key(svr_hmac *h, const void *key, size_t key_length);
/// HMAC(key, a ‖ b ‖ c) into `out` (svr_hmac_digest_length bytes); b and c may be NULL
/// with length 0. No allocation; `h` is not modified (one state may serve many messages).
void svr_hmac_compute(const svr_hmac *h, const void *a, size_t a_length, const void *b, size_t b_length,
                      const void *c, size_t c_length, uint8_t *out);

#endif
