#!/usr/bin/env bash
# Starts the real Glance image API the end-to-end tests use (test/helpers/glance.ts), from Debian's
# packages and the files beside this script: on 127.0.0.1:$GLANCE_PORT (default 19292), no
# Keystone (any or no X-Auth-Token; every request is an admin's), SQLite and a file store under
# $GLANCE_STATE (default ${TMPDIR:-/tmp}/glance-edge-glance), Debian's metadefs loaded.
#
#   GLANCE_STATE=/tmp/g GLANCE_PORT=19400 bash test/glance/start.sh [--fresh]
#
# --fresh stops a Glance running on that state folder and wipes the folder first. Without it an
# existing database and its images are kept, and a Glance already healthy there is left as it is.
# Returns once /healthcheck answers OK; stop.sh stops it by the pid recorded in the state folder.
# Installs nothing: a missing Debian package (python3-glance, glance-common) fails the start with
# its name; `bash .ci/run` installs them.
#
# GLANCE_WITHOUT_LOCATION_CHECKS=1 starts Glance as it answered before Ocata: Glance's own code,
# copied into the state folder with the three status checks on location changes taken out
# (without_location_checks.py, which fails the start if its edits do not apply), first in
# PYTHONPATH. A Glance already running on the state folder must be of the same kind.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
STATE="${GLANCE_STATE:-${TMPDIR:-/tmp}/glance-edge-glance}"
PORT="${GLANCE_PORT:-19292}"
CONF="$HERE/glance-api.conf"
PATHS="$STATE/paths.conf"
PIDFILE="$STATE/glance-api.pid"
HEALTH_URL="http://127.0.0.1:$PORT/healthcheck"
PY=/usr/bin/python3 # Debian's Python, where python3-glance is, whatever python3 is first in PATH
METADEFS_DIRS=(/etc/glance/metadefs /usr/share/glance-common/metadefs)
PACKAGES=(python3-glance glance-common)
KIND_FILE="$STATE/kind"
case "${GLANCE_WITHOUT_LOCATION_CHECKS:-0}" in
  0 | '') KIND=stock ;;
  1) KIND=without-location-checks ;;
  *) echo "[glance start] GLANCE_WITHOUT_LOCATION_CHECKS must be 0 or 1, got '$GLANCE_WITHOUT_LOCATION_CHECKS'" >&2; exit 1 ;;
esac

log() { echo "[glance start] $*" >&2; }
fail() { log "$*"; exit 1; }

case "$PORT" in '' | *[!0-9]*) fail "GLANCE_PORT must be a port number, got '$PORT'" ;; esac
case "$STATE" in /*) ;; *) fail "GLANCE_STATE must be an absolute path, got '$STATE'" ;; esac

# Loopback traffic never goes through a proxy, and no Python setting of the caller's leaks in.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY PYTHONPATH PYTHONHOME || true
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] || fail "missing Debian package(s): ${missing[*]} (bash .ci/run installs them)"
[ -x /usr/bin/glance-manage ] || fail "/usr/bin/glance-manage is missing (Debian package glance-common)"

is_running() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'glance.cmd.api'
}

healthy() {
  "$PY" - "$HEALTH_URL" >/dev/null 2>&1 <<'PYTHON'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=3) as r:
    sys.exit(0 if r.status == 200 and r.read().strip() == b"OK" else 1)
PYTHON
}

if [ "${1:-}" = "--fresh" ]; then
  GLANCE_STATE="$STATE" bash "$HERE/stop.sh"
  rm -rf "$STATE"
elif [ -n "${1:-}" ]; then
  fail "unknown argument '$1' (only --fresh)"
fi

if is_running; then
  running_kind="$(cat "$KIND_FILE" 2>/dev/null || echo stock)"
  [ "$running_kind" = "$KIND" ] || fail "a $running_kind Glance already runs on $STATE (pid $(cat "$PIDFILE")); asked for $KIND"
  if healthy; then
    log "already running and healthy: pid $(cat "$PIDFILE"), http://127.0.0.1:$PORT"
    exit 0
  fi
  log "pid $(cat "$PIDFILE") is alive but not healthy yet; waiting"
else
  if "$PY" -c "import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(('127.0.0.1', $PORT)) == 0 else 1)"; then
    fail "port $PORT on 127.0.0.1 is taken by a process this state folder did not start"
  fi

  # This run's port and paths, read after glance-api.conf.
  mkdir -p "$STATE"/{images,staging,locks,tasks,policy.d}
  sed "s#@STATE@#$STATE#g" "$HERE/glance-api-paste.ini" >"$STATE/glance-api-paste.ini"
  cat >"$PATHS" <<CONF
# Written by test/glance/start.sh: this run's port, state folder and files.
[DEFAULT]
bind_port = $PORT
log_file = $STATE/glance-api.log
node_staging_uri = file://$STATE/staging
[database]
connection = sqlite:///$STATE/glance.sqlite
[glance_store]
filesystem_store_datadir = $STATE/images/
[oslo_concurrency]
lock_path = $STATE/locks
[oslo_policy]
policy_file = $HERE/policy.yaml
policy_dirs = $STATE/policy.d
[paste_deploy]
config_file = $STATE/glance-api-paste.ini
[task]
work_dir = $STATE/tasks
CONF
  CONFIG=(--config-file "$CONF" --config-file "$PATHS")
  manage() {
    if ! /usr/bin/glance-manage "${CONFIG[@]}" --log-file "$STATE/glance-manage.log" "$@" >>"$STATE/glance-manage.out" 2>&1; then
      tail -n 20 "$STATE/glance-manage.out" >&2 || true
      fail "glance-manage $* failed (log: $STATE/glance-manage.log)"
    fi
  }

  log "glance-manage db_sync"
  manage db_sync # a no-op when the database is at head already

  namespaces="$("$PY" -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from metadef_namespaces').fetchone()[0])" "$STATE/glance.sqlite")"
  if [ "$namespaces" = 0 ]; then
    metadefs=""
    for d in "${METADEFS_DIRS[@]}"; do
      if [ -f "$d/compute-hypervisor.json" ]; then metadefs="$d"; break; fi
    done
    [ -n "$metadefs" ] || fail "no metadefs in ${METADEFS_DIRS[*]} (Debian package glance-common)"
    log "glance-manage db_load_metadefs $metadefs"
    manage db_load_metadefs "$metadefs"
  fi

  pythonpath=""
  if [ "$KIND" = without-location-checks ]; then
    copy="$STATE/without-location-checks"
    log "copying Glance's code to $copy without the status checks on location changes"
    "$PY" "$HERE/without_location_checks.py" "$copy" >/dev/null || fail "Glance without the location checks could not be made"
    # The controller that runs must be the edited copy's, not Debian's.
    loaded="$(PYTHONPATH="$copy" "$PY" -c 'import glance.api.v2.images as m; print(m.__file__)')"
    [ "$loaded" = "$copy/glance/api/v2/images.py" ] || fail "PYTHONPATH=$copy loads $loaded, not the edited copy"
    pythonpath="$copy"
  fi
  echo "$KIND" >"$KIND_FILE"

  log "starting glance-api (eventlet, one process, $KIND) on 127.0.0.1:$PORT"
  (
    cd "$STATE"
    [ -z "$pythonpath" ] || export PYTHONPATH="$pythonpath"
    exec setsid "$PY" -c 'import sys; sys.argv[0] = "glance-api"; from glance.cmd.api import main; sys.exit(main())' \
      "${CONFIG[@]}" >>"$STATE/glance-api.stdout" 2>&1 </dev/null
  ) &
  echo $! >"$PIDFILE"
fi

for _ in $(seq 1 240); do
  if healthy; then
    log "healthy: pid $(cat "$PIDFILE"), http://127.0.0.1:$PORT (log: $STATE/glance-api.log)"
    exit 0
  fi
  if ! is_running; then
    log "glance-api exited; the last lines of its output and log:"
    tail -n 20 "$STATE/glance-api.stdout" "$STATE/glance-api.log" >&2 || true
    rm -f "$PIDFILE"
    exit 1
  fi
  sleep 0.25
done
fail "no answer from $HEALTH_URL within 60 s (log: $STATE/glance-api.log)"
