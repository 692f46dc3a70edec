#!/usr/bin/env bash
# Sets everything up, then runs the dashboard with a local agent and SQLite.
# Stop with Ctrl-C: the web and the agent stop, running guests keep running.
set -euo pipefail
cd "$(dirname "$0")/.."

export GUESTHOUSE_DATA_DIR="${GUESTHOUSE_DATA_DIR:-$PWD/.data}"
export GUESTHOUSE_IMAGE_DIR="${GUESTHOUSE_IMAGE_DIR:-$GUESTHOUSE_DATA_DIR/images}"
export GUESTHOUSE_AGENT_SOCKET="${GUESTHOUSE_AGENT_SOCKET:-$GUESTHOUSE_DATA_DIR/agent.sock}"
export DATABASE_URL="${DATABASE_URL:-file:$GUESTHOUSE_DATA_DIR/guesthouse.db}"

scripts/setup.sh
echo "start: building the web app"
node scripts/public-assets.mjs
NODE_ENV=production npx next build >/dev/null

node --import tsx server/agent/main.ts &
agent=$!
trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null' EXIT
# The agent listens once it has chosen its accelerator (a first start probes KVM: up to 10 s).
for _ in $(seq 300); do
  [ -S "$GUESTHOUSE_AGENT_SOCKET" ] && break
  kill -0 "$agent" 2>/dev/null || { echo "start: the agent did not start (its message is above)" >&2; exit 1; }
  sleep 0.1
done

# The web repeats how to log in next to its address (the file's path, never the password).
GUESTHOUSE_LOGIN_HINT="log in as \"${GUESTHOUSE_ADMIN_USER:-admin}\" with the password in $GUESTHOUSE_DATA_DIR/admin-password" \
  NODE_ENV=production node --import tsx server/web/main.ts
