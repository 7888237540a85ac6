//! `spire-server agent list|show|count|evict|ban|purge`.

use std::io::Write;

use anyhow::bail;
use clap::{ArgAction, Args, Subcommand};
use spire_proto::spire::api::server::agent::v1::agent_client::AgentClient;
use spire_proto::spire::api::server::agent::v1::{
    BanAgentRequest, CountAgentsRequest, DeleteAgentRequest, GetAgentRequest, ListAgentsRequest,
    ListAgentsResponse, count_agents_request, list_agents_request,
};
use spire_proto::spire::api::types::{Agent, AgentMask, SelectorMatch, selector_match};
use tonic::transport::Channel;

use crate::cli::common::{
    Client, Io, OutputArgs, OutputFormat, SocketArgs, collect_pages, go_bool, go_duration,
    id_to_proto, id_to_string, pluralize, print_count, rpc_err, selector_filter,
};
use crate::cli::entry::go_utc_time;
use spire_cli::protojson;

/// SPIRE's `ListAgents` page size.
const PAGE_SIZE: i32 = 1000;

/// The `agent` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// List the agents that have attested
    List(ListArgs),
    /// Print one agent's details, looked up by SPIFFE ID
    Show(IdArgs),
    /// Print how many agents match the filters
    Count(ListArgs),
    /// Drop an agent's attestation; it has to attest again
    Evict(IdArgs),
    /// Block an agent from attesting again until it is evicted
    Ban(IdArgs),
    /// Delete expired agents that attested with a method that lets them attest again
    Purge(PurgeArgs),
}

/// Flags of `agent purge`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// How long ago an agent's SVID must have expired for the agent to be purged
    #[arg(long = "expiredFor", value_name = "duration", default_value = "720h0m0s", value_parser = go_duration, allow_negative_numbers = true)]
    pub(crate) expired_for: i128,
    /// Only print the agents that would be purged
    #[arg(long = "dryRun", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) dry_run: bool,
}

/// Filters of `agent list` / `agent count`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Selector (type:value) to filter on; repeatable
    #[arg(long = "selector", value_name = "value", action = ArgAction::Append)]
    pub(crate) selectors: Vec<String>,
    /// Only agents attested by this node attestor (e.g. join_token)
    #[arg(long = "attestationType", value_name = "string", default_value = "")]
    pub(crate) attestation_type: String,
    /// 'true' or 'false': only agents that can, or cannot, re-attest (any other value: no filter)
    #[arg(long = "canReattest", value_name = "string", default_value = "")]
    pub(crate) can_reattest: String,
    /// 'true' or 'false': only banned, or only unbanned, agents (any other value: no filter)
    #[arg(long = "banned", value_name = "string", default_value = "")]
    pub(crate) banned: String,
    /// Only agents whose SVID expires before this time, written as 2006-01-02 15:04:05 -0700 -07
    #[arg(long = "expiresBefore", value_name = "string", default_value = "")]
    pub(crate) expires_before: String,
    /// How -selector must match: exact, any, superset or subset
    #[arg(
        long = "matchSelectorsOn",
        value_name = "string",
        default_value = "superset"
    )]
    pub(crate) match_selectors_on: String,
}

/// `-spiffeID` of `agent show|evict|ban`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct IdArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Agent's SPIFFE ID
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
}

fn tri_state(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

struct Filter {
    by_attestation_type: String,
    by_selector_match: Option<SelectorMatch>,
    by_banned: Option<bool>,
    by_can_reattest: Option<bool>,
    by_expires_before: String,
}

impl ListArgs {
    fn filter(&self) -> anyhow::Result<Filter> {
        let by_selector_match = if self.selectors.is_empty() {
            None
        } else {
            use selector_match::MatchBehavior as M;
            let behavior = match self.match_selectors_on.as_str() {
                "exact" => M::MatchExact,
                "any" => M::MatchAny,
                "superset" => M::MatchSuperset,
                "subset" => M::MatchSubset,
                _ => bail!("unsupported match behavior"),
            };
            Some(selector_filter(&self.selectors, behavior)?)
        };
        Ok(Filter {
            by_attestation_type: self.attestation_type.clone(),
            by_selector_match,
            by_banned: tri_state(&self.banned),
            by_can_reattest: tri_state(&self.can_reattest),
            by_expires_before: self.expires_before.clone(),
        })
    }
}

fn agent_client(client: &Client) -> anyhow::Result<AgentClient<Channel>> {
    Ok(AgentClient::new(
        client.channel().map_err(|s| rpc_err("", &s))?,
    ))
}

/// Runs one `agent` verb.
pub(crate) async fn run(command: AgentCommand, io: &mut Io<'_>) -> anyhow::Result<()> {
    match command {
        AgentCommand::List(args) => list(args, io).await,
        AgentCommand::Count(args) => count(args, io).await,
        AgentCommand::Show(args) => show(args, io).await,
        AgentCommand::Evict(args) => evict_or_ban(args, io, false).await,
        AgentCommand::Ban(args) => evict_or_ban(args, io, true).await,
        AgentCommand::Purge(args) => purge(args, io).await,
    }
}

async fn list(args: ListArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let f = args.filter()?;
    let filter = list_agents_request::Filter {
        by_attestation_type: f.by_attestation_type,
        by_selector_match: f.by_selector_match,
        by_banned: f.by_banned,
        by_can_reattest: f.by_can_reattest,
        by_expires_before: f.by_expires_before,
    };
    let agents = agent_client(&client)?;
    let all = ListAgentsResponse {
        agents: collect_pages(|page_token| {
            let (mut agents, filter) = (agents.clone(), filter.clone());
            async move {
                let page = agents
                    .list_agents(ListAgentsRequest {
                        filter: Some(filter),
                        output_mask: None,
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await
                    .map_err(|s| rpc_err("", &s))?
                    .into_inner();
                Ok((page.agents, page.next_page_token))
            }
        })
        .await?,
        ..ListAgentsResponse::default()
    };
    if args.output.output == OutputFormat::Json {
        return protojson::print(io.out, &all, "spire.api.server.agent.v1.ListAgentsResponse");
    }
    if all.agents.is_empty() {
        writeln!(io.out, "No attested agents found")?;
        return Ok(());
    }
    let count = i64::try_from(all.agents.len()).unwrap_or(i64::MAX);
    write!(
        io.out,
        "Found {}:\n\n",
        pluralize(count, "attested agent", "attested agents")
    )?;
    for agent in &all.agents {
        write_agent(io.out, agent)?;
    }
    Ok(())
}

/// One agent block as SPIRE prints it (17-character labels, blank line after).
pub(crate) fn write_agent(w: &mut dyn Write, agent: &Agent) -> std::io::Result<()> {
    writeln!(w, "SPIFFE ID         : {}", id_to_string(agent.id.as_ref()))?;
    writeln!(w, "Attestation type  : {}", agent.attestation_type)?;
    writeln!(
        w,
        "Expiration time   : {}",
        go_utc_time(agent.x509svid_expires_at)
    )?;
    if agent.banned {
        writeln!(w, "Banned            : true")?;
    } else {
        writeln!(w, "Serial number     : {}", agent.x509svid_serial_number)?;
    }
    writeln!(w, "Can re-attest     : {}", agent.can_reattest)?;
    writeln!(w)
}

async fn count(args: ListArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let f = args.filter()?;
    let resp = agent_client(&client)?
        .count_agents(CountAgentsRequest {
            filter: Some(count_agents_request::Filter {
                by_attestation_type: f.by_attestation_type,
                by_selector_match: f.by_selector_match,
                by_banned: f.by_banned,
                by_can_reattest: f.by_can_reattest,
                by_expires_before: f.by_expires_before,
            }),
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    print_count(
        io,
        args.output.output,
        &resp,
        "spire.api.server.agent.v1.CountAgentsResponse",
        resp.count,
        ("attested agent", "attested agents"),
    )
}

fn agent_id(args: &IdArgs) -> anyhow::Result<spire_proto::spire::api::types::Spiffeid> {
    if args.spiffe_id.is_empty() {
        bail!("a SPIFFE ID is required");
    }
    id_to_proto(&args.spiffe_id)
}

async fn show(args: IdArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let id = agent_id(&args)?;
    let agent = agent_client(&client)?
        .get_agent(GetAgentRequest {
            id: Some(id),
            output_mask: None,
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    if args.output.output == OutputFormat::Json {
        return protojson::print(io.out, &agent, "spire.api.types.Agent");
    }
    write!(io.out, "Found an attested agent given its SPIFFE ID\n\n")?;
    write_agent(io.out, &agent)?;
    for s in &agent.selectors {
        writeln!(io.out, "Selectors         : {}:{}", s.r#type, s.value)?;
    }
    Ok(())
}

async fn evict_or_ban(args: IdArgs, io: &mut Io<'_>, ban: bool) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let id = agent_id(&args)?;
    let mut agents = agent_client(&client)?;
    if ban {
        agents
            .ban_agent(BanAgentRequest { id: Some(id) })
            .await
            .map_err(|s| rpc_err("", &s))?;
    } else {
        agents
            .delete_agent(DeleteAgentRequest { id: Some(id) })
            .await
            .map_err(|s| rpc_err("", &s))?;
    }
    match args.output.output {
        // The RPCs return google.protobuf.Empty.
        OutputFormat::Json => writeln!(io.out, "{{}}")?,
        OutputFormat::Pretty if ban => writeln!(io.out, "Agent banned successfully")?,
        OutputFormat::Pretty => writeln!(io.out, "Agent evicted successfully")?,
    }
    Ok(())
}

/// One agent `agent purge` found, and what became of it.
#[derive(Debug, PartialEq, Eq)]
struct ExpiredAgent {
    id: String,
    deleted: bool,
    error: String,
}

/// Lists the agents that can re-attest, deletes those whose SVID expired more than
/// `-expiredFor` ago (unless `-dryRun`), and reports each; a failed delete is reported, not
/// fatal, as in SPIRE.
async fn purge(args: PurgeArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let mut agents = agent_client(&client)?;
    let filter = list_agents_request::Filter {
        by_can_reattest: Some(true),
        ..Default::default()
    };
    let listed = collect_pages(|page_token| {
        let (mut agents, filter) = (agents.clone(), filter.clone());
        async move {
            let page = agents
                .list_agents(ListAgentsRequest {
                    filter: Some(filter),
                    output_mask: Some(AgentMask {
                        x509svid_expires_at: true,
                        ..AgentMask::default()
                    }),
                    page_size: PAGE_SIZE,
                    page_token,
                })
                .await
                .map_err(|s| rpc_err("failed to list agents: ", &s))?
                .into_inner();
            Ok((page.agents, page.next_page_token))
        }
    })
    .await?;
    let now = spire_time::Clock::now(&spire_time::SystemClock)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let mut expired = Vec::new();
    for agent in listed {
        let expired_ago = now - i128::from(agent.x509svid_expires_at) * 1_000_000_000;
        if expired_ago <= args.expired_for {
            continue;
        }
        let mut found = ExpiredAgent {
            id: id_to_string(agent.id.as_ref()),
            deleted: false,
            error: String::new(),
        };
        if !args.dry_run {
            match agents
                .delete_agent(DeleteAgentRequest { id: agent.id })
                .await
            {
                Ok(_) => found.deleted = true,
                Err(status) => found.error = rpc_err("", &status).to_string(),
            }
        }
        expired.push(found);
    }
    match args.output.output {
        OutputFormat::Json => writeln!(io.out, "{}", purge_json(&expired))?,
        OutputFormat::Pretty => write_purge(io.out, &expired, args.dry_run)?,
    }
    Ok(())
}

/// SPIRE's JSON: the result object inside a one-element array.
fn purge_json(expired: &[ExpiredAgent]) -> String {
    let items: Vec<serde_json::Value> = expired
        .iter()
        .map(|a| {
            let mut item = serde_json::Map::new();
            item.insert("agent_id".into(), a.id.clone().into());
            item.insert("deleted".into(), a.deleted.into());
            if !a.error.is_empty() {
                item.insert("error".into(), a.error.clone().into());
            }
            serde_json::Value::Object(item)
        })
        .collect();
    let text = serde_json::json!([{ "expired_agents": items }]).to_string();
    // Go's encoder escapes these three inside strings (the only place they can appear).
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn write_purge(w: &mut dyn Write, expired: &[ExpiredAgent], dry_run: bool) -> std::io::Result<()> {
    if expired.is_empty() {
        return writeln!(w, "No agents to purge.");
    }
    let count = i64::try_from(expired.len()).unwrap_or(i64::MAX);
    write!(
        w,
        "Found {}\n\n",
        pluralize(count, "expired agent", "expired agents")
    )?;
    if dry_run {
        writeln!(w, "\nAgents that can be purged:")?;
        for agent in expired {
            writeln!(w, "SPIFFE ID         : {}", agent.id)?;
        }
        return Ok(());
    }
    let (purged, failed): (Vec<_>, Vec<_>) = expired.iter().partition(|a| a.deleted);
    if !purged.is_empty() {
        writeln!(w, "Agents purged:")?;
        for agent in purged {
            writeln!(w, "SPIFFE ID         : {}", agent.id)?;
        }
    }
    if !failed.is_empty() {
        writeln!(w, "Agents not purged:")?;
        for agent in failed {
            writeln!(w, "SPIFFE ID         : {}", agent.id)?;
            writeln!(w, "Error             : {}", agent.error)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use spire_proto::spire::api::types::Spiffeid;

    use super::*;

    fn found(id: &str, deleted: bool, error: &str) -> ExpiredAgent {
        ExpiredAgent {
            id: format!("spiffe://example.org/spire/agent/{id}"),
            deleted,
            error: error.to_owned(),
        }
    }

    fn pretty(expired: &[ExpiredAgent], dry_run: bool) -> String {
        let mut out = Vec::new();
        write_purge(&mut out, expired, dry_run).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn purge_outputs() {
        assert_eq!(pretty(&[], false), "No agents to purge.\n");
        assert_eq!(purge_json(&[]), r#"[{"expired_agents":[]}]"#);
        let failed = "rpc error: code = Internal desc = <boom> & more";
        let expired = [found("a2", true, ""), found("a3", false, failed)];
        assert_eq!(
            pretty(&expired, false),
            "Found 2 expired agents\n\n\
             Agents purged:\n\
             SPIFFE ID         : spiffe://example.org/spire/agent/a2\n\
             Agents not purged:\n\
             SPIFFE ID         : spiffe://example.org/spire/agent/a3\n\
             Error             : rpc error: code = Internal desc = <boom> & more\n"
        );
        assert_eq!(
            purge_json(&expired),
            concat!(
                r#"[{"expired_agents":[{"agent_id":"spiffe://example.org/spire/agent/a2","deleted":true},"#,
                r#"{"agent_id":"spiffe://example.org/spire/agent/a3","deleted":false,"#,
                r#""error":"rpc error: code = Internal desc = \u003cboom\u003e \u0026 more"}]}]"#
            )
        );
        assert_eq!(
            pretty(&[found("a1", false, "")], true),
            "Found 1 expired agent\n\n\n\
             Agents that can be purged:\n\
             SPIFFE ID         : spiffe://example.org/spire/agent/a1\n"
        );
    }

    #[test]
    fn agent_block() {
        let agent = Agent {
            id: Some(Spiffeid {
                trust_domain: "example.org".into(),
                path: "/spire/agent/join_token/abc".into(),
            }),
            attestation_type: "join_token".into(),
            x509svid_serial_number: "1234".into(),
            x509svid_expires_at: 1_767_225_600,
            ..Agent::default()
        };
        let mut out = Vec::new();
        write_agent(&mut out, &agent).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SPIFFE ID         : spiffe://example.org/spire/agent/join_token/abc\n\
             Attestation type  : join_token\n\
             Expiration time   : 2026-01-01 00:00:00 +0000 UTC\n\
             Serial number     : 1234\n\
             Can re-attest     : false\n\n"
        );
    }
}
