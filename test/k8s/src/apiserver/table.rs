//! Server-side printing: a GET that accepts `application/json;as=Table;v=v1;g=meta.k8s.io`
//! (what `kubectl get` asks for) is answered with a `meta.k8s.io/v1` `Table`. Every kind gets
//! the default table the apiserver gives custom resources without printer columns: `Name`
//! and `Age`, one row per object with its metadata (`PartialObjectMetadata`).

use serde_json::{Value, json};
use spire_time::{Clock as _, SystemClock};

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table first.
pub(crate) fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        let params: Vec<&str> = first.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// The Table for a GET's JSON answer (an object or a list); `None` for anything else.
pub(crate) fn to_table(body: &[u8]) -> Option<Vec<u8>> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    let (objects, resource_version, continue_token) = match answer["items"].as_array() {
        Some(items) if answer["kind"].as_str().is_some_and(|k| k.ends_with("List")) => (
            items.clone(),
            answer["metadata"]["resourceVersion"].clone(),
            answer["metadata"]["continue"].clone(),
        ),
        _ if answer["metadata"]["name"].is_string() => (
            vec![answer.clone()],
            answer["metadata"]["resourceVersion"].clone(),
            Value::Null,
        ),
        _ => return None,
    };
    let now = SystemClock.unix_seconds();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let age = object["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(parse_rfc3339)
                .map_or_else(|| "<unknown>".to_owned(), |t| human_age(now - t));
            json!({
                "cells": [object["metadata"]["name"], age],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object["metadata"],
                },
            })
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if continue_token.is_string() {
        metadata["continue"] = continue_token;
    }
    let table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name",
             "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Age", "type": "string", "format": "",
             "description": "The time since the object was created.", "priority": 0},
        ],
        "rows": rows,
    });
    serde_json::to_vec(&table).ok()
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (proleptic Gregorian), by 400-year eras.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// An age as kubectl shows it (`42s`, `5m12s`, `3h`, `2d`), coarser as it grows.
fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::state::rfc3339;

    #[test]
    fn tables_for_objects_and_lists() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        let created = rfc3339(1_700_000_000);
        assert_eq!(parse_rfc3339(&created), Some(1_700_000_000));
        let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "a", "creationTimestamp": created}}]});
        let table: Value =
            serde_json::from_slice(&to_table(list.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["rows"][0]["cells"][0], "a");
        assert!(
            table["rows"][0]["cells"][1]
                .as_str()
                .unwrap()
                .ends_with('d')
        );
        assert_eq!(human_age(61), "61s");
        assert_eq!(human_age(312), "5m12s");
    }
}
