#!/usr/bin/env bash
# Suite 5: JWT-SVIDs through the real binaries and clients we did not write.
# - `spire-server jwt mint` tokens validate through `spire-agent api validate jwt`;
# - `spire-agent api fetch jwt` / `api validate jwt` (pretty output, audience refusal);
# - py-spiffe fetches, validates through the agent and validates offline against the JWKS;
# - a token signed by PyJWT for a trust domain we do not run validates once that domain's
#   bundle is published with `bundle set -format spiffe`, and fails once tampered.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

py_ok=1
if ! python3 -c 'import spiffe, jwt, cryptography' 2>/dev/null; then
  [[ "${CI:-}" == "true" ]] && fail "python3 with spiffe (py-spiffe), jwt (PyJWT) and cryptography is required in CI"
  echo "SKIP (python parts): python3 with spiffe==0.3.2 (PyJWT, cryptography) is missing"
  py_ok=0
fi

layout_tarball
uid="$(id -u)"

step "server, agent, an entry for this uid"
start_server
start_agent "$(generate_token spiffe://example.org/myagent)"
server entry create -socketPath "$SERVER_SOCK" -parentID spiffe://example.org/myagent \
  -spiffeID spiffe://example.org/jwt-workload -selector "unix:uid:$uid" >/dev/null

step "spire-server jwt mint → spire-agent api validate jwt"
minted="$(server jwt mint -socketPath "$SERVER_SOCK" -spiffeID spiffe://example.org/minted \
  -audience aud-one -audience aud-two -ttl 2m)"
[[ "$minted" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "jwt mint printed: $minted"
out="$(agent api validate jwt -socketPath "$AGENT_SOCK" -audience aud-two -svid "$minted")"
assert_contains "$out" "SVID is valid." "api validate jwt (minted)"
assert_contains "$out" "SPIFFE ID : spiffe://example.org/minted" "api validate jwt (minted)"

step "spire-agent api fetch jwt"
fetch_ok() { agent api fetch jwt -socketPath "$AGENT_SOCK" -audience svc-a >"$WORK/fetch.out" 2>"$WORK/fetch.err"; }
wait_for "api fetch jwt to succeed" "$AGENT_PID" fetch_ok
fetched="$(cat "$WORK/fetch.out")"
assert_contains "$fetched" "token(spiffe://example.org/jwt-workload):" "api fetch jwt"
assert_contains "$fetched" "bundle(spiffe://example.org):" "api fetch jwt"
token="$(awk '/^token\(/{getline; gsub(/^[ \t]+/, ""); print; exit}' "$WORK/fetch.out")"
[[ -n "$token" ]] || fail "no token in api fetch jwt output:"$'\n'"$fetched"

step "spire-agent api validate jwt (right and wrong audience)"
out="$(agent api validate jwt -socketPath "$AGENT_SOCK" -audience svc-a -svid "$token")"
assert_contains "$out" "SVID is valid." "api validate jwt"
assert_contains "$out" "SPIFFE ID : spiffe://example.org/jwt-workload" "api validate jwt"
rc=0
agent api validate jwt -socketPath "$AGENT_SOCK" -audience svc-b -svid "$token" >"$WORK/v.out" 2>"$WORK/v.err" || rc=$?
[[ $rc == 1 ]] || fail "validate with the wrong audience exited $rc (want 1)"
assert_contains "$(cat "$WORK/v.err")" 'expected audience in ["svc-b"] (audience=["svc-a"])' "api validate jwt stderr"

if [[ $py_ok == 1 ]]; then
  step "py-spiffe: fetch, validate through the agent, validate offline"
  out="$(python3 "$E2E_DIR/py/jwt_interop.py" "$AGENT_SOCK" svc-py 2>&1)" || fail "py-spiffe failed:"$'\n'"$out"
  assert_contains "$out" "fetched spiffe://example.org/jwt-workload ['svc-py']" "py-spiffe"
  assert_contains "$out" "agent-validated spiffe://example.org/jwt-workload" "py-spiffe"
  assert_contains "$out" "offline-validated spiffe://example.org/jwt-workload" "py-spiffe"
  assert_contains "$out" "wrong-audience-refused" "py-spiffe"

  step "a PyJWT token from a foreign trust domain, trusted through bundle set -format spiffe"
  mapfile -t tokens < <(python3 "$E2E_DIR/py/foreign_token.py" example-federated.org \
    "$WORK/federated.json" /svc svc-a)
  [[ ${#tokens[@]} == 2 ]] || fail "foreign_token.py printed ${#tokens[@]} lines"
  rc=0
  agent api validate jwt -socketPath "$AGENT_SOCK" -audience svc-a -svid "${tokens[0]}" >/dev/null 2>"$WORK/v.err" || rc=$?
  [[ $rc == 1 ]] || fail "a token of an unknown trust domain validated"
  assert_contains "$(cat "$WORK/v.err")" 'no keys found for trust domain "example-federated.org"' "validate (no bundle)"

  server bundle set -socketPath "$SERVER_SOCK" -format spiffe -id spiffe://example-federated.org \
    -path "$WORK/federated.json" >/dev/null
  server entry create -socketPath "$SERVER_SOCK" -parentID spiffe://example.org/myagent \
    -spiffeID spiffe://example.org/jwt-federated -selector "unix:uid:$uid" \
    -federatesWith spiffe://example-federated.org >/dev/null
  foreign_ok() { agent api validate jwt -socketPath "$AGENT_SOCK" -audience svc-a -svid "${tokens[0]}" >"$WORK/v.out" 2>"$WORK/v.err"; }
  wait_for "the federated JWT bundle to reach the agent" "$AGENT_PID" foreign_ok
  out="$(cat "$WORK/v.out")"
  assert_contains "$out" "SPIFFE ID : spiffe://example-federated.org/svc" "validate (foreign)"
  [[ "$out" != *payments* ]] || fail "a foreign claim outside allowed_foreign_jwt_claims was returned:"$'\n'"$out"
  rc=0
  agent api validate jwt -socketPath "$AGENT_SOCK" -audience svc-a -svid "${tokens[1]}" >/dev/null 2>"$WORK/v.err" || rc=$?
  [[ $rc == 1 ]] || fail "a tampered foreign token validated"
  assert_contains "$(cat "$WORK/v.err")" "error in cryptographic primitive" "validate (tampered)"
fi

echo
echo "jwt: OK"
