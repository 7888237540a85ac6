# shellcheck shell=bash
# Shared by the end-to-end scripts: binaries, a private working directory, free ports, process
# bookkeeping with cleanup on exit, and bounded polling. Source it; do not run it.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$E2E_DIR/../.." && pwd)"
# Cargo's target directory as cargo itself resolves it (CARGO_TARGET_DIR, relative to where the
# script is run from like cargo's; build.target-dir; else <repo>/target). Only needed when the
# runner did not name both binaries.
if [[ -n "${SPIRE_SERVER_BIN:-}" && -n "${SPIRE_AGENT_BIN:-}" ]]; then
  TARGET_DIR=""
elif command -v cargo >/dev/null; then
  TARGET_DIR="$(cargo metadata --manifest-path "$REPO_DIR/Cargo.toml" --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
else
  TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
fi
SERVER_BIN="${SPIRE_SERVER_BIN:-$TARGET_DIR/debug/spire-server}"
AGENT_BIN="${SPIRE_AGENT_BIN:-$TARGET_DIR/debug/spire-agent}"
SPIRE_CONF="${SPIRE_E2E_CONF:-$REPO_DIR/../shared/testdata/spire-conf}"
# How long any single wait may take (server start, attestation, an SVID, an exit).
E2E_TIMEOUT="${SPIRE_E2E_TIMEOUT:-60}"

# Socket locations come from our flags only, never from the caller's environment.
unset SPIRE_SERVER_PRIVATE_SOCKET SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE \
  SPIRE_AGENT_PUBLIC_SOCKET SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE

for bin in "$SERVER_BIN" "$AGENT_BIN"; do
  [[ -x "$bin" ]] || { echo "e2e: missing binary $bin (build it: cargo build -p $(basename "$bin"))" >&2; exit 1; }
done
[[ -f "$SPIRE_CONF/server.conf" ]] || { echo "e2e: stock configs not found in $SPIRE_CONF" >&2; exit 1; }
command -v openssl >/dev/null || { echo "e2e: openssl is required" >&2; exit 1; }

# Short and private: Unix socket paths must stay under 108 bytes.
WORK="$(mktemp -d /tmp/spire-e2e.XXXXXX)"
PIDS=()

step() { printf '\n--- %s\n' "$*"; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Stops every process we started (by PID), shows the logs when the script failed, and
# removes the working directory (kept with SPIRE_E2E_KEEP=1).
cleanup() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: a process that ignores SIGTERM for 10 s is killed.
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    local log
    for log in "$WORK"/*.log; do
      [[ -f "$log" ]] || continue
      echo "===== $log (last 60 lines)" >&2
      tail -n 60 "$log" >&2
    done
  fi
  if [[ "${SPIRE_E2E_KEEP:-}" == 1 ]]; then
    echo "e2e: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A TCP port nobody listens on now: random below the kernel's ephemeral range (so no outgoing
# connection holds it), probed with bash's /dev/tcp.
free_port() {
  local port low=32768 span
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  span=$((low - 10000))
  ((span > 1000)) || fail "ephemeral port range starts too low ($low)"
  for _ in $(seq 1 100); do
    port=$((10000 + (RANDOM * 32768 + RANDOM) % span))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free TCP port found"
}

# wait_for <what> <pid|-> <command...>: runs the command until it succeeds, at most
# E2E_TIMEOUT s; fails at once if <pid> (the process being waited on) has exited.
wait_for() {
  local what=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + E2E_TIMEOUT))
  until "$@"; do
    if [[ "$pid" != - ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail "process $pid exited while waiting for $what"
    fi
    ((SECONDS < deadline)) || fail "timed out after ${E2E_TIMEOUT}s waiting for $what"
    sleep 0.2
  done
}

# wait_exit <pid>: waits (bounded) for a background process to end; sets EXIT_STATUS (read
# by the scripts).
# shellcheck disable=SC2034
wait_exit() {
  local pid=$1
  local deadline=$((SECONDS + E2E_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "process $pid still running after ${E2E_TIMEOUT}s"
    sleep 0.2
  done
  EXIT_STATUS=0
  wait "$pid" || EXIT_STATUS=$?
  local p kept=()
  for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]+"${kept[@]}"}")
}

# assert_contains <haystack> <needle> [what]
assert_contains() {
  [[ "$1" == *"$2"* ]] || fail "${3:-output} does not contain '$2':"$'\n'"$1"
}

# SPIRE's release tarball layout in $WORK: conf/server (server.conf, the dummy upstream CA)
# and conf/agent (agent.conf, the dummy root CA), straight from the stock files. Only the
# TCP port and the two socket paths are rewritten; data dirs stay "./.data", which is inside
# the private $WORK because everything runs from there, as in SPIRE's getting-started guide.
SERVER_PORT=""
SERVER_SOCK="$WORK/s/server/api.sock"
AGENT_SOCK="$WORK/s/agent/api.sock"
layout_tarball() {
  mkdir -p "$WORK/conf/server" "$WORK/conf/agent"
  cp "$SPIRE_CONF/server.conf" "$SPIRE_CONF/dummy_upstream_ca.crt" \
    "$SPIRE_CONF/dummy_upstream_ca.key" "$WORK/conf/server/"
  cp "$SPIRE_CONF/agent.conf" "$SPIRE_CONF/dummy_root_ca.crt" "$WORK/conf/agent/"
  SERVER_PORT="$(free_port)"
  sed -i -E \
    -e "s#^([[:space:]]*bind_port[[:space:]]*=[[:space:]]*)\"[0-9]+\"#\\1\"$SERVER_PORT\"#" \
    -e "s#^([[:space:]]*socket_path[[:space:]]*=[[:space:]]*)\"[^\"]*\"#\\1\"$SERVER_SOCK\"#" \
    "$WORK/conf/server/server.conf"
  sed -i -E \
    -e "s#^([[:space:]]*server_port[[:space:]]*=[[:space:]]*)\"[0-9]+\"#\\1\"$SERVER_PORT\"#" \
    -e "s#^([[:space:]]*socket_path[[:space:]]*=[[:space:]]*)\"[^\"]*\"#\\1\"$AGENT_SOCK\"#" \
    "$WORK/conf/agent/agent.conf"
  # The rewrite must have hit, or the stock defaults (fixed port, /tmp sockets) would be used.
  grep -q "\"$SERVER_PORT\"" "$WORK/conf/server/server.conf" || fail "server.conf: port not rewritten"
  grep -q "\"$SERVER_SOCK\"" "$WORK/conf/server/server.conf" || fail "server.conf: socket not rewritten"
  grep -q "\"$SERVER_PORT\"" "$WORK/conf/agent/agent.conf" || fail "agent.conf: port not rewritten"
  grep -q "\"$AGENT_SOCK\"" "$WORK/conf/agent/agent.conf" || fail "agent.conf: socket not rewritten"
  mkdir -p "$WORK/s"
  cd "$WORK"
}

# Foreground commands only: a background process must be started as "$SERVER_BIN" … & so
# that $! is the binary's own PID (a function run with & gets a subshell's PID).
server() { "$SERVER_BIN" "$@"; }
agent() { "$AGENT_BIN" "$@"; }

server_healthy() { [[ "$(server healthcheck -socketPath "$SERVER_SOCK" 2>/dev/null)" == "Server is healthy." ]]; }
agent_healthy() { [[ "$(agent healthcheck -socketPath "$AGENT_SOCK" 2>/dev/null)" == "Agent is healthy." ]]; }

# Starts `spire-server run` from $WORK with the stock config; returns once healthy.
start_server() {
  "$SERVER_BIN" run -config conf/server/server.conf >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_for "spire-server healthcheck" "$SERVER_PID" server_healthy
}

# generate_token <spiffeID>: prints a fresh join token.
generate_token() {
  local out
  out="$(server token generate -socketPath "$SERVER_SOCK" -spiffeID "$1")"
  [[ "$out" =~ ^Token:\ ([0-9a-f-]{36})$ ]] || fail "unexpected token output: $out"
  echo "${BASH_REMATCH[1]}"
}

# start_agent <token>: `spire-agent run -joinToken`; returns once healthy.
start_agent() {
  "$AGENT_BIN" run -config conf/agent/agent.conf -joinToken "$1" >>"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  wait_for "spire-agent healthcheck" "$AGENT_PID" agent_healthy
}
