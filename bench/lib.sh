# Shared by the bench scripts: messages, arithmetic, and the processes a script starts, all stopped
# (and its temp dir removed) however it ends. Source it after setting BENCH_NAME and KEEP_TMP.
#   STOP_WAIT [5]: seconds a process gets after SIGTERM before SIGKILL.

log() { printf '  .. %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf '%s: %s\n' "$BENCH_NAME" "$*" >&2
  exit 1
}
# calc FORMAT EXPR: printf with awk arithmetic, e.g. calc '%.2f' '3/7'
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

TMP=""
PIDS=()

alive() {
  # Running (not gone, not a zombie waiting to be reaped).
  [[ -r /proc/$1/stat ]] || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

stop_pid() {
  local pid=$1 i
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${STOP_WAIT:-5} * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      warn "process $pid did not stop within ${STOP_WAIT:-5} s of SIGTERM: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  # Last started first: a load driver before the servers it talks to.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
      printf 'temp dir kept: %s\n' "$TMP" >&2
    else
      rm -rf -- "$TMP"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for_line LOG PID PATTERN: wait (<= 20 s) for a line of LOG matching PATTERN; print it.
wait_for_line() {
  local log=$1 pid=$2 pattern=$3 i line
  for ((i = 0; i < 200; i++)); do
    line=$(grep -m1 -E "$pattern" "$log" 2>/dev/null || true)
    if [[ -n $line ]]; then
      echo "$line"
      return 0
    fi
    alive "$pid" || break
    sleep 0.1
  done
  warn "process $pid did not come up; its log ($log):"
  tail -n 20 "$log" >&2 || true
  return 1
}
