use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::*;

fn field<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    let mut v = value;
    for name in path {
        v = match v {
            Value::Struct(fields) | Value::Map(fields) => fields
                .get(*name)
                .unwrap_or_else(|| panic!("no field {name} in {v:?}")),
            other => panic!("{name}: not a struct: {other:?}"),
        };
    }
    v
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

#[test]
fn go_field_names_follow_the_go_structs() {
    for (json, go) in [
        ("uid", "UID"),
        ("apiVersion", "APIVersion"),
        ("serviceAccountName", "ServiceAccountName"),
        ("serviceAccount", "DeprecatedServiceAccount"),
        ("nodeName", "NodeName"),
        ("hostIP", "HostIP"),
        ("podCIDRs", "PodCIDRs"),
        ("dnsPolicy", "DNSPolicy"),
        ("externalID", "DoNotUseExternalID"),
        ("ip", "IP"),
        ("httpGet", "HTTPGet"),
        ("name", "Name"),
    ] {
        assert_eq!(go_field_name(json), go, "{json}");
    }
}

#[test]
fn object_meta_uses_go_names_and_zero_values() {
    let meta = ObjectMeta {
        name: Some("web-0".into()),
        namespace: Some("prod".into()),
        uid: Some("1234".into()),
        labels: Some(BTreeMap::from([("app".into(), "web".into())])),
        owner_references: Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
            uid: "ss-uid".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]),
        ..ObjectMeta::default()
    };
    let v = object_meta_value(&meta, &FieldFilter::all());
    assert_eq!(field(&v, &["Name"]), &s("web-0"));
    assert_eq!(field(&v, &["Namespace"]), &s("prod"));
    assert_eq!(field(&v, &["UID"]), &s("1234"));
    assert_eq!(field(&v, &["Labels", "app"]), &s("web"));
    assert!(matches!(field(&v, &["Labels"]), Value::Map(_)));
    // Absent fields are Go zero values.
    assert_eq!(field(&v, &["GenerateName"]), &s(""));
    assert_eq!(field(&v, &["Generation"]), &Value::Int(0));
    assert_eq!(field(&v, &["Annotations"]), &Value::Map(BTreeMap::new()));
    assert_eq!(field(&v, &["Finalizers"]), &Value::List(Vec::new()));
    assert_eq!(field(&v, &["DeletionTimestamp"]), &Value::Nil);
    assert_eq!(field(&v, &["CreationTimestamp"]), &s(ZERO_TIME));
    // Nested structs get Go names too.
    let Value::List(owners) = field(&v, &["OwnerReferences"]) else {
        panic!("owner references should be a list");
    };
    assert_eq!(field(&owners[0], &["APIVersion"]), &s("apps/v1"));
    assert_eq!(field(&owners[0], &["UID"]), &s("ss-uid"));
    assert_eq!(field(&owners[0], &["Controller"]), &Value::Bool(true));
}

#[test]
fn pod_spec_uses_go_names_and_zero_values() {
    let spec = PodSpec {
        service_account_name: Some("sleep".into()),
        node_name: Some("node-1".into()),
        node_selector: Some(BTreeMap::from([(
            "kubernetes.io/os".into(),
            "linux".into(),
        )])),
        containers: vec![Container {
            name: "app".into(),
            image: Some("curl".into()),
            ports: Some(vec![ContainerPort {
                container_port: 8080,
                host_ip: Some("0.0.0.0".into()),
                ..ContainerPort::default()
            }]),
            ..Container::default()
        }],
        ..PodSpec::default()
    };
    let v = pod_spec_value(Some(&spec), &FieldFilter::all());
    assert_eq!(field(&v, &["ServiceAccountName"]), &s("sleep"));
    assert_eq!(field(&v, &["NodeName"]), &s("node-1"));
    assert_eq!(
        field(&v, &["NodeSelector", "kubernetes.io/os"]),
        &s("linux")
    );
    assert_eq!(field(&v, &["Hostname"]), &s(""));
    assert_eq!(field(&v, &["Subdomain"]), &s(""));
    assert_eq!(field(&v, &["DeprecatedServiceAccount"]), &s(""));
    assert_eq!(field(&v, &["HostNetwork"]), &Value::Bool(false));
    assert_eq!(field(&v, &["RuntimeClassName"]), &Value::Nil);
    assert_eq!(field(&v, &["Priority"]), &Value::Nil);
    let Value::List(containers) = field(&v, &["Containers"]) else {
        panic!("containers should be a list");
    };
    assert_eq!(field(&containers[0], &["Image"]), &s("curl"));
    let Value::List(ports) = field(&containers[0], &["Ports"]) else {
        panic!("ports should be a list");
    };
    assert_eq!(field(&ports[0], &["ContainerPort"]), &Value::Int(8080));
    assert_eq!(field(&ports[0], &["HostIP"]), &s("0.0.0.0"));

    let empty = pod_spec_value(None, &FieldFilter::all());
    assert_eq!(field(&empty, &["ServiceAccountName"]), &s(""));
    assert_eq!(field(&empty, &["Containers"]), &Value::List(Vec::new()));
}

#[test]
fn node_spec_uses_go_names() {
    let spec = NodeSpec {
        provider_id: Some("aws:///i-1".into()),
        pod_cidrs: Some(vec!["10.0.0.0/24".into()]),
        ..NodeSpec::default()
    };
    let v = node_spec_value(Some(&spec), &FieldFilter::all());
    assert_eq!(field(&v, &["ProviderID"]), &s("aws:///i-1"));
    assert_eq!(
        field(&v, &["PodCIDRs"]),
        &Value::List(vec![s("10.0.0.0/24")])
    );
    assert_eq!(field(&v, &["PodCIDR"]), &s(""));
    assert_eq!(field(&v, &["Unschedulable"]), &Value::Bool(false));
}

#[test]
fn filter_keeps_only_named_fields() {
    let filter = FieldFilter::from_templates([
        "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
    ]);
    assert!(filter.allows("Namespace"));
    assert!(filter.allows("ServiceAccountName"));
    assert!(filter.allows("PodSpec"));
    assert!(!filter.allows("Containers"));
    assert!(!filter.allows("NodeMeta"));

    let spec = PodSpec {
        service_account_name: Some("sa".into()),
        containers: vec![Container::default()],
        ..PodSpec::default()
    };
    let Value::Struct(fields) = pod_spec_value(Some(&spec), &filter) else {
        panic!("a struct");
    };
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["ServiceAccountName"]);

    let mut all = filter.clone();
    all.union(&FieldFilter::all());
    assert!(all.allows("Containers"));
}

#[test]
fn timestamps_print_as_go_times() {
    let time: Time = serde_json::from_str("\"2024-03-05T06:07:08Z\"").expect("a timestamp");
    assert_eq!(go_time_string(&time), "2024-03-05 06:07:08 +0000 UTC");
}
