#!/usr/bin/env bash
# The main job: a local trust domain end to end on the embedded defaults (SQLite datastore,
# CA keys on disk, self-signed CA), driven only through the spire-server CLI, as a SPIRE
# user would: start the server, register a workload, show it, mint its X509-SVID, verify it
# against the trust bundle, stop. Run it again and the same CA and entry are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p spire-server
bin=target/debug/spire-server
data=./.data
socket="${SPIRE_SERVER_PRIVATE_SOCKET:-/tmp/spire-server/private/api.sock}"
mkdir -p "$data"

"$bin" run -config conf/server/server.conf -socketPath "$socket" -logFile "$data/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

# Wait until the admin API answers (no fixed sleep: poll the health check).
for _ in $(seq 1 100); do
  if "$bin" healthcheck -socketPath "$socket" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "server exited; see $data/server.log" >&2; exit 1; fi
  sleep 0.1
done
"$bin" healthcheck -socketPath "$socket"

echo "--- entry create"
"$bin" entry create -socketPath "$socket" \
  -parentID spiffe://example.org/spire/agent/join_token/demo \
  -spiffeID spiffe://example.org/ns/default/sa/demo \
  -selector unix:uid:1000 -dns demo.default.svc \
  || true  # a second run reports the entry as already registered
echo "--- entry show"
"$bin" entry show -socketPath "$socket" -spiffeID spiffe://example.org/ns/default/sa/demo

echo "--- x509 mint"
mkdir -p "$data/mint"
"$bin" x509 mint -socketPath "$socket" -spiffeID spiffe://example.org/ns/default/sa/demo \
  -dns demo.default.svc -write "$data/mint"
openssl x509 -in "$data/mint/svid.pem" -noout -subject -ext subjectAltName -enddate
openssl verify -CAfile "$data/mint/bundle.pem" "$data/mint/svid.pem"
