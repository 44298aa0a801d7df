#!/usr/bin/env bash
# Soak bench: a minute of mixed load through the demo, then through the sidecar, checking every
# answer and watching the memory of the process under test.
#
#   bench/soak.sh            (from anywhere; see bench/README.md)
#
# Targets, one after the other, each with a fresh data dir:
#   demo     dist/server/cli.js demo                                        (process under test: the demo)
#   sidecar  dist/server/cli.js proxy --upstream <a second demo process>    (process under test: the proxy)
# Load (bench/soak-load.js run): SOAK_CONCURRENCY keep-alive clients for SOAK_WARMUP + SOAK_SECONDS
# (the warm-up's answers are checked too, but it is left out of req/s and RSS), each drawing
# its next request from the mix: whole downloads of a SOAK_IMAGE_MIB image, 1 MiB and small Range
# requests at random offsets, legacy `Content-Range: bytes a-b/*` requests, GET /v2/images and
# GET /v2/images/{id}, PATCH adding then removing an http:// location on active images (the blob
# server of soak-load.js holds them), PATCH removing a location of a deactivated image (must be
# 409), PATCH name changes. Every answer is checked (status, headers, every byte of image data);
# anything unexpected, a connection error or a wrong byte is an error. VmRSS of the process under
# test is sampled each second; stable means: mean of the last RSS_WINDOW s <= mean of the first
# RSS_WINDOW s (after the warm-up) + max(RSS_GROWTH_MB, RSS_GROWTH_PCT % of it).
# The process under test runs on CPU SERVER_CPU; the load driver, the blob server and the
# sidecar's upstream on CPU CLIENT_CPU.
#
# Settings (environment variables, defaults in brackets):
#   SOAK_SECONDS [60]  SOAK_WARMUP [0]  SOAK_CONCURRENCY [64]  SOAK_IMAGE_MIB [4]  SOAK_LOC_IMAGES [16]
#   SOAK_SEED [random; the same for both targets]  SOAK_MIX [soak-load.js's default, see README]
#   TARGETS ["demo sidecar"]  SERVER_CPU [1]  CLIENT_CPU [0]
#   RSS_WINDOW [10]  RSS_GROWTH_MB [10]  RSS_GROWTH_PCT [10]
#   KEEP_TMP [0: remove the temp dir at the end]  STRICT [0: exit 0 whatever the figures; 1: exit 3
#   when a check fails]
#
# Everything listens on 127.0.0.1 only, on ports picked at run time; every wait is bounded; every
# process started here is stopped on exit (trap), and the temp dir is removed.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

SOAK_SECONDS=${SOAK_SECONDS:-60}
SOAK_WARMUP=${SOAK_WARMUP:-0}
SOAK_CONCURRENCY=${SOAK_CONCURRENCY:-64}
SOAK_IMAGE_MIB=${SOAK_IMAGE_MIB:-4}
SOAK_LOC_IMAGES=${SOAK_LOC_IMAGES:-16}
SOAK_SEED=${SOAK_SEED:-$((RANDOM * 32768 + RANDOM))}
SOAK_MIX=${SOAK_MIX:-}
TARGETS=${TARGETS:-demo sidecar}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
RSS_WINDOW=${RSS_WINDOW:-10}
RSS_GROWTH_MB=${RSS_GROWTH_MB:-10}
RSS_GROWTH_PCT=${RSS_GROWTH_PCT:-10}
KEEP_TMP=${KEEP_TMP:-0}
STRICT=${STRICT:-0}

HOST=127.0.0.1
LOC_SIZE=65536 # bytes of each location image, and of each blob the blob server holds

BENCH_NAME=bench/soak.sh
STOP_WAIT=12
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

url_of() { sed -E 's/.*listening on (http:\/\/[0-9.:]+).*/\1/' <<<"$1"; }

# start CPU NAME COMMAND...: start a server on CPU, its output in $TMP/logs/NAME.log; sets
# STARTED_PID and STARTED_URL (from its `listening on http://...` line).
STARTED_PID="" STARTED_URL=""
start() {
  local cpu=$1 name=$2 line
  shift 2
  taskset -c "$cpu" "$@" >"$TMP/logs/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  line=$(wait_for_line "$TMP/logs/$name.log" "$STARTED_PID" 'listening on http://') || die "$name did not start"
  STARTED_URL=$(url_of "$line")
}

# ---------------------------------------------------------------------------------------------
# Prerequisites.

command -v node >/dev/null || die "node is needed (Node.js >= 20)"
command -v taskset >/dev/null || die "taskset is needed (Debian: util-linux)"
[[ $SOAK_SECONDS =~ ^[1-9][0-9]*$ ]] || die "SOAK_SECONDS must be a whole number >= 1, got '$SOAK_SECONDS'"
[[ $SOAK_WARMUP =~ ^[0-9]+$ ]] || die "SOAK_WARMUP must be a whole number >= 0, got '$SOAK_WARMUP'"
[[ $SOAK_CONCURRENCY =~ ^[1-9][0-9]*$ ]] || die "SOAK_CONCURRENCY must be a whole number >= 1, got '$SOAK_CONCURRENCY'"
[[ $SOAK_IMAGE_MIB =~ ^[0-9]+$ ]] && ((SOAK_IMAGE_MIB >= 2)) || die "SOAK_IMAGE_MIB must be a whole number >= 2, got '$SOAK_IMAGE_MIB'"
[[ $SOAK_LOC_IMAGES =~ ^[1-9][0-9]*$ && $RSS_WINDOW =~ ^[1-9][0-9]*$ ]] || die "SOAK_LOC_IMAGES and RSS_WINDOW must be whole numbers >= 1"
[[ $RSS_GROWTH_MB =~ ^[0-9]+(\.[0-9]+)?$ && $RSS_GROWTH_PCT =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "RSS_GROWTH_MB and RSS_GROWTH_PCT must be numbers >= 0"
for t in $TARGETS; do [[ $t == demo || $t == sidecar ]] || die "TARGETS may name demo and sidecar, got '$t'"; done
CPUS=$(nproc)
if ((CPUS < 2)) || ((SERVER_CPU >= CPUS)) || ((CLIENT_CPU >= CPUS)); then
  warn "$CPUS CPU(s): cannot pin the process under test to CPU $SERVER_CPU and the rest to CPU $CLIENT_CPU; using CPU 0 for both"
  SERVER_CPU=0 CLIENT_CPU=0
fi
if [[ ! -f $ROOT/dist/server/cli.js ]]; then
  log "dist/ missing: npm run build"
  (cd "$ROOT" && npm run build >&2) || die "npm run build failed"
fi
[[ -d $ROOT/node_modules/express ]] || die "express not found in $ROOT/node_modules: run npm ci"
if ((SOAK_SECONDS < 2 * RSS_WINDOW)); then
  warn "SOAK_SECONDS=$SOAK_SECONDS < 2 x RSS_WINDOW: the RSS windows are half the run each ($((SOAK_SECONDS / 2 > 0 ? SOAK_SECONDS / 2 : 1)) s)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-edge-soak.XXXXXX")
mkdir -p "$TMP/logs"
START=$(date +%s)

# ---------------------------------------------------------------------------------------------
# The blob server for http:// locations (shared by both targets).

start "$CLIENT_CPU" blobs node "$BENCH_DIR/soak-load.js" blobs --size "$LOC_SIZE" --host "$HOST"
BLOBS_PID=$STARTED_PID BLOBS_URL=$STARTED_URL
log "blob server at $BLOBS_URL"

# ---------------------------------------------------------------------------------------------
# One target: start it, load it, stop it, check its log.

declare -A RES    # RES[target.key] from the driver's RESULT line
declare -A LOGN   # access-log lines of the process under test
declare -A LOGERR # error-level log lines of the process under test
declare -A ENDED  # how the process under test ended: "ok" or what went wrong
TARGETS_RUN=()

soak_target() {
  local target=$1 pid label url extra=() upstream_pid="" out=$TMP/result-$target.txt rc=0 line kv k v
  if [[ $target == demo ]]; then
    start "$SERVER_CPU" demo "$ROOT/dist/server/cli.js" demo --port 0 --host "$HOST" --data "$TMP/data-demo"
    pid=$STARTED_PID url=$STARTED_URL label=demo
  else
    start "$CLIENT_CPU" upstream "$ROOT/dist/server/cli.js" demo --port 0 --host "$HOST" --data "$TMP/data-upstream"
    upstream_pid=$STARTED_PID
    start "$SERVER_CPU" sidecar "$ROOT/dist/server/cli.js" proxy --upstream "$STARTED_URL" --port 0 --host "$HOST"
    pid=$STARTED_PID url=$STARTED_URL label=sidecar
    extra=(--info-pid "upstream-demo=$upstream_pid")
  fi
  log "$target: process under test pid $pid on CPU $SERVER_CPU at $url; $SOAK_WARMUP s warm-up + $SOAK_SECONDS s of load, $SOAK_CONCURRENCY connections"
  # The driver ends by itself after the load and its checks; timeout bounds it anyway. It runs in the
  # background so that a signal to this script is handled at once (wait returns; the trap stops it).
  taskset -c "$CLIENT_CPU" timeout --kill-after=5 $((SOAK_WARMUP + SOAK_SECONDS + 180)) node "$BENCH_DIR/soak-load.js" run \
    --target "$url" --blobs "$BLOBS_URL" --label "$label" --pid "$pid" "${extra[@]}" \
    --seconds "$SOAK_SECONDS" --warmup "$SOAK_WARMUP" --concurrency "$SOAK_CONCURRENCY" --image-mib "$SOAK_IMAGE_MIB" \
    --loc-images "$SOAK_LOC_IMAGES" --loc-size "$LOC_SIZE" --seed "$SOAK_SEED" \
    --window "$RSS_WINDOW" --growth-mb "$RSS_GROWTH_MB" --growth-pct "$RSS_GROWTH_PCT" \
    ${SOAK_MIX:+--mix "$SOAK_MIX"} >"$out" &
  local driver=$!
  PIDS+=("$driver")
  wait "$driver" || rc=$?
  stop_pid "$driver"

  if alive "$pid"; then ENDED[$target]=ok; else ENDED[$target]="the process under test died during the run"; fi
  [[ -z $upstream_pid ]] || alive "$upstream_pid" || ENDED[$target]="the upstream demo died during the run"
  stop_pid "$pid"
  [[ -z $upstream_pid ]] || stop_pid "$upstream_pid"

  grep -v '^RESULT ' "$out" || true
  line=$(grep '^RESULT ' "$out" || true)
  if ((rc != 0)) || [[ -z $line ]]; then
    ENDED[$target]="the load driver failed (exit $rc)"
    RES[$target.errors]="?"
    return 0
  fi
  for kv in ${line#RESULT }; do
    k=${kv%%=*} v=${kv#*=}
    RES[$target.$k]=$v
  done
  # One access-log line per request (pino, on stdout), written by the time the process has stopped.
  LOGN[$target]=$(grep -cE '"msg":"request (completed|aborted|errored)"' "$TMP/logs/$target.log" || true)
  LOGERR[$target]=$(grep -c '"level":"error"' "$TMP/logs/$target.log" || true)
  echo "  access log of $target: ${LOGN[$target]} request lines for ${RES[$target.sent]} requests sent (setup and checks included); ${LOGERR[$target]} error lines"
  if ((LOGERR[$target] > 0)); then
    grep -m3 '"level":"error"' "$TMP/logs/$target.log" | cut -c1-300 | sed 's/^/    /'
  fi
  echo
  TARGETS_RUN+=("$target")
}

for target in $TARGETS; do soak_target "$target"; done

stop_pid "$BLOBS_PID"
BLOB_SERVED=$(sed -nE 's/^soak-blobs served //p' "$TMP/logs/blobs.log")
echo "blob server: ${BLOB_SERVED:-?} (HEAD requests expected: one per location add, $(
  n=0
  for t in "${TARGETS_RUN[@]}"; do n=$((n + ${RES[$t.locadds]:-0})); done
  echo $n
))"
echo

# ---------------------------------------------------------------------------------------------
# Summary.

FAILED=0
CHECKS=()
check() { # check OK TEXT
  if [[ $1 == 1 ]]; then
    CHECKS+=("  met     $2")
  else
    CHECKS+=("  FAILED  $2")
    FAILED=1
  fi
}

echo "Summary: ${SOAK_SECONDS} s per target after $SOAK_WARMUP s of warm-up, $SOAK_CONCURRENCY connections, seed $SOAK_SEED ($(nproc) CPUs; process under test on CPU $SERVER_CPU)"
printf '  %-8s %8s %8s %7s %6s %10s %10s %8s %9s %8s %10s\n' target "req/s" "min 1s" errors after "RSS first" "RSS last" growth "peak RSS" "VmHWM" "CPU% s/d"
for t in $TARGETS; do
  w=${RES[$t.window]:-$RSS_WINDOW}
  printf '  %-8s %8s %8s %7s %6s %10s %10s %8s %9s %8s %10s\n' "$t" "${RES[$t.rps]:-?}" "${RES[$t.slowest_second]:-?}" "${RES[$t.errors]:-?}" "${RES[$t.after_errors]:-?}" \
    "${RES[$t.rss_first]:-?}" "${RES[$t.rss_last]:-?}" "${RES[$t.rss_growth]:-?}" "${RES[$t.rss_peak]:-?}" "${RES[$t.rss_hwm]:-?}" \
    "${RES[$t.cpu]:-?}/${RES[$t.driver_cpu]:-?}"
done
echo "  (req/s: answers a second after the warm-up; min 1s: answers in its slowest whole second (a stall"
echo "   shows here); errors: wrong answers, warm-up included; after: failed checks of the images after the"
echo "   load. RSS in MB = 10^6 bytes: VmRSS means of the first and last ${w:-$RSS_WINDOW} s after the warm-up, their"
echo "   difference, the highest sample; VmHWM: the kernel's peak over the process's life, setup and warm-up"
echo "   included. CPU% s/d: the process under test / the load driver after the warm-up, 100 = one CPU.)"
echo
KINDS=(full range1m rangesmall legacy list show locadd locremove locrefused name)
declare -A KIND_NAME=([full]="full download" [range1m]="Range 1 MiB" [rangesmall]="Range small" [legacy]="Content-Range legacy"
  [list]="GET /v2/images" [show]="GET /v2/images/{id}" [locadd]="PATCH loc add" [locremove]="PATCH loc remove"
  [locrefused]="PATCH loc 409" [name]="PATCH name")
printf '  %-22s' "req/s per kind"
for t in $TARGETS; do printf ' %9s' "$t"; done
echo
for k in "${KINDS[@]}"; do
  printf '  %-22s' "${KIND_NAME[$k]}"
  for t in $TARGETS; do printf ' %9s' "${RES[$t.rps_$k]:-?}"; done
  echo
done
echo
for t in $TARGETS; do
  check "$([[ ${ENDED[$t]} == ok ]] && echo 1 || echo 0)" "$t: ran to the end (${ENDED[$t]})"
  check "$([[ ${RES[$t.errors]:-?} == 0 ]] && echo 1 || echo 0)" "$t: every answer as expected (${RES[$t.errors]:-?} errors in $((${RES[$t.requests]:-0} + ${RES[$t.warm_requests]:-0})) requests, warm-up included)"
  check "$([[ ${RES[$t.after_errors]:-?} == 0 ]] && echo 1 || echo 0)" "$t: images as expected after the load (${RES[$t.after_errors]:-?} failed)"
  check "$([[ ${RES[$t.stable]:-0} == 1 ]] && echo 1 || echo 0)" \
    "$t: RSS stable: last-${RES[$t.window]:-?}s mean ${RES[$t.rss_last]:-?} MB <= first-${RES[$t.window]:-?}s mean ${RES[$t.rss_first]:-?} + ${RES[$t.rss_allowed]:-?} MB (max of $RSS_GROWTH_MB MB, $RSS_GROWTH_PCT %)"
  check "$([[ -n ${LOGN[$t]:-} && ${LOGN[$t]} == "${RES[$t.sent]:-x}" ]] && echo 1 || echo 0)" \
    "$t: one access-log line per request (${LOGN[$t]:-?} lines, ${RES[$t.sent]:-?} requests)"
done
echo "Checks"
printf '%s\n' "${CHECKS[@]}"
echo
echo "total time: $(($(date +%s) - START)) s"

if [[ $STRICT == 1 && $FAILED == 1 ]]; then exit 3; fi
exit 0
