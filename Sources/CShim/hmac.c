// svr_hmac: see include/svr_hmac.h. The low-level SHA API is deprecated in OpenSSL 3.0
// (not removed); OPENSSL_SUPPRESS_DEPRECATED keeps this one file warning-free.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "svr_hmac.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

struct svr_hmac {
    int algorithm;
    union {
        struct { SHA256_CTX inner, outer; } sha256;
        struct { SHA_CTX inner, outer; } sha1;
    } u;
};

svr_hmac *svr_hmac_new(int algorithm) {
    if (algorithm != SVR_HMAC_SHA256 && algorithm != SVR_HMAC_SHA1) return NULL;
    svr_hmac *h = calloc(1, sizeof *h);
    if (h == NULL) return NULL;
    h->algorithm = algorithm;
    svr_hmac_set_key(h, NULL, 0);
    return h;
}

void svr_hmac_free(svr_hmac *h) {
    if (h == NULL) return;
    OPENSSL_cleanse(h, sizeof *h);
    free(h);
}

int svr_hmac_digest_length(const svr_hmac *h) {
    return h->algorithm == SVR_HMAC_SHA1 ? SHA_DIGEST_LENGTH : SHA256_DIGEST_LENGTH;
}

void svr_hmac_set_key(svr_hmac *h, const void *key, size_t key_length) {
    unsigned char k[64], pad[64];
    memset(k, 0, sizeof k);
    if (key_length > 64) {
        if (h->algorithm == SVR_HMAC_SHA1) SHA1(key, key_length, k); else SHA256(key, key_length, k);
    } else if (key_length > 0) {
        memcpy(k, key, key_length);
    }
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    if (h->algorithm == SVR_HMAC_SHA1) {
        SHA1_Init(&h->u.sha1.inner);
        SHA1_Update(&h->u.sha1.inner, pad, 64);
    } else {
        SHA256_Init(&h->u.sha256.inner);
        SHA256_Update(&h->u.sha256.inner, pad, 64);
    }
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5C;
    if (h->algorithm == SVR_HMAC_SHA1) {
        SHA1_Init(&h->u.sha1.outer);
        SHA1_Update(&h->u.sha1.outer, pad, 64);
    } else {
        SHA256_Init(&h->u.sha256.outer);
        SHA256_Update(&h->u.sha256.outer, pad, 64);
    }
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
}

void svr_hmac_compute(const svr_hmac *h, const void *a, size_t a_length, const void *b, size_t b_length,
                      const void *c, size_t c_length, uint8_t *out) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (h->algorithm == SVR_HMAC_SHA1) {
        SHA_CTX s = h->u.sha1.inner;
        if (a_length > 0) SHA1_Update(&s, a, a_length);
        if (b_length > 0) SHA1_Update(&s, b, b_length);
        if (c_length > 0) SHA1_Update(&s, c, c_length);
        SHA1_Final(md, &s);
        s = h->u.sha1.outer;
        SHA1_Update(&s, md, SHA_DIGEST_LENGTH);
        SHA1_Final(out, &s);
    } else {
        SHA256_CTX s = h->u.sha256.inner;
        if (a_length > 0) SHA256_Update(&s, a, a_length);
        if (b_length > 0) SHA256_Update(&s, b, b_length);
        if (c_length > 0) SHA256_Update(&s, c, c_length);
        SHA256_Final(md, &s);
        s = h->u.sha256.outer;
        SHA256_Update(&s, md, SHA256_DIGEST_LENGTH);
        SHA256_Final(out, &s);
    }
}
