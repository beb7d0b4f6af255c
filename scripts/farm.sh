#!/usr/bin/env bash
# fresco's main job on one machine: starts Postgres, Redis and an S3 server
# (installing them when missing), a coordinator and workers, submits a
# prompts file, waits for every image, and downloads them into a folder.
#
#   scripts/farm.sh [PROMPTS_FILE] [OUT_DIR]
#   (defaults: examples/prompts.jsonl and ./out; FRESCO_WORKERS=2,
#    FRESCO_MODEL=tiny-random-dit)
set -euo pipefail
cd "$(dirname "$0")/.."
prompts="${1:-examples/prompts.jsonl}"
out="${2:-out}"
workers="${FRESCO_WORKERS:-2}"
model="${FRESCO_MODEL:-tiny-random-dit}"
export FRESCO_SERVICES_DIR="${FRESCO_SERVICES_DIR:-$(pwd)/.services/farm}"

cargo build --bins --locked -p fresco-coordinator -p fresco-worker -p fresco-cli
bin=target/debug

scripts/services.sh start
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop
}
trap cleanup EXIT
# shellcheck disable=SC1091
source "$FRESCO_SERVICES_DIR/env"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FRESCO_COORDINATOR="http://127.0.0.1:$port"
export FRESCO_REDIS_URL="$FRESCO_TEST_REDIS_URL"
export FRESCO_STORAGE="s3://$FRESCO_TEST_BUCKET/renders"
logs="$FRESCO_SERVICES_DIR/logs"; mkdir -p "$logs"

# The farm asks for keys: an admin client key for the commands below
# (FRESCO_API_KEY) and a token for the workers (FRESCO_WORKER_TOKEN).
keys=(keys create --database-url "$FRESCO_TEST_DATABASE_URL")
FRESCO_API_KEY=$("$bin/fresco-coordinator" "${keys[@]}" --kind client --tenant default --role admin --name farm.sh)
FRESCO_WORKER_TOKEN=$("$bin/fresco-coordinator" "${keys[@]}" --kind worker --name "farm.sh workers")
export FRESCO_API_KEY FRESCO_WORKER_TOKEN

"$bin/fresco-coordinator" --listen "127.0.0.1:$port" --database-url "$FRESCO_TEST_DATABASE_URL" \
  2>"$logs/coordinator.log" & pids+=($!)
for i in $(seq 1 "$workers"); do
  "$bin/fresco-worker" --name "worker-$i" 2>"$logs/worker-$i.log" & pids+=($!)
done

# Wait for the coordinator to answer.
for _ in $(seq 1 100); do
  "$bin/fresco" list >/dev/null 2>&1 && break
  sleep 0.2
done

job=$("$bin/fresco" submit --model "$model" --prompts-file "$prompts" --steps 20 --width 64 --height 64)
"$bin/fresco" watch "$job"
"$bin/fresco" download "$job" --out "$out"
echo "images of job $job are in $out/ (logs in $logs/)"
