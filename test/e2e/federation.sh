#!/usr/bin/env bash
# Suite 6: two trust domains on one machine, federated with the CLIs only.
# example.org and example-federated.org each run a server (with a bundle endpoint) and a
# join-token agent. Bundles are bootstrapped with `bundle show -format spiffe` /
# `bundle set -format spiffe`, relationships created with `federation create` (https_spiffe),
# then kept fresh by the refresher. Each workload gets the other domain's roots, the two SVIDs
# complete an mTLS handshake (openssl s_server / s_client, each trusting only the other
# domain's bundle it received), and after `federation delete` + `bundle delete -mode delete`
# the trust is gone.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

uid="$(id -u)"

# write_domain <dir> <trust domain> <server port> <bundle endpoint port>
write_domain() {
  local dir=$1 td=$2 port=$3 be_port=$4
  mkdir -p "$dir/data" "$dir/agent"
  cat >"$dir/server.conf" <<CONF
server {
    bind_address = "127.0.0.1"
    bind_port = "$port"
    socket_path = "$dir/server.sock"
    trust_domain = "$td"
    data_dir = "$dir/data"
    log_level = "DEBUG"
    federation {
        bundle_endpoint {
            address = "127.0.0.1"
            port = $be_port
        }
    }
}
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "$dir/data/datastore.sqlite3"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "$dir/data/keys.json"
        }
    }
}
CONF
  cat >"$dir/agent.conf" <<CONF
agent {
    data_dir = "$dir/agent"
    log_level = "DEBUG"
    server_address = "127.0.0.1"
    server_port = "$port"
    socket_path = "$dir/agent.sock"
    trust_bundle_path = "$dir/bootstrap.pem"
    trust_domain = "$td"
}
plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
CONF
}

A="$WORK/a"
B="$WORK/b"
A_PORT="$(free_port)"
B_PORT="$(free_port)"
A_BE="$(free_port)"
B_BE="$(free_port)"
write_domain "$A" example.org "$A_PORT" "$A_BE"
write_domain "$B" example-federated.org "$B_PORT" "$B_BE"
cd "$WORK"

healthy_at() { [[ "$("$SERVER_BIN" healthcheck -socketPath "$1" 2>/dev/null)" == "Server is healthy." ]]; }
agent_healthy_at() { [[ "$("$AGENT_BIN" healthcheck -socketPath "$1" 2>/dev/null)" == "Agent is healthy." ]]; }

step "two servers with bundle endpoints"
"$SERVER_BIN" run -config "$A/server.conf" >>"$A/server.log" 2>&1 &
A_SERVER=$!
PIDS+=("$A_SERVER")
"$SERVER_BIN" run -config "$B/server.conf" >>"$B/server.log" 2>&1 &
B_SERVER=$!
PIDS+=("$B_SERVER")
wait_for "server A" "$A_SERVER" healthy_at "$A/server.sock"
wait_for "server B" "$B_SERVER" healthy_at "$B/server.sock"

step "bootstrap: bundle show -format spiffe | bundle set -format spiffe, both ways"
server bundle show -socketPath "$A/server.sock" -format spiffe >"$WORK/a.json"
server bundle show -socketPath "$B/server.sock" -format spiffe >"$WORK/b.json"
server bundle set -socketPath "$A/server.sock" -format spiffe -id spiffe://example-federated.org \
  -path "$WORK/b.json" >/dev/null
server bundle set -socketPath "$B/server.sock" -format spiffe -id spiffe://example.org \
  -path "$WORK/a.json" >/dev/null

step "federation create (https_spiffe), both ways"
server federation create -socketPath "$A/server.sock" -trustDomain example-federated.org \
  -bundleEndpointURL "https://127.0.0.1:$B_BE" -bundleEndpointProfile https_spiffe \
  -endpointSpiffeID spiffe://example-federated.org/spire/server >/dev/null
server federation create -socketPath "$B/server.sock" -trustDomain example.org \
  -bundleEndpointURL "https://127.0.0.1:$A_BE" -bundleEndpointProfile https_spiffe \
  -endpointSpiffeID spiffe://example.org/spire/server >/dev/null
out="$(server federation list -socketPath "$A/server.sock")"
assert_contains "$out" "Trust domain              : example-federated.org" "federation list"
assert_contains "$out" "Endpoint SPIFFE ID        : spiffe://example-federated.org/spire/server" "federation list"
out="$(server federation refresh -socketPath "$A/server.sock" -id example-federated.org)"
[[ "$out" == "Bundle refreshed" ]] || fail "federation refresh printed: $out"
out="$(server federation refresh -socketPath "$B/server.sock" -id example.org)"
[[ "$out" == "Bundle refreshed" ]] || fail "federation refresh printed: $out"

step "an agent in each domain, an entry federating with the other"
server bundle show -socketPath "$A/server.sock" >"$A/bootstrap.pem"
server bundle show -socketPath "$B/server.sock" >"$B/bootstrap.pem"
token_for() {
  local out
  out="$(server token generate -socketPath "$1" -spiffeID "$2")"
  [[ "$out" =~ ^Token:\ ([0-9a-f-]{36})$ ]] || fail "unexpected token output: $out"
  echo "${BASH_REMATCH[1]}"
}
"$AGENT_BIN" run -config "$A/agent.conf" -joinToken "$(token_for "$A/server.sock" spiffe://example.org/host)" >>"$A/agent.log" 2>&1 &
A_AGENT=$!
PIDS+=("$A_AGENT")
"$AGENT_BIN" run -config "$B/agent.conf" -joinToken "$(token_for "$B/server.sock" spiffe://example-federated.org/host)" >>"$B/agent.log" 2>&1 &
B_AGENT=$!
PIDS+=("$B_AGENT")
wait_for "agent A" "$A_AGENT" agent_healthy_at "$A/agent.sock"
wait_for "agent B" "$B_AGENT" agent_healthy_at "$B/agent.sock"
server entry create -socketPath "$A/server.sock" -parentID spiffe://example.org/host \
  -spiffeID spiffe://example.org/client -selector "unix:uid:$uid" \
  -federatesWith spiffe://example-federated.org >/dev/null
server entry create -socketPath "$B/server.sock" -parentID spiffe://example-federated.org/host \
  -spiffeID spiffe://example-federated.org/server -selector "unix:uid:$uid" \
  -federatesWith spiffe://example.org >/dev/null

step "each workload receives the other domain's roots"
fetched_with_federated() {
  rm -rf "$1/svid" && mkdir -p "$1/svid"
  agent api fetch x509 -socketPath "$1/agent.sock" -write "$1/svid" >/dev/null 2>&1 &&
    [[ -s "$1/svid/federated_bundle.0.0.pem" ]]
}
wait_for "workload A's federated bundle" "$A_AGENT" fetched_with_federated "$A"
wait_for "workload B's federated bundle" "$B_AGENT" fetched_with_federated "$B"
openssl verify -CAfile "$A/svid/federated_bundle.0.0.pem" "$B/svid/svid.0.pem" >/dev/null ||
  fail "B's SVID does not verify against the example-federated.org bundle A received"
openssl verify -CAfile "$B/svid/federated_bundle.0.0.pem" "$A/svid/svid.0.pem" >/dev/null ||
  fail "A's SVID does not verify against the example.org bundle B received"
jwt_out="$(agent api fetch jwt -socketPath "$A/agent.sock" -audience peer)"
assert_contains "$jwt_out" "bundle(spiffe://example-federated.org):" "api fetch jwt (A)"

step "mTLS between the two SVIDs (openssl s_server / s_client)"
TLS_PORT="$(free_port)"
openssl s_server -quiet -accept "127.0.0.1:$TLS_PORT" -cert "$B/svid/svid.0.pem" \
  -key "$B/svid/svid.0.key" -CAfile "$B/svid/federated_bundle.0.0.pem" -Verify 1 \
  -verify_return_error -naccept 1 >"$WORK/s_server.out" 2>&1 &
S_SERVER=$!
PIDS+=("$S_SERVER")
# Listening, read from /proc/net/tcp (connecting to probe would use up s_server's one accept).
listening() { awk -v p="$(printf ':%04X' "$TLS_PORT")" '$2 ~ p"$" && $4 == "0A" {f=1} END {exit !f}' /proc/net/tcp; }
wait_for "openssl s_server" "$S_SERVER" listening
openssl s_client -quiet -connect "127.0.0.1:$TLS_PORT" \
  -cert "$A/svid/svid.0.pem" -key "$A/svid/svid.0.key" \
  -CAfile "$A/svid/federated_bundle.0.0.pem" -verify_return_error </dev/null >"$WORK/s_client.out" 2>&1 ||
  fail "the mTLS handshake failed:"$'\n'"$(cat "$WORK/s_client.out" "$WORK/s_server.out")"
wait_exit "$S_SERVER"
# The server side verified the client's SVID (depth 0) against the example.org bundle.
assert_contains "$(cat "$WORK/s_server.out")" $'depth=0 C = US, O = SPIRE\nverify return:1' "s_server"

step "federation delete + bundle delete -mode delete: the trust is gone"
out="$(server federation delete -socketPath "$A/server.sock" -id example-federated.org)"
assert_contains "$out" "federation relationship deleted." "federation delete"
server bundle delete -socketPath "$A/server.sock" -id spiffe://example-federated.org -mode delete >/dev/null
out="$(server entry show -socketPath "$A/server.sock" -spiffeID spiffe://example.org/client)"
assert_contains "$out" "Found 0 entries" "entry show after bundle delete -mode delete"
no_identity() { ! agent api fetch x509 -socketPath "$A/agent.sock" -timeout 2s >/dev/null 2>&1; }
wait_for "workload A to lose its federating identity" "$A_AGENT" no_identity
rc=0
server bundle list -socketPath "$A/server.sock" -id spiffe://example-federated.org >"$WORK/list.out" 2>&1 || rc=$?
[[ $rc != 0 ]] || fail "the example-federated.org bundle is still stored on A:"$'\n'"$(cat "$WORK/list.out")"

echo
echo "federation: OK"
