#!/usr/bin/env bash
# Suite: `spire-agent doctor` against the real binaries: a missing socket, an unregistered
# caller, a healthy agent with an entry for this uid (pretty and `-output json`), a wrong
# `-trustDomain` and a `-federatesWith` trust domain the agent does not serve.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

layout_tarball
uid="$(id -u)"
DEFAULT_CHECK="caller attested and served \`default\` over SDS"

# doctor_run <args...>: runs `spire-agent doctor`; sets OUT (stdout) and RC.
doctor_run() {
  RC=0
  OUT="$(agent doctor "$@" 2>"$WORK/doctor.err")" || RC=$?
  [[ -z "$(cat "$WORK/doctor.err")" ]] || fail "doctor wrote on stderr: $(cat "$WORK/doctor.err")"
}

step "doctor: no agent (missing socket)"
doctor_run -socketPath "$AGENT_SOCK"
[[ $RC == 1 ]] || fail "doctor without a socket exited $RC (want 1):"$'\n'"$OUT"
assert_contains "$OUT" "✗ socket present: socket missing: $AGENT_SOCK: no such file or directory" "doctor"
assert_contains "$OUT" "    fix: is spire-agent running with socket_path = \"$AGENT_SOCK\"?" "doctor"
assert_contains "$OUT" "- agent answers gRPC health within 1 s: skipped: depends on \"socket present\"" "doctor"
echo "$OUT"

step "server, agent"
start_server
start_agent "$(generate_token spiffe://example.org/myagent)"

step "doctor: unregistered caller"
doctor_run -socketPath "$AGENT_SOCK"
[[ $RC == 1 ]] || fail "doctor for an unregistered caller exited $RC (want 1):"$'\n'"$OUT"
assert_contains "$OUT" "✓ socket present: $AGENT_SOCK" "doctor"
assert_contains "$OUT" "✓ agent answers gRPC health within 1 s" "doctor"
assert_contains "$OUT" "✗ $DEFAULT_CHECK: no entry matches this process (uid $uid)" "doctor"
assert_contains "$OUT" "not authorized for the requested identities" "doctor"
assert_contains "$OUT" "-selector unix:uid:$uid" "doctor"
assert_contains "$OUT" "- SVID chain verifies against \`ROOTCA\`: skipped" "doctor"
echo "$OUT"

step "an entry for this uid; doctor passes"
server entry create -socketPath "$SERVER_SOCK" -parentID spiffe://example.org/myagent \
  -spiffeID spiffe://example.org/ns/default/sa/sleep -selector "unix:uid:$uid" -dns sleep >/dev/null
doctor_passes() { agent doctor -socketPath "$AGENT_SOCK" -trustDomain example.org >"$WORK/doctor.out" 2>&1; }
wait_for "doctor to pass" "$AGENT_PID" doctor_passes
OUT="$(cat "$WORK/doctor.out")"
[[ "$OUT" != *"✗"* && "$OUT" != *"skipped"* ]] || fail "doctor passed with a failed check:"$'\n'"$OUT"
[[ "$(grep -c '^✓ ' <<<"$OUT")" == 7 ]] || fail "doctor did not print 7 passed checks:"$'\n'"$OUT"
assert_contains "$OUT" "✓ $DEFAULT_CHECK: spiffe://example.org/ns/default/sa/sleep (uid $uid)" "doctor"
assert_contains "$OUT" "✓ \`ROOTCA\` resolves: SPIFFE validator for example.org" "doctor"
assert_contains "$OUT" "✓ SVID chain verifies against \`ROOTCA\`" "doctor"
assert_contains "$OUT" "✓ SVID trust domain matches -trustDomain: example.org" "doctor"
assert_contains "$OUT" "✓ time left on the SVID" "doctor"
echo "$OUT"

step "doctor -output json (socket from SPIRE_AGENT_PUBLIC_SOCKET)"
RC=0
OUT="$(SPIRE_AGENT_PUBLIC_SOCKET="$AGENT_SOCK" agent doctor -output json)" || RC=$?
[[ $RC == 0 ]] || fail "doctor -output json exited $RC:"$'\n'"$OUT"
[[ "$OUT" == '{"checks":[{"name":"socket present","ok":true,'*'],"ok":true}' ]] ||
  fail "unexpected JSON: $OUT"
[[ "$OUT" != *'"ok":false'* ]] || fail "JSON has a failed check: $OUT"

step "doctor: wrong -trustDomain"
doctor_run -socketPath "$AGENT_SOCK" -trustDomain cluster.local
[[ $RC == 1 ]] || fail "doctor with a wrong trust domain exited $RC (want 1):"$'\n'"$OUT"
assert_contains "$OUT" "✗ SVID trust domain matches -trustDomain: trust domain mismatch: the SVID is in example.org, -trustDomain is cluster.local" "doctor"
assert_contains "$OUT" "    fix: meshConfig.trustDomain must equal the SPIRE trust domain (example.org)" "doctor"
assert_contains "$OUT" "✓ SVID chain verifies against \`ROOTCA\`" "doctor"
echo "$OUT"
RC=0
OUT="$(agent doctor -socketPath "$AGENT_SOCK" -trustDomain cluster.local -output json)" || RC=$?
[[ $RC == 1 ]] || fail "doctor -output json with a wrong trust domain exited $RC (want 1)"
[[ "$OUT" == *'"fix":"meshConfig.trustDomain must equal the SPIRE trust domain (example.org)"}'*'],"ok":false}' ]] ||
  fail "unexpected JSON: $OUT"

step "doctor: -federatesWith a trust domain the agent does not serve"
doctor_run -socketPath "$AGENT_SOCK" -federatesWith spiffe://other.td
[[ $RC == 1 ]] || fail "doctor -federatesWith exited $RC (want 1):"$'\n'"$OUT"
assert_contains "$OUT" "✗ federated bundle for other.td: not served via \`ALL\` nor spiffe://other.td" "doctor"
assert_contains "$OUT" "bundle set -id spiffe://other.td" "doctor"
echo "$OUT"

step "a federated bundle and an entry federating with it: -federatesWith passes"
server bundle set -socketPath "$SERVER_SOCK" -id spiffe://other.td -path conf/agent/dummy_root_ca.crt >/dev/null
server entry create -socketPath "$SERVER_SOCK" -parentID spiffe://example.org/myagent \
  -spiffeID spiffe://example.org/ns/default/sa/federated -selector "unix:uid:$uid" \
  -federatesWith spiffe://other.td >/dev/null
doctor_federates() { agent doctor -socketPath "$AGENT_SOCK" -federatesWith other.td >"$WORK/doctor.out" 2>&1; }
wait_for "doctor -federatesWith to pass" "$AGENT_PID" doctor_federates
# The first pass may have raced the agent's sync (found as spiffe://other.td only); once it has
# the bundle, `ALL` lists it.
doctor_run -socketPath "$AGENT_SOCK" -federatesWith other.td
[[ $RC == 0 ]] || fail "doctor -federatesWith exited $RC after passing once:"$'\n'"$OUT"
assert_contains "$OUT" "✓ federated bundle for other.td: in \`ALL\`" "doctor"
echo "$OUT"

echo
echo "doctor: OK"
