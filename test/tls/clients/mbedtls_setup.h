/*
 * The mbed TLS 2.28 client set-up shared by the test client (mbedtls_client.c)
 * and the sleepy-device benchmark's client (bench/clients/sleepy_upload.c):
 * random generator, the server CA, the device's certificate and key, TLS 1.2
 * or later, the server verified, and the debug hook that tells a resumption.
 */
#ifndef FG_MBEDTLS_SETUP_H
#define FG_MBEDTLS_SETUP_H
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#endif
