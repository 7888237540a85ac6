use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::*;
use crate::crd::{ClusterSpiffeIdSpec, ClusterStaticEntrySpec};
use crate::manager::testutil::{self, api_id, ctx, node, pod};

fn spec(template: &str) -> ClusterSpiffeIdSpec {
    ClusterSpiffeIdSpec {
        spiffe_id_template: template.to_owned(),
        ..ClusterSpiffeIdSpec::default()
    }
}

fn parse(spec: &ClusterSpiffeIdSpec) -> ParsedClusterSpiffeId {
    ParsedClusterSpiffeId::parse(spec).expect("a valid spec")
}

fn selector_strings(entry: &Entry) -> Vec<String> {
    entry
        .selectors
        .iter()
        .map(|s| format!("{}:{}", s.r#type, s.value))
        .collect()
}

fn render(spec: &ClusterSpiffeIdSpec) -> Result<Entry, Error> {
    let pod = pod("default", "sleep-1", "node-1", &[("app", "sleep")]);
    render_pod_entry(&parse(spec), &ctx(), &pod, &node("node-1"), &[])
}

#[test]
fn invalid_specs_are_rejected_with_upstream_messages() {
    let bad_selector = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app".into(),
            operator: "Near".into(),
            values: None,
        }]),
        match_labels: None,
    };
    let cases: Vec<(ClusterSpiffeIdSpec, &str)> = vec![
        (spec(""), "empty SPIFFEID template"),
        (
            ClusterSpiffeIdSpec {
                federates_with: vec!["Not A Domain".into()],
                ..spec("spiffe://example.org/x")
            },
            "invalid federatesWith value: trust domain characters are limited",
        ),
        (
            ClusterSpiffeIdSpec {
                ttl: Some("soon".into()),
                ..spec("spiffe://example.org/x")
            },
            "invalid ttl value: ",
        ),
        (
            ClusterSpiffeIdSpec {
                jwt_ttl: Some("1 fortnight".into()),
                ..spec("spiffe://example.org/x")
            },
            "invalid jwtTtl value: ",
        ),
        (
            ClusterSpiffeIdSpec {
                pod_selector: Some(bad_selector.clone()),
                ..spec("spiffe://example.org/x")
            },
            "\"Near\" is not a valid label selector operator",
        ),
        (
            ClusterSpiffeIdSpec {
                namespace_selector: Some(bad_selector),
                ..spec("spiffe://example.org/x")
            },
            "\"Near\" is not a valid label selector operator",
        ),
    ];
    for (spec, want) in cases {
        let err = ParsedClusterSpiffeId::parse(&spec).expect_err("an invalid spec");
        assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
        assert!(
            err.to_string().starts_with(want),
            "{err} should start with {want}"
        );
    }
}

#[test]
fn plain_text_templates_render_a_complete_entry() {
    let spec = ClusterSpiffeIdSpec {
        ttl: Some("1h".into()),
        jwt_ttl: Some("5m".into()),
        federates_with: vec!["spiffe://other.org".into(), "third.org".into()],
        admin: true,
        downstream: true,
        hint: "web".into(),
        workload_selector_templates: vec!["k8s:container-image:docker/hello:1.0".into()],
        ..spec("spiffe://example.org/fixed")
    };
    let entry = render(&spec).expect("renders");
    assert_eq!(entry.id, "");
    assert_eq!(entry.spiffe_id, Some(api_id("spiffe://example.org/fixed")));
    assert_eq!(
        entry.parent_id,
        Some(api_id(
            "spiffe://example.org/spire/agent/k8s_psat/demo-cluster/node-1-uid"
        ))
    );
    assert_eq!(
        selector_strings(&entry),
        [
            "k8s:pod-uid:sleep-1-uid",
            "k8s:container-image:docker/hello:1.0"
        ]
    );
    assert_eq!(entry.x509_svid_ttl, 3600);
    assert_eq!(entry.jwt_svid_ttl, 300);
    assert_eq!(entry.federates_with, ["other.org", "third.org"]);
    assert!(entry.admin && entry.downstream);
    assert_eq!(entry.hint, "web");
    assert!(entry.dns_names.is_empty(), "no DNS names by default");
    assert!(!entry.store_svid);
}

#[test]
fn workload_selectors_need_a_type_and_a_value() {
    for (template, want) in [
        (
            "nocolon",
            "failed to render workload selector: invalid workload selector \"nocolon\": expected at least one colon separate the type from the value",
        ),
        (
            ":value",
            "failed to render workload selector: invalid workload selector \":value\": type cannot be empty",
        ),
        (
            "k8s:",
            "failed to render workload selector: invalid workload selector \"k8s:\": value cannot be empty",
        ),
    ] {
        let spec = ClusterSpiffeIdSpec {
            workload_selector_templates: vec![template.into()],
            ..spec("spiffe://example.org/x")
        };
        let err = render(&spec).expect_err("an invalid selector");
        assert_eq!(err, Error::Render(want.into()));
    }
}

#[test]
fn spiffe_id_must_parse_and_be_in_the_trust_domain() {
    let err = render(&spec("spiffe://other.org/x")).expect_err("another trust domain");
    assert_eq!(
        err.to_string(),
        "failed to render SPIFFE ID: invalid SPIFFE ID: expected trust domain \"example.org\" but got \"other.org\""
    );
    let err = render(&spec("example.org/x")).expect_err("not an ID");
    assert_eq!(
        err.to_string(),
        "failed to render SPIFFE ID: invalid SPIFFE ID: scheme is missing or invalid"
    );
}

#[test]
fn default_parent_needs_a_node_uid() {
    let parsed = parse(&spec("spiffe://example.org/x"));
    let pod = pod("default", "p", "n", &[]);
    let mut node = node("n");
    node.metadata.uid = None;
    let err = render_pod_entry(&parsed, &ctx(), &pod, &node, &[]).expect_err("no node UID");
    assert_eq!(
        err.to_string(),
        "failed to render parent ID: invalid SPIFFE ID: path cannot have a trailing slash"
    );
}

#[test]
fn dns_names_keep_template_order_then_add_sorted_service_names() {
    let spec = ClusterSpiffeIdSpec {
        dns_name_templates: vec!["web.example".into(), "api".into(), "web.example".into()],
        auto_populate_dns_names: true,
        ..spec("spiffe://example.org/x")
    };
    let (a, b) = (
        testutil::endpoints("default", "zeta", &["sleep-1-uid"]),
        testutil::endpoints("default", "api", &["sleep-1-uid"]),
    );
    let services = service_dns_names(&[&a, &b], "cluster.local");
    assert_eq!(
        services,
        [
            "api",
            "api.default",
            "api.default.svc",
            "api.default.svc.cluster.local",
            "zeta",
            "zeta.default",
            "zeta.default.svc",
            "zeta.default.svc.cluster.local",
        ]
    );
    let pod = pod("default", "sleep-1", "node-1", &[]);
    let entry =
        render_pod_entry(&parse(&spec), &ctx(), &pod, &node("node-1"), &services).expect("renders");
    assert_eq!(
        entry.dns_names,
        [
            "web.example",
            "api",
            "api.default",
            "api.default.svc",
            "api.default.svc.cluster.local",
            "zeta",
            "zeta.default",
            "zeta.default.svc",
            "zeta.default.svc.cluster.local",
        ]
    );

    // Without autoPopulateDNSNames the service names are not added.
    let spec = ClusterSpiffeIdSpec {
        auto_populate_dns_names: false,
        ..spec
    };
    let entry =
        render_pod_entry(&parse(&spec), &ctx(), &pod, &node("node-1"), &services).expect("renders");
    assert_eq!(entry.dns_names, ["web.example", "api"]);
}

#[test]
fn service_names_without_cluster_domain_stop_at_svc() {
    let ep = testutil::endpoints("prod", "db", &["x"]);
    assert_eq!(
        service_dns_names(&[&ep], ""),
        ["db", "db.prod", "db.prod.svc"]
    );
}

#[test]
fn static_entries_render_every_field() {
    let spec = ClusterStaticEntrySpec {
        spiffe_id: "spiffe://example.org/db".into(),
        parent_id: "spiffe://example.org/spire/server".into(),
        selectors: vec!["unix:uid:1000".into(), "unix:gid:0".into()],
        federates_with: vec!["other.org".into()],
        x509_svid_ttl: Some("2h".into()),
        jwt_svid_ttl: Some("10m".into()),
        dns_names: vec!["db.local".into()],
        hint: "db".into(),
        admin: true,
        downstream: true,
        store_svid: true,
        class_name: String::new(),
    };
    let entry = render_static_entry(&spec).expect("renders");
    assert_eq!(entry.spiffe_id, Some(api_id("spiffe://example.org/db")));
    assert_eq!(
        entry.parent_id,
        Some(api_id("spiffe://example.org/spire/server"))
    );
    assert_eq!(selector_strings(&entry), ["unix:uid:1000", "unix:gid:0"]);
    assert_eq!((entry.x509_svid_ttl, entry.jwt_svid_ttl), (7200, 600));
    assert_eq!(entry.federates_with, ["other.org"]);
    assert_eq!(entry.dns_names, ["db.local"]);
    assert_eq!(entry.hint, "db");
    assert!(entry.admin && entry.downstream && entry.store_svid);
}

#[test]
fn invalid_static_entries_are_rejected() {
    let valid = ClusterStaticEntrySpec {
        spiffe_id: "spiffe://example.org/db".into(),
        parent_id: "spiffe://example.org/spire/server".into(),
        selectors: vec!["unix:uid:1000".into()],
        ..ClusterStaticEntrySpec::default()
    };
    let cases = [
        (
            ClusterStaticEntrySpec {
                spiffe_id: "db".into(),
                ..valid.clone()
            },
            "failed to parse SPIFFEID: scheme is missing or invalid",
        ),
        (
            ClusterStaticEntrySpec {
                parent_id: String::new(),
                ..valid.clone()
            },
            "failed to parse ParentID: cannot be empty",
        ),
        (
            ClusterStaticEntrySpec {
                selectors: vec!["unix".into()],
                ..valid.clone()
            },
            "failed to parse Selectors: expected at least one colon separate the type from the value",
        ),
        (
            ClusterStaticEntrySpec {
                federates_with: vec!["UPPER".into()],
                ..valid.clone()
            },
            "invalid federatesWith value: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
        ),
    ];
    for (spec, want) in cases {
        let err = render_static_entry(&spec).expect_err("invalid");
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn plain_text_parent_template_renders_verbatim() {
    let ok = RenderContext::new(testutil::td(), "c", "", Some("spiffe://example.org/parent"))
        .expect("plain text");
    let parent = ok.parent_id(&node("n")).expect("renders");
    assert_eq!(parent, api_id("spiffe://example.org/parent"));
}

// --- Tests below execute real templates (spire-gotmpl). ---

#[test]
fn templates_see_go_field_names() {
    let spec = ClusterSpiffeIdSpec {
        dns_name_templates: vec![
            "{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc.{{ .ClusterDomain }}".into(),
        ],
        workload_selector_templates: vec![
            "k8s:ns:{{ .PodMeta.Namespace }}".into(),
            "k8s:pod-label:app:{{ index .PodMeta.Labels \"app\" }}".into(),
            "k8s:node-name:{{ .NodeMeta.Name }}".into(),
        ],
        ..spec(
            "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
        )
    };
    let entry = render(&spec).expect("renders");
    assert_eq!(
        entry.spiffe_id,
        Some(api_id("spiffe://example.org/ns/default/sa/sleep-1-sa"))
    );
    assert_eq!(entry.dns_names, ["sleep-1.default.svc.cluster.local"]);
    assert_eq!(
        selector_strings(&entry),
        [
            "k8s:pod-uid:sleep-1-uid",
            "k8s:ns:default",
            "k8s:pod-label:app:sleep",
            "k8s:node-name:node-1",
        ]
    );
}

#[test]
fn templates_parent_id_template_sees_node_data() {
    let ctx = RenderContext::new(
        testutil::td(),
        "demo-cluster",
        "cluster.local",
        Some("spiffe://{{ .TrustDomain }}/k8s/{{ .ClusterName }}/node/{{ .NodeMeta.Name }}"),
    )
    .expect("parses");
    let parent = ctx.parent_id(&node("node-7")).expect("renders");
    assert_eq!(
        parent,
        api_id("spiffe://example.org/k8s/demo-cluster/node/node-7")
    );
}

#[test]
fn templates_parse_errors_name_the_field() {
    let err = ParsedClusterSpiffeId::parse(&spec("spiffe://{{ .TrustDomain")).expect_err("bad");
    assert!(
        err.to_string()
            .starts_with("invalid SPIFFEID template: template: spiffeIDTemplate:1:"),
        "{err}"
    );
    let bad_dns = ClusterSpiffeIdSpec {
        dns_name_templates: vec!["{{ if }}".into()],
        ..spec("spiffe://example.org/x")
    };
    let err = ParsedClusterSpiffeId::parse(&bad_dns).expect_err("bad");
    assert!(
        err.to_string()
            .starts_with("invalid dnsNameTemplate value: "),
        "{err}"
    );
    let err =
        RenderContext::new(testutil::td(), "c", "", Some("{{ .NodeMeta.UID")).expect_err("bad");
    assert!(
        err.to_string()
            .starts_with("unable to parse parent ID template: "),
        "{err}"
    );
}
