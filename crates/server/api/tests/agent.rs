//! Agent service over a real server: list/get/count with filters and paging, ban, delete,
//! join tokens.
#![allow(clippy::unwrap_used)]

mod support;

use spire_proto::spire::api::server::agent::v1::{
    BanAgentRequest, CountAgentsRequest, CreateJoinTokenRequest, DeleteAgentRequest,
    GetAgentRequest, ListAgentsRequest, agent_client::AgentClient, list_agents_request,
};
use spire_proto::spire::api::server::entry::v1::{ListEntriesRequest, entry_client::EntryClient};
use spire_proto::spire::api::types;
use support::{Harness, TD, pid};
use tonic::Code;

fn client(h: &Harness) -> AgentClient<tonic::transport::Channel> {
    AgentClient::new(h.channel.clone())
}

#[tokio::test]
async fn list_get_count_ban_and_delete_agents() {
    let h = Harness::start().await;
    h.add_node("/spire/agent/join_token/t1", "11", "join_token")
        .await;
    h.add_node("/spire/agent/k8s_psat/c/n1", "22", "k8s_psat")
        .await;
    h.add_node("/spire/agent/k8s_psat/c/n2", "33", "k8s_psat")
        .await;

    let all = client(&h)
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert_eq!(all.len(), 3);
    let n1 = all
        .iter()
        .find(|a| a.id.as_ref().unwrap().path == "/spire/agent/k8s_psat/c/n1")
        .unwrap();
    assert_eq!(
        (
            n1.attestation_type.as_str(),
            n1.x509svid_serial_number.as_str(),
            n1.banned
        ),
        ("k8s_psat", "22", false)
    );

    let by_type = client(&h)
        .list_agents(ListAgentsRequest {
            filter: Some(list_agents_request::Filter {
                by_attestation_type: "k8s_psat".into(),
                ..Default::default()
            }),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_type.agents.len(), 1);
    assert!(!by_type.next_page_token.is_empty());

    client(&h)
        .ban_agent(BanAgentRequest {
            id: Some(pid(TD, "/spire/agent/k8s_psat/c/n1")),
        })
        .await
        .unwrap();
    let banned = client(&h)
        .get_agent(GetAgentRequest {
            id: Some(pid(TD, "/spire/agent/k8s_psat/c/n1")),
            output_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(banned.banned && banned.x509svid_serial_number.is_empty());
    let count = client(&h)
        .count_agents(CountAgentsRequest {
            filter: Some(
                spire_proto::spire::api::server::agent::v1::count_agents_request::Filter {
                    by_banned: Some(true),
                    ..Default::default()
                },
            ),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 1);

    client(&h)
        .delete_agent(DeleteAgentRequest {
            id: Some(pid(TD, "/spire/agent/k8s_psat/c/n2")),
        })
        .await
        .unwrap();
    let err = client(&h)
        .get_agent(GetAgentRequest {
            id: Some(pid(TD, "/spire/agent/k8s_psat/c/n2")),
            output_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "agent not found")
    );
    let err = client(&h)
        .delete_agent(DeleteAgentRequest {
            id: Some(pid(TD, "/spire/agent/k8s_psat/c/n2")),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "agent not found")
    );
    let err = client(&h)
        .ban_agent(BanAgentRequest {
            id: Some(pid(TD, "/workload")),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "invalid agent ID: \"spiffe://example.org/workload\" is not an agent in trust domain \"example.org\"; path is not in the agent namespace"
        )
    );
    let masked = client(&h)
        .get_agent(GetAgentRequest {
            id: Some(pid(TD, "/spire/agent/join_token/t1")),
            output_mask: Some(types::AgentMask::default()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(masked.attestation_type.is_empty() && masked.id.is_some());
}

#[tokio::test]
async fn join_tokens_and_their_alias_entry() {
    let h = Harness::start().await;
    let err = client(&h)
        .create_join_token(CreateJoinTokenRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "ttl is required, you must provide one"
        )
    );
    for (bad, why) in [
        (pid("other.org", "/node"), "is not a member of trust domain"),
        (
            pid(TD, "/spire/agent/x"),
            "path is in the reserved namespace",
        ),
    ] {
        let err = client(&h)
            .create_join_token(CreateJoinTokenRequest {
                ttl: 60,
                agent_id: Some(bad),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("invalid agent ID: "),
            "{}",
            err.message()
        );
        assert!(err.message().contains(why), "{}", err.message());
    }

    let token = client(&h)
        .create_join_token(CreateJoinTokenRequest {
            ttl: 600,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.expires_at, h.now() + 600);
    let uuid = uuid_shape(&token.value);
    assert!(uuid, "generated tokens are UUIDv4: {}", token.value);
    assert!(h.ds.fetch_join_token(&token.value).await.unwrap().is_some());

    let aliased = client(&h)
        .create_join_token(CreateJoinTokenRequest {
            ttl: 60,
            token: "my-token".into(),
            agent_id: Some(pid(TD, "/node/alias")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(aliased.value, "my-token");
    let entries = EntryClient::new(h.channel.clone())
        .list_entries(ListEntriesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1);
    let alias = &entries[0];
    assert_eq!(alias.spiffe_id, Some(pid(TD, "/node/alias")));
    assert_eq!(
        alias.parent_id,
        Some(pid(TD, "/spire/agent/join_token/my-token"))
    );
    assert_eq!(
        alias.selectors,
        vec![types::Selector {
            r#type: "spiffe_id".into(),
            value: "spiffe://example.org/spire/agent/join_token/my-token".into(),
        }]
    );
}

fn uuid_shape(s: &str) -> bool {
    let parts: Vec<_> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts[2].starts_with('4')
        && s.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit())
}
