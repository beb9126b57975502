/* A firmware-style HTTPS client on mbed TLS 2.28 (Debian libmbedtls-dev). See common.h. */
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>
#include "common.h"

/* mbed TLS 2.28 has no public "was this session resumed" call; its debug log says it. */
static int resumed_flag;
static void debug_cb(void *ctx, int level, const char *file, int line, const char *msg) {
  (void)ctx; (void)level; (void)file; (void)line;
  if (strstr(msg, "a session has been resumed")) resumed_flag = 1;
}

static void fail(const char *what, int ret) {
  char buf[200];
  mbedtls_strerror(ret, buf, sizeof buf);
  printf("FAILED %s: -0x%04x %s\n", what, (unsigned)-ret, buf);
  exit(1);
}

int main(int argc, char **argv) {
  struct fg_args a;
  fg_parse(argc, argv, &a);
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt ca, cert;
  mbedtls_pk_context key;
  mbedtls_ssl_config conf;
  mbedtls_ssl_session saved;
  int ret, have_session = 0;
  static int suites[FG_MAX_CIPHERS + 1];

  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);
  mbedtls_x509_crt_init(&ca);
  mbedtls_x509_crt_init(&cert);
  mbedtls_pk_init(&key);
  mbedtls_ssl_config_init(&conf);
  mbedtls_ssl_session_init(&saved);
  if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0)) != 0) fail("seed", ret);
  if ((ret = mbedtls_x509_crt_parse_file(&ca, a.ca)) != 0) fail("ca", ret);
  if ((ret = mbedtls_x509_crt_parse_file(&cert, a.cert)) != 0) fail("cert", ret);
  if ((ret = mbedtls_pk_parse_keyfile(&key, a.key, NULL)) != 0) fail("key", ret);
  if ((ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0) fail("config", ret);
  mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
  mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
  mbedtls_ssl_conf_dbg(&conf, debug_cb, NULL);
  mbedtls_debug_set_threshold(3);
  if ((ret = mbedtls_ssl_conf_own_cert(&conf, &cert, &key)) != 0) fail("own cert", ret);
  mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  if (a.n_ciphers > 0) {
    for (int i = 0; i < a.n_ciphers; i++) {
      suites[i] = mbedtls_ssl_get_ciphersuite_id(a.ciphers[i]);
      if (suites[i] == 0) { printf("FAILED unknown suite %s\n", a.ciphers[i]); return 2; }
    }
    suites[a.n_ciphers] = 0;
    mbedtls_ssl_conf_ciphersuites(&conf, suites);
  }
  mbedtls_ssl_conf_session_tickets(&conf, a.tickets ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                                    : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  if (a.mfl) {
    unsigned char code = a.mfl == 512 ? MBEDTLS_SSL_MAX_FRAG_LEN_512
                         : a.mfl == 1024 ? MBEDTLS_SSL_MAX_FRAG_LEN_1024
                         : a.mfl == 2048 ? MBEDTLS_SSL_MAX_FRAG_LEN_2048
                                         : MBEDTLS_SSL_MAX_FRAG_LEN_4096;
    if ((ret = mbedtls_ssl_conf_max_frag_len(&conf, code)) != 0) fail("mfl", ret);
  }
  const char *alpn_list[2] = {a.alpn, NULL};
  if (a.alpn && (ret = mbedtls_ssl_conf_alpn_protocols(&conf, alpn_list)) != 0) fail("alpn", ret);

  for (int n = 0; n < a.n_requests; n++) {
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    mbedtls_net_init(&net);
    mbedtls_ssl_init(&ssl);
    if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0) fail("setup", ret);
    if ((ret = mbedtls_ssl_set_hostname(&ssl, "localhost")) != 0) fail("hostname", ret);
    if ((ret = mbedtls_net_connect(&net, a.host, a.port, MBEDTLS_NET_PROTO_TCP)) != 0) fail("connect", ret);
    mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, NULL);
    if (have_session && (ret = mbedtls_ssl_set_session(&ssl, &saved)) != 0) fail("set session", ret);
    resumed_flag = 0;
    while ((ret = mbedtls_ssl_handshake(&ssl)) != 0) {
      if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) fail("handshake", ret);
    }
    if ((ret = mbedtls_ssl_get_verify_result(&ssl)) != 0) fail("verify", -1);
    printf("CONNECTION %d version=%s cipher=%s resumed=%d\n", n, mbedtls_ssl_get_version(&ssl),
           mbedtls_ssl_get_ciphersuite(&ssl), resumed_flag);
    mbedtls_ssl_session_free(&saved);
    mbedtls_ssl_session_init(&saved);
    if ((ret = mbedtls_ssl_get_session(&ssl, &saved)) != 0) fail("get session", ret);
    have_session = 1;

    size_t len;
    unsigned char *req = fg_read_file(a.requests[n], &len);
    size_t chunk = a.write_size > 0 ? (size_t)a.write_size : len;
    for (size_t off = 0; off < len;) {
      size_t want = len - off < chunk ? len - off : chunk;
      ret = mbedtls_ssl_write(&ssl, req + off, want);
      if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
      if (ret < 0) fail("write", ret);
      off += (size_t)ret;
    }
    free(req);
    unsigned char buf[4096];
    for (;;) {
      ret = mbedtls_ssl_read(&ssl, buf, sizeof buf);
      if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
      if (ret <= 0) break;
      fwrite(buf, 1, (size_t)ret, stdout);
    }
    printf("\n");
    mbedtls_ssl_close_notify(&ssl);
    mbedtls_net_free(&net);
    mbedtls_ssl_free(&ssl);
  }
  fflush(stdout);
  return 0;
}
