use std::collections::BTreeMap;

use spire_gotmpl::Value;
use spire_id::IdError;

use super::*;
use crate::registrar::DnsNameError;
use crate::registrar::fixtures::{
    SLEEP_POD, SLEEP_POD_UID, annotation_settings, edit, pod, quickstart_settings, sleep_pod,
    sleep_pod_json,
};

#[test]
fn pod_label_and_pod_annotation_together_are_refused() {
    let settings = RegistrarSettings {
        pod_label: "spiffe.io/spiffe-id".to_owned(),
        ..annotation_settings()
    };
    let err = Registrar::new(settings).expect_err("both set");
    assert_eq!(err, RegistrarError::LabelAndAnnotation);
    assert_eq!(
        err.to_string(),
        "workload registration mode specification is incorrect, can't specify both pod_label and pod_annotation"
    );
}

#[test]
fn identity_template_with_annotation_is_refused() {
    let settings = RegistrarSettings {
        identity_template: "ns/{{.Pod.Namespace}}".to_owned(),
        ..annotation_settings()
    };
    let err = Registrar::new(settings).expect_err("template and annotation");
    assert_eq!(
        err.to_string(),
        "workload registration configuration is incorrect, can only use one of identity_template, pod_annotation, or pod_label"
    );
}

#[test]
fn templates_referencing_a_missing_context_are_refused_even_with_spaces() {
    let identity = RegistrarSettings {
        identity_template: "region/{{ .Context.Region }}/sa/{{.Pod.ServiceAccount}}".to_owned(),
        ..quickstart_settings()
    };
    assert_eq!(
        Registrar::new(identity)
            .expect_err("no context")
            .to_string(),
        "identity_template references non-existing context"
    );
    let dns = RegistrarSettings {
        dns_name_templates: Some(vec!["{{.Pod.Name}}.{{ .Context.Zone }}".to_owned()]),
        ..annotation_settings()
    };
    assert_eq!(
        Registrar::new(dns).expect_err("no context").to_string(),
        "dns_name_template references non-existing context"
    );
}

#[test]
fn annotation_value_becomes_the_id_path_with_or_without_leading_slash() {
    let config = Registrar::new(annotation_settings()).expect("valid settings");
    assert_eq!(
        config.identity_source(),
        &IdentitySource::PodAnnotation("spiffe.io/spiffe-id".to_owned())
    );
    for value in ["ns/default/sa/sleep", "/ns/default/sa/sleep"] {
        let p = pod(edit(sleep_pod_json(), |v| {
            v["metadata"]["annotations"]["spiffe.io/spiffe-id"] = value.into();
        }));
        assert_eq!(
            config.pod_identity(&p).expect("no template"),
            Some("spiffe://example.org/ns/default/sa/sleep".to_owned())
        );
    }
    assert_eq!(
        config.pod_identity(&sleep_pod()).expect("no template"),
        None
    );
}

#[test]
fn label_source_uses_the_label_value_and_skips_unlabelled_pods() {
    let settings = RegistrarSettings {
        pod_label: "spire-workload".to_owned(),
        dns_name_templates: Some(Vec::new()),
        ..quickstart_settings()
    };
    let config = Registrar::new(settings).expect("valid settings");
    let labelled = pod(edit(sleep_pod_json(), |v| {
        v["metadata"]["labels"]["spire-workload"] = "sleep".into();
    }));
    assert_eq!(
        config.pod_identity(&labelled).expect("no template"),
        Some("spiffe://example.org/sleep".to_owned())
    );
    assert_eq!(
        config.pod_identity(&sleep_pod()).expect("no template"),
        None
    );
}

#[test]
fn kube_system_and_kube_public_are_disabled_by_default() {
    let config = Registrar::new(annotation_settings()).expect("valid settings");
    assert!(config.is_namespace_disabled("kube-system"));
    assert!(config.is_namespace_disabled("kube-public"));
    assert!(!config.is_namespace_disabled("default"));
    assert!(!config.is_namespace_disabled("spire"));
}

#[test]
fn pod_info_reads_metadata_and_spec() {
    let p = pod(edit(sleep_pod_json(), |v| {
        v["spec"]["hostname"] = "sleep-0".into();
    }));
    assert_eq!(
        PodInfo::from_pod(&p),
        PodInfo {
            name: SLEEP_POD.to_owned(),
            uid: SLEEP_POD_UID.to_owned(),
            namespace: "default".to_owned(),
            service_account: "sleep".to_owned(),
            hostname: "sleep-0".to_owned(),
            node_name: "kind-worker".to_owned(),
        }
    );
}

#[test]
fn template_data_has_go_field_names_pod_struct_and_context_map() {
    let settings = RegistrarSettings {
        context: Some(BTreeMap::from([(
            "Region".to_owned(),
            "eu-west-1".to_owned(),
        )])),
        ..annotation_settings()
    };
    let config = Registrar::new(settings).expect("valid settings");
    let Value::Struct(root) = config.template_data(&PodInfo::from_pod(&sleep_pod())) else {
        panic!("root is a struct");
    };
    assert_eq!(
        root.get("Context"),
        Some(&Value::Map(BTreeMap::from([(
            "Region".to_owned(),
            Value::String("eu-west-1".to_owned())
        )])))
    );
    let Some(Value::Struct(pod)) = root.get("Pod") else {
        panic!("Pod is a struct");
    };
    let keys: Vec<&str> = pod.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Hostname",
            "Name",
            "Namespace",
            "NodeName",
            "ServiceAccount",
            "UID"
        ]
    );
    assert_eq!(
        pod.get("ServiceAccount"),
        Some(&Value::String("sleep".to_owned()))
    );
    assert_eq!(
        pod.get("UID"),
        Some(&Value::String(SLEEP_POD_UID.to_owned()))
    );
}

#[test]
fn node_alias_id_names_cluster_and_node() {
    let config = Registrar::new(annotation_settings()).expect("valid settings");
    assert_eq!(
        config.node_alias_id("kind-worker"),
        "spiffe://example.org/k8s-workload-registrar/demo-cluster/node/kind-worker"
    );
}

fn crd_file(
    text: &str,
) -> (
    crate::config::RegistrarConfig,
    crate::config::registrar::CrdMode,
) {
    let config = crate::config::RegistrarConfig::parse(text).expect("valid registrar file");
    let crate::config::registrar::RegistrarMode::Crd(crd) = config.mode.clone() else {
        panic!("crd mode");
    };
    (config, crd)
}

#[test]
fn settings_follow_an_annotation_configuration_file() {
    let (config, crd) = crd_file(
        "trust_domain = \"example.org\"\nserver_socket_path = \"/run/spire/sockets/server.sock\"\n\
         cluster = \"demo-cluster\"\nmode = \"crd\"\npod_annotation = \"spiffe.io/spiffe-id\"\n\
         dns_name_templates = []\ndisabled_namespaces = [\"spire\"]\n",
    );
    let settings = RegistrarSettings::from_config(&config, &crd);
    assert_eq!(
        settings,
        RegistrarSettings {
            disabled_namespaces: vec!["spire".to_owned()],
            ..annotation_settings()
        }
    );
    let registrar = Registrar::new(settings).expect("valid settings");
    assert!(registrar.is_namespace_disabled("spire"));
    assert!(!registrar.is_namespace_disabled("kube-system"));
}

/// Tests that execute Go templates (need `spire-gotmpl`).
mod templates {
    use super::*;

    #[test]
    fn istio_2022_quickstart_file_gives_the_sleep_identity() {
        let (config, crd) = crd_file(
            "trust_domain = \"example.org\"\nserver_socket_path = \"/run/spire/sockets/server.sock\"\n\
             cluster = \"demo-cluster\"\nmode = \"crd\"\nmetrics_bind_addr = \"0\"\n",
        );
        let registrar =
            Registrar::new(RegistrarSettings::from_config(&config, &crd)).expect("valid settings");
        assert_eq!(registrar.cluster(), "demo-cluster");
        assert_eq!(
            registrar.pod_identity(&sleep_pod()).expect("renders"),
            Some("spiffe://example.org/ns/default/sa/sleep".to_owned())
        );
        assert_eq!(
            registrar.pod_dns_names(&sleep_pod()).expect("renders"),
            vec![SLEEP_POD.to_owned()]
        );
    }

    #[test]
    fn quickstart_defaults_give_ns_sa_identity_and_pod_name_dns() {
        let config = Registrar::new(quickstart_settings()).expect("defaults are valid");
        assert_eq!(
            config.identity_source(),
            &IdentitySource::Template {
                template: DEFAULT_IDENTITY_TEMPLATE.to_owned(),
                label: None,
            }
        );
        let p = sleep_pod();
        assert_eq!(
            config.pod_identity(&p).expect("renders"),
            Some("spiffe://example.org/ns/default/sa/sleep".to_owned())
        );
        assert_eq!(
            config.pod_dns_names(&p).expect("renders"),
            vec![SLEEP_POD.to_owned()]
        );
    }

    #[test]
    fn identity_template_label_must_be_true_case_insensitively() {
        let settings = RegistrarSettings {
            identity_template_label: "spiffe.io/spire-managed-identity".to_owned(),
            ..quickstart_settings()
        };
        let config = Registrar::new(settings).expect("valid settings");
        let with = |value: Option<&str>| {
            pod(edit(sleep_pod_json(), |v| {
                if let Some(value) = value {
                    v["metadata"]["labels"]["spiffe.io/spire-managed-identity"] = value.into();
                }
            }))
        };
        for value in ["true", "TRUE", "True"] {
            assert_eq!(
                config.pod_identity(&with(Some(value))).expect("renders"),
                Some("spiffe://example.org/ns/default/sa/sleep".to_owned()),
                "label value {value}"
            );
        }
        for value in [Some("false"), Some("yes"), Some(""), None] {
            assert_eq!(
                config.pod_identity(&with(value)).expect("renders"),
                None,
                "label value {value:?}"
            );
        }
    }

    #[test]
    fn context_values_and_stripped_dns_templates_render() {
        let settings = RegistrarSettings {
            identity_template:
                "region/{{.Context.Region}}/ns/{{.Pod.Namespace}}/sa/{{.Pod.ServiceAccount}}"
                    .to_owned(),
            dns_name_templates: Some(vec![
                "{{ .Pod.Name }}".to_owned(),
                "{{ .Pod.ServiceAccount }}.{{ .Pod.Namespace }}.svc".to_owned(),
            ]),
            context: Some(BTreeMap::from([(
                "Region".to_owned(),
                "eu-west-1".to_owned(),
            )])),
            ..quickstart_settings()
        };
        let config = Registrar::new(settings).expect("valid settings");
        let p = sleep_pod();
        assert_eq!(
            config.pod_identity(&p).expect("renders"),
            Some("spiffe://example.org/region/eu-west-1/ns/default/sa/sleep".to_owned())
        );
        assert_eq!(
            config.pod_dns_names(&p).expect("renders"),
            vec![SLEEP_POD.to_owned(), "sleep.default.svc".to_owned()]
        );
    }

    #[test]
    fn identity_template_must_form_a_valid_path_with_dummy_values() {
        let settings = RegistrarSettings {
            identity_template: "/ns/{{.Pod.Namespace}}".to_owned(),
            ..quickstart_settings()
        };
        let err = Registrar::new(settings).expect_err("leading slash ⇒ empty segment");
        assert_eq!(
            err,
            RegistrarError::ValidateIdentityTemplate(IdError::EmptySegment)
        );
        assert_eq!(
            err.to_string(),
            "validating identity template: path cannot contain empty segments"
        );
    }

    #[test]
    fn dns_name_templates_must_render_valid_names_with_dummy_values() {
        let settings = RegistrarSettings {
            dns_name_templates: Some(vec!["{{.Pod.Name}}-".to_owned()]),
            ..quickstart_settings()
        };
        let err = Registrar::new(settings).expect_err("trailing hyphen");
        assert_eq!(
            err,
            RegistrarError::ValidateDnsNameTemplate(DnsNameError::BadLabel("xx-".to_owned()))
        );
        assert_eq!(
            err.to_string(),
            "validating the dns name template: label does not match regex: xx-"
        );
    }

    #[test]
    fn unparsable_templates_are_reported_by_kind() {
        let identity = RegistrarSettings {
            identity_template: "ns/{{.Pod.Namespace".to_owned(),
            ..quickstart_settings()
        };
        let err = Registrar::new(identity).expect_err("unclosed action");
        assert!(
            err.to_string().starts_with("parsing identity template: "),
            "{err}"
        );
        let dns = RegistrarSettings {
            dns_name_templates: Some(vec!["{{.Pod.Name".to_owned()]),
            ..quickstart_settings()
        };
        let err = Registrar::new(dns).expect_err("unclosed action");
        assert!(
            err.to_string().starts_with("parsing dns name template: "),
            "{err}"
        );
    }
}
