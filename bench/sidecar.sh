#!/usr/bin/env bash
# Benchmark: the sidecar (`glance-edge proxy`) vs http-proxy-middleware in Express vs nginx
# proxy_pass, in one run, in front of one upstream; with them a minimal node:http proxy
# (bench/min-proxy.js: forward and pipe, nothing else), the floor of Node's own HTTP cost.
#
#   bench/sidecar.sh            (from anywhere; see bench/README.md)
#
# The upstream is an nginx that answers like a Glance-v2 service for what the workloads ask:
# small JSON for GET /v2/images (pass-through for every proxy), an active image with two locations
# for GET and PATCH /v2/images/{id}, and the data of a 256 MiB and a 1 GiB image (random bytes).
# Workloads, for each proxy:
#   small  GET /v2/images?limit=1 (no part of the suite applies: forwarded as is)     SMALL_CONNS
#   patch  PATCH /v2/images/{id} removing /locations/0 (the sidecar first looks the image up
#          with GET /v2/images/{id}, then forwards; the others just forward)         PATCH_CONNS
#   full   whole downloads of the 256 MiB image                                        FULL_CONNS
#   big    on freshly started proxies: one whole download of a BIG_MIB image and one chunked upload
#          of BIG_MIB (curl -T -), the proxy's RSS sampled every 100 ms during each
# The proxies run on CPU PROXY_CPU; wrk, curl and the upstream on CPU OTHER_CPU. Rounds are
# interleaved across proxies and the best figure of each is kept; peak RSS is VmHWM of the proxy
# process (for nginx, its worker) over the whole run.
#
# Settings (environment, defaults in brackets): DURATION [10] WARMUP [2] ROUNDS [2]
#   SMALL_CONNS [32] PATCH_CONNS [32] FULL_CONNS [4] SIZE_MIB [256] BIG_MIB [2048]
#   PROXY_CPU [1] OTHER_CPU [0] BASE_PORT [18080] STRICT [0: exit 0 whatever the figures; 1: exit
#   3 when a target is missed]
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
SMALL_CONNS=${SMALL_CONNS:-32}
PATCH_CONNS=${PATCH_CONNS:-32}
FULL_CONNS=${FULL_CONNS:-4}
SIZE_MIB=${SIZE_MIB:-256}
BIG_MIB=${BIG_MIB:-2048}
PROXY_CPU=${PROXY_CPU:-1}
OTHER_CPU=${OTHER_CPU:-0}
BASE_PORT=${BASE_PORT:-18080}
STRICT=${STRICT:-0}

HOST=127.0.0.1
UP=$BASE_PORT
declare -A PORT=([sidecar]=$((BASE_PORT + 1)) [hpm]=$((BASE_PORT + 2)) [nginx]=$((BASE_PORT + 3)) [min]=$((BASE_PORT + 5)))
SINK=$((BASE_PORT + 4)) # where the upstream sends uploads: reads each body to its end, then 204
PROXIES=(sidecar hpm nginx min)
IMG=11111111-1111-4111-8111-111111111111
BIG=22222222-2222-4222-8222-222222222222

BENCH_NAME=bench/sidecar.sh
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

# --- What is needed ------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "could not install ${missing[*]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -d $ROOT/node_modules/http-proxy-middleware ]] || die "run npm ci in $ROOT first"
[[ -x $ROOT/dist/server/cli.js ]] || (cd "$ROOT" && npm run build >/dev/null 2>&1) || die "npm run build failed"

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "$UP" "${PORT[@]}" "$SINK"; do port_free "$p" || die "port $p is taken (BASE_PORT=$BASE_PORT): another run still going?"; done
TMP=$(mktemp -d -t glance-edge-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers read the images as their own user
log "images: ${SIZE_MIB} MiB of random bytes and a sparse ${BIG_MIB} MiB file in $TMP"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$TMP/image"
truncate -s $((BIG_MIB * 1024 * 1024)) "$TMP/big"
SHA=$(sha256sum "$TMP/image" | cut -d' ' -f1)

image_json() { # id size checksum
  printf '{"id": "%s", "name": "bench", "status": "active", "size": %s, "checksum": "%s", "disk_format": "raw", "container_format": "bare", "locations": [{"url": "file:///a", "metadata": {}}, {"url": "file:///b", "metadata": {}}]}' "$1" "$2" "$3"
}
SMALL_BODY='{"images": [], "first": "/v2/images?limit=1", "schema": "/v2/schemas/images"}'

# --- The upstream --------------------------------------------------------------------------------
mkdir -p "$TMP/up" "$TMP/px"
cat >"$TMP/up/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/up/nginx.pid;
error_log $TMP/up/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 10000000;
  client_body_temp_path $TMP/up;
  server {
    listen $HOST:$UP;
    location = /v2/images/$IMG { default_type application/json; return 200 '$(image_json "$IMG" $((SIZE_MIB * 1024 * 1024)) "$(md5sum "$TMP/image" | cut -d' ' -f1)")'; }
    location = /v2/images/$BIG { default_type application/json; return 200 '$(image_json "$BIG" $((BIG_MIB * 1024 * 1024)) "")'; }
    location = /v2/images/$IMG/file { default_type application/octet-stream; alias $TMP/image; }
    location = /v2/images/$BIG/file {
      default_type application/octet-stream;
      client_max_body_size 0;
      proxy_request_buffering off;
      proxy_http_version 1.1;
      if (\$request_method = PUT) { proxy_pass http://$HOST:$SINK; }
      alias $TMP/big;
    }
    location / { default_type application/json; return 200 '$SMALL_BODY'; }
  }
}
EOF
taskset -c "$OTHER_CPU" "$NGINX" -c "$TMP/up/nginx.conf" -p "$TMP/up" -g 'daemon off;' 2>"$TMP/up/stderr" &
PIDS+=($!)
taskset -c "$OTHER_CPU" node "$BENCH_DIR/sink.js" "$SINK" >"$TMP/sink.log" 2>&1 &
PIDS+=($!)

# --- The proxies ---------------------------------------------------------------------------------
cat >"$TMP/px/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/px/nginx.pid;
error_log $TMP/px/error.log;
events { worker_connections 4096; }
http {
  access_log $TMP/px/access.log;
  keepalive_requests 10000000;
  client_body_temp_path $TMP/px;
  proxy_temp_path $TMP/px;
  upstream image_service { server $HOST:$UP; keepalive 64; }
  server {
    listen $HOST:${PORT[nginx]};
    client_max_body_size 0;
    location / {
      proxy_pass http://image_service;
      proxy_request_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
wait_port() {
  local i
  for i in $(seq 1 300); do
    curl -s -o /dev/null --max-time 1 "http://$HOST:$1/" && return 0
    sleep 0.1
  done
  die "nothing answers on port $1"
}
declare -A PID
NGINX_MASTER=""
nginx_worker() { pgrep -P "$NGINX_MASTER" | head -n 1 || die "nginx (pid $NGINX_MASTER) has no worker: did it start? $(cat "$TMP/px/error.log" 2>/dev/null)"; }
stop_proxies() {
  local pid p workers
  workers=$(pgrep -P "$NGINX_MASTER" 2>/dev/null | tr '\n' ' ' || true)
  for pid in "${PID[sidecar]:-}" "${PID[hpm]:-}" "${PID[min]:-}" "$NGINX_MASTER"; do [[ -n $pid ]] && kill "$pid" 2>/dev/null || true; done
  # Gone when their ports are free again (nginx's workers outlive its master for a moment).
  for p in "${PORT[@]}"; do
    for _ in $(seq 1 50); do port_free "$p" && break; sleep 0.1; done
  done
  for pid in "${PID[sidecar]:-}" "${PID[hpm]:-}" "${PID[min]:-}" "$NGINX_MASTER" $workers; do kill -9 "$pid" 2>/dev/null || true; done
  for p in "${PORT[@]}"; do
    for _ in $(seq 1 50); do port_free "$p" && break; sleep 0.1; done
    port_free "$p" || die "port $p is still taken after stopping the proxies"
  done
}
start_proxies() {
  taskset -c "$PROXY_CPU" "$NGINX" -c "$TMP/px/nginx.conf" -p "$TMP/px" -g 'daemon off;' 2>"$TMP/px/stderr" &
  NGINX_MASTER=$!
  PIDS+=($!)
  # The sidecar as its users run it (the bin, with its shebang's V8 flags); its log to a file.
  taskset -c "$PROXY_CPU" "$ROOT/dist/server/cli.js" proxy --upstream "http://$HOST:$UP" --port "${PORT[sidecar]}" >>"$TMP/sidecar.log" 2>&1 &
  PID[sidecar]=$!
  PIDS+=($!)
  taskset -c "$PROXY_CPU" node "$BENCH_DIR/hpm-proxy.js" "http://$HOST:$UP" "${PORT[hpm]}" >>"$TMP/hpm.log" 2>&1 &
  PID[hpm]=$!
  PIDS+=($!)
  taskset -c "$PROXY_CPU" node "$BENCH_DIR/min-proxy.js" "http://$HOST:$UP" "${PORT[min]}" >>"$TMP/min.log" 2>&1 &
  PID[min]=$!
  PIDS+=($!)
  local p
  for p in "$UP" "${PORT[@]}"; do wait_port "$p"; done
  PID[nginx]=$(nginx_worker)
}
start_proxies
rss_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# --- Each proxy answers right before it is measured ------------------------------------------
for px in "${PROXIES[@]}"; do
  base="http://$HOST:${PORT[$px]}"
  [[ $(curl -s --max-time 5 "$base/v2/images?limit=1") == "$SMALL_BODY" ]] || die "$px: wrong pass-through answer"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X PATCH -H 'Content-Type: application/openstack-images-v2.1-json-patch' \
    --data '[{"op": "remove", "path": "/locations/0"}]' "$base/v2/images/$IMG")
  [[ $code == 200 ]] || die "$px: PATCH answered $code"
  [[ $(curl -s --max-time 60 "$base/v2/images/$IMG/file" | sha256sum | cut -d' ' -f1) == "$SHA" ]] || die "$px: wrong image bytes"
done
log "all four answer right (pass-through body, PATCH 200, sha256 of the ${SIZE_MIB} MiB image)"

# --- Runs ----------------------------------------------------------------------------------------
declare -A RPS P99 MBS NON2XX
run_wrk() { # proxy case conns path [patch]
  local px=$1 case=$2 conns=$3 path=$4 mode=${5:-} out rps p99 mbs bad
  local url="http://$HOST:${PORT[$px]}$path"
  taskset -c "$OTHER_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" -s "$BENCH_DIR/sidecar.lua" "$url" -- $mode >/dev/null 2>&1 || true
  out=$(taskset -c "$OTHER_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 30s -s "$BENCH_DIR/sidecar.lua" "$url" -- $mode | grep '^RESULT')
  eval "local ${out#RESULT }"
  rps=$(calc '%.0f' "$requests / $seconds")
  mbs=$(calc '%.0f' "$bytes / $seconds / 1000000")
  bad=$((errors + non2xx))
  log "$case $px: $rps req/s, $mbs MB/s, p99 $p99_ms ms, $bad failed"
  if [[ -z ${RPS[$px.$case]:-} || $rps -gt ${RPS[$px.$case]} ]]; then
    RPS[$px.$case]=$rps P99[$px.$case]=$p99_ms MBS[$px.$case]=$mbs
  fi
  NON2XX[$px.$case]=$(( ${NON2XX[$px.$case]:-0} + bad ))
}
for round in $(seq 1 "$ROUNDS"); do
  log "round $round of $ROUNDS"
  for px in "${PROXIES[@]}"; do run_wrk "$px" small "$SMALL_CONNS" '/v2/images?limit=1'; done
  for px in "${PROXIES[@]}"; do run_wrk "$px" patch "$PATCH_CONNS" "/v2/images/$IMG" patch; done
  for px in "${PROXIES[@]}"; do run_wrk "$px" full "$FULL_CONNS" "/v2/images/$IMG/file"; done
done
declare -A RSS_FULL RSS_BIG BIG_MBS UP_MBS RSS_UP
for px in "${PROXIES[@]}"; do RSS_FULL[$px]=$(rss_mb "${PID[$px]}"); done

# Peak VmRSS of process $1 while command "${@:2}" runs, sampled every 100 ms; the command's stdout
# is kept in $TMP/out.
rss_during() {
  local pid=$1 peak=0 now sampler
  shift
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null; sleep 0.1; done ) >"$TMP/rss" &
  sampler=$!
  "$@" >"$TMP/out" || true
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  calc '%.1f' "$(sort -n "$TMP/rss" | tail -n 1) / 1024"
}
log "big transfers on freshly started proxies"
stop_proxies
start_proxies
big=$((BIG_MIB * 1024 * 1024))
# Once straight from the upstream first: the sparse file's pages enter the page cache on their first
# read, which halved the MB/s of whichever proxy came first (the sidecar, 390 MB/s in two runs).
taskset -c "$OTHER_CPU" curl -s -o /dev/null --max-time 600 "http://$HOST:$UP/v2/images/$BIG/file" || die "the upstream did not send the ${BIG_MIB} MiB image"
for px in "${PROXIES[@]}"; do
  base="http://$HOST:${PORT[$px]}/v2/images/$BIG/file"
  RSS_BIG[$px]=$(rss_during "${PID[$px]}" taskset -c "$OTHER_CPU" curl -s -o /dev/null -w '%{speed_download} %{size_download}\n' --max-time 600 "$base")
  read -r speed got <"$TMP/out"
  [[ $got == "$big" ]] || die "$px: the ${BIG_MIB} MiB download brought $got bytes"
  BIG_MBS[$px]=$(calc '%.0f' "$speed / 1000000")
  RSS_UP[$px]=$(rss_during "${PID[$px]}" sh -c "head -c $big /dev/zero | taskset -c $OTHER_CPU curl -s -o /dev/null -w '%{speed_upload} %{http_code}\n' --max-time 600 -T - -X PUT -H 'Content-Type: application/octet-stream' '$base'")
  read -r speed code <"$TMP/out"
  [[ $code == 204 ]] || die "$px: the ${BIG_MIB} MiB chunked upload answered $code"
  UP_MBS[$px]=$(calc '%.0f' "$speed / 1000000")
  log "big $px: download ${BIG_MBS[$px]} MB/s, peak RSS ${RSS_BIG[$px]} MB; chunked upload ${UP_MBS[$px]} MB/s, peak RSS ${RSS_UP[$px]} MB"
done

# --- Report --------------------------------------------------------------------------------------
missed=0
check() { # label ok
  if [[ $2 == 1 ]]; then echo "met"; else echo "MISSED"; fi
}
ratio() { calc '%.2f' "$1 / $2"; }
echo
echo "glance-edge sidecar vs http-proxy-middleware vs nginx proxy_pass, and a minimal node:http proxy ($(nproc) CPUs; proxies on CPU $PROXY_CPU; ${DURATION}s x $ROUNDS rounds, best kept)"
row() { printf '%-34s %12s %12s %12s %12s\n' "$@"; }
row "" sidecar hpm nginx "minimal node"
row "small pass-through req/s" "${RPS[sidecar.small]}" "${RPS[hpm.small]}" "${RPS[nginx.small]}" "${RPS[min.small]}"
row "small pass-through p99 ms" "${P99[sidecar.small]}" "${P99[hpm.small]}" "${P99[nginx.small]}" "${P99[min.small]}"
row "guarded PATCH req/s" "${RPS[sidecar.patch]}" "${RPS[hpm.patch]}" "${RPS[nginx.patch]}" "${RPS[min.patch]}"
row "guarded PATCH p99 ms" "${P99[sidecar.patch]}" "${P99[hpm.patch]}" "${P99[nginx.patch]}" "${P99[min.patch]}"
row "${SIZE_MIB} MiB downloads MB/s" "${MBS[sidecar.full]}" "${MBS[hpm.full]}" "${MBS[nginx.full]}" "${MBS[min.full]}"
row "peak RSS MB over the runs above" "${RSS_FULL[sidecar]}" "${RSS_FULL[hpm]}" "${RSS_FULL[nginx]}" "${RSS_FULL[min]}"
row "${BIG_MIB} MiB download MB/s" "${BIG_MBS[sidecar]}" "${BIG_MBS[hpm]}" "${BIG_MBS[nginx]}" "${BIG_MBS[min]}"
row "  peak RSS MB during it" "${RSS_BIG[sidecar]}" "${RSS_BIG[hpm]}" "${RSS_BIG[nginx]}" "${RSS_BIG[min]}"
row "${BIG_MIB} MiB chunked upload MB/s" "${UP_MBS[sidecar]}" "${UP_MBS[hpm]}" "${UP_MBS[nginx]}" "${UP_MBS[min]}"
row "  peak RSS MB during it" "${RSS_UP[sidecar]}" "${RSS_UP[hpm]}" "${RSS_UP[nginx]}" "${RSS_UP[min]}"
failed() { echo $((NON2XX[$1.small] + NON2XX[$1.patch] + NON2XX[$1.full])); }
row "failed answers (all runs)" "$(failed sidecar)" "$(failed hpm)" "$(failed nginx)" "$(failed min)"
echo
r1=$(ratio "${RPS[sidecar.small]}" "${RPS[hpm.small]}")
r2=$(ratio "${RPS[sidecar.small]}" "${RPS[nginx.small]}")
r3=$(ratio "${MBS[sidecar.full]}" "${MBS[nginx.full]}")
o1=$(calc "%d" "($r1 >= 2)") o2=$(calc "%d" "($r2 >= 0.4)") o3=$(calc "%d" "($r3 >= 0.9)") o4=$(calc "%d" "(${RSS_BIG[sidecar]} < 100 && ${RSS_UP[sidecar]} < 100)")
o5=$((NON2XX[sidecar.small] + NON2XX[sidecar.patch] + NON2XX[sidecar.full] == 0 ? 1 : 0))
printf 'pass-through: sidecar / hpm   = %s (target >= 2)    %s\n' "$r1" "$(check a "$o1")"
printf 'pass-through: sidecar / nginx = %s (target >= 0.4)  %s\n' "$r2" "$(check b "$o2")"
printf 'downloads:    sidecar / nginx = %s (target >= 0.9)  %s\n' "$r3" "$(check c "$o3")"
printf 'peak RSS during %s MiB down / up: %s / %s MB (target < 100)  %s\n' "$BIG_MIB" "${RSS_BIG[sidecar]}" "${RSS_UP[sidecar]}" "$(check d "$o4")"
printf 'sidecar answers all 2xx: %s\n' "$(check e "$o5")"
printf 'for reading the nginx ratio: minimal node proxy / nginx = %s, sidecar / minimal node proxy = %s\n' \
  "$(ratio "${RPS[min.small]}" "${RPS[nginx.small]}")" "$(ratio "${RPS[sidecar.small]}" "${RPS[min.small]}")"
for o in "$o1" "$o2" "$o3" "$o4" "$o5"; do [[ $o == 1 ]] || missed=1; done
if [[ $STRICT == 1 && $missed == 1 ]]; then exit 3; fi
exit 0
