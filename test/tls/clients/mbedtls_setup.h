/*
 * The mbed TLS 2.28 client set-up shared by the test client (mbedtls_client.c)
 * and the sleepy-device benchmark's client (bench/clients/sleepy_upload.c):
 * random generator, the server CA, the device's certificate and key, TLS 1.2
 * or later, the server verified, and the debug hook that tells a resumption;
 * and one connection: TCP connect, handshake (resuming a session if given).
 */
#ifndef FG_MBEDTLS_SETUP_H
#define FG_MBEDTLS_SETUP_H
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* mbed TLS 2.28 has no public "was this session resumed" call; its debug log says it. */
static int fg_resumed_flag;
static void fg_debug_cb(void *ctx, int level, const char *file, int line, const char *msg) {
  (void)ctx; (void)level; (void)file; (void)line;
  if (strstr(msg, "a session has been resumed")) fg_resumed_flag = 1;
}

static void fg_fail(const char *what, int ret) {
  char buf[200];
  mbedtls_strerror(ret, buf, sizeof buf);
  printf("FAILED %s: -0x%04x %s\n", what, (unsigned)-ret, buf);
  exit(1);
}

struct fg_mbedtls {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt ca, cert;
  mbedtls_pk_context key;
  mbedtls_ssl_config conf;
};

static void fg_mbedtls_setup(struct fg_mbedtls *m, const char *ca, const char *cert, const char *key) {
  int ret;
  mbedtls_entropy_init(&m->entropy);
  mbedtls_ctr_drbg_init(&m->drbg);
  mbedtls_x509_crt_init(&m->ca);
  mbedtls_x509_crt_init(&m->cert);
  mbedtls_pk_init(&m->key);
  mbedtls_ssl_config_init(&m->conf);
  if ((ret = mbedtls_ctr_drbg_seed(&m->drbg, mbedtls_entropy_func, &m->entropy, NULL, 0)) != 0) fg_fail("seed", ret);
  if ((ret = mbedtls_x509_crt_parse_file(&m->ca, ca)) != 0) fg_fail("ca", ret);
  if ((ret = mbedtls_x509_crt_parse_file(&m->cert, cert)) != 0) fg_fail("cert", ret);
  if ((ret = mbedtls_pk_parse_keyfile(&m->key, key, NULL)) != 0) fg_fail("key", ret);
  if ((ret = mbedtls_ssl_config_defaults(&m->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0) fg_fail("config", ret);
  mbedtls_ssl_conf_authmode(&m->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&m->conf, &m->ca, NULL);
  mbedtls_ssl_conf_rng(&m->conf, mbedtls_ctr_drbg_random, &m->drbg);
  mbedtls_ssl_conf_dbg(&m->conf, fg_debug_cb, NULL);
  mbedtls_debug_set_threshold(3);
  if ((ret = mbedtls_ssl_conf_own_cert(&m->conf, &m->cert, &m->key)) != 0) fg_fail("own cert", ret);
  mbedtls_ssl_conf_min_version(&m->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
}

/*
 * Opens one TLS connection to host:port (server name localhost) with conf:
 * TCP connect, the handshake, the server's certificate verified. Offers
 * `session` for resumption when it is not NULL; fg_resumed_flag then says
 * whether the server resumed it. `nodelay` sets TCP_NODELAY. Exits through
 * fg_fail ("FAILED connect: ...", "FAILED handshake: ...") on any error.
 */
static void fg_mbedtls_connect(mbedtls_ssl_context *ssl, mbedtls_net_context *net,
                               const mbedtls_ssl_config *conf, const char *host, const char *port,
                               const mbedtls_ssl_session *session, int nodelay) {
  int ret;
  mbedtls_net_init(net);
  mbedtls_ssl_init(ssl);
  if ((ret = mbedtls_ssl_setup(ssl, conf)) != 0) fg_fail("setup", ret);
  if ((ret = mbedtls_ssl_set_hostname(ssl, "localhost")) != 0) fg_fail("hostname", ret);
  if ((ret = mbedtls_net_connect(net, host, port, MBEDTLS_NET_PROTO_TCP)) != 0) fg_fail("connect", ret);
  if (nodelay) {
    /* As openssl s_time, which writes each flight at once: without it Nagle's
       algorithm holds the client's Finished behind the server's delayed ACK. */
    int one = 1;
    setsockopt(net->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  mbedtls_ssl_set_bio(ssl, net, mbedtls_net_send, mbedtls_net_recv, NULL);
  if (session && (ret = mbedtls_ssl_set_session(ssl, session)) != 0) fg_fail("set session", ret);
  fg_resumed_flag = 0;
  while ((ret = mbedtls_ssl_handshake(ssl)) != 0)
    if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) fg_fail("handshake", ret);
  /* VERIFY_REQUIRED already fails the handshake; kept as the test client always checked it. */
  if (mbedtls_ssl_get_verify_result(ssl) != 0) fg_fail("verify", -1);
}
#endif
