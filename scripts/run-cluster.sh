#!/bin/sh
# Two Backchannel nodes, :8080 and :8081, on one Redis and one Postgres: a cluster on a laptop.
#   REDIS_URL     default redis://127.0.0.1:6379/0 (a Redis must be running there)
#   DATABASE_URL  default: the embedded Postgres in ./var/pg, shared by both nodes
# Ctrl-C drains both nodes (SIGTERM) and exits.
set -eu
BIN="${BIN:-.venv/bin}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
PORTS="${PORTS:-8080 8081}"

wait_ready() {
  "$BIN/python" - "$1" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/readyz"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.3)
sys.exit(f"node on :{sys.argv[1]} not ready after 60s (is Redis up at $REDIS_URL?)")
PY
}

"$BIN/backchannel" migrate
PIDS=""
trap 'kill -TERM $PIDS 2>/dev/null; wait' INT TERM EXIT
for port in $PORTS; do
  # One after the other: the first node starts the embedded Postgres, the next attaches to it.
  BACKCHANNEL_MIGRATE_ON_START=false "$BIN/backchannel" serve --port "$port" &
  PIDS="$PIDS $!"
  wait_ready "$port"
  echo "node ready on http://127.0.0.1:$port"
done
wait
