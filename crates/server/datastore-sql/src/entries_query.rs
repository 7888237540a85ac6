//! Listing and counting registration entries: every filter runs in SQL, and pages follow
//! creation order (`seq`), whose last value is the next page token.

use spire_server_datastore::{ListEntries, Page, RegistrationEntry, Result as DsResult};

use crate::SqlStore;
use crate::db::{Sql, bad_token, columns, get_i64, push_limit, split_page};
use crate::entry_codec::{ENTRY_COLUMNS, entry_from_row};
use crate::filters::{
    ENTRY_FEDERATES_WITH, ENTRY_SELECTORS, push_selector_filter, push_trust_domain_filter,
};

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn list_entries_impl(
        &self,
        request: &ListEntries,
    ) -> DsResult<Page<RegistrationEntry>> {
        let (after, page_size) = match &request.pagination {
            Some(p) => (parse_seq_token(&p.token)?, p.page_size),
            None => (None, 0),
        };
        let mut sql = Sql::new(&format!(
            "SELECT {} FROM spire_rs_registered_entries e",
            columns("e", ENTRY_COLUMNS)
        ));
        push_filters(&mut sql, request);
        if let Some(after) = after {
            sql.push(" AND e.seq > ").bind(after);
        }
        sql.push(" ORDER BY e.seq");
        push_limit(&mut sql, page_size);
        let mut conn = self.reader().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let (rows, more) = split_page(rows, page_size);
        let mut items = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for row in &rows {
            let (seq, entry) = entry_from_row(row)?;
            last_seq = Some(seq);
            items.push(entry);
        }
        let next_token = if more {
            last_seq.map(|seq| seq.to_string())
        } else {
            None
        };
        Ok(Page { items, next_token })
    }

    pub(crate) async fn count_entries_impl(&self, request: &ListEntries) -> DsResult<u64> {
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM spire_rs_registered_entries e");
        push_filters(&mut sql, request);
        let mut conn = self.reader().await?;
        let rows = sql.fetch_all(&mut conn).await?;
        let n = rows
            .first()
            .map(|row| get_i64(row, "n"))
            .transpose()?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Appends ` WHERE …` with every filter of the request.
fn push_filters(sql: &mut Sql, request: &ListEntries) {
    sql.push(" WHERE 1 = 1");
    if let Some(id) = &request.by_spiffe_id {
        sql.push(" AND e.spiffe_id = ").bind(id.to_string());
    }
    if let Some(id) = &request.by_parent_id {
        sql.push(" AND e.parent_id = ").bind(id.to_string());
    }
    if let Some(hint) = &request.by_hint {
        sql.push(" AND e.hint = ").bind(hint.clone());
    }
    if let Some(downstream) = request.by_downstream {
        sql.push(" AND e.downstream = ").bind(downstream);
    }
    if let Some(m) = &request.by_selectors {
        push_selector_filter(sql, &ENTRY_SELECTORS, &m.selectors, m.behavior);
    }
    if let Some(m) = &request.by_federates_with {
        push_trust_domain_filter(sql, &ENTRY_FEDERATES_WITH, &m.trust_domains, m.behavior);
    }
}

/// Entry page tokens are the decimal `seq` of the last entry returned.
fn parse_seq_token(token: &str) -> DsResult<Option<i64>> {
    if token.is_empty() {
        return Ok(None);
    }
    match token.parse::<i64>() {
        Ok(seq) if seq >= 0 && !token.starts_with('+') => Ok(Some(seq)),
        _ => Err(bad_token(token)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_tokens() {
        assert_eq!(parse_seq_token("").unwrap(), None);
        assert_eq!(parse_seq_token("42").unwrap(), Some(42));
        for bad in ["x", "-1", "+1", "1.5", "99999999999999999999"] {
            let err = parse_seq_token(bad).unwrap_err();
            assert_eq!(err.to_string(), format!("could not parse token '{bad}'"));
        }
    }
}
