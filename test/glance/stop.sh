#!/usr/bin/env bash
# Stops the Glance that start.sh started on $GLANCE_STATE (default ${TMPDIR:-/tmp}/glance-edge-glance),
# by the pid recorded there and only if that pid is still glance-api. Nothing running is success.
set -euo pipefail

STATE="${GLANCE_STATE:-${TMPDIR:-/tmp}/glance-edge-glance}"
PIDFILE="$STATE/glance-api.pid"
log() { echo "[glance stop] $*" >&2; }

[ -f "$PIDFILE" ] || exit 0
pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
  rm -f "$PIDFILE"
  exit 0
fi
if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'glance.cmd.api'; then
  log "pid $pid is not glance-api any more; nothing stopped"
  rm -f "$PIDFILE"
  exit 0
fi

kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$PIDFILE"
    exit 0
  fi
  sleep 0.2
done
log "glance-api pid $pid still alive 20 s after SIGTERM; SIGKILL"
kill -KILL "$pid" 2>/dev/null || true
rm -f "$PIDFILE"
