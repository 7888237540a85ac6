#!/usr/bin/env bash
# Suite 2: the agent CLI around a running agent: `validate` (valid and invalid files),
# `healthcheck` without an agent, and `api watch` printing an update when an entry appears.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

layout_tarball

step "spire-agent validate (stock config)"
rc=0
out="$(agent validate -config conf/agent/agent.conf 2>"$WORK/err")" || rc=$?
[[ $rc == 0 ]] || fail "validate exited $rc: $(cat "$WORK/err")"
[[ "$out" == "SPIRE agent configuration file is valid." ]] || fail "validate printed: $out"

step "spire-server validate (stock config)"
rc=0
out="$(server validate -config conf/server/server.conf 2>"$WORK/err")" || rc=$?
[[ $rc == 0 ]] || fail "server validate exited $rc: $(cat "$WORK/err")"
[[ "$out" == "SPIRE server configuration file is valid." ]] || fail "server validate printed: $out"

step "spire-agent validate (unknown key)"
sed -E 's#^([[:space:]]*trust_domain[[:space:]]*=.*)$#\1\n    not_a_real_option = "x"#' \
  conf/agent/agent.conf >"$WORK/bad-agent.conf"
grep -q not_a_real_option "$WORK/bad-agent.conf" || fail "could not write the invalid config"
rc=0
out="$(agent validate -config "$WORK/bad-agent.conf" 2>"$WORK/err")" || rc=$?
err="$(cat "$WORK/err")"
[[ $rc == 1 ]] || fail "validate of an invalid file exited $rc (want 1)"
[[ -z "$out" ]] || fail "validate of an invalid file printed on stdout: $out"
assert_contains "$err" "SPIRE agent configuration file is invalid" "validate stderr"
assert_contains "$err" "not_a_real_option" "validate stderr"

step "spire-agent validate (missing file)"
rc=0
agent validate -config "$WORK/nope.conf" >/dev/null 2>"$WORK/err" || rc=$?
[[ $rc == 1 ]] || fail "validate of a missing file exited $rc (want 1)"
assert_contains "$(cat "$WORK/err")" "SPIRE agent configuration file is invalid" "validate stderr"

step "spire-agent healthcheck (no agent on the socket)"
rc=0
out="$(agent healthcheck -socketPath "$WORK/s/missing.sock" 2>"$WORK/err")" || rc=$?
err="$(cat "$WORK/err")"
[[ $rc == 1 ]] || fail "healthcheck without an agent exited $rc (want 1)"
[[ -z "$out" ]] || fail "healthcheck without an agent printed on stdout: $out"
[[ "$err" == "Agent is unhealthy: unable to determine health" ]] || fail "healthcheck printed: $err"

step "server, agent"
start_server
start_agent "$(generate_token spiffe://example.org/myagent)"
out="$(agent healthcheck -socketPath "$AGENT_SOCK" -verbose)"
assert_contains "$out" "Agent is healthy." "healthcheck -verbose"

step "spire-agent api watch (started before any entry exists)"
"$AGENT_BIN" api watch -socketPath "$AGENT_SOCK" >"$WORK/watch.out" 2>"$WORK/watch.log" &
WATCH_PID=$!
PIDS+=("$WATCH_PID")

uid="$(id -u)"
server entry create -socketPath "$SERVER_SOCK" -parentID spiffe://example.org/myagent \
  -spiffeID spiffe://example.org/watched -selector "unix:uid:$uid" >/dev/null
watch_shows() { grep -qF "$1" "$WORK/watch.out"; }
wait_for "api watch to print the first SVID" "$WATCH_PID" \
  watch_shows $'SPIFFE ID:\t\tspiffe://example.org/watched'
assert_contains "$(cat "$WORK/watch.out")" "Received 1 svid after" "api watch"

step "a second entry: api watch prints the update"
server entry create -socketPath "$SERVER_SOCK" -parentID spiffe://example.org/myagent \
  -spiffeID spiffe://example.org/watched-too -selector "unix:uid:$uid" >/dev/null
wait_for "api watch to print the update" "$WATCH_PID" \
  watch_shows $'SPIFFE ID:\t\tspiffe://example.org/watched-too'
assert_contains "$(cat "$WORK/watch.out")" "Received 2 svids after" "api watch"
cat "$WORK/watch.out"

echo
echo "agent-cli: OK"
