//! List/Count filters → [`ListEntries`], with SPIRE's messages for malformed filters.

use spire_id::TrustDomain;
use spire_proto::spire::api::server::entry::v1::{count_entries_request, list_entries_request};
use spire_proto::spire::api::types::{
    self, federates_with_match::MatchBehavior as FwBehavior,
    selector_match::MatchBehavior as SelBehavior,
};
use spire_server_datastore::{ListEntries, MatchBehavior, SelectorMatch, TrustDomainMatch};
use tonic::{Code, Status};

use crate::convert::{member_id_from_proto, selectors_from_proto, workload_id_from_proto};
use crate::status::make_err;

/// The fields both filter messages share.
struct Filter<'a> {
    by_spiffe_id: Option<&'a types::Spiffeid>,
    by_parent_id: Option<&'a types::Spiffeid>,
    by_selectors: Option<&'a types::SelectorMatch>,
    by_federates_with: Option<&'a types::FederatesWithMatch>,
    by_hint: Option<&'a String>,
    by_downstream: Option<bool>,
}

/// CountEntries' filter.
pub(super) fn from_count(
    td: &TrustDomain,
    filter: Option<&count_entries_request::Filter>,
) -> Result<ListEntries, Status> {
    match filter {
        None => Ok(ListEntries::default()),
        Some(f) => convert(
            td,
            Filter {
                by_spiffe_id: f.by_spiffe_id.as_ref(),
                by_parent_id: f.by_parent_id.as_ref(),
                by_selectors: f.by_selectors.as_ref(),
                by_federates_with: f.by_federates_with.as_ref(),
                by_hint: f.by_hint.as_ref(),
                by_downstream: f.by_downstream,
            },
        ),
    }
}

/// ListEntries' filter (paging is the caller's).
pub(super) fn from_list(
    td: &TrustDomain,
    filter: Option<&list_entries_request::Filter>,
) -> Result<ListEntries, Status> {
    match filter {
        None => Ok(ListEntries::default()),
        Some(f) => convert(
            td,
            Filter {
                by_spiffe_id: f.by_spiffe_id.as_ref(),
                by_parent_id: f.by_parent_id.as_ref(),
                by_selectors: f.by_selectors.as_ref(),
                by_federates_with: f.by_federates_with.as_ref(),
                by_hint: f.by_hint.as_ref(),
                by_downstream: f.by_downstream,
            },
        ),
    }
}

fn convert(td: &TrustDomain, f: Filter<'_>) -> Result<ListEntries, Status> {
    let invalid = |msg: &str, cause: &dyn std::fmt::Display| {
        make_err(Code::InvalidArgument, msg, Some(cause))
    };
    let mut list = ListEntries {
        by_hint: f.by_hint.cloned(),
        by_downstream: f.by_downstream,
        ..ListEntries::default()
    };
    if let Some(id) = f.by_parent_id {
        list.by_parent_id = Some(
            member_id_from_proto(td, Some(id))
                .map_err(|e| invalid("malformed parent ID filter", &e))?,
        );
    }
    if let Some(id) = f.by_spiffe_id {
        list.by_spiffe_id = Some(
            workload_id_from_proto(td, Some(id))
                .map_err(|e| invalid("malformed SPIFFE ID filter", &e))?,
        );
    }
    if let Some(m) = f.by_selectors {
        let selectors = selectors_from_proto(&m.selectors)
            .map_err(|e| invalid("malformed selectors filter", &e))?;
        if selectors.is_empty() {
            return Err(invalid("malformed selectors filter", &"empty selector set"));
        }
        let behavior = SelBehavior::try_from(m.r#match)
            .map(|b| match b {
                SelBehavior::MatchExact => MatchBehavior::Exact,
                SelBehavior::MatchSubset => MatchBehavior::Subset,
                SelBehavior::MatchSuperset => MatchBehavior::Superset,
                SelBehavior::MatchAny => MatchBehavior::Any,
            })
            .map_err(|_| invalid("malformed selectors filter", &"unknown match behavior"))?;
        list.by_selectors = Some(SelectorMatch {
            selectors,
            behavior,
        });
    }
    if let Some(m) = f.by_federates_with {
        let trust_domains = m
            .trust_domains
            .iter()
            .map(|name| TrustDomain::parse(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("malformed federates with filter", &e))?;
        if trust_domains.is_empty() {
            return Err(invalid(
                "malformed federates with filter",
                &"empty trust domain set",
            ));
        }
        let behavior = FwBehavior::try_from(m.r#match)
            .map(|b| match b {
                FwBehavior::MatchExact => MatchBehavior::Exact,
                FwBehavior::MatchSubset => MatchBehavior::Subset,
                FwBehavior::MatchSuperset => MatchBehavior::Superset,
                FwBehavior::MatchAny => MatchBehavior::Any,
            })
            .map_err(|_| invalid("malformed federates with filter", &"unknown match behavior"))?;
        list.by_federates_with = Some(TrustDomainMatch {
            trust_domains,
            behavior,
        });
    }
    Ok(list)
}
