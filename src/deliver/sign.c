/* src/deliver/sign.c -- the webhook signature scheme (include/journeyd/deliver.h
 * "Webhook signatures"): "sha256=" + hex(HMAC-SHA256(secret, ts "." body)).
 * The one definition both the webhook channel (channels.c) and provider
 * receipts (src/api/track.c) use, so the two cannot drift apart.
 */
#include "journeyd/deliver.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct dlv_signer {
    EVP_MD_CTX *in, *out;   /* SHA-256 with (key ^ ipad), (key ^ opad) absorbed */
};

dlv_signer *dlv_signer_create(const char *secret)
{
    unsigned char k[64] = { 0 }, pad[64];
    size_t kl = strlen(secret);
    if (kl > 64) {
        unsigned int dl = 0;
        EVP_Digest(secret, kl, k, &dl, EVP_sha256(), NULL);
    } else {
        memcpy(k, secret, kl);
    }
    dlv_signer *s = jd_xcalloc(1, sizeof *s);
    s->in = EVP_MD_CTX_new();
    s->out = EVP_MD_CTX_new();
    if (!s->in || !s->out) abort();
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    if (EVP_DigestInit_ex(s->in, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(s->in, pad, 64) != 1) abort();
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    if (EVP_DigestInit_ex(s->out, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(s->out, pad, 64) != 1) abort();
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    return s;
}

void dlv_signer_destroy(dlv_signer *s)
{
    if (!s) return;
    EVP_MD_CTX_free(s->in);
    EVP_MD_CTX_free(s->out);
    free(s);
}

void dlv_signer_sign(const dlv_signer *s, const char *ts, const void *body, size_t n, char out[DLV_SIGNATURE_SIZE])
{
    unsigned char inner[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
    unsigned int il = 0, ml = 0;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || EVP_MD_CTX_copy_ex(h, s->in) != 1 || EVP_DigestUpdate(h, ts, strlen(ts)) != 1 ||
        EVP_DigestUpdate(h, ".", 1) != 1 || EVP_DigestUpdate(h, body, n) != 1 || EVP_DigestFinal_ex(h, inner, &il) != 1 ||
        EVP_MD_CTX_copy_ex(h, s->out) != 1 || EVP_DigestUpdate(h, inner, il) != 1 || EVP_DigestFinal_ex(h, mac, &ml) != 1 ||
        ml != 32)
        abort();   /* OpenSSL failing on SHA-256 is not an input error */
    EVP_MD_CTX_free(h);
    static const char digits[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < ml; i++) {
        out[7 + 2 * i] = digits[mac[i] >> 4];
        out[7 + 2 * i + 1] = digits[mac[i] & 15];
    }
    out[DLV_SIGNATURE_SIZE - 1] = '\0';
}

void dlv_webhook_signature(const char *secret, const char *ts, const void *body, size_t n, char out[DLV_SIGNATURE_SIZE])
{
    dlv_signer *s = dlv_signer_create(secret);
    dlv_signer_sign(s, ts, body, n, out);
    dlv_signer_destroy(s);
}

bool dlv_webhook_signature_ok(const char *secret, const char *ts, const void *body, size_t n, const char *sig)
{
    char want[DLV_SIGNATURE_SIZE];
    if (!sig) return false;
    dlv_webhook_signature(secret, ts, body, n, want);
    return jd_secret_eq(want, DLV_SIGNATURE_SIZE - 1, sig, strlen(sig));
}
