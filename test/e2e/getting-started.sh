#!/usr/bin/env bash
# Suite 1: SPIRE's getting-started flow with the stock configs (UpstreamAuthority "disk" with
# the dummy upstream CA; the agent bootstrapped from dummy_root_ca.crt), driven only through
# the two binaries: run, healthcheck, token generate, run -joinToken, entry create,
# api fetch x509 -write, then openssl verifies the SVID chain up to the dummy root. Last, the
# agent is stopped and restarted without a token: it resumes from agent-data.json.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

layout_tarball

step "spire-server run / healthcheck"
start_server
out="$(server healthcheck -socketPath "$SERVER_SOCK")"
[[ "$out" == "Server is healthy." ]] || fail "healthcheck printed: $out"

step "spire-server token generate"
token="$(generate_token spiffe://example.org/myagent)"
echo "token: $token"

step "spire-agent run -joinToken / healthcheck"
start_agent "$token"
out="$(agent healthcheck -socketPath "$AGENT_SOCK")"
[[ "$out" == "Agent is healthy." ]] || fail "healthcheck printed: $out"

step "spire-server entry create"
out="$(server entry create -socketPath "$SERVER_SOCK" \
  -parentID spiffe://example.org/myagent \
  -spiffeID spiffe://example.org/myservice \
  -selector "unix:uid:$(id -u)")"
echo "$out"
assert_contains "$out" "SPIFFE ID               : spiffe://example.org/myservice" "entry create"
assert_contains "$out" "Parent ID               : spiffe://example.org/myagent" "entry create"
assert_contains "$out" "Selector                : unix:uid:$(id -u)" "entry create"

step "spire-agent api fetch x509 -write (until the SVID arrives)"
mkdir "$WORK/svid"
fetch() {
  agent api fetch x509 -socketPath "$AGENT_SOCK" -write "$WORK/svid" >"$WORK/fetch.out" 2>&1
}
wait_for "the workload X509-SVID" "$AGENT_PID" fetch
out="$(cat "$WORK/fetch.out")"
echo "$out"
assert_contains "$out" "Received 1 svid after" "api fetch"
assert_contains "$out" $'SPIFFE ID:\t\tspiffe://example.org/myservice' "api fetch"
assert_contains "$out" "Writing SVID #0 to file $WORK/svid/svid.0.pem." "api fetch"

step "files and modes"
for f in svid.0.pem svid.0.key bundle.0.pem; do
  [[ -s "$WORK/svid/$f" ]] || fail "$f missing or empty"
done
[[ "$(stat -c %a "$WORK/svid/svid.0.key")" == 600 ]] || fail "svid.0.key mode is $(stat -c %a "$WORK/svid/svid.0.key"), want 600"
[[ "$(stat -c %a "$WORK/svid/svid.0.pem")" == 644 ]] || fail "svid.0.pem mode is $(stat -c %a "$WORK/svid/svid.0.pem"), want 644"
[[ "$(stat -c %a "$WORK/svid/bundle.0.pem")" == 644 ]] || fail "bundle.0.pem mode is $(stat -c %a "$WORK/svid/bundle.0.pem"), want 644"

step "openssl: the chain verifies against the dummy root"
# svid.0.pem = leaf, then the server's intermediate CA (signed by the upstream CA).
awk -v dir="$WORK/svid" '
  /-----BEGIN CERTIFICATE-----/ { n++ }
  { print > (dir "/" (n == 1 ? "leaf.pem" : "intermediates.pem")) }
' "$WORK/svid/svid.0.pem"
certs="$(grep -c -- '-----BEGIN CERTIFICATE-----' "$WORK/svid/svid.0.pem")"
((certs >= 2)) || fail "svid.0.pem has $certs certificate(s); want the leaf and the server CA"
openssl verify -CAfile conf/agent/dummy_root_ca.crt \
  -untrusted "$WORK/svid/intermediates.pem" "$WORK/svid/leaf.pem"
# The leaf alone must not verify: the intermediate is really needed (not self-signed CA).
if openssl verify -CAfile conf/agent/dummy_root_ca.crt "$WORK/svid/leaf.pem" >/dev/null 2>&1; then
  fail "leaf verified without its intermediate"
fi
# The bundle the workload received is the upstream root and verifies the same chain.
openssl verify -CAfile "$WORK/svid/bundle.0.pem" \
  -untrusted "$WORK/svid/intermediates.pem" "$WORK/svid/leaf.pem"
root_fp="$(openssl x509 -in conf/agent/dummy_root_ca.crt -noout -fingerprint -sha256)"
bundle_fps="$(openssl crl2pkcs7 -nocrl -certfile "$WORK/svid/bundle.0.pem" |
  openssl pkcs7 -print_certs | openssl x509 -noout -fingerprint -sha256)"
assert_contains "$bundle_fps" "$root_fp" "bundle.0.pem"
san="$(openssl x509 -in "$WORK/svid/leaf.pem" -noout -ext subjectAltName)"
assert_contains "$san" "URI:spiffe://example.org/myservice" "leaf subjectAltName"
# The key matches the leaf.
[[ "$(openssl pkey -in "$WORK/svid/svid.0.key" -pubout)" == \
  "$(openssl x509 -in "$WORK/svid/leaf.pem" -noout -pubkey)" ]] || fail "svid.0.key does not match the leaf"

step "spire-agent restart without a token resumes from agent-data.json"
kill -TERM "$AGENT_PID"
wait_exit "$AGENT_PID"
((EXIT_STATUS == 0)) || fail "spire-agent exited $EXIT_STATUS on SIGTERM (want 0)"
"$AGENT_BIN" run -config conf/agent/agent.conf >>"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
wait_for "the restarted spire-agent healthcheck" "$AGENT_PID" agent_healthy
rm -f "$WORK/svid"/*
wait_for "the workload X509-SVID after the restart" "$AGENT_PID" fetch
assert_contains "$(cat "$WORK/fetch.out")" $'SPIFFE ID:\t\tspiffe://example.org/myservice' "api fetch"
out="$(server agent list -socketPath "$SERVER_SOCK")"
assert_contains "$out" "Found 1 attested agent:" "agent list after the restart"
assert_contains "$out" "SPIFFE ID         : spiffe://example.org/spire/agent/join_token/$token" \
  "agent list after the restart"

echo
echo "getting-started: OK"
