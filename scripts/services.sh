#!/usr/bin/env bash
# Starts throwaway Postgres, Redis and an S3-compatible server (moto) for
# fresco's tests and demo, installing whichever is missing (Debian packages,
# PyPI and npm), and installs the headless browser the dashboard's tests
# drive (Debian's chromium and chromium-driver). Each runs on a free loopback port with its data under
# $FRESCO_SERVICES_DIR (default ./.services). Writes the variables that
# point at them to $FRESCO_SERVICES_DIR/env; `source` that file to use them.
#
# It also starts a second S3 server, one that checks signatures
# (scripts/signing-s3.js: npm's @20minutes/s3rver, kept under
# $FRESCO_NODE_CACHE, default ~/.cache/fresco-node): moto checks no
# signature at all, so the presigned-URL tests (an expired URL, a URL edited
# to name another object) run against this one, which refuses them
# (FRESCO_TEST_SIGNING_S3_*, its own key pair, the same bucket name).
#
#   scripts/services.sh start   # install if needed, start, write env
#   scripts/services.sh stop    # stop everything started here
set -euo pipefail

dir="${FRESCO_SERVICES_DIR:-$(pwd)/.services}"
bucket="${FRESCO_BUCKET:-fresco}"
scripts="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Outside $dir: `start` empties $dir, the npm install is kept.
node_cache="${FRESCO_NODE_CACHE:-$HOME/.cache/fresco-node}"
s3rver_version=4.0.4
signing_key_id=fresco-signing
signing_secret=fresco-signing-secret

log() { printf '[services] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ensure_installed() {
  if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
    log "installing PostgreSQL"; apt_install postgresql
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing Redis"; apt_install redis-server
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    log "installing Python"; apt_install python3 python3-pip python3-venv
  fi
  if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    log "installing moto's S3 server"
    python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages 'moto[server]'
  fi
  if ! command -v node >/dev/null 2>&1; then
    log "installing Node.js"; apt_install nodejs npm
  fi
  if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    log "warning: node $(node --version) is older than s3rver $s3rver_version asks for (20)"
  fi
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    log "installing Chromium and ChromeDriver (the dashboard's browser tests)"
    apt_install chromium chromium-driver
  fi
  if [ "$(s3rver_installed)" != "$s3rver_version" ]; then
    command -v npm >/dev/null 2>&1 || { log "installing npm"; apt_install npm; }
    log "installing the signing S3 server (s3rver $s3rver_version) into $node_cache"
    mkdir -p "$node_cache"
    npm install --no-audit --no-fund --prefix "$node_cache" "@20minutes/s3rver@$s3rver_version" >/dev/null
  fi
}

# The version of s3rver under $node_cache, empty if none.
s3rver_installed() {
  local manifest="$node_cache/node_modules/@20minutes/s3rver/package.json"
  [ -f "$manifest" ] || return 0
  node -p 'require(process.argv[1]).version' "$manifest" 2>/dev/null || true
}

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not start"; return 1
}

start() {
  ensure_installed
  stop 2>/dev/null || true
  rm -rf "$dir"; mkdir -p "$dir"
  local bindir pg_port redis_port s3_port signing_port
  bindir=$(pg_bindir)
  pg_port=$(free_port); redis_port=$(free_port); s3_port=$(free_port); signing_port=$(free_port)

  # Postgres refuses to run as root: use the postgres user when we are root.
  local run_pg=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
    run_pg=(runuser -u postgres --)
  fi
  "${run_pg[@]}" "$bindir/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 >/dev/null
  "${run_pg[@]}" "$bindir/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
    -o "-p $pg_port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null

  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir"
  wait_for Redis redis-cli -p "$redis_port" ping

  # The server writes its own pid: launchers (version-manager shims) may fork.
  (cd "$dir" && nohup python3 -c 'import os, sys
open(sys.argv[1], "w").write(str(os.getpid()))
from moto.server import main
main(sys.argv[2:])' "$dir/s3.pid" -H 127.0.0.1 -p "$s3_port" >"$dir/s3.log" 2>&1 &)
  wait_for "the S3 server" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3_port/moto-api/')"
  python3 - "$s3_port" "$bucket" <<'PY'
import sys, urllib.request
port, bucket = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT")
urllib.request.urlopen(req).read()
PY

  # The S3 server that checks signatures, with the bucket made before it
  # listens. It writes its own pid, as moto does.
  (cd "$dir" && export NODE_PATH="$node_cache/node_modules" SIGNING_S3_PID_FILE="$dir/signing-s3.pid" \
    && exec nohup node --openssl-legacy-provider "$scripts/signing-s3.js" "$dir/signing-s3" \
      "$signing_port" "$signing_key_id" "$signing_secret" "$bucket" >"$dir/signing-s3.log" 2>&1) &
  # Any HTTP answer will do: it is listening.
  wait_for "the signing S3 server" python3 -c 'import sys, urllib.error, urllib.request
try: urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1)
except urllib.error.HTTPError: pass' "$signing_port"

  cat >"$dir/env" <<ENV
export FRESCO_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/postgres
export FRESCO_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
export FRESCO_TEST_REDIS_SERVER=$(command -v redis-server)
export FRESCO_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export FRESCO_TEST_BUCKET=$bucket
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=fresco
export AWS_SECRET_ACCESS_KEY=fresco-secret
export AWS_REGION=us-east-1
export FRESCO_TEST_SIGNING_S3_ENDPOINT=http://127.0.0.1:$signing_port
export FRESCO_TEST_SIGNING_S3_KEY_ID=$signing_key_id
export FRESCO_TEST_SIGNING_S3_SECRET=$signing_secret
export FRESCO_TEST_CHROMIUM=$(command -v chromium)
export FRESCO_TEST_CHROMEDRIVER=$(command -v chromedriver)
ENV
  log "Postgres :$pg_port, Redis :$redis_port, S3 :$s3_port, signing S3 :$signing_port (bucket $bucket); env in $dir/env"
}

stop() {
  [ -d "$dir" ] || return 0
  local bindir; bindir=$(pg_bindir)
  if [ -f "$dir/pg/postmaster.pid" ]; then
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true
    else "$bindir/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true; fi
  fi
  for pidfile in "$dir/redis.pid" "$dir/s3.pid" "$dir/signing-s3.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  return 0
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
