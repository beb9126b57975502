/*
 * The sleepy-device benchmark's client (item 6), on mbed TLS 2.28 like the
 * firmware it stands for: a loop of uploads, each on a new TCP connection
 * whose TLS handshake offers the session of the connection before (by ticket,
 * or by session ID with --tickets 0). Each upload is one multipart file of
 * --points "epoch_ms,value" lines into series --series, with timestamps that
 * never repeat, sent with Content-Length; the answer must be 200.
 *
 *   sleepy_upload --host H --port P --ca CA.pem --cert DEV.crt --key DEV.key
 *                 --series NAME --start-ms MS --uploads N [--points 100]
 *                 [--tickets 0|1] [--resume 0|1] [--cipher MBEDTLS-SUITE-NAME] [--status-only]
 *
 * --resume 0 makes every connection a full handshake (the session is not
 * offered); --cipher offers that one suite only (to choose the server's
 * certificate type: ECDHE-ECDSA or ECDHE-RSA).
 * --status-only sends GET /device_endpoint instead (the device is looked up,
 * nothing is stored). Prints "DONE uploads=N resumed=R cipher=SUITE" and exits 0, or
 * "FAILED ..." and exits 1 at the first error.
 */
#include <mbedtls/ssl_ciphersuites.h>
/* The set-up shared with the tests' mbed TLS client (compiled with -I test/tls/clients). */
#include "mbedtls_setup.h"

static const char *arg(int argc, char **argv, const char *name, const char *fallback) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  if (!fallback) { fprintf(stderr, "missing %s\n", name); exit(2); }
  return fallback;
}

static int flag(int argc, char **argv, const char *name) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

/* The whole request for upload n: headers and a multipart body of `points` lines. */
static size_t build_request(char *out, size_t cap, const char *series, long long start, int points) {
  static char body[1 << 20];
  const char *boundary = "fleetgatebenchboundary";
  size_t b = 0;
  b += (size_t)snprintf(body + b, sizeof body - b,
                        "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s.csv\"\r\n"
                        "Content-Type: text/csv\r\n\r\n", boundary, series, series);
  for (int i = 0; i < points; i++)
    b += (size_t)snprintf(body + b, sizeof body - b, "%lld,%d.%d\n", start + 1000LL * i, i % 97, i % 10);
  b += (size_t)snprintf(body + b, sizeof body - b, "\r\n--%s--\r\n", boundary);
  size_t h = (size_t)snprintf(out, cap,
                              "POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\n"
                              "Content-Type: multipart/form-data; boundary=%s\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n", boundary, b);
  if (h + b > cap) { fprintf(stderr, "request too big\n"); exit(2); }
  memcpy(out + h, body, b);
  return h + b;
}

int main(int argc, char **argv) {
  const char *host = arg(argc, argv, "--host", NULL), *port = arg(argc, argv, "--port", NULL);
  const char *series = arg(argc, argv, "--series", "sleepy");
  long long start = atoll(arg(argc, argv, "--start-ms", NULL));
  int uploads = atoi(arg(argc, argv, "--uploads", NULL));
  int points = atoi(arg(argc, argv, "--points", "100"));
  int tickets = atoi(arg(argc, argv, "--tickets", "1"));
  int resume = atoi(arg(argc, argv, "--resume", "1"));
  const char *cipher = arg(argc, argv, "--cipher", "");
  int status_only = flag(argc, argv, "--status-only");
  static int suites[2];
  static char suite[100];
  static char request[1 << 21];
  struct fg_mbedtls m;
  mbedtls_ssl_session saved;
  int ret, have_session = 0, resumed = 0;

  fg_mbedtls_setup(&m, arg(argc, argv, "--ca", NULL), arg(argc, argv, "--cert", NULL),
                   arg(argc, argv, "--key", NULL));
  mbedtls_ssl_config *conf = &m.conf;
  mbedtls_ssl_session_init(&saved);
  if (cipher[0]) {
    suites[0] = mbedtls_ssl_get_ciphersuite_id(cipher);
    if (suites[0] == 0) { printf("FAILED unknown suite %s\n", cipher); return 2; }
    mbedtls_ssl_conf_ciphersuites(conf, suites);
  }
  mbedtls_ssl_conf_session_tickets(conf, tickets ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                                  : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);

  for (int n = 0; n < uploads; n++) {
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    fg_mbedtls_connect(&ssl, &net, conf, host, port, resume && have_session ? &saved : NULL, 1);
    resumed += fg_resumed_flag;
    snprintf(suite, sizeof suite, "%s", mbedtls_ssl_get_ciphersuite(&ssl));
    mbedtls_ssl_session_free(&saved);
    mbedtls_ssl_session_init(&saved);
    if ((ret = mbedtls_ssl_get_session(&ssl, &saved)) != 0) fg_fail("get session", ret);
    have_session = 1;

    size_t len = status_only
                     ? (size_t)snprintf(request, sizeof request,
                                        "GET /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                     : build_request(request, sizeof request, series, start + 1000000LL * n, points);
    for (size_t off = 0; off < len;) {
      ret = mbedtls_ssl_write(&ssl, (unsigned char *)request + off, len - off);
      if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
      if (ret < 0) fg_fail("write", ret);
      off += (size_t)ret;
    }
    unsigned char answer[4096];
    size_t got = 0;
    for (;;) {
      ret = mbedtls_ssl_read(&ssl, answer + got, sizeof answer - 1 - got);
      if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
      if (ret <= 0) break;
      got += (size_t)ret;
      if (got == sizeof answer - 1) break;
    }
    answer[got] = 0;
    if (strncmp((char *)answer, "HTTP/1.1 200", 12) != 0) {
      printf("FAILED upload %d answered: %.300s\n", n, answer);
      return 1;
    }
    mbedtls_ssl_close_notify(&ssl);
    mbedtls_net_free(&net);
    mbedtls_ssl_free(&ssl);
  }
  printf("DONE uploads=%d resumed=%d cipher=%s\n", uploads, resumed, suite);
  return 0;
}
