#!/usr/bin/env bash
# Sets everything up, then runs the dashboard with a local agent and SQLite.
# Stop with Ctrl-C: the web and the agent stop, running guests keep running.
set -euo pipefail
cd "$(dirname "$0")/.."

export GUESTHOUSE_DATA_DIR="${GUESTHOUSE_DATA_DIR:-$PWD/.data}"
export GUESTHOUSE_IMAGE_DIR="${GUESTHOUSE_IMAGE_DIR:-$GUESTHOUSE_DATA_DIR/images}"
export GUESTHOUSE_AGENT_SOCKET="${GUESTHOUSE_AGENT_SOCKET:-$GUESTHOUSE_DATA_DIR/agent.sock}"
export DATABASE_URL="${DATABASE_URL:-file:$GUESTHOUSE_DATA_DIR/guesthouse.db}"
export NODE_ENV=production

setup_log=$(mktemp)
scripts/setup.sh | tee "$setup_log"
# The last setup line says how to log in; the web repeats it next to its address.
export GUESTHOUSE_LOGIN_HINT="$(tail -n 1 "$setup_log" | sed 's/^setup: //')"
rm -f "$setup_log"
echo "start: building the web app"
npx next build >/dev/null

node --import tsx server/agent/main.ts &
agent=$!
trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$GUESTHOUSE_AGENT_SOCKET" ] && break; sleep 0.1; done

node --import tsx server/web/main.ts
