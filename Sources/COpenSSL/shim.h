#ifndef PAYMENTS_COPENSSL_SHIM_H
#define PAYMENTS_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/hmac.h>

// Macros of OpenSSL as functions Swift can call.
static inline long payments_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
  return SSL_set_tlsext_host_name(ssl, name);
}
static inline int payments_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
  return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline long payments_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) {
  return SSL_CTX_set_mode(ctx, mode);
}
static inline long payments_bio_pending(BIO *bio) {
  return (long)BIO_ctrl_pending(bio);
}
#endif
