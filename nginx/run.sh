#!/usr/bin/env bash
# Starts nginx in front of a running fleetgate (FLEETGATE_PROXY_MODE=nginx), in the
# foreground, with everything (config, pid, logs, temp files) under one prefix
# directory: no system-wide configuration is read or changed.
#
#   nginx/run.sh [--listen 8443] [--prefix DIR] [--upstream ADDR]...
#                                                    (or: npm run nginx -- --listen 8443)
#
# The configuration is rendered from the same FLEETGATE_* environment the app
# runs with (see `fleetgate nginx-config`), so limits and the upstream match.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
listen=8443
prefix="${TMPDIR:-/tmp}/fleetgate-nginx-$(id -u)"
upstreams=()
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) listen="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --upstream) upstreams+=(--upstream "$2"); shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "nginx/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

nginx_bin="${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"
if [ ! -x "$nginx_bin" ]; then
  echo "nginx/run.sh: nginx is not installed (apt-get install nginx)" >&2
  exit 127
fi

mkdir -p "$prefix/logs" "$prefix/temp" "$prefix/html"
prefix="$(cd "$prefix" && pwd)"
node "$root/bin/fleetgate.js" nginx-config --listen "$listen" --prefix "$prefix" "${upstreams[@]}" >"$prefix/nginx.conf.new"
mv "$prefix/nginx.conf.new" "$prefix/nginx.conf"

nginx=("$nginx_bin" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log")
"${nginx[@]}" -t -q
echo "nginx: https://localhost:${listen##*:}/device_endpoint -> fleetgate; config, logs: $prefix" >&2
exec "${nginx[@]}" -g 'daemon off;'
