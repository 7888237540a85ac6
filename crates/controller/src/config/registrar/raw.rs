//! The file as written, one struct per decoding stage (upstream decodes the same text into
//! the common struct and then into the mode's), every key optional, HCL v1's value leniency.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use spire_config::de::{Lenient, LenientBool};

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawCommon {
    pub(super) log_format: Option<HclString>,
    pub(super) log_level: Option<HclString>,
    pub(super) log_path: Option<HclString>,
    pub(super) trust_domain: Option<HclString>,
    pub(super) server_socket_path: Option<HclString>,
    /// Read (so it is not reported as ignored) but unused: no TCP server address.
    #[allow(dead_code)] // read by serde only
    pub(super) agent_socket_path: Option<HclString>,
    pub(super) server_address: Option<HclString>,
    pub(super) cluster: Option<HclString>,
    pub(super) pod_label: Option<HclString>,
    pub(super) pod_annotation: Option<HclString>,
    pub(super) mode: Option<HclString>,
    pub(super) disabled_namespaces: Option<Vec<HclString>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawCrd {
    pub(super) add_svc_dns_name: Option<LenientBool>,
    pub(super) leader_election: Option<LenientBool>,
    pub(super) leader_election_resource_lock: Option<HclString>,
    pub(super) metrics_bind_addr: Option<HclString>,
    pub(super) pod_controller: Option<LenientBool>,
    pub(super) webhook_cert_dir: Option<HclString>,
    pub(super) webhook_enabled: Option<LenientBool>,
    pub(super) webhook_port: Option<Lenient<u16>>,
    pub(super) webhook_service_name: Option<HclString>,
    pub(super) identity_template: Option<HclString>,
    pub(super) identity_template_label: Option<HclString>,
    pub(super) dns_name_templates: Option<Vec<HclString>>,
    pub(super) context: Option<BTreeMap<String, HclString>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawReconcile {
    pub(super) metrics_addr: Option<HclString>,
    pub(super) leader_election: Option<LenientBool>,
    pub(super) leader_election_resource_lock: Option<HclString>,
    pub(super) controller_name: Option<HclString>,
    pub(super) add_pod_dns_names: Option<LenientBool>,
    pub(super) cluster_dns_zone: Option<HclString>,
}

/// A string as HCL v1 decodes one: a number or boolean literal stands for its text
/// (`metrics_bind_addr = 0` is `"0"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct HclString(pub(super) String);

impl<'de> Deserialize<'de> for HclString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = HclString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<HclString, E> {
                Ok(HclString(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<HclString, E> {
                Ok(HclString(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HclString, E> {
                Ok(HclString(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HclString, E> {
                Ok(HclString(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HclString, E> {
                Ok(HclString(v.to_string()))
            }
        }

        deserializer.deserialize_any(V)
    }
}
