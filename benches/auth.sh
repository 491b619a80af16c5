#!/bin/bash
# Basic credentials on the management API and the token endpoint, next to an anonymous call:
# wrk (2 threads, 16 connections, 8 s) against one server on its embedded default, with the
# server's CPU per request from /proc/<pid>/stat.
#   cargo build --release -p registry-server --bin registry && bash benches/auth.sh [binary] [label]
set -euo pipefail
BIN=${1:-target/release/registry}; LABEL=${2:-$(git rev-parse --short HEAD 2>/dev/null || echo this)}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
D=$(mktemp -d); PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'data_dir = "%s"\nlog_level = "warn"\n[auth]\nenabled = true\n' "$D/data" > "$D/c.toml"
REGISTRY_ADMIN_PASSWORD=load-test-password "$BIN" serve --config "$D/c.toml" --listen "127.0.0.1:$PORT" > "$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$D"' EXIT
until curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/"; do kill -0 $PID; sleep 0.1; done
AUTH="Authorization: Basic $(echo -n admin:load-test-password | base64)"
ticks() { awk '{print $14+$15}' /proc/$PID/stat; }
run() { # name, url, wrk options...
    local name=$1 url=$2; shift 2
    local before; before=$(ticks)
    local out; out=$(wrk -t2 -c16 -d8s --latency "$@" "$url" 2>&1)
    local after; after=$(ticks)
    local n; n=$(echo "$out" | awk '/requests in/ {print $1}')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$LABEL" "$name" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
        "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
        "$(echo "scale=1; ($after - $before) * 10000 / $n" | bc)"
}
echo "| build | call | req/s | p50 | p99 | server CPU µs/req |"
echo "|---|---|---|---|---|---|"
run "GET /api/v2.0/projects, anonymous" "http://127.0.0.1:$PORT/api/v2.0/projects"
run "GET /api/v2.0/projects, Basic admin" "http://127.0.0.1:$PORT/api/v2.0/projects" -H "$AUTH"
run "GET /auth/token, Basic admin, one pull scope" \
    "http://127.0.0.1:$PORT/auth/token?service=registry&scope=repository:library/app:pull" -H "$AUTH"
