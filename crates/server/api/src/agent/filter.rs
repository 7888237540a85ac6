//! ListAgents / CountAgents filters → [`ListAttestedNodes`].

use spire_proto::spire::api::server::agent::v1::{count_agents_request, list_agents_request};
use spire_proto::spire::api::types::{self, selector_match::MatchBehavior as SelBehavior};
use spire_server_datastore::{ListAttestedNodes, MatchBehavior, SelectorMatch};
use tonic::{Code, Status};

use crate::convert::selectors_from_proto;
use crate::status::make_err;

/// The fields both filter messages share.
struct Filter<'a> {
    by_attestation_type: &'a str,
    by_selector_match: Option<&'a types::SelectorMatch>,
    by_banned: Option<bool>,
    by_can_reattest: Option<bool>,
    by_expires_before: &'a str,
}

/// CountAgents' filter.
pub(super) fn from_count(
    filter: Option<&count_agents_request::Filter>,
) -> Result<ListAttestedNodes, Status> {
    filter.map_or(Ok(ListAttestedNodes::default()), |f| {
        convert(&Filter {
            by_attestation_type: &f.by_attestation_type,
            by_selector_match: f.by_selector_match.as_ref(),
            by_banned: f.by_banned,
            by_can_reattest: f.by_can_reattest,
            by_expires_before: &f.by_expires_before,
        })
    })
}

/// ListAgents' filter (paging is the caller's).
pub(super) fn from_list(
    filter: Option<&list_agents_request::Filter>,
) -> Result<ListAttestedNodes, Status> {
    filter.map_or(Ok(ListAttestedNodes::default()), |f| {
        convert(&Filter {
            by_attestation_type: &f.by_attestation_type,
            by_selector_match: f.by_selector_match.as_ref(),
            by_banned: f.by_banned,
            by_can_reattest: f.by_can_reattest,
            by_expires_before: &f.by_expires_before,
        })
    })
}

fn convert(f: &Filter<'_>) -> Result<ListAttestedNodes, Status> {
    let mut list = ListAttestedNodes {
        by_attestation_type: (!f.by_attestation_type.is_empty())
            .then(|| f.by_attestation_type.to_owned()),
        by_banned: f.by_banned,
        by_can_reattest: f.by_can_reattest,
        // SPIRE ignores a timestamp it cannot parse.
        by_expires_before: parse_go_time(f.by_expires_before),
        ..ListAttestedNodes::default()
    };
    if let Some(m) = f.by_selector_match {
        let selectors = selectors_from_proto(&m.selectors)
            .map_err(|e| make_err(Code::InvalidArgument, "failed to parse selectors", Some(&e)))?;
        let behavior = match SelBehavior::try_from(m.r#match) {
            Ok(SelBehavior::MatchExact) => MatchBehavior::Exact,
            Ok(SelBehavior::MatchSubset) => MatchBehavior::Subset,
            Ok(SelBehavior::MatchSuperset) => MatchBehavior::Superset,
            Ok(SelBehavior::MatchAny) => MatchBehavior::Any,
            Err(_) => {
                return Err(make_err(
                    Code::InvalidArgument,
                    "failed to parse selectors",
                    Some(&"unknown match behavior"),
                ));
            }
        };
        list.by_selectors = Some(SelectorMatch {
            selectors,
            behavior,
        });
    }
    Ok(list)
}

/// Parses SPIRE's `by_expires_before` layout, Go's `2006-01-02 15:04:05 -0700 -07`, into unix
/// seconds (the trailing zone abbreviation is not checked). `None` when it does not parse.
pub(super) fn parse_go_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 25 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b' ' || !matches!(b[20], b'+' | b'-') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(range)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let offset = (num(21..23)? * 3600 + num(23..25)? * 60) * if b[20] == b'-' { -1 } else { 1 };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_go_time;

    #[test]
    fn go_layout_parses_to_unix_seconds() {
        assert_eq!(
            parse_go_time("2026-01-01 00:00:00 +0000 UTC"),
            Some(1_767_225_600)
        );
        assert_eq!(
            parse_go_time("2026-01-01 01:00:00 +0100 +01"),
            Some(1_767_225_600)
        );
        assert_eq!(parse_go_time("1970-01-01 00:00:00 -0700 -07"), Some(25_200));
        assert_eq!(parse_go_time("yesterday"), None);
        assert_eq!(parse_go_time(""), None);
    }
}
