//! `spire-server entry show` and `entry count` (same filters).

use anyhow::{anyhow, bail};
use clap::{ArgAction, Args};
use spire_proto::spire::api::server::entry::v1::{
    CountEntriesRequest, GetEntryRequest, ListEntriesRequest, ListEntriesResponse,
    count_entries_request, list_entries_request,
};
use spire_proto::spire::api::types::{
    FederatesWithMatch, SelectorMatch, Spiffeid, federates_with_match, selector_match,
};

use super::entry_client;
use super::print::{sort_entries, write_entries};
use crate::cli::common::{
    Io, OutputArgs, OutputFormat, SocketArgs, collect_pages, go_bool, id_to_proto, print_count,
    rpc_err, selector_filter,
};
use spire_cli::protojson;

/// SPIRE's page size for `ListEntries`.
const PAGE_SIZE: i32 = 500;

/// The filter flags shared by `show` and `count`.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only entries with this parent ID
    #[arg(long = "parentID", value_name = "string", default_value = "")]
    pub(crate) parent_id: String,
    /// Only entries with this SPIFFE ID
    #[arg(long = "spiffeID", value_name = "string", default_value = "")]
    pub(crate) spiffe_id: String,
    /// Only entries for downstream (nested) servers
    #[arg(long = "downstream", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = go_bool, action = ArgAction::Set)]
    pub(crate) downstream: bool,
    /// Selector (type:value) to filter on; repeatable
    #[arg(long = "selector", value_name = "value", action = ArgAction::Append)]
    pub(crate) selectors: Vec<String>,
    /// Federated trust domain to filter on; repeatable
    #[arg(long = "federatesWith", value_name = "value", action = ArgAction::Append)]
    pub(crate) federates_with: Vec<String>,
    /// How -federatesWith must match: exact, any, superset or subset
    #[arg(
        long = "matchFederatesWithOn",
        value_name = "string",
        default_value = "superset"
    )]
    pub(crate) match_federates_with_on: String,
    /// How -selector must match: exact, any, superset or subset
    #[arg(
        long = "matchSelectorsOn",
        value_name = "string",
        default_value = "superset"
    )]
    pub(crate) match_selectors_on: String,
    /// Only entries with this hint
    #[arg(long = "hint", value_name = "string", default_value = "")]
    pub(crate) hint: String,
}

/// Flags of `entry show`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Fetch just this entry; not combinable with -parentID, -spiffeID or -selector
    #[arg(long = "entryID", value_name = "string", default_value = "")]
    pub(crate) entry_id: String,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// Flags of `entry count`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct CountArgs {
    #[command(flatten)]
    pub(crate) socket: SocketArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// The filter in API form, converted into either request's own filter type.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Filter {
    by_spiffe_id: Option<Spiffeid>,
    by_parent_id: Option<Spiffeid>,
    by_selectors: Option<SelectorMatch>,
    by_federates_with: Option<FederatesWithMatch>,
    by_hint: Option<String>,
    by_downstream: Option<bool>,
}

fn selector_match(mode: &str) -> anyhow::Result<selector_match::MatchBehavior> {
    use selector_match::MatchBehavior as M;
    Ok(match mode {
        "exact" => M::MatchExact,
        "any" => M::MatchAny,
        "superset" => M::MatchSuperset,
        "subset" => M::MatchSubset,
        other => bail!("match behavior \"{other}\" unknown"),
    })
}

fn federates_match(mode: &str) -> anyhow::Result<federates_with_match::MatchBehavior> {
    use federates_with_match::MatchBehavior as M;
    Ok(match mode {
        "exact" => M::MatchExact,
        "any" => M::MatchAny,
        "superset" => M::MatchSuperset,
        "subset" => M::MatchSubset,
        other => bail!("match behavior \"{other}\" unknown"),
    })
}

impl FilterArgs {
    /// The API filter, with SPIRE's error wording for bad flag values.
    pub(crate) fn to_filter(&self) -> anyhow::Result<Filter> {
        let mut filter = Filter::default();
        if !self.parent_id.is_empty() {
            filter.by_parent_id = Some(
                id_to_proto(&self.parent_id)
                    .map_err(|e| anyhow!("error parsing parent ID \"{}\": {e}", self.parent_id))?,
            );
        }
        if !self.spiffe_id.is_empty() {
            filter.by_spiffe_id = Some(
                id_to_proto(&self.spiffe_id)
                    .map_err(|e| anyhow!("error parsing SPIFFE ID \"{}\": {e}", self.spiffe_id))?,
            );
        }
        if !self.selectors.is_empty() {
            let behavior = selector_match(&self.match_selectors_on)?;
            filter.by_selectors = Some(selector_filter(&self.selectors, behavior)?);
        }
        if !self.federates_with.is_empty() {
            let behavior = federates_match(&self.match_federates_with_on)?;
            filter.by_federates_with = Some(FederatesWithMatch {
                trust_domains: self.federates_with.clone(),
                r#match: behavior as i32,
            });
        }
        if !self.hint.is_empty() {
            filter.by_hint = Some(self.hint.clone());
        }
        if self.downstream {
            filter.by_downstream = Some(true);
        }
        Ok(filter)
    }
}

impl From<Filter> for list_entries_request::Filter {
    fn from(f: Filter) -> Self {
        Self {
            by_spiffe_id: f.by_spiffe_id,
            by_parent_id: f.by_parent_id,
            by_selectors: f.by_selectors,
            by_federates_with: f.by_federates_with,
            by_hint: f.by_hint,
            by_downstream: f.by_downstream,
        }
    }
}

impl From<Filter> for count_entries_request::Filter {
    fn from(f: Filter) -> Self {
        Self {
            by_spiffe_id: f.by_spiffe_id,
            by_parent_id: f.by_parent_id,
            by_selectors: f.by_selectors,
            by_federates_with: f.by_federates_with,
            by_hint: f.by_hint,
            by_downstream: f.by_downstream,
        }
    }
}

impl ShowArgs {
    /// `-entryID` excludes the other filters.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let f = &self.filter;
        if !self.entry_id.is_empty()
            && (!f.parent_id.is_empty() || !f.spiffe_id.is_empty() || !f.selectors.is_empty())
        {
            bail!("the -entryID flag can't be combined with others");
        }
        Ok(())
    }
}

/// Lists (or gets) entries, sorts them as SPIRE does and prints them.
pub(crate) async fn run_show(args: ShowArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    args.validate()?;
    let mut resp = ListEntriesResponse::default();
    if args.entry_id.is_empty() {
        let filter: list_entries_request::Filter = args.filter.to_filter()?.into();
        let entries_client = entry_client(&client, "error fetching entries: ")?;
        resp.entries = collect_pages(|page_token| {
            let (mut entries_client, filter) = (entries_client.clone(), filter.clone());
            async move {
                let page = entries_client
                    .list_entries(ListEntriesRequest {
                        filter: Some(filter),
                        output_mask: None,
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await
                    .map_err(|s| rpc_err("error fetching entries: ", &s))?
                    .into_inner();
                Ok((page.entries, page.next_page_token))
            }
        })
        .await?;
    } else {
        let prefix = format!("error fetching entry ID {}: ", args.entry_id);
        let entry = entry_client(&client, &prefix)?
            .get_entry(GetEntryRequest {
                id: args.entry_id.clone(),
                output_mask: None,
            })
            .await
            .map_err(|s| rpc_err(&prefix, &s))?
            .into_inner();
        resp.entries.push(entry);
    }
    sort_entries(&mut resp.entries);
    match args.output.output {
        OutputFormat::Json => protojson::print(
            io.out,
            &resp,
            "spire.api.server.entry.v1.ListEntriesResponse",
        ),
        OutputFormat::Pretty => Ok(write_entries(io.out, &resp.entries)?),
    }
}

/// Counts entries matching the filters: `N registration entries`.
pub(crate) async fn run_count(args: CountArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let client = args.socket.connect().await?;
    let filter = args.filter.to_filter()?;
    let resp = entry_client(&client, "")?
        .count_entries(CountEntriesRequest {
            filter: Some(filter.into()),
        })
        .await
        .map_err(|s| rpc_err("", &s))?
        .into_inner();
    print_count(
        io,
        args.output.output,
        &resp,
        "spire.api.server.entry.v1.CountEntriesResponse",
        resp.count,
        ("registration entry", "registration entries"),
    )
}
