/*
 * Shared by the firmware-style test clients: argument parsing and the request
 * files. Usage of every client:
 *
 *   CLIENT --host H --port P --ca CA.pem --cert DEV.crt --key DEV.key
 *          [--ciphers NAME,NAME] [--tickets 0|1] [--mfl 512|1024|2048|4096]
 *          [--write-size N] [--tls13] [--alpn PROTO] REQUEST_FILE...
 *
 * Each REQUEST_FILE is sent, exactly as it is, on a new connection (it must
 * say "Connection: close"); every connection after the first offers the
 * session of the one before for resumption. For each connection the client
 * prints "CONNECTION n version=V cipher=C resumed=0|1", then the whole answer.
 * Exit code 0 when every handshake succeeded.
 */
#ifndef FG_COMMON_H
#define FG_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FG_MAX_REQUESTS 8
#define FG_MAX_CIPHERS 16

struct fg_args {
  const char *host, *port, *ca, *cert, *key, *alpn;
  const char *ciphers[FG_MAX_CIPHERS];
  int n_ciphers;
  int tickets, mfl, write_size, tls13;
  const char *requests[FG_MAX_REQUESTS];
  int n_requests;
};

static void fg_usage(void) {
  fprintf(stderr, "usage: see test/tls/clients/common.h\n");
  exit(2);
}

static void fg_parse(int argc, char **argv, struct fg_args *a) {
  memset(a, 0, sizeof(*a));
  a->tickets = 1;
  for (int i = 1; i < argc; i++) {
    const char *opt = argv[i];
    if (strncmp(opt, "--", 2) != 0) {
      if (a->n_requests == FG_MAX_REQUESTS) fg_usage();
      a->requests[a->n_requests++] = opt;
      continue;
    }
    if (strcmp(opt, "--tls13") == 0) { a->tls13 = 1; continue; }
    if (i + 1 >= argc) fg_usage();
    const char *val = argv[++i];
    if (strcmp(opt, "--host") == 0) a->host = val;
    else if (strcmp(opt, "--port") == 0) a->port = val;
    else if (strcmp(opt, "--ca") == 0) a->ca = val;
    else if (strcmp(opt, "--cert") == 0) a->cert = val;
    else if (strcmp(opt, "--key") == 0) a->key = val;
    else if (strcmp(opt, "--alpn") == 0) a->alpn = val;
    else if (strcmp(opt, "--tickets") == 0) a->tickets = atoi(val);
    else if (strcmp(opt, "--mfl") == 0) a->mfl = atoi(val);
    else if (strcmp(opt, "--write-size") == 0) a->write_size = atoi(val);
    else if (strcmp(opt, "--ciphers") == 0) {
      char *copy = strdup(val);
      for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        if (a->n_ciphers == FG_MAX_CIPHERS) fg_usage();
        a->ciphers[a->n_ciphers++] = tok;
      }
    } else fg_usage();
  }
  if (!a->host || !a->port || !a->ca || !a->cert || !a->key || a->n_requests == 0) fg_usage();
}

static unsigned char *fg_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(2); }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)size + 1);
  if (fread(buf, 1, (size_t)size, f) != (size_t)size) { perror(path); exit(2); }
  fclose(f);
  *len = (size_t)size;
  return buf;
}
#endif
