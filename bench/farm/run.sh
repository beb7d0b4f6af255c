#!/usr/bin/env bash
# A farm at scale, on one machine, in one invocation: starts throwaway
# Postgres, Redis and S3 (scripts/services.sh), the real fresco-coordinator
# and fresco-worker binaries serving the built-in `noop` model (blank images,
# no sampling: every farm path but the model), and prints each fresco figure
# beside the raw limit of the service under it, as a ratio (see
# bench/README.md, "Farm benchmark").
#
#   bench/farm/run.sh [--tasks N] [--million] [--drain N] [--workers "2 8"]
#                     [--rate N] [--latency-seconds S] [--latency-workers W]
#                     [--raw-seconds S] [--watchers N] [--fsync] [--release]
#
# Raw limits (pgbench, redis-benchmark, against the same services):
#   Postgres single-row commits/s (one INSERT per transaction, 8 clients);
#   multi-row INSERT rows/s (1000 rows of the tasks table's shape per
#   statement); `SELECT ... FOR UPDATE SKIP LOCKED` claims/s (one queued row
#   of a tasks-shaped table claimed per transaction, 8 clients); Redis ops/s
#   unpipelined (SET, LPUSH, RPOP, ZADD, ZPOPMIN; 50 clients, and SET with 1).
# fresco figures:
#   bulk submit of --tasks noop tasks (default 100000; --million: 1000000)
#   through `fresco submit --seeds 1-N`, timed until the CLI returns (the job
#   and its tasks committed, their ids pushed to Redis), and the
#   coordinator's RSS before and with them queued (then the job is
#   cancelled); drain rate of --drain noop tasks (default 2000) for each
#   worker count of --workers (default "2 8"; add 32 for more), queued
#   first, from the first start to the last finish in Postgres;
#   submit→start latency p50/p99 (Postgres `started_at - created_at`) of
#   jobs of rate/10 tasks submitted every 100 ms for --latency-seconds
#   (default 200 tasks/s for 30 s) to --latency-workers workers (default 8).
#   reading the bulk job while it is queued: its counts as the store reads
#   them beside the GROUP BY over its task rows they replace (psql-timed,
#   mean of 5), `fresco status` end to end, and the CPU share of one core
#   that Postgres and the coordinator use over 10 s with --watchers
#   `fresco watch` streams on it (default 100) beside 10 s with none.
#
# Sizes are flags so a quick run (`--tasks 20000 --drain 500
# --latency-seconds 10`) takes a few minutes on 2 cores. Speed here is a
# measurement only, never an assertion. services.sh starts Postgres with
# fsync=off; --fsync turns it on (ALTER SYSTEM, reload) for the whole run.
# Binaries: the dev profile (dependencies at opt-level 3) unless --release;
# FRESCO_FARM_BENCH_BIN=DIR uses prebuilt ones. Output: the table on
# standard output and in bench/out/farm-<UTC>.txt; logs under
# bench/out/farm-services/logs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

tasks=100000
drain=2000
workers_list="2 8"
rate=200
latency_seconds=30
latency_workers=8
watchers=100
raw_seconds=10
fsync=off
profile=dev
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) tasks="$2"; shift 2 ;;
        --million) tasks=1000000; shift ;;
        --drain) drain="$2"; shift 2 ;;
        --workers) workers_list="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --latency-seconds) latency_seconds="$2"; shift 2 ;;
        --latency-workers) latency_workers="$2"; shift 2 ;;
        --watchers) watchers="$2"; shift 2 ;;
        --raw-seconds) raw_seconds="$2"; shift 2 ;;
        --fsync) fsync=on; shift ;;
        --release) profile=release; shift ;;
        -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { printf '[farm-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- binaries -------------------------------------------------------------
if [ -n "${FRESCO_FARM_BENCH_BIN:-}" ]; then
    bin="$FRESCO_FARM_BENCH_BIN"
else
    flags=(--locked -p fresco-coordinator -p fresco-worker -p fresco-cli --bins)
    if [ "$profile" = release ]; then flags+=(--release); fi
    log "building the coordinator, worker and CLI ($profile)"
    cargo build "${flags[@]}"
    target="${CARGO_TARGET_DIR:-$root/target}"
    if [ "$profile" = release ]; then bin="$target/release"; else bin="$target/debug"; fi
fi

# --- services, coordinator ------------------------------------------------
out="$root/bench/out"
mkdir -p "$out"
export FRESCO_SERVICES_DIR="${FRESCO_SERVICES_DIR:-$out/farm-services}"
scripts/services.sh start >/dev/null 2>&1 </dev/null
pids=()
worker_pids=()
cleanup() {
    for pid in "${worker_pids[@]}" "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/services.sh stop >/dev/null 2>&1 </dev/null || true
}
trap cleanup EXIT
# shellcheck disable=SC1091
source "$FRESCO_SERVICES_DIR/env"
db="$FRESCO_TEST_DATABASE_URL"
redis_port="${FRESCO_TEST_REDIS_URL##*:}"
logs="$FRESCO_SERVICES_DIR/logs"
mkdir -p "$logs"
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$db" -c "$1"; }

if [ "$fsync" = on ]; then
    sql "ALTER SYSTEM SET fsync = on" >/dev/null
    sql "SELECT pg_reload_conf()" >/dev/null
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FRESCO_COORDINATOR="http://127.0.0.1:$port"
export FRESCO_REDIS_URL="$FRESCO_TEST_REDIS_URL"
export FRESCO_STORAGE="s3://$FRESCO_TEST_BUCKET/renders"
keys=(keys create --database-url "$db")
FRESCO_API_KEY=$("$bin/fresco-coordinator" "${keys[@]}" --kind client --tenant default --role admin --name farm-bench)
FRESCO_WORKER_TOKEN=$("$bin/fresco-coordinator" "${keys[@]}" --kind worker --name "farm-bench workers")
export FRESCO_API_KEY FRESCO_WORKER_TOKEN

"$bin/fresco-coordinator" --listen "127.0.0.1:$port" --database-url "$db" \
    2>"$logs/coordinator.log" &
coordinator=$!
pids+=("$coordinator")
for _ in $(seq 1 300); do
    "$bin/fresco" list >/dev/null 2>&1 && break
    sleep 0.2
done
"$bin/fresco" list >/dev/null

# --- helpers --------------------------------------------------------------
# The tps pgbench reports for script $1 run by $2 clients for $raw_seconds.
pgbench_tps() {
    pgbench -n -f "$1" -c "$2" -j 2 -T "$raw_seconds" "$db" 2>/dev/null \
        | awk '/^tps = / { printf "%.1f\n", $3; exit }'
}

# VmRSS of pid $1 in MiB.
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# Ratio $1 / $2 with 3 significant digits, "-" when either is missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.3g", a / b }'; }

start_workers() {
    local count="$1" i
    worker_pids=()
    for i in $(seq 1 "$count"); do
        "$bin/fresco-worker" --name "bench-$count-$i" --models noop \
            2>"$logs/worker-$count-$i.log" &
        worker_pids+=("$!")
    done
}

stop_workers() {
    local pid
    for pid in "${worker_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${worker_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    worker_pids=()
}

# Submits noop tasks: seeds $1-$2, job name $3; prints the job id.
submit_noop() {
    "$bin/fresco" submit --model noop --prompt "farm bench" --seeds "$1-$2" \
        --steps 1 --width 8 --height 8 --name "$3" --max-attempts 1
}

# Waits until job $1 has no queued or running task (at most $2 seconds).
wait_job_done() {
    local deadline=$((SECONDS + $2)) left
    while :; do
        left=$(sql "SELECT count(*) FROM tasks WHERE job_id = '$1' AND state IN ('queued', 'running')")
        [ "$left" = 0 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "job $1: $left tasks still unfinished after $2 s"
            return 1
        fi
        sleep 0.5
    done
}

# --- raw limits -----------------------------------------------------------
log "raw Postgres limits ($raw_seconds s each, fsync=$fsync)"
work=$(mktemp -d)
sql "CREATE TABLE bench_commits (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v INT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())" >/dev/null
sql "CREATE TABLE bench_tasks (LIKE tasks INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)" >/dev/null
rows="id, job_id, idx, model, priority, prompt, negative_prompt, seed, steps, width, height, guidance, n, sampler, max_attempts"
values="gen_random_uuid(), gen_random_uuid(), g, 'noop', 0, 'farm bench', '', g, 1, 8, 8, 4.0, 1, 'euler', 1"
echo "INSERT INTO bench_commits (v) VALUES (1);" >"$work/commit.sql"
echo "INSERT INTO bench_tasks ($rows) SELECT $values FROM generate_series(1, 1000) g;" >"$work/rows.sql"
cat >"$work/claim.sql" <<'SQL'
UPDATE bench_tasks SET state = 'running', attempt = attempt + 1, started_at = now(),
    lease_expires_at = now() + interval '60 seconds'
WHERE id = (SELECT id FROM bench_tasks WHERE state = 'queued' AND model = 'noop'
            ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED);
SQL
pg_commits=$(pgbench_tps "$work/commit.sql" 8)
pg_rows_tps=$(pgbench_tps "$work/rows.sql" 2)
pg_rows=$(awk -v t="$pg_rows_tps" 'BEGIN { printf "%.0f", t * 1000 }')
queued=$(sql "SELECT count(*) FROM bench_tasks WHERE state = 'queued'")
pg_claims=$(pgbench_tps "$work/claim.sql" 8)
claimed=$(sql "SELECT count(*) FROM bench_tasks WHERE state = 'running'")
if [ "$claimed" -ge "$queued" ]; then
    log "the claim benchmark ran out of queued rows ($queued): its figure is a lower bound"
fi
sql "DROP TABLE bench_commits, bench_tasks" >/dev/null

log "raw Redis limits (redis-benchmark, unpipelined)"
redis_q() { redis-benchmark -p "$redis_port" -q -P 1 "$@" 2>/dev/null | tr '\r' '\n'; }
redis_all=$(redis_q -c 50 -n 200000 -t set,lpush,rpop,zadd,zpopmin)
redis_of() { awk -v op="$1" -F'[: ]+' 'toupper($1) == op && /requests per second/ { printf "%.0f\n", $2; exit }' <<<"$redis_all"; }
redis_set=$(redis_of SET)
redis_lpush=$(redis_of LPUSH)
redis_rpop=$(redis_of RPOP)
redis_zadd=$(redis_of ZADD)
redis_zpopmin=$(redis_of ZPOPMIN)
redis_set_1=$(redis_q -c 1 -n 50000 -t set | awk -F'[: ]+' 'toupper($1) == "SET" && /requests per second/ { printf "%.0f\n", $2; exit }')
# redis-benchmark's own keys; fresco's are under its prefix.
redis-cli -p "$redis_port" del key:__rand_int__ mylist myzset >/dev/null

# --- bulk submit and RSS --------------------------------------------------
rss_before=$(rss_mib "$coordinator")
log "bulk submit of $tasks tasks (no worker running)"
t0=$(date +%s.%N)
bulk_job=$(submit_noop 1 "$tasks" bulk)
t1=$(date +%s.%N)
submit_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
submit_rate=$(awk -v n="$tasks" -v s="$submit_s" 'BEGIN { printf "%.0f", n / s }')
committed=$(sql "SELECT count(*) FROM tasks WHERE job_id = '$bulk_job' AND state = 'queued'")
sleep 2
rss_queued=$(rss_mib "$coordinator")
redis_mem=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ { printf "%.1f", $2 / 1048576 }')
# --- reading a big job ----------------------------------------------------
# The bulk job, queued, with no worker running: its counts as the store reads
# them now (job_counts.sql: the kept per-job counts plus the running and
# backing-off tasks), beside the GROUP BY over all its task rows that they
# replace, each the mean of 5 runs timed by psql on the same database; then
# `fresco status` end to end (summary and a page of tasks, several reads of
# the job); then the CPU that --watchers `fresco watch` streams of the job cost
# Postgres and the coordinator over 10 s while nothing changes, beside 10 s
# with none.
log "reading the $tasks-task job"
psql_ms() {
    local statement="$1" i
    for i in 1 2 3 4 5; do
        psql -X -q -v ON_ERROR_STOP=1 "$db" -c '\timing on' -c "$statement" \
            | awk '/^Time: / { print $2 }'
    done | awk '{ s += $1; n++ } END { if (n) printf "%.2f", s / n }'
}
counts_sql=$(sed -e '/^--/d' -e "s/\$1/ARRAY['$bulk_job']::UUID[]/g" crates/fresco-store/src/postgres/sql/job_counts.sql)
counts_ms=$(psql_ms "$counts_sql")
groupby_ms=$(psql_ms "SELECT job_id, state, count(*),
       coalesce(sum(progress_step) FILTER (WHERE state = 'running'), 0),
       coalesce(sum(steps) FILTER (WHERE state = 'running'), 0),
       count(*) FILTER (WHERE state = 'queued' AND (not_before IS NULL OR not_before <= now())),
       min(not_before) FILTER (WHERE state = 'queued' AND not_before > now())
FROM tasks WHERE job_id = '$bulk_job' GROUP BY job_id, state")
s0=$(date +%s.%N)
for _ in 1 2 3 4 5; do "$bin/fresco" status "$bulk_job" >/dev/null; done
s1=$(date +%s.%N)
status_ms=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", (b - a) * 1000 / 5 }')
postmaster=$(head -1 "$FRESCO_SERVICES_DIR/pg/postmaster.pid")
# CPU clock ticks used so far by Postgres (the postmaster, its backends,
# and the backends it reaped) and the coordinator.
farm_ticks() {
    local total=0 p
    for p in "$postmaster" $(pgrep -P "$postmaster") "$coordinator"; do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
    done
    echo "$total"
}
# Share of one core Postgres and the coordinator used over 10 s.
farm_cpu_over_10s() {
    local a b
    a=$(farm_ticks); sleep 10; b=$(farm_ticks)
    awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * (b - a) / hz / 10 }'
}
idle_cpu=$(farm_cpu_over_10s)
watch_pids=()
for _ in $(seq 1 "$watchers"); do
    "$bin/fresco" watch "$bulk_job" >/dev/null 2>&1 &
    watch_pids+=("$!")
done
sleep 3
watch_cpu=$(farm_cpu_over_10s)
for pid in "${watch_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${watch_pids[@]}"; do wait "$pid" 2>/dev/null || true; done

log "cancelling the bulk job"
c0=$(date +%s.%N)
"$bin/fresco" cancel "$bulk_job" >/dev/null
c1=$(date +%s.%N)
cancel_s=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
rss_after_cancel=$(rss_mib "$coordinator")
hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$coordinator/status")

# --- drain ----------------------------------------------------------------
declare -A drain_rate drain_wall
seed=$((tasks + 1))
for w in $workers_list; do
    job=$(submit_noop "$seed" $((seed + drain - 1)) "drain-$w")
    seed=$((seed + drain))
    log "draining $drain tasks with $w workers"
    d0=$(date +%s.%N)
    start_workers "$w"
    wait_job_done "$job" 1800 || true
    d1=$(date +%s.%N)
    stop_workers
    drain_wall[$w]=$(awk -v a="$d0" -v b="$d1" 'BEGIN { printf "%.1f", b - a }')
    drain_rate[$w]=$(sql "SELECT round((count(*) / greatest(extract(epoch FROM max(finished_at) - min(started_at)), 0.001))::numeric, 1)
        FROM tasks WHERE job_id = '$job' AND state = 'succeeded'")
    failed=$(sql "SELECT count(*) FROM tasks WHERE job_id = '$job' AND state <> 'succeeded'")
    [ "$failed" = 0 ] || log "$failed tasks of the $w-worker drain did not succeed"
done

# --- latency at a steady rate ----------------------------------------------
per_tick=$(( (rate + 9) / 10 ))
ticks=$((latency_seconds * 10))
log "latency: $per_tick tasks every 100 ms for $latency_seconds s to $latency_workers workers"
start_workers "$latency_workers"
sleep 3
submitters=()
begin=$(date +%s.%N)
for i in $(seq 0 $((ticks - 1))); do
    due=$(awk -v b="$begin" -v i="$i" 'BEGIN { printf "%.3f", b + i / 10 }')
    now=$(date +%s.%N)
    pause=$(awk -v d="$due" -v n="$now" 'BEGIN { p = d - n; if (p > 0) printf "%.3f", p; else print 0 }')
    sleep "$pause"
    submit_noop "$seed" $((seed + per_tick - 1)) latency >/dev/null &
    submitters+=("$!")
    seed=$((seed + per_tick))
done
for pid in "${submitters[@]}"; do wait "$pid" || true; done
deadline=$((SECONDS + 600))
while [ "$(sql "SELECT count(*) FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE j.name = 'latency' AND t.state IN ('queued', 'running')")" != 0 ] \
    && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
stop_workers
lat=$(sql "SELECT count(*),
        round((count(*) / greatest(extract(epoch FROM max(t.created_at) - min(t.created_at)), 0.001))::numeric, 1),
        round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.started_at - t.created_at)))::numeric, 1),
        round((1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM t.started_at - t.created_at)))::numeric, 1),
        round((1000 * max(extract(epoch FROM t.started_at - t.created_at)))::numeric, 1)
    FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE j.name = 'latency' AND t.state = 'succeeded'")
IFS='|' read -r lat_n lat_rate lat_p50 lat_p99 lat_max <<<"$lat"

# --- report -----------------------------------------------------------------
report="$out/farm-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "fresco farm benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "binaries: $bin; Postgres fsync=$fsync; tasks=$tasks drain=$drain workers=\"$workers_list\" rate=$rate/s for ${latency_seconds}s"
    echo
    echo "raw limits"
    printf '  %-44s %12s\n' "Postgres single-row commits/s (8 clients)" "$pg_commits"
    printf '  %-44s %12s\n' "Postgres multi-row insert rows/s (1000/stmt)" "$pg_rows"
    printf '  %-44s %12s\n' "Postgres SKIP LOCKED claims/s (8 clients)" "$pg_claims"
    printf '  %-44s %12s\n' "Redis SET ops/s (50 clients)" "$redis_set"
    printf '  %-44s %12s\n' "Redis SET ops/s (1 client)" "$redis_set_1"
    printf '  %-44s %12s\n' "Redis LPUSH / RPOP ops/s" "$redis_lpush / $redis_rpop"
    printf '  %-44s %12s\n' "Redis ZADD / ZPOPMIN ops/s" "$redis_zadd / $redis_zpopmin"
    echo
    echo "fresco                                              figure     raw limit   fresco/raw"
    printf '  %-44s %12s %12s %10s\n' "bulk submit tasks/s ($tasks in ${submit_s}s)" "$submit_rate" "$pg_rows" "$(ratio "$submit_rate" "$pg_rows")"
    for w in $workers_list; do
        printf '  %-44s %12s %12s %10s\n' "drain tasks/s, $w workers ($drain in ${drain_wall[$w]}s wall)" "${drain_rate[$w]}" "$pg_claims" "$(ratio "${drain_rate[$w]}" "$pg_claims")"
    done
    printf '  %-44s %12s %12s %10s\n' "latency run: tasks/s submitted ($lat_n tasks)" "$lat_rate" "$rate" "$(ratio "$lat_rate" "$rate")"
    printf '  %-44s %12s\n' "submit->start latency p50 ms" "$lat_p50"
    printf '  %-44s %12s\n' "submit->start latency p99 ms" "$lat_p99"
    printf '  %-44s %12s\n' "submit->start latency max ms" "$lat_max"
    printf '  %-44s %12s\n' "coordinator RSS MiB idle" "$rss_before"
    printf '  %-44s %12s\n' "coordinator RSS MiB, $committed tasks queued" "$rss_queued"
    printf '  %-44s %12s\n' "coordinator RSS MiB after cancel / peak" "$rss_after_cancel / $hwm"
    printf '  %-44s %12s\n' "Redis used memory MiB, tasks queued" "$redis_mem"
    printf '  %-44s %12s\n' "cancel of the bulk job, s" "$cancel_s"
    echo
    echo "reading the $committed-task job                  fresco      GROUP BY   fresco/GROUP BY"
    printf '  %-44s %12s %12s %10s\n' "its counts, ms (psql, mean of 5)" "$counts_ms" "$groupby_ms" "$(ratio "$counts_ms" "$groupby_ms")"
    printf '  %-44s %12s\n' "fresco status, ms (mean of 5)" "$status_ms"
    printf '  %-44s %12s\n' "Postgres + coordinator CPU %, no watcher" "$idle_cpu"
    printf '  %-44s %12s\n' "Postgres + coordinator CPU %, $watchers watchers" "$watch_cpu"
} | tee "$report"
log "report in $report; logs in $logs"
