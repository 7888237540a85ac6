#!/usr/bin/env bash
# Suite 3: banning and evicting through the server CLI. `agent list` shows the attested
# agent; `agent ban` makes the running agent exit non-zero with no SVID left in
# agent-data.json, and it cannot come back (neither with its used token nor without one).
# `agent evict` of a join-token agent (which cannot re-attest) also stops it, but unlike a
# ban a fresh token lets the node attest again.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

layout_tarball
STATE="$WORK/.data/agent-data.json"

# svid_count: how many certificates agent-data.json holds in "svid" (SPIRE's shape: a list
# of base64 DER strings).
svid_count() {
  local list
  list="$(tr -d ' \n' <"$STATE" | grep -o '"svid":\[[^]]*\]' || true)"
  [[ -n "$list" ]] || { echo 0; return; }
  grep -o '"[A-Za-z0-9+/=]\{40,\}"' <<<"$list" | wc -l
}

step "server, agent"
start_server
token="$(generate_token spiffe://example.org/myagent)"
start_agent "$token"
agent_id="spiffe://example.org/spire/agent/join_token/$token"

step "spire-server agent list"
out="$(server agent list -socketPath "$SERVER_SOCK")"
echo "$out"
assert_contains "$out" "Found 1 attested agent:" "agent list"
assert_contains "$out" "SPIFFE ID         : $agent_id" "agent list"
assert_contains "$out" "Attestation type  : join_token" "agent list"
[[ -f "$STATE" ]] || fail "no $STATE after attestation"
[[ "$(stat -c %a "$STATE")" == 600 ]] || fail "agent-data.json mode is $(stat -c %a "$STATE"), want 600"
(($(svid_count) >= 1)) || fail "agent-data.json holds no SVID after attestation"

step "spire-server agent ban"
out="$(server agent ban -socketPath "$SERVER_SOCK" -spiffeID "$agent_id")"
[[ "$out" == "Agent banned successfully" ]] || fail "agent ban printed: $out"
wait_exit "$AGENT_PID"
((EXIT_STATUS != 0)) || fail "the banned agent exited 0"
echo "banned agent exited with status $EXIT_STATUS"
(($(svid_count) == 0)) || fail "agent-data.json still holds an SVID after the ban: $(cat "$STATE")"
[[ ! -S "$AGENT_SOCK" ]] || fail "the banned agent left its Workload API socket behind"
out="$(server agent show -socketPath "$SERVER_SOCK" -spiffeID "$agent_id")"
assert_contains "$out" "Banned            : true" "agent show"

step "restart with the used token fails"
"$AGENT_BIN" run -config conf/agent/agent.conf -joinToken "$token" >>"$WORK/agent-restart.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_exit "$pid"
((EXIT_STATUS != 0)) || fail "the banned agent restarted (exit 0)"
echo "restart exited with status $EXIT_STATUS"
# The server consumed the token at the first attestation (SPIRE's message).
assert_contains "$(cat "$WORK/agent-restart.log")" \
  "join token does not exist or has already been used" "agent-restart.log"

step "restart without a token fails"
"$AGENT_BIN" run -config conf/agent/agent.conf >>"$WORK/agent-restart.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_exit "$pid"
((EXIT_STATUS != 0)) || fail "the banned agent restarted without a token (exit 0)"
echo "restart exited with status $EXIT_STATUS"
assert_contains "$(tail -n 1 "$WORK/agent-restart.log")" "join token" "agent-restart.log"
(($(svid_count) == 0)) || fail "a failed restart stored an SVID"

step "a fresh token attests the node again; agent evict stops it"
token2="$(generate_token spiffe://example.org/myagent)"
start_agent "$token2"
agent_id2="spiffe://example.org/spire/agent/join_token/$token2"
out="$(server agent list -socketPath "$SERVER_SOCK")"
assert_contains "$out" "Found 2 attested agents:" "agent list"
out="$(server agent evict -socketPath "$SERVER_SOCK" -spiffeID "$agent_id2")"
[[ "$out" == "Agent evicted successfully" ]] || fail "agent evict printed: $out"
wait_exit "$AGENT_PID"
((EXIT_STATUS != 0)) || fail "the evicted join-token agent exited 0"
echo "evicted agent exited with status $EXIT_STATUS"
(($(svid_count) == 0)) || fail "agent-data.json still holds an SVID after the eviction"
out="$(server agent list -socketPath "$SERVER_SOCK")"
assert_contains "$out" "Found 1 attested agent:" "agent list after evict"
[[ "$out" != *"$agent_id2"* ]] || fail "the evicted agent is still listed"

step "after an eviction, a new token is accepted again"
start_agent "$(generate_token spiffe://example.org/myagent)"
(($(svid_count) >= 1)) || fail "agent-data.json holds no SVID after re-attestation"

echo
echo "ban-evict: OK"
