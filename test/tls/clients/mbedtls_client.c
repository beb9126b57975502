/* A firmware-style HTTPS client on mbed TLS 2.28 (Debian libmbedtls-dev). See common.h. */
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include "common.h"
#include "mbedtls_setup.h"

int main(int argc, char **argv) {
  struct fg_args a;
  fg_parse(argc, argv, &a);
  struct fg_mbedtls m;
  mbedtls_ssl_session saved;
  int ret, have_session = 0;
  static int suites[FG_MAX_CIPHERS + 1];

  fg_mbedtls_setup(&m, a.ca, a.cert, a.key);
  mbedtls_ssl_config *conf = &m.conf;
  mbedtls_ssl_session_init(&saved);
  if (a.n_ciphers > 0) {
    for (int i = 0; i < a.n_ciphers; i++) {
      suites[i] = mbedtls_ssl_get_ciphersuite_id(a.ciphers[i]);
      if (suites[i] == 0) { printf("FAILED unknown suite %s\n", a.ciphers[i]); return 2; }
    }
    suites[a.n_ciphers] = 0;
    mbedtls_ssl_conf_ciphersuites(conf, suites);
  }
  mbedtls_ssl_conf_session_tickets(conf, a.tickets ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                                    : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  if (a.mfl) {
    unsigned char code = a.mfl == 512 ? MBEDTLS_SSL_MAX_FRAG_LEN_512
                         : a.mfl == 1024 ? MBEDTLS_SSL_MAX_FRAG_LEN_1024
                         : a.mfl == 2048 ? MBEDTLS_SSL_MAX_FRAG_LEN_2048
                                         : MBEDTLS_SSL_MAX_FRAG_LEN_4096;
    if ((ret = mbedtls_ssl_conf_max_frag_len(conf, code)) != 0) fg_fail("mfl", ret);
  }
  const char *alpn_list[2] = {a.alpn, NULL};
  if (a.alpn && (ret = mbedtls_ssl_conf_alpn_protocols(conf, alpn_list)) != 0) fg_fail("alpn", ret);

  for (int n = 0; n < a.n_requests; n++) {
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    fg_mbedtls_connect(&ssl, &net, conf, a.host, a.port, have_session ? &saved : NULL, 0);
    printf("CONNECTION %d version=%s cipher=%s resumed=%d\n", n, mbedtls_ssl_get_version(&ssl),
           mbedtls_ssl_get_ciphersuite(&ssl), fg_resumed_flag);
    mbedtls_ssl_session_free(&saved);
    mbedtls_ssl_session_init(&saved);
    if ((ret = mbedtls_ssl_get_session(&ssl, &saved)) != 0) fg_fail("get session", ret);
    have_session = 1;

    size_t len;
    unsigned char *req = fg_read_file(a.requests[n], &len);
    size_t chunk = a.write_size > 0 ? (size_t)a.write_size : len;
    for (size_t off = 0; off < len;) {
      size_t want = len - off < chunk ? len - off : chunk;
      ret = mbedtls_ssl_write(&ssl, req + off, want);
      if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
      if (ret < 0) fg_fail("write", ret);
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
