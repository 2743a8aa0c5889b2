#!/usr/bin/env bash
# Start a local Docker engine when none answers (CI machines run without systemd).
#
# Idempotent: exits 0 at once when `docker info` already works. Otherwise starts
# `dockerd` in the background, logs to $DOCKERD_LOG, records its PID in
# $DOCKERD_PIDFILE (so only that process is ever stopped) and waits until the
# engine answers. Stop it with:  kill "$(cat "$DOCKERD_PIDFILE")"
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKERD_PIDFILE="${DOCKERD_PIDFILE:-/tmp/dockerd.pid}"
DOCKERD_WAIT_S="${DOCKERD_WAIT_S:-60}"

if docker info >/dev/null 2>&1; then
  echo "docker engine already running"
  exit 0
fi

if ! command -v dockerd >/dev/null; then
  echo "dockerd not found: apt-get install docker.io (make setup does, as root)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "dockerd must be started as root" >&2
  exit 1
fi

# setsid + nohup: the engine outlives this script and the shell that ran it.
setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
echo $! >"$DOCKERD_PIDFILE"
echo "dockerd started, pid $(cat "$DOCKERD_PIDFILE"), log $DOCKERD_LOG"

for _ in $(seq "$DOCKERD_WAIT_S"); do
  if docker info >/dev/null 2>&1; then
    echo "docker engine ready"
    exit 0
  fi
  if ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
    echo "dockerd exited; last log lines:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2
    exit 1
  fi
  sleep 1
done
echo "docker engine did not answer within ${DOCKERD_WAIT_S}s; see $DOCKERD_LOG" >&2
exit 1
