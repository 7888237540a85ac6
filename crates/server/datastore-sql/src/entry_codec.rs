//! Registration entries ↔ rows: the column list, row decoding, the JSON encodings of the
//! list-valued fields, store-level validation and the similarity key.

use aws_lc_rs::digest;
use sqlx::any::AnyRow;

use spire_id::{Selector, SelectorSet, SpiffeId, TrustDomain};
use spire_server_datastore::{Error as DsError, RegistrationEntry, Result as DsResult};

use crate::db::{CHUNK, Sql, corrupt, get_bool, get_i32, get_i64, get_string};

/// Every column of `registered_entries`, in insert order.
pub(crate) const ENTRY_COLUMNS: &[&str] = &[
    "seq",
    "entry_id",
    "spiffe_id",
    "parent_id",
    "similarity_key",
    "selectors",
    "federates_with",
    "dns_names",
    "x509_svid_ttl",
    "jwt_svid_ttl",
    "admin",
    "downstream",
    "store_svid",
    "expires_at",
    "revision_number",
    "hint",
    "created_at",
];

/// The columns written on insert (all but the generated `seq`).
pub(crate) const INSERT_COLUMNS: &str = "entry_id, spiffe_id, parent_id, similarity_key, selectors, \
    federates_with, dns_names, x509_svid_ttl, jwt_svid_ttl, admin, downstream, store_svid, \
    expires_at, revision_number, hint, created_at";

/// An entry ready to be written: canonical, validated, with its similarity key.
pub(crate) struct StoredEntry {
    pub(crate) entry: RegistrationEntry,
    pub(crate) similarity_key: String,
}

/// Checks what the store itself requires (the API layer checks the rest) and canonicalizes
/// `federates_with` (sorted, no duplicates).
pub(crate) fn prepare(mut entry: RegistrationEntry) -> DsResult<StoredEntry> {
    if entry.selectors.is_empty() {
        return Err(invalid("missing selector list"));
    }
    if entry.x509_svid_ttl < 0 {
        return Err(invalid("X509SvidTtl is not set"));
    }
    if entry.jwt_svid_ttl < 0 {
        return Err(invalid("JwtSvidTtl is not set"));
    }
    entry.federates_with.sort();
    entry.federates_with.dedup();
    let similarity_key = similarity_key(&entry.parent_id, &entry.spiffe_id, &entry.selectors);
    Ok(StoredEntry {
        entry,
        similarity_key,
    })
}

fn invalid(what: &str) -> DsError {
    DsError::InvalidArgument(format!("invalid registration entry: {what}"))
}

/// Hex SHA-256 over a length-prefixed encoding of parent ID, SPIFFE ID and the (canonically
/// ordered) selectors: equal exactly for "similar" entries.
pub(crate) fn similarity_key(
    parent_id: &SpiffeId,
    spiffe_id: &SpiffeId,
    selectors: &SelectorSet,
) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    field(parent_id.to_string().as_bytes());
    field(spiffe_id.to_string().as_bytes());
    for selector in selectors {
        field(selector.selector_type().as_bytes());
        field(selector.value().as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

/// Selectors as a JSON array of `type:value` strings (the type never holds a colon).
pub(crate) fn encode_selectors(selectors: &SelectorSet) -> String {
    let list: Vec<String> = selectors.iter().map(ToString::to_string).collect();
    json(&list)
}

pub(crate) fn encode_trust_domains(trust_domains: &[TrustDomain]) -> String {
    let list: Vec<&str> = trust_domains.iter().map(TrustDomain::name).collect();
    json(&list)
}

pub(crate) fn encode_strings(strings: &[String]) -> String {
    json(&strings)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Serializing strings into a String cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

fn decode_list(column: &str, text: &str) -> DsResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt(format_args!("{column}: {e}")))
}

/// Binds one entry's insert values as `(…)`.
pub(crate) fn push_insert_values(sql: &mut Sql, stored: &StoredEntry) {
    let e = &stored.entry;
    sql.push("(");
    sql.bind(e.id.clone()).push(", ");
    sql.bind(e.spiffe_id.to_string()).push(", ");
    sql.bind(e.parent_id.to_string()).push(", ");
    sql.bind(stored.similarity_key.clone()).push(", ");
    sql.bind(encode_selectors(&e.selectors)).push(", ");
    sql.bind(encode_trust_domains(&e.federates_with)).push(", ");
    sql.bind(encode_strings(&e.dns_names)).push(", ");
    sql.bind(e.x509_svid_ttl).push(", ");
    sql.bind(e.jwt_svid_ttl).push(", ");
    sql.bind(e.admin).push(", ");
    sql.bind(e.downstream).push(", ");
    sql.bind(e.store_svid).push(", ");
    sql.bind(e.expires_at).push(", ");
    sql.bind(e.revision_number).push(", ");
    sql.bind(e.hint.clone()).push(", ");
    sql.bind(e.created_at).push(")");
}

/// Decodes a row selected with [`ENTRY_COLUMNS`] into `(seq, entry)`.
pub(crate) fn entry_from_row(row: &AnyRow) -> DsResult<(i64, RegistrationEntry)> {
    let id_column = |column: &str| -> DsResult<SpiffeId> {
        let text = get_string(row, column)?;
        SpiffeId::parse(&text).map_err(|e| corrupt(format_args!("{column} {text:?}: {e}")))
    };
    let selectors = decode_list("selectors", &get_string(row, "selectors")?)?
        .iter()
        .map(|s| Selector::parse(s).map_err(|e| corrupt(format_args!("selector {s:?}: {e}"))))
        .collect::<DsResult<SelectorSet>>()?;
    let federates_with = decode_list("federates_with", &get_string(row, "federates_with")?)?
        .iter()
        .map(|td| {
            TrustDomain::parse(td).map_err(|e| corrupt(format_args!("trust domain {td:?}: {e}")))
        })
        .collect::<DsResult<Vec<_>>>()?;
    let entry = RegistrationEntry {
        id: get_string(row, "entry_id")?,
        spiffe_id: id_column("spiffe_id")?,
        parent_id: id_column("parent_id")?,
        selectors,
        x509_svid_ttl: get_i32(row, "x509_svid_ttl")?,
        jwt_svid_ttl: get_i32(row, "jwt_svid_ttl")?,
        federates_with,
        admin: get_bool(row, "admin")?,
        downstream: get_bool(row, "downstream")?,
        expires_at: get_i64(row, "expires_at")?,
        dns_names: decode_list("dns_names", &get_string(row, "dns_names")?)?,
        revision_number: get_i64(row, "revision_number")?,
        store_svid: get_bool(row, "store_svid")?,
        hint: get_string(row, "hint")?,
        created_at: get_i64(row, "created_at")?,
    };
    Ok((get_i64(row, "seq")?, entry))
}

/// Inserts the selector rows of entries, in multi-row statements.
pub(crate) async fn insert_entry_selectors(
    conn: &mut sqlx::AnyConnection,
    entries: &[(i64, &RegistrationEntry)],
) -> DsResult<()> {
    let rows: Vec<(i64, &Selector)> = entries
        .iter()
        .flat_map(|(seq, e)| e.selectors.iter().map(move |s| (*seq, s)))
        .collect();
    for chunk in rows.chunks(CHUNK * 2) {
        let mut sql = Sql::new(
            "INSERT INTO spire_rs_entry_selectors (entry_seq, selector_type, selector_value) VALUES ",
        );
        for (i, (seq, selector)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(*seq).push(", ");
            sql.bind(selector.selector_type().to_owned()).push(", ");
            sql.bind(selector.value().to_owned()).push(")");
        }
        sql.execute(conn).await?;
    }
    Ok(())
}

/// Inserts the `federates_with` rows of entries, in multi-row statements.
pub(crate) async fn insert_entry_trust_domains(
    conn: &mut sqlx::AnyConnection,
    entries: &[(i64, &RegistrationEntry)],
) -> DsResult<()> {
    let rows: Vec<(i64, &TrustDomain)> = entries
        .iter()
        .flat_map(|(seq, e)| e.federates_with.iter().map(move |td| (*seq, td)))
        .collect();
    for chunk in rows.chunks(CHUNK * 2) {
        let mut sql =
            Sql::new("INSERT INTO spire_rs_entry_federates_with (entry_seq, trust_domain) VALUES ");
        for (i, (seq, td)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(*seq).push(", ");
            sql.bind(td.name().to_owned()).push(")");
        }
        sql.execute(conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    fn set(items: &[&str]) -> SelectorSet {
        items.iter().map(|s| Selector::parse(s).unwrap()).collect()
    }

    #[test]
    fn similarity_key_ignores_selector_order_and_separates_fields() {
        let p = id("spiffe://td/agent");
        let s = id("spiffe://td/w");
        let a = similarity_key(&p, &s, &set(&["a:1", "b:2"]));
        assert_eq!(a, similarity_key(&p, &s, &set(&["b:2", "a:1"])));
        assert_eq!(a.len(), 64);
        assert_ne!(a, similarity_key(&s, &p, &set(&["a:1", "b:2"])));
        // Length prefixes keep field boundaries: type "a", value "1b" is not "a1", "b".
        assert_ne!(
            similarity_key(&p, &s, &set(&["a:1b"])),
            similarity_key(&p, &s, &set(&["a1:b"]))
        );
    }

    #[test]
    fn selectors_round_trip_through_json() {
        let selectors = set(&["k8s:ns:default", "unix:uid:0"]);
        let text = encode_selectors(&selectors);
        assert_eq!(text, r#"["k8s:ns:default","unix:uid:0"]"#);
        let back: SelectorSet = decode_list("selectors", &text)
            .unwrap()
            .iter()
            .map(|s| Selector::parse(s).unwrap())
            .collect();
        assert_eq!(back, selectors);
    }
}
