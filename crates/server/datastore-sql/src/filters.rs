//! Set filters (`MatchBehavior`) run in SQL against a child table of (owner, element) rows:
//! entry selectors, entry trust domains and node selectors.
//!
//! With `G` the given set and `S` an owner's set:
//! * `Exact`: `S = G`;
//! * `Subset`: `S` is non-empty and `S ⊆ G` (how workloads match entries);
//! * `Superset`: `S ⊇ G`;
//! * `Any`: `S ∩ G ≠ ∅`.
//!
//! `Subset` and `Any` start from the index on the element columns, so a workload lookup
//! only touches entries that share one of its selectors.

use spire_id::{SelectorSet, TrustDomain};
use spire_server_datastore::MatchBehavior;

use crate::db::Sql;

/// A child table holding one set per owner.
pub(crate) struct SetTable {
    /// e.g. `entry_selectors`.
    pub(crate) table: &'static str,
    /// The child's column naming its owner, e.g. `entry_seq`.
    pub(crate) owner: &'static str,
    /// The owner's key in the outer query, e.g. `e.seq`.
    pub(crate) outer: &'static str,
}

pub(crate) const ENTRY_SELECTORS: SetTable = SetTable {
    table: "spire_rs_entry_selectors",
    owner: "entry_seq",
    outer: "e.seq",
};

pub(crate) const ENTRY_FEDERATES_WITH: SetTable = SetTable {
    table: "spire_rs_entry_federates_with",
    owner: "entry_seq",
    outer: "e.seq",
};

pub(crate) const NODE_SELECTORS: SetTable = SetTable {
    table: "spire_rs_node_selectors",
    owner: "spiffe_id",
    outer: "n.spiffe_id",
};

/// Appends ` AND <selector filter>`.
pub(crate) fn push_selector_filter(
    sql: &mut Sql,
    table: &SetTable,
    selectors: &SelectorSet,
    behavior: MatchBehavior,
) {
    let element = |sql: &mut Sql| {
        sql.push("(");
        for (i, selector) in selectors.iter().enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(selector_type = ")
                .bind(selector.selector_type().to_owned());
            sql.push(" AND selector_value = ")
                .bind(selector.value().to_owned());
            sql.push(")");
        }
        sql.push(")");
    };
    push_set_filter(sql, table, &element, selectors.len(), behavior);
}

/// Appends ` AND <trust-domain filter>`; `trust_domains` may hold duplicates.
pub(crate) fn push_trust_domain_filter(
    sql: &mut Sql,
    table: &SetTable,
    trust_domains: &[TrustDomain],
    behavior: MatchBehavior,
) {
    let mut names: Vec<&str> = trust_domains.iter().map(TrustDomain::name).collect();
    names.sort_unstable();
    names.dedup();
    let element = |sql: &mut Sql| {
        sql.push("trust_domain IN ");
        sql.bind_list(names.iter().map(|name| (*name).to_owned()));
    };
    push_set_filter(sql, table, &element, names.len(), behavior);
}

/// `element` writes a predicate on the child table's element columns that is true for
/// members of the given set, whose size is `size`; it binds afresh each time it is written.
fn push_set_filter(
    sql: &mut Sql,
    t: &SetTable,
    element: &dyn Fn(&mut Sql),
    size: usize,
    behavior: MatchBehavior,
) {
    let SetTable {
        table,
        owner,
        outer,
    } = t;
    let has_other = |sql: &mut Sql| {
        sql.push(&format!(
            "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.{owner} = {outer} AND NOT "
        ));
        element(sql);
        sql.push(")");
    };
    let shares_one = |sql: &mut Sql| {
        sql.push(&format!("{outer} IN (SELECT {owner} FROM {table} WHERE "));
        element(sql);
        sql.push(")");
    };
    let has_all = |sql: &mut Sql| {
        sql.push(&format!("{outer} IN (SELECT {owner} FROM {table} WHERE "));
        element(sql);
        sql.push(&format!(" GROUP BY {owner} HAVING COUNT(*) = {size})"));
    };
    sql.push(" AND ");
    match (behavior, size) {
        (MatchBehavior::Any | MatchBehavior::Subset, 0) => {
            sql.push("1 = 0");
        }
        (MatchBehavior::Superset, 0) => {
            sql.push("1 = 1");
        }
        (MatchBehavior::Exact, 0) => {
            sql.push(&format!(
                "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.{owner} = {outer})"
            ));
        }
        (MatchBehavior::Any, _) => shares_one(sql),
        (MatchBehavior::Subset, _) => {
            shares_one(sql);
            sql.push(" AND ");
            has_other(sql);
        }
        (MatchBehavior::Superset, _) => has_all(sql),
        (MatchBehavior::Exact, _) => {
            has_all(sql);
            sql.push(" AND ");
            has_other(sql);
        }
    }
}
