/* A firmware-style HTTPS client on wolfSSL 5.5 (Debian libwolfssl-dev). See common.h. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

static void fail(const char *what, WOLFSSL *ssl, int ret) {
  char buf[WOLFSSL_MAX_ERROR_SZ];
  int err = ssl ? wolfSSL_get_error(ssl, ret) : ret;
  printf("FAILED %s: %d %s\n", what, err, wolfSSL_ERR_error_string((unsigned long)err, buf));
  exit(1);
}

static int tcp_connect(const char *host, const char *port) {
  struct addrinfo hints = {0}, *res;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res) != 0) { printf("FAILED resolve\n"); exit(1); }
  int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) { printf("FAILED connect\n"); exit(1); }
  freeaddrinfo(res);
  return fd;
}

int main(int argc, char **argv) {
  struct fg_args a;
  fg_parse(argc, argv, &a);
  wolfSSL_Init();
  WOLFSSL_CTX *ctx = wolfSSL_CTX_new(a.tls13 ? wolfTLSv1_3_client_method() : wolfTLSv1_2_client_method());
  if (!ctx) fail("ctx", NULL, 0);
  int ret;
  if ((ret = wolfSSL_CTX_load_verify_locations(ctx, a.ca, NULL)) != WOLFSSL_SUCCESS) fail("ca", NULL, ret);
  if ((ret = wolfSSL_CTX_use_certificate_file(ctx, a.cert, WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) fail("cert", NULL, ret);
  if ((ret = wolfSSL_CTX_use_PrivateKey_file(ctx, a.key, WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) fail("key", NULL, ret);
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
  if (a.n_ciphers > 0) {
    char list[1024] = "";
    for (int i = 0; i < a.n_ciphers; i++) {
      if (i) strcat(list, ":");
      strcat(list, a.ciphers[i]);
    }
    if ((ret = wolfSSL_CTX_set_cipher_list(ctx, list)) != WOLFSSL_SUCCESS) fail("cipher list", NULL, ret);
  }
  WOLFSSL_SESSION *saved = NULL;
  for (int n = 0; n < a.n_requests; n++) {
    int fd = tcp_connect(a.host, a.port);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (!ssl) fail("new", NULL, 0);
    wolfSSL_set_fd(ssl, fd);
    wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, "localhost", 9);
    if (!a.tls13 && a.tickets) wolfSSL_UseSessionTicket(ssl);
    if (a.mfl) {
      unsigned char code = a.mfl == 512 ? WOLFSSL_MFL_2_9 : a.mfl == 1024 ? WOLFSSL_MFL_2_10
                         : a.mfl == 2048 ? WOLFSSL_MFL_2_11 : WOLFSSL_MFL_2_12;
      if ((ret = wolfSSL_UseMaxFragment(ssl, code)) != WOLFSSL_SUCCESS) fail("mfl", NULL, ret);
    }
    if (a.alpn) {
      char alpn[64];
      snprintf(alpn, sizeof alpn, "%s", a.alpn);
      if ((ret = wolfSSL_UseALPN(ssl, alpn, (unsigned)strlen(alpn), WOLFSSL_ALPN_CONTINUE_ON_MISMATCH)) != WOLFSSL_SUCCESS)
        fail("alpn", NULL, ret);
    }
    if (saved && (ret = wolfSSL_set_session(ssl, saved)) != WOLFSSL_SUCCESS) fail("set session", NULL, ret);
    if ((ret = wolfSSL_connect(ssl)) != WOLFSSL_SUCCESS) fail("handshake", ssl, ret);
    printf("CONNECTION %d version=%s cipher=%s resumed=%d\n", n, wolfSSL_get_version(ssl),
           wolfSSL_get_cipher_name(ssl), wolfSSL_session_reused(ssl) ? 1 : 0);
    size_t len;
    unsigned char *req = fg_read_file(a.requests[n], &len);
    size_t chunk = a.write_size > 0 ? (size_t)a.write_size : len;
    for (size_t off = 0; off < len;) {
      size_t want = len - off < chunk ? len - off : chunk;
      ret = wolfSSL_write(ssl, req + off, (int)want);
      if (ret <= 0) fail("write", ssl, ret);
      off += (size_t)ret;
    }
    free(req);
    char buf[4096];
    for (;;) {
      ret = wolfSSL_read(ssl, buf, sizeof buf);
      if (ret <= 0) break;
      fwrite(buf, 1, (size_t)ret, stdout);
    }
    printf("\n");
    /* TLS 1.3 tickets arrive after the handshake: take the session only now. */
    if (saved) wolfSSL_SESSION_free(saved);
    saved = wolfSSL_get1_session(ssl);
    wolfSSL_shutdown(ssl);
    wolfSSL_free(ssl);
    close(fd);
  }
  fflush(stdout);
  wolfSSL_CTX_free(ctx);
  wolfSSL_Cleanup();
  return 0;
}
