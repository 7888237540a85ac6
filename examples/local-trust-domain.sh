#!/usr/bin/env bash
# The main job: a whole local trust domain on the embedded defaults, driven only through the
# spire-server and spire-agent CLIs, as a SPIRE user would:
#   - spire-server with the SQLite datastore and CA keys on disk (conf/server/server.conf),
#   - a join-token spire-agent with its key on disk (conf/agent/agent.conf),
#   - a registration entry for the calling user's uid,
#   - an X509-SVID fetched through the Workload API, verified against the trust bundle,
#   - a JWT-SVID fetched through the Workload API and validated by the agent.
# It prints the SVID's SPIFFE ID, subject and expiry and the Workload API socket, then keeps
# the trust domain running until Ctrl-C. With --once it stops after printing.
# State lives in ./.data: a second run reuses the CA, the entry and the agent's identity (the
# agent resumes from its stored SVID without attesting again).
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
case "${1:-}" in
  --once) once=true ;;
  "") ;;
  *) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac

cargo build -q -p spire-server -p spire-agent
# The binaries are where cargo put them: its target directory (CARGO_TARGET_DIR, build.target-dir
# in a cargo config, or ./target), as `cargo metadata` reports it.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || { echo "cargo metadata reported no target_directory" >&2; exit 1; }
server_bin=$target_dir/debug/spire-server
agent_bin=$target_dir/debug/spire-agent
data=./.data
server_socket=/tmp/spire-server/private/api.sock
agent_socket=/tmp/spire-agent/public/api.sock
mkdir -p "$data/agent" "$data/svid"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls a command until it succeeds (no fixed sleeps); fails if the process it waits on died.
wait_for() {
  local what=$1 pid=$2 log=$3; shift 3
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited; its log ($log) ends with:" >&2; tail -n 20 "$log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "$what did not become ready; see $log" >&2; exit 1
}

echo "--- spire-server run"
"$server_bin" run -config conf/server/server.conf -logFile "$data/server.log" &
pids+=($!)
wait_for spire-server "${pids[-1]}" "$data/server.log" \
  "$server_bin" healthcheck -socketPath "$server_socket"
"$server_bin" healthcheck -socketPath "$server_socket"

# The agent trusts the server on first contact through this bundle (SPIRE's trust_bundle_path).
"$server_bin" bundle show -socketPath "$server_socket" > "$data/bootstrap.crt"

echo "--- spire-agent run"
token_args=()
if [ ! -s "$data/agent/agent-data.json" ]; then
  # A first start attests with a fresh join token; its -spiffeID alias gives the agent a
  # stable name to parent entries on, whatever the token.
  token=$("$server_bin" token generate -socketPath "$server_socket" \
    -spiffeID spiffe://example.org/host/local | awk '/^Token:/ {print $2}')
  token_args=(-joinToken "$token")
  echo "attesting with a new join token"
else
  echo "resuming the agent's stored identity"
fi
"$agent_bin" run -config conf/agent/agent.conf "${token_args[@]}" -logFile "$data/agent.log" &
pids+=($!)
wait_for spire-agent "${pids[-1]}" "$data/agent.log" \
  "$agent_bin" healthcheck -socketPath "$agent_socket"
"$agent_bin" healthcheck -socketPath "$agent_socket"

echo "--- spire-server entry create"
uid=$(id -u)
"$server_bin" entry create -socketPath "$server_socket" \
  -parentID spiffe://example.org/host/local \
  -spiffeID spiffe://example.org/ns/default/sa/demo \
  -selector "unix:uid:$uid" -dns demo.default.svc \
  || true  # a second run reports the entry as already registered
echo "--- spire-server entry show"
"$server_bin" entry show -socketPath "$server_socket" -spiffeID spiffe://example.org/ns/default/sa/demo

echo "--- spire-agent api fetch x509"
# The entry reaches the agent by push; retry briefly in case the first call races it.
for _ in $(seq 1 50); do
  if "$agent_bin" api fetch x509 -socketPath "$agent_socket" -write "$data/svid" > "$data/fetch.out" 2>&1; then
    break
  fi
  sleep 0.1
done
cat "$data/fetch.out"
grep -q '^Received' "$data/fetch.out"
openssl verify -CAfile "$data/svid/bundle.0.pem" "$data/svid/svid.0.pem"

echo "--- the workload's X509-SVID"
echo "SPIFFE ID:  $(openssl x509 -in "$data/svid/svid.0.pem" -noout -ext subjectAltName | grep -o 'URI:[^, ]*' | sed 's/^URI://')"
echo "Subject:    $(openssl x509 -in "$data/svid/svid.0.pem" -noout -subject | sed 's/^subject=//')"
echo "Expires:    $(openssl x509 -in "$data/svid/svid.0.pem" -noout -enddate | sed 's/^notAfter=//')"
echo "Socket:     unix://$agent_socket (SPIFFE_ENDPOINT_SOCKET for SPIFFE clients)"

echo "--- a JWT-SVID for audience demo-api, validated by the agent"
# awk reads to the end (no early exit), so the agent never writes into a closed pipe.
token="$("$agent_bin" api fetch jwt -socketPath "$agent_socket" -audience demo-api |
  awk '/^token\(/ && !found { getline; sub(/^[ \t]+/, ""); print; found = 1 }')"
[ -n "$token" ]
"$agent_bin" api validate jwt -socketPath "$agent_socket" -audience demo-api -svid "$token"

if $once; then exit 0; fi
echo
echo "The trust domain is running: try"
echo "  $agent_bin api watch -socketPath $agent_socket"
echo "  $agent_bin api fetch jwt -socketPath $agent_socket -audience my-service"
echo "  $server_bin entry show"
echo "Ctrl-C stops the server and the agent."
wait
