#!/usr/bin/env bash
# Benchmark: serving image data through the glance-edge demo vs express.static vs nginx.
#
#   bench/ranges.sh            (from anywhere; see bench/README.md)
#
# Workloads, on a 256 MiB image of random bytes served by all three from the same file:
#   1) 1 MiB ranges at random offsets  (wrk, Range: bytes=o-(o+1048575), RANGE_CONNS connections)
#   2) full downloads of the image      (wrk, FULL_CONNS connections)
#   3) the demo again on full downloads of a 1 GiB image: does its peak RSS grow with image size?
# Servers run on CPU SERVER_CPU, wrk and curl on CPU CLIENT_CPU. Each case gets a freshly started
# server process, a correctness probe with curl, a warm-up, then a timed run; the peak RSS of the
# server (VmHWM; for nginx its worker) is read right after the timed run.
#
# Settings (environment variables, defaults in brackets):
#   DURATION [10]  WARMUP [2]  ROUNDS [2: measured runs per server and case, interleaved; best kept]
#   RANGE_CONNS [8]  FULL_CONNS [4]  SIZE_MIB [256]  BIG_SIZE_MIB [1024]
#   RANGE_LEN [1048576]  RANGE_ALIGN [1: any offset; e.g. 4096 for aligned]  RANGE_PROBES [8]
#   SERVER_CPU [1]  CLIENT_CPU [0]  RSS_LIMIT_MB [100]  RSS_GROWTH_TOL_MB [10]
#   NGINX_EXTRA [""]: more nginx http{} directives, e.g. "sendfile off; output_buffers 2 1m;"
#   KEEP_TMP [0: remove the temp dir at the end]  STRICT [0: exit 0 whatever the figures; 1: exit 3
#   when a check or target fails]
#
# Everything listens on 127.0.0.1 only; every wait and request is bounded in time; every process
# started here is stopped on exit (trap), and the temp dir is removed.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2}
RANGE_CONNS=${RANGE_CONNS:-8}
FULL_CONNS=${FULL_CONNS:-4}
SIZE_MIB=${SIZE_MIB:-256}
BIG_SIZE_MIB=${BIG_SIZE_MIB:-1024}
RANGE_LEN=${RANGE_LEN:-1048576}
RANGE_ALIGN=${RANGE_ALIGN:-1}
RANGE_PROBES=${RANGE_PROBES:-8}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-100}
RSS_GROWTH_TOL_MB=${RSS_GROWTH_TOL_MB:-10}
KEEP_TMP=${KEEP_TMP:-0}
STRICT=${STRICT:-0}
NGINX_EXTRA=${NGINX_EXTRA:-}

HOST=127.0.0.1
SIZE=$((SIZE_MIB * 1024 * 1024))
BIG_SIZE=$((BIG_SIZE_MIB * 1024 * 1024))
MAX_HEADER=4096 # generous bound on the bytes of one answer's status line + headers

# ---------------------------------------------------------------------------------------------
# Messages (progress on stderr, results on stdout), processes and cleanup: bench/lib.sh.

BENCH_NAME=bench/ranges.sh
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

# Run a client tool (curl, wrk) on the client CPU.
client() { taskset -c "$CLIENT_CPU" "$@"; }

# ---------------------------------------------------------------------------------------------
# Prerequisites.

ensure_packages() {
  # ensure_packages CMD:PKG...: install the Debian packages of missing commands.
  local want=() spec cmd pkg
  for spec in "$@"; do
    cmd=${spec%%:*} pkg=${spec#*:}
    if command -v "$cmd" >/dev/null 2>&1; then continue; fi
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]]; then continue; fi
    want+=("$pkg")
  done
  ((${#want[@]})) || return 0
  command -v apt-get >/dev/null || die "missing packages ${want[*]} and no apt-get to install them"
  [[ $EUID == 0 ]] || die "missing packages ${want[*]}: run as root (or install them) first"
  log "installing ${want[*]}"
  local aptlog
  aptlog=$(mktemp "${TMPDIR:-/tmp}/glance-edge-bench-apt.XXXXXX.log")
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >"$aptlog" 2>&1; then
    log "install failed: apt-get update, then again"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$aptlog" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >>"$aptlog" 2>&1 ||
      die "could not install ${want[*]} (see $aptlog)"
  fi
  rm -f "$aptlog"
}

nginx_pkg() {
  # Prefer whichever nginx package is already there; otherwise nginx-light if the archive has it.
  local p
  for p in nginx-light nginx-core nginx; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]]; then
      echo "$p"
      return
    fi
  done
  if apt-cache show nginx-light >/dev/null 2>&1; then echo nginx-light; else echo nginx; fi
}

command -v node >/dev/null || die "node is needed (Node.js >= 20)"
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
ensure_packages curl:curl taskset:util-linux wrk:wrk "nginx:$(nginx_pkg)" cmp:diffutils
command -v nginx >/dev/null || die "nginx is installed but not on PATH"

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number >= 1, got '$ROUNDS'"
[[ $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] || die "DURATION must be >= 1 and WARMUP >= 0 (whole seconds)"
CPUS=$(nproc)
if ((CPUS < 2)) || ((SERVER_CPU >= CPUS)) || ((CLIENT_CPU >= CPUS)); then
  warn "$CPUS CPU(s): cannot pin servers to CPU $SERVER_CPU and the client to CPU $CLIENT_CPU; using CPU 0 for both"
  SERVER_CPU=0 CLIENT_CPU=0
fi

if [[ ! -f $ROOT/dist/server/cli.js ]]; then
  log "dist/ missing: npm run build"
  (cd "$ROOT" && npm run build >&2) || die "npm run build failed"
fi
[[ -d $ROOT/node_modules/express ]] || die "express not found in $ROOT/node_modules: run npm ci"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-edge-bench.XXXXXX")
# nginx's worker may run as an unprivileged user: it must be able to reach the image files.
chmod 755 "$TMP"
DATA=$TMP/data
mkdir -p "$DATA" "$TMP/logs"

# ---------------------------------------------------------------------------------------------
# Servers. Each start_* sets SERVER_PID (the process whose RSS is measured), SERVER_URL and,
# for nginx, NGINX_MASTER.

SERVER_PID="" SERVER_URL="" NGINX_MASTER=""

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { process.stdout.write(String(s.address().port)); s.close(); });'
}

start_demo() {
  local log=$TMP/logs/demo.log line
  taskset -c "$SERVER_CPU" "$ROOT/dist/server/cli.js" demo --port 0 --host "$HOST" --data "$DATA" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  line=$(wait_for_line "$log" "$SERVER_PID" 'glance-edge demo listening on http://') || die "the demo did not start"
  SERVER_URL=$(sed -E 's/.*listening on (http:\/\/[0-9.:]+).*/\1/' <<<"$line")
}

start_static() {
  local log=$TMP/logs/static.log line
  taskset -c "$SERVER_CPU" node "$BENCH_DIR/static-server.js" --root "$DATA/blobs" --port 0 --host "$HOST" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  line=$(wait_for_line "$log" "$SERVER_PID" 'static-server listening on http://') || die "express.static did not start"
  SERVER_URL=$(sed -E 's/.*listening on (http:\/\/[^ ]+).*/\1/' <<<"$line")
}

write_nginx_conf() {
  local dir=$1 port=$2 temps="" m build
  build=$(nginx -V 2>&1 || true)
  for m in client_body proxy fastcgi uwsgi scgi; do
    # Temp paths in our own dir (not /var/lib/nginx), for the modules this nginx has.
    if [[ $build == *"--without-http_${m}_module"* ]]; then continue; fi
    temps+="  ${m}_temp_path $dir/tmp-$m;"$'\n'
  done
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  $NGINX_EXTRA
$temps  server {
    listen $HOST:$port;
    location / { root $DATA/blobs; }
  }
}
EOF
}

start_nginx() {
  local dir=$TMP/nginx log=$TMP/logs/nginx.log port i code worker="" eflag=()
  mkdir -p "$dir"
  port=$(free_port)
  write_nginx_conf "$dir" "$port"
  # -e: where nginx logs before it has read the config (default /var/log/nginx/error.log).
  if grep -qE '^ *-e ' <<<"$(nginx -h 2>&1 || true)"; then eflag=(-e "$dir/error.log"); fi
  nginx -t -q -p "$dir/" -c "$dir/nginx.conf" "${eflag[@]}" >"$log" 2>&1 || {
    cat "$log" >&2
    die "nginx rejects its config ($dir/nginx.conf)"
  }
  taskset -c "$SERVER_CPU" nginx -p "$dir/" -c "$dir/nginx.conf" "${eflag[@]}" >>"$log" 2>&1 &
  NGINX_MASTER=$!
  PIDS+=("$NGINX_MASTER")
  SERVER_URL=http://$HOST:$port
  for ((i = 0; i < 100; i++)); do
    code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$SERVER_URL/" 2>/dev/null || true)
    [[ $code =~ ^[1-5][0-9][0-9]$ ]] && break
    alive "$NGINX_MASTER" || break
    sleep 0.1
  done
  if ! [[ $code =~ ^[1-5][0-9][0-9]$ ]]; then
    cat "$log" "$dir/error.log" >&2 2>/dev/null || true
    die "nginx did not start"
  fi
  for ((i = 0; i < 50; i++)); do
    worker=$(ps -o pid= --ppid "$NGINX_MASTER" 2>/dev/null | head -n1 | tr -d ' ')
    [[ -n $worker ]] && break
    sleep 0.1
  done
  [[ -n $worker ]] || die "no nginx worker process under master $NGINX_MASTER"
  SERVER_PID=$worker
}

stop_server() {
  if [[ -n $NGINX_MASTER ]]; then
    stop_pid "$NGINX_MASTER"
    NGINX_MASTER=""
  elif [[ -n $SERVER_PID ]]; then
    stop_pid "$SERVER_PID"
  fi
  SERVER_PID="" SERVER_URL=""
}

start_server() {
  case $1 in
  demo) start_demo ;;
  static) start_static ;;
  nginx) start_nginx ;;
  *) die "unknown server $1" ;;
  esac
}

# Peak RSS (VmHWM) of a process, in MB (10^6 bytes); "?" if unreadable.
peak_rss_mb() {
  local kb
  kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true)
  if [[ -n $kb ]]; then calc '%.1f' "$kb * 1024 / 1e6"; else echo "?"; fi
}

# ---------------------------------------------------------------------------------------------
# The demo's image API.

header_value() { # header_value FILE NAME: value of the last such header in a curl -D dump
  tr -d '\r' <"$1" | awk -v h="$(tr 'A-Z' 'a-z' <<<"$2")" -F': *' 'tolower($1) == h { v = substr($0, index($0, ":") + 1); sub(/^ */, "", v) } END { print v }'
}

status_code() { # status_code FILE: status of the last answer in a curl -D dump
  tr -d '\r' <"$1" | awk '/^HTTP\// { c = $2 } END { print c }'
}

json_field() { # json_field NAME < JSON
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const v = JSON.parse(s)[process.argv[1]]; process.stdout.write(v === undefined || v === null ? "" : String(v)); });' "$1"
}

# upload_image FILE: create an image in the running demo, upload FILE, print the image id.
upload_image() {
  local file=$1 size id answer code status got_size
  size=$(stat -c %s "$file")
  answer=$(client curl -sS --fail-with-body --max-time 10 -X POST -H 'Content-Type: application/json' \
    -d '{"name":"bench","disk_format":"raw","container_format":"bare"}' "$SERVER_URL/v2/images") ||
    die "creating an image failed: $answer"
  id=$(json_field id <<<"$answer")
  [[ -n $id ]] || die "no id in the answer to POST /v2/images: $answer"
  code=$(client curl -sS --max-time 300 -o "$TMP/upload.out" -w '%{http_code}' -T "$file" \
    -H 'Content-Type: application/octet-stream' -H 'Expect:' "$SERVER_URL/v2/images/$id/file") ||
    die "uploading to image $id failed"
  [[ $code == 204 ]] || die "upload of image $id answered $code (want 204): $(head -c 500 "$TMP/upload.out")"
  answer=$(client curl -sS --fail-with-body --max-time 10 "$SERVER_URL/v2/images/$id") || die "GET image $id failed: $answer"
  status=$(json_field status <<<"$answer")
  got_size=$(json_field size <<<"$answer")
  [[ $status == active && $got_size == "$size" ]] || die "image $id is $status with size $got_size after upload (want active, $size)"
  [[ -f $DATA/blobs/$id ]] || die "the demo did not store image $id at $DATA/blobs/$id"
  cmp -s "$file" "$DATA/blobs/$id" || die "the demo's stored data of image $id differs from the upload"
  echo "$id"
}

# ---------------------------------------------------------------------------------------------
# Correctness probes (curl). Each prints nothing when all is well, else what is wrong.

# check_range URL OFFSET LEN FILE SIZE [TAG]  (TAG names the temp files: probes may run in parallel)
check_range() {
  local url=$1 off=$2 len=$3 file=$4 size=$5 tag=${6:-0} last rc=0 code got cr cl
  local hdr=$TMP/probe-$tag.h body=$TMP/probe-$tag.b err=$TMP/probe-$tag.err
  last=$((off + len - 1))
  rm -f "$hdr" "$body"
  client curl -sS --max-time 30 --max-filesize $((len + 1)) -o "$body" -D "$hdr" \
    -H "Range: bytes=$off-$last" "$url" 2>"$err" || rc=$?
  code=$(status_code "$hdr")
  cl=$(header_value "$hdr" content-length)
  if ((rc == 63)); then
    echo "answer $code with Content-Length ${cl:-?} (want 206 with $len bytes)"
    return
  elif ((rc != 0)); then
    echo "request failed: $(head -c 200 "$err")"
    return
  fi
  got=$(stat -c %s "$body" 2>/dev/null || echo 0)
  if [[ $code != 206 ]]; then
    echo "answer $code with $got bytes (want 206 with $len bytes)"
    return
  fi
  [[ $got == "$len" ]] || {
    echo "206 with $got bytes (want $len)"
    return
  }
  cr=$(header_value "$hdr" content-range)
  [[ $cr == "bytes $off-$last/$size" ]] || {
    echo "206 with Content-Range '$cr' (want 'bytes $off-$last/$size')"
    return
  }
  cmp -s "$body" <(dd if="$file" iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none) ||
    echo "206 body differs from bytes $off-$last of the image"
  rm -f "$body"
}

# check_ranges URL FILE SIZE CONNS: the first, the last and RANGE_PROBES random ranges one by one,
# then 2 rounds of CONNS random ranges in parallel (shared buffers must not mix up answers);
# stops at the first problem.
check_ranges() {
  local url=$1 file=$2 size=$3 conns=$4 off problem slots round i
  slots=$(((size - RANGE_LEN) / RANGE_ALIGN))
  local offsets=(0 $((slots * RANGE_ALIGN)))
  for off in $(shuf -i "0-$slots" -n "$RANGE_PROBES" -r); do offsets+=($((off * RANGE_ALIGN))); done
  for off in "${offsets[@]}"; do
    problem=$(check_range "$url" "$off" "$RANGE_LEN" "$file" "$size")
    if [[ -n $problem ]]; then
      echo "bytes=$off-$((off + RANGE_LEN - 1)): $problem"
      return
    fi
  done
  for round in 1 2; do
    offsets=()
    for off in $(shuf -i "0-$slots" -n "$conns" -r); do offsets+=($((off * RANGE_ALIGN))); done
    for i in "${!offsets[@]}"; do
      check_range "$url" "${offsets[i]}" "$RANGE_LEN" "$file" "$size" "p$i" >"$TMP/probe-p$i.out" &
    done
    wait # only these probes: the servers are not children of this subshell
    for i in "${!offsets[@]}"; do
      problem=$(<"$TMP/probe-p$i.out")
      if [[ -n $problem ]]; then
        echo "bytes=${offsets[i]}-$((offsets[i] + RANGE_LEN - 1)) (one of $conns in parallel): $problem"
        return
      fi
    done
  done
}

# check_full URL FILE SIZE
check_full() {
  local url=$1 file=$2 size=$3 hdr=$TMP/probe-full.h err=$TMP/probe-full.err rc=0 code cl
  rm -f "$hdr"
  client curl -sS --max-time 120 -D "$hdr" "$url" 2>"$err" | cmp -s - "$file" || rc=$?
  code=$(status_code "$hdr")
  cl=$(header_value "$hdr" content-length)
  if [[ $code != 200 ]]; then
    echo "answer ${code:-none} (want 200) $(head -c 200 "$err")"
  elif [[ -n $cl && $cl != "$size" ]]; then
    echo "200 with Content-Length $cl (want $size)"
  elif ((rc != 0)); then
    echo "200 but the body differs from the image $(head -c 200 "$err")"
  fi
}

# ---------------------------------------------------------------------------------------------
# Load runs (wrk).

declare -A W=()

# cpu_ticks N: "busy idle" jiffies of CPU N so far (from /proc/stat)
cpu_ticks() {
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat
}
# cpu_busy "BUSY0 IDLE0" "BUSY1 IDLE1": percent busy between two cpu_ticks samples
cpu_busy() {
  local a=($1) b=($2) busy idle
  busy=$((b[0] - a[0])) idle=$((b[1] - a[1]))
  if ((busy + idle > 0)); then echo $(((100 * busy + (busy + idle) / 2) / (busy + idle))); else echo 0; fi
}

# run_wrk URL MODE SIZE CONNS SECONDS: fills W[requests bytes duration_us ... p99_us], and
# W[server_cpu] W[client_cpu]: how busy (%) the two CPUs were meanwhile.
run_wrk() {
  local url=$1 mode=$2 size=$3 conns=$4 secs=$5 out=$TMP/wrk.out line kv s0 s1 c0 c1
  W=()
  s0=$(cpu_ticks "$SERVER_CPU") c0=$(cpu_ticks "$CLIENT_CPU")
  if ! client wrk -t1 -c"$conns" -d"${secs}s" --timeout 60s -s "$BENCH_DIR/wrk.lua" "$url" -- \
    "$mode" "$size" "$RANGE_LEN" "$RANGE_ALIGN" >"$out" 2>&1; then
    warn "wrk failed:"
    cat "$out" >&2
    return 1
  fi
  s1=$(cpu_ticks "$SERVER_CPU") c1=$(cpu_ticks "$CLIENT_CPU")
  line=$(grep '^BENCH ' "$out" | tail -n1)
  [[ -n $line ]] || {
    warn "no summary from wrk:"
    cat "$out" >&2
    return 1
  }
  for kv in ${line#BENCH }; do W[${kv%%=*}]=${kv#*=}; done
  W[server_cpu]=$(cpu_busy "$s0" "$s1") W[client_cpu]=$(cpu_busy "$c0" "$c1")
}

# Results, keyed "server/case": req/s, MB/s, p50/p99 latency (ms), peak RSS (MB), check text.
declare -A RPS=() MBS=() P50=() P99=() RSS=() CPU=() CHECK=() VALID=() SPREAD=()

# bench_case SERVER CASE URL_PATH MODE FILE SIZE CONNS ROUND: one measured run of a fresh
# server; results under the key SERVER/CASE#ROUND.
bench_case() {
  local server=$1 case=$2 path=$3 mode=$4 file=$5 size=$6 conns=$7 round=$8 problem url
  local key="$1/$2#$8" req bytes dur errs per lo hi
  start_server "$server"
  url=$SERVER_URL$path
  log "$server, $case, round $round: probing $url"
  if [[ $mode == range ]]; then problem=$(check_ranges "$url" "$file" "$size" "$conns"); else problem=$(check_full "$url" "$file" "$size"); fi
  log "$server, $case, round $round: warm-up ${WARMUP}s, then ${DURATION}s with $conns connections"
  if ((WARMUP > 0)); then run_wrk "$url" "$mode" "$size" "$conns" "$WARMUP" || true; fi
  if ! run_wrk "$url" "$mode" "$size" "$conns" "$DURATION"; then
    RPS[$key]="-" MBS[$key]="-" P50[$key]="-" P99[$key]="-" CPU[$key]="-" RSS[$key]=$(peak_rss_mb "$SERVER_PID")
    CHECK[$key]="FAIL: wrk failed${problem:+; probe: $problem}" VALID[$key]=0
    stop_server
    return
  fi
  RSS[$key]=$(peak_rss_mb "$SERVER_PID")
  stop_server

  req=${W[requests]} bytes=${W[bytes]} dur=${W[duration_us]}
  RPS[$key]=$(calc '%.1f' "$req / ($dur / 1e6)")
  MBS[$key]=$(calc '%.1f' "$bytes / $dur") # bytes per µs = MB/s
  P50[$key]=$(calc '%.1f' "${W[p50_us]} / 1000")
  P99[$key]=$(calc '%.1f' "${W[p99_us]} / 1000")
  CPU[$key]="${W[server_cpu]}/${W[client_cpu]}"
  # A saturated client CPU means the figure is (partly) the load generator's limit.
  if ((W[client_cpu] >= 95)); then CPU[$key]+="*"; fi

  # The load itself: error counters, and bytes per answer. Completed answers carry the expected
  # body plus headers; at most `conns` answers were cut off by the end of the run.
  errs=$((W[connect_errors] + W[read_errors] + W[write_errors] + W[status_errors] + W[timeouts]))
  if [[ $mode == range ]]; then per=$RANGE_LEN; else per=$size; fi
  lo=$((req * per))
  hi=$((req * (per + MAX_HEADER) + conns * (per + MAX_HEADER)))
  local load=""
  if ((req == 0)); then
    load="no complete answer in ${DURATION}s"
  elif ((bytes < lo || bytes > hi)); then
    load="wrk got $(calc '%.0f' "$bytes / $req") bytes per answer (want about $per): not $([[ $mode == range ]] && echo "206 ranges" || echo "whole images")"
  fi
  if ((errs > 0)); then
    load+="${load:+; }wrk errors: connect ${W[connect_errors]} read ${W[read_errors]} write ${W[write_errors]} status>=400 ${W[status_errors]} timeout ${W[timeouts]}"
  fi
  if [[ -z $problem && -z $load ]]; then
    CHECK[$key]="ok" VALID[$key]=1
  else
    CHECK[$key]="FAIL: ${problem:+probe: $problem}${problem:+${load:+; }}${load}" VALID[$key]=0
  fi
}

# aggregate SERVER CASE ROUNDS METRIC: the figures of SERVER/CASE from its rounds: the round with
# the best METRIC (RPS or MBS; a shared machine only ever slows a run down), the spread of
# METRIC over the rounds, the highest peak RSS, and the answer checks of every round.
aggregate() {
  local server=$1 case=$2 rounds=$3 metric=$4 key="$1/$2" r k best="" lo="" hi="" v rss=0 check=ok valid=1
  local -n m=$metric
  for ((r = 1; r <= rounds; r++)); do
    k="$key#$r"
    v=${m[$k]}
    if [[ $v != - ]]; then
      if [[ -z $best ]] || awk "BEGIN { exit !($v > ${m[$best]}) }"; then best=$k; fi
      if [[ -z $lo ]] || awk "BEGIN { exit !($v < $lo) }"; then lo=$v; fi
      if [[ -z $hi ]] || awk "BEGIN { exit !($v > $hi) }"; then hi=$v; fi
    fi
    if [[ ${RSS[$k]} != "?" ]] && awk "BEGIN { exit !(${RSS[$k]} > $rss) }"; then rss=${RSS[$k]}; fi
    if [[ ${VALID[$k]} != 1 ]]; then valid=0; fi
    if [[ ${CHECK[$k]} != ok && $check == ok ]]; then
      check=${CHECK[$k]}
      if ((rounds > 1)); then check+=" (round $r)"; fi
    fi
  done
  [[ -n $best ]] || best="$key#1"
  RPS[$key]=${RPS[$best]} MBS[$key]=${MBS[$best]} P50[$key]=${P50[$best]} P99[$key]=${P99[$best]} CPU[$key]=${CPU[$best]}
  RSS[$key]=$rss CHECK[$key]=$check VALID[$key]=$valid
  if [[ -n $lo ]]; then SPREAD[$key]="$(calc '%.0f' "$lo")-$(calc '%.0f' "$hi")"; else SPREAD[$key]="-"; fi
}

# ---------------------------------------------------------------------------------------------
# Run.

START=$(date +%s)
declare -A NAMES=([demo]="demo" [static]="express.static" [nginx]="nginx")

log "generating a ${SIZE_MIB} MiB and a ${BIG_SIZE_MIB} MiB image of random bytes in $TMP"
head -c "$SIZE" /dev/urandom >"$TMP/image-small"
head -c "$BIG_SIZE" /dev/urandom >"$TMP/image-big"

log "uploading both to the demo"
start_demo
ID=$(upload_image "$TMP/image-small")
UPLOAD_RSS_SMALL=$(peak_rss_mb "$SERVER_PID")
stop_server
start_demo
BIG_ID=$(upload_image "$TMP/image-big")
UPLOAD_RSS_BIG=$(peak_rss_mb "$SERVER_PID")
stop_server
# From here on the stored copies are the reference (checked identical to the uploads).
rm -f "$TMP/image-small" "$TMP/image-big"
FILE=$DATA/blobs/$ID
BIG_FILE=$DATA/blobs/$BIG_ID
chmod -R a+rX "$DATA/blobs"
cat "$FILE" "$BIG_FILE" >/dev/null # into the page cache

declare -A PATHS=([demo]="/v2/images/$ID/file" [static]="/$ID" [nginx]="/$ID")
SERVERS=(demo static nginx)
for ((round = 1; round <= ROUNDS; round++)); do
  # Rounds interleave the servers, in turn forwards and backwards, so that a noisy spell of the
  # machine does not hit one server only.
  order=("${SERVERS[@]}")
  if ((round % 2 == 0)); then order=(nginx static demo); fi
  for s in "${order[@]}"; do bench_case "$s" ranges "${PATHS[$s]}" range "$FILE" "$SIZE" "$RANGE_CONNS" "$round"; done
  for s in "${order[@]}"; do bench_case "$s" full "${PATHS[$s]}" full "$FILE" "$SIZE" "$FULL_CONNS" "$round"; done
done
for s in "${SERVERS[@]}"; do
  aggregate "$s" ranges "$ROUNDS" RPS
  aggregate "$s" full "$ROUNDS" MBS
done
# Memory only: one round is enough.
bench_case demo full-big "/v2/images/$BIG_ID/file" full "$BIG_FILE" "$BIG_SIZE" "$FULL_CONNS" 1
aggregate demo full-big 1 MBS

# ---------------------------------------------------------------------------------------------
# Report.

FAILED=0
declare -a TARGETS=()

# target OK LABEL VALUE: record a target line (OK is 1 when met)
target() {
  local ok=$1 verdict=met
  if [[ $ok != 1 ]]; then
    verdict=MISSED
    FAILED=1
  fi
  TARGETS+=("$(printf '  %-7s %-50s %s' "$verdict" "$2" "$3")")
}

ratio() { # ratio A B: A/B to 2 decimals, or "-" when not computable
  if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk "BEGIN { exit !($2 > 0) }"; then calc '%.2f' "$1 / $2"; else echo "-"; fi
}
ge() { [[ $1 =~ ^-?[0-9.]+$ ]] && awk "BEGIN { exit !($1 >= $2) }"; }
lt() { [[ $1 =~ ^-?[0-9.]+$ ]] && awk "BEGIN { exit !($1 < $2) }"; }

table() { # table CASE SPREAD_LABEL SERVER...
  local case=$1 label=$2 s key
  shift 2
  printf '  %-15s %9s %9s %13s %8s %8s %12s %10s  %s\n' server req/s MB/s "$label" "p50 ms" "p99 ms" "peak RSS MB" "CPU% s/c" answers
  for s in "$@"; do
    key="$s/$case"
    printf '  %-15s %9s %9s %13s %8s %8s %12s %10s  %s\n' "${NAMES[$s]}" "${RPS[$key]}" "${MBS[$key]}" "${SPREAD[$key]}" "${P50[$key]}" "${P99[$key]}" "${RSS[$key]}" "${CPU[$key]}" "${CHECK[$key]}"
  done
}

invalid_note() { if [[ $1 != 1 ]]; then echo " (not comparable: wrong answers, see below)"; fi; }

# verdict RATIO MIN VALID: "met"/"MISSED" text for a ratio target
verdict() {
  if [[ $3 != 1 ]]; then echo "not comparable: answers wrong"; elif ge "$1" "$2"; then echo "met"; else echo "MISSED"; fi
}

echo
echo "glance-edge bench/ranges.sh — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "  node $(node -v), $(nginx -v 2>&1 | sed 's/.*version: //'), wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'))"
echo "  servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; each run: fresh server, curl probes, ${WARMUP}s warm-up, ${DURATION}s measured"
echo "  $ROUNDS round(s) per server and case, interleaved: the best round is shown, 'rounds' is the min-max"
echo "  over the rounds, peak RSS the highest of the rounds"
echo "  image: ${SIZE_MIB} MiB of random bytes, served by all three from $DATA/blobs/<id>"
echo "  MB = 10^6 bytes (MB/s counts headers too); peak RSS = VmHWM of the server (nginx: its worker)"
echo "  CPU% s/c = how busy the server CPU / the client (wrk) CPU was during the measured run;"
echo "             * = client CPU saturated: that figure is capped by the load generator"
if [[ -n $NGINX_EXTRA ]]; then echo "  nginx extra directives: $NGINX_EXTRA"; fi
echo

c=ranges
echo "1) $((RANGE_LEN / 1024)) KiB ranges at random offsets$([[ $RANGE_ALIGN != 1 ]] && echo " (aligned to $RANGE_ALIGN)"), $RANGE_CONNS connections"
table $c "req/s rounds" "${SERVERS[@]}"
v_ok=$([[ ${VALID[demo/$c]} == 1 && ${VALID[nginx/$c]} == 1 ]] && echo 1 || echo 0)
r=$(ratio "${RPS[demo/$c]}" "${RPS[nginx/$c]}")
echo "  demo/nginx          = $r   (req/s; target >= 0.90: $(verdict "$r" 0.9 "$v_ok"))"
target "$([[ $v_ok == 1 ]] && ge "$r" 0.9 && echo 1 || echo 0)" "ranges: demo >= 0.9 x nginx (req/s)" "$r$(invalid_note "$v_ok")"
v_ok=$([[ ${VALID[demo/$c]} == 1 && ${VALID[static/$c]} == 1 ]] && echo 1 || echo 0)
r=$(ratio "${RPS[demo/$c]}" "${RPS[static/$c]}")
echo "  demo/express.static = $r   (req/s; target >= 2.00: $(verdict "$r" 2 "$v_ok"))"
target "$([[ $v_ok == 1 ]] && ge "$r" 2 && echo 1 || echo 0)" "ranges: demo >= 2 x express.static (req/s)" "$r$(invalid_note "$v_ok")"
echo

c=full
echo "2) full downloads of the ${SIZE_MIB} MiB image, $FULL_CONNS connections"
table $c "MB/s rounds" "${SERVERS[@]}"
v_ok=$([[ ${VALID[demo/$c]} == 1 && ${VALID[nginx/$c]} == 1 ]] && echo 1 || echo 0)
r=$(ratio "${MBS[demo/$c]}" "${MBS[nginx/$c]}")
echo "  demo/nginx          = $r   (MB/s; target >= 0.90: $(verdict "$r" 0.9 "$v_ok"))"
target "$([[ $v_ok == 1 ]] && ge "$r" 0.9 && echo 1 || echo 0)" "full downloads: demo >= 0.9 x nginx (MB/s)" "$r$(invalid_note "$v_ok")"
r=$(ratio "${MBS[demo/$c]}" "${MBS[static/$c]}")
echo "  demo/express.static = $r   (MB/s; no target)"
echo

echo "3) demo peak RSS vs image size (full downloads, $FULL_CONNS connections)"
printf '  %-10s %9s %12s %10s %18s  %s\n' image MB/s "peak RSS MB" "CPU% s/c" "upload peak RSS MB" answers
printf '  %-10s %9s %12s %10s %18s  %s\n' "${SIZE_MIB} MiB" "${MBS[demo/full]}" "${RSS[demo/full]}" "${CPU[demo/full]}" "$UPLOAD_RSS_SMALL" "${CHECK[demo/full]}"
printf '  %-10s %9s %12s %10s %18s  %s\n' "${BIG_SIZE_MIB} MiB" "${MBS[demo/full-big]}" "${RSS[demo/full-big]}" "${CPU[demo/full-big]}" "$UPLOAD_RSS_BIG" "${CHECK[demo/full-big]}"
growth=$(if [[ ${RSS[demo/full]} =~ ^[0-9.]+$ && ${RSS[demo/full-big]} =~ ^[0-9.]+$ ]]; then calc '%+.1f' "${RSS[demo/full-big]} - ${RSS[demo/full]}"; else echo "?"; fi)
echo "  growth ${SIZE_MIB} -> ${BIG_SIZE_MIB} MiB: $growth MB (target: none beyond noise, <= +$RSS_GROWTH_TOL_MB MB: $(lt "${growth#+}" "$RSS_GROWTH_TOL_MB.0001" && echo met || echo MISSED))"
echo "  (upload peak RSS: the demo process that took the upload; informational, no target)"
echo

for c in ranges full full-big; do
  sz=$SIZE_MIB
  if [[ $c == full-big ]]; then sz=$BIG_SIZE_MIB; fi
  target "$(lt "${RSS[demo/$c]}" "$RSS_LIMIT_MB" && echo 1 || echo 0)" "demo peak RSS < $RSS_LIMIT_MB MB ($c, $sz MiB)" "${RSS[demo/$c]} MB"
done
target "$(lt "${growth#+}" "$RSS_GROWTH_TOL_MB.0001" && echo 1 || echo 0)" "demo peak RSS not growing with image size (<= +$RSS_GROWTH_TOL_MB MB)" "$growth MB (${SIZE_MIB} -> ${BIG_SIZE_MIB} MiB)"
for k in "${!CHECK[@]}"; do [[ ${CHECK[$k]} == ok ]] || FAILED=1; done

echo "Targets"
printf '%s\n' "${TARGETS[@]}"
bad=()
for s in "${SERVERS[@]}"; do
  for c in ranges full full-big; do
    if [[ -n ${CHECK[$s/$c]:-} && ${CHECK[$s/$c]} != ok ]]; then bad+=("  ${NAMES[$s]} ($c): ${CHECK[$s/$c]}"); fi
  done
done
if ((${#bad[@]})); then
  echo
  echo "WRONG ANSWERS (figures of these cases are not comparable):"
  printf '%s\n' "${bad[@]}"
fi
echo
echo "total time: $(($(date +%s) - START)) s"

if [[ $STRICT == 1 && $FAILED == 1 ]]; then exit 3; fi
exit 0
