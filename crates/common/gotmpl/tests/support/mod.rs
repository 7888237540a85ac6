//! Template data shaped like upstream's: spire-controller-manager's pod data and the
//! legacy k8s-workload-registrar's pod data.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of the fixtures

use spire_gotmpl::{Error, Template, Value};

fn s(v: &str) -> Value {
    Value::str(v)
}

/// spire-controller-manager's ClusterSPIFFEID template data, plus a few extra fields
/// (`List`, `Nested`, `Flag`, `Nothing`, `Zero`) for the generic cases.
pub fn pod_data() -> Value {
    Value::structure([
        ("TrustDomain", s("example.org")),
        ("ClusterName", s("demo")),
        ("ClusterDomain", s("cluster.local")),
        (
            "PodMeta",
            Value::structure([
                ("Name", s("web-0")),
                ("Namespace", s("prod")),
                ("UID", s("0b3a-pod")),
                (
                    "Labels",
                    Value::map([("app", "web"), ("app.kubernetes.io/name", "frontend")]),
                ),
                ("Annotations", Value::map::<_, String, String>([])),
            ]),
        ),
        (
            "PodSpec",
            Value::structure([
                ("ServiceAccountName", s("web-sa")),
                ("NodeName", s("node-1")),
            ]),
        ),
        (
            "NodeMeta",
            Value::structure([("Name", s("node-1")), ("UID", s("9f1c-node"))]),
        ),
        ("NodeSpec", Value::structure::<_, String, Value>([])),
        ("List", Value::list(["a", "b"])),
        (
            "Nested",
            Value::map([
                ("a", Value::map([("b", "deep")])),
                ("c", Value::map([("b", "other")])),
            ]),
        ),
        ("Flag", Value::Bool(true)),
        ("Nothing", Value::Nil),
        ("Zero", Value::Int(0)),
    ])
}

/// The legacy registrar's identity-template data: `.Pod.*` and `.Context.*`.
pub fn legacy_data() -> Value {
    Value::structure([
        (
            "Pod",
            Value::structure([
                ("Name", s("web-0")),
                ("UID", s("0b3a-pod")),
                ("Namespace", s("prod")),
                ("ServiceAccount", s("web-sa")),
                ("Hostname", s("web-0")),
                ("NodeName", s("node-1")),
            ]),
        ),
        ("Context", Value::map([("Region", "eu-west-1")])),
    ])
}

/// Parses `text` as template "t" and executes it against `data`.
pub fn render(text: &str, data: &Value) -> Result<String, Error> {
    Template::parse("t", text)?.execute(data)
}
