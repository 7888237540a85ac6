//! Pods and nodes as Go template data: the values spire-controller-manager hands to
//! `text/template` are Go structs (`metav1.ObjectMeta`, `corev1.PodSpec`, `corev1.NodeSpec`), so
//! templates name Go fields (`.PodMeta.UID`, `.PodSpec.ServiceAccountName`) and index maps by
//! their keys (`index .PodMeta.Labels "app"`).
//!
//! Top-level fields are listed by hand with their Go zero value for when the object leaves them
//! out (`""`, `false`, `0`, nil pointers, empty maps and slices). Nested structs (containers,
//! volumes, owner references, …) go through their JSON form with JSON names turned into Go
//! names; objects known to be Go maps keep their keys.
//!
//! A [`FieldFilter`] lists the identifiers the templates actually mention: a Go template can
//! only reach a struct field by naming it (`.Field`), so fields no template names are left out,
//! which keeps rendering 30k pods cheap.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{NodeSpec, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Serialize;
use spire_gotmpl::Value;

/// The identifiers a set of templates can reach; everything when built with [`FieldFilter::all`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldFilter {
    /// `None` = every field.
    names: Option<HashSet<String>>,
}

/// JSON object members whose value is a Go `map[string]…` (keys are data, not field names).
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "overhead",
    "limits",
    "requests",
    "volumeAttributes",
    "options",
    "matchLabels",
    "capacity",
    "allocatable",
];

/// JSON names whose Go field name is not the JSON name with its first letter capitalised.
const GO_NAMES: &[(&str, &str)] = &[
    ("uid", "UID"),
    ("apiVersion", "APIVersion"),
    ("ip", "IP"),
    ("url", "URL"),
    ("os", "OS"),
    ("tty", "TTY"),
    ("dnsPolicy", "DNSPolicy"),
    ("dnsConfig", "DNSConfig"),
    ("fsGroup", "FSGroup"),
    ("fsGroupChangePolicy", "FSGroupChangePolicy"),
    ("seLinuxOptions", "SELinuxOptions"),
    ("seLinuxChangePolicy", "SELinuxChangePolicy"),
    ("httpGet", "HTTPGet"),
    ("httpHeaders", "HTTPHeaders"),
    ("tcpSocket", "TCPSocket"),
    ("grpc", "GRPC"),
    ("nfs", "NFS"),
    ("iscsi", "ISCSI"),
    ("iqn", "IQN"),
    ("rbd", "RBD"),
    ("csi", "CSI"),
    ("fc", "FC"),
    ("wwids", "WWIDs"),
    ("cephfs", "CephFS"),
    ("gcePersistentDisk", "GCEPersistentDisk"),
    ("awsElasticBlockStore", "AWSElasticBlockStore"),
    ("downwardAPI", "DownwardAPI"),
    ("chapAuthDiscovery", "DiscoveryCHAPAuth"),
    ("chapAuthSession", "SessionCHAPAuth"),
    ("serviceAccount", "DeprecatedServiceAccount"),
    ("externalID", "DoNotUseExternalID"),
];

/// Go's zero `metav1.Time`, as `fmt` prints it.
const ZERO_TIME: &str = "0001-01-01 00:00:00 +0000 UTC";

// === impl FieldFilter ===

impl FieldFilter {
    /// Keeps every field.
    pub fn all() -> Self {
        Self { names: None }
    }

    /// Keeps the identifiers that follow a `.` anywhere in `texts` (an over-approximation of
    /// the fields the templates reach).
    pub fn from_templates<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut filter = Self {
            names: Some(HashSet::new()),
        };
        for text in texts {
            filter.add_template(text);
        }
        filter
    }

    /// Adds the identifiers of one more template.
    pub fn add_template(&mut self, text: &str) {
        let Some(names) = &mut self.names else {
            return;
        };
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'.' {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                if end > start {
                    names.insert(text[start..end].to_owned());
                }
                i = end.max(start);
            } else {
                i += 1;
            }
        }
    }

    /// Keeps what either filter keeps.
    pub fn union(&mut self, other: &FieldFilter) {
        match (&mut self.names, &other.names) {
            (Some(mine), Some(theirs)) => mine.extend(theirs.iter().cloned()),
            (mine, None) => *mine = None,
            (None, Some(_)) => {}
        }
    }

    /// Whether the Go field `name` is kept.
    pub fn allows(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|n| n.contains(name))
    }
}

/// The Go field name of a Kubernetes JSON member name (`uid` → `UID`, `serviceAccountName` →
/// `ServiceAccountName`).
pub fn go_field_name(json_name: &str) -> Cow<'_, str> {
    if let Some((_, go)) = GO_NAMES.iter().find(|(json, _)| *json == json_name) {
        return Cow::Borrowed(go);
    }
    let mut chars = json_name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_lowercase() => {
            Cow::Owned(first.to_ascii_uppercase().to_string() + chars.as_str())
        }
        _ => Cow::Borrowed(json_name),
    }
}

/// A Kubernetes JSON value as Go template data: objects become structs with Go field names
/// (members the filter drops are left out), members listed as Go maps keep their keys, `null`
/// is nil, integral numbers are ints and other numbers are printed as Go would.
pub fn json_to_value(json: &serde_json::Value, filter: &FieldFilter) -> Value {
    convert_json(json, filter, false)
}

fn convert_json(json: &serde_json::Value, filter: &FieldFilter, as_map: bool) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::String(n.to_string()),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::List(
            items
                .iter()
                .map(|item| convert_json(item, filter, false))
                .collect(),
        ),
        serde_json::Value::Object(members) if as_map => Value::Map(
            members
                .iter()
                .map(|(k, v)| (k.clone(), convert_json(v, filter, false)))
                .collect(),
        ),
        serde_json::Value::Object(members) => {
            let mut fields = BTreeMap::new();
            for (k, v) in members {
                let name = go_field_name(k);
                if filter.allows(&name) {
                    let is_map = MAP_FIELDS.contains(&k.as_str());
                    fields.insert(name.into_owned(), convert_json(v, filter, is_map));
                }
            }
            Value::Struct(fields)
        }
    }
}

/// `metav1.ObjectMeta` as Go template data.
pub fn object_meta_value(meta: &ObjectMeta, filter: &FieldFilter) -> Value {
    build(meta, OBJECT_META, &project(OBJECT_META, filter), filter)
}

/// `corev1.PodSpec` as Go template data (an absent spec is the zero `PodSpec`).
pub fn pod_spec_value(spec: Option<&PodSpec>, filter: &FieldFilter) -> Value {
    with_default(spec, |spec| {
        build(spec, POD_SPEC, &project(POD_SPEC, filter), filter)
    })
}

/// `corev1.NodeSpec` as Go template data (an absent spec is the zero `NodeSpec`).
pub fn node_spec_value(spec: Option<&NodeSpec>, filter: &FieldFilter) -> Value {
    with_default(spec, |spec| {
        build(spec, NODE_SPEC, &project(NODE_SPEC, filter), filter)
    })
}

/// Go's `time.Time.String()` of a Kubernetes timestamp (UTC, second precision as the apiserver
/// stores it).
pub fn go_time_string(time: &Time) -> String {
    format!("{} +0000 UTC", time.0.strftime("%Y-%m-%d %H:%M:%S"))
}

/// A [`FieldFilter`] resolved once against the field tables, so building data for many pods
/// does not look every field name up again.
#[derive(Clone, Debug)]
pub(crate) struct DataShape {
    filter: FieldFilter,
    meta: Vec<usize>,
    pod_spec: Vec<usize>,
    node_spec: Vec<usize>,
}

impl DataShape {
    pub(crate) fn new(filter: FieldFilter) -> Self {
        Self {
            meta: project(OBJECT_META, &filter),
            pod_spec: project(POD_SPEC, &filter),
            node_spec: project(NODE_SPEC, &filter),
            filter,
        }
    }

    pub(crate) fn allows(&self, name: &str) -> bool {
        self.filter.allows(name)
    }

    pub(crate) fn object_meta(&self, meta: &ObjectMeta) -> Value {
        build(meta, OBJECT_META, &self.meta, &self.filter)
    }

    pub(crate) fn pod_spec(&self, spec: Option<&PodSpec>) -> Value {
        with_default(spec, |spec| {
            build(spec, POD_SPEC, &self.pod_spec, &self.filter)
        })
    }

    pub(crate) fn node_spec(&self, spec: Option<&NodeSpec>) -> Value {
        with_default(spec, |spec| {
            build(spec, NODE_SPEC, &self.node_spec, &self.filter)
        })
    }
}

/// One Go struct field: its name and how to read it (nested values honour the filter).
type Field<T> = (&'static str, fn(&T, &FieldFilter) -> Value);

const OBJECT_META: &[Field<ObjectMeta>] = &[
    ("Name", |m, _| string(m.name.as_deref())),
    ("GenerateName", |m, _| string(m.generate_name.as_deref())),
    ("Namespace", |m, _| string(m.namespace.as_deref())),
    ("SelfLink", |m, _| string(m.self_link.as_deref())),
    ("UID", |m, _| string(m.uid.as_deref())),
    ("ResourceVersion", |m, _| {
        string(m.resource_version.as_deref())
    }),
    ("Generation", |m, _| {
        Value::Int(m.generation.unwrap_or_default())
    }),
    ("CreationTimestamp", |m, _| {
        Value::String(
            m.creation_timestamp
                .as_ref()
                .map_or_else(|| ZERO_TIME.to_owned(), go_time_string),
        )
    }),
    ("DeletionTimestamp", |m, _| {
        m.deletion_timestamp
            .as_ref()
            .map_or(Value::Nil, |t| Value::String(go_time_string(t)))
    }),
    ("DeletionGracePeriodSeconds", |m, _| {
        int_ptr(m.deletion_grace_period_seconds)
    }),
    ("Labels", |m, _| string_map(m.labels.as_ref())),
    ("Annotations", |m, _| string_map(m.annotations.as_ref())),
    ("OwnerReferences", |m, f| {
        list(m.owner_references.as_deref(), f)
    }),
    ("Finalizers", |m, f| list(m.finalizers.as_deref(), f)),
    ("ManagedFields", |m, f| list(m.managed_fields.as_deref(), f)),
];

const POD_SPEC: &[Field<PodSpec>] = &[
    ("Volumes", |p, f| list(p.volumes.as_deref(), f)),
    ("InitContainers", |p, f| {
        list(p.init_containers.as_deref(), f)
    }),
    ("Containers", |p, f| list(Some(p.containers.as_slice()), f)),
    ("EphemeralContainers", |p, f| {
        list(p.ephemeral_containers.as_deref(), f)
    }),
    ("RestartPolicy", |p, _| string(p.restart_policy.as_deref())),
    ("TerminationGracePeriodSeconds", |p, _| {
        int_ptr(p.termination_grace_period_seconds)
    }),
    ("ActiveDeadlineSeconds", |p, _| {
        int_ptr(p.active_deadline_seconds)
    }),
    ("DNSPolicy", |p, _| string(p.dns_policy.as_deref())),
    ("NodeSelector", |p, _| string_map(p.node_selector.as_ref())),
    ("ServiceAccountName", |p, _| {
        string(p.service_account_name.as_deref())
    }),
    ("DeprecatedServiceAccount", |p, _| {
        string(p.service_account.as_deref())
    }),
    ("AutomountServiceAccountToken", |p, _| {
        bool_ptr(p.automount_service_account_token)
    }),
    ("NodeName", |p, _| string(p.node_name.as_deref())),
    ("HostNetwork", |p, _| {
        Value::Bool(p.host_network.unwrap_or_default())
    }),
    ("HostPID", |p, _| {
        Value::Bool(p.host_pid.unwrap_or_default())
    }),
    ("HostIPC", |p, _| {
        Value::Bool(p.host_ipc.unwrap_or_default())
    }),
    ("ShareProcessNamespace", |p, _| {
        bool_ptr(p.share_process_namespace)
    }),
    ("SecurityContext", |p, f| {
        pointer(p.security_context.as_ref(), f)
    }),
    ("ImagePullSecrets", |p, f| {
        list(p.image_pull_secrets.as_deref(), f)
    }),
    ("Hostname", |p, _| string(p.hostname.as_deref())),
    ("Subdomain", |p, _| string(p.subdomain.as_deref())),
    ("Affinity", |p, f| pointer(p.affinity.as_ref(), f)),
    ("SchedulerName", |p, _| string(p.scheduler_name.as_deref())),
    ("Tolerations", |p, f| list(p.tolerations.as_deref(), f)),
    ("HostAliases", |p, f| list(p.host_aliases.as_deref(), f)),
    ("PriorityClassName", |p, _| {
        string(p.priority_class_name.as_deref())
    }),
    ("Priority", |p, _| int_ptr(p.priority.map(i64::from))),
    ("DNSConfig", |p, f| pointer(p.dns_config.as_ref(), f)),
    ("ReadinessGates", |p, f| {
        list(p.readiness_gates.as_deref(), f)
    }),
    ("RuntimeClassName", |p, _| {
        string_ptr(p.runtime_class_name.as_deref())
    }),
    ("EnableServiceLinks", |p, _| {
        bool_ptr(p.enable_service_links)
    }),
    ("PreemptionPolicy", |p, _| {
        string_ptr(p.preemption_policy.as_deref())
    }),
    ("Overhead", |p, f| {
        Value::Map(
            p.overhead
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), to_value(v, f)))
                .collect(),
        )
    }),
    ("TopologySpreadConstraints", |p, f| {
        list(p.topology_spread_constraints.as_deref(), f)
    }),
    ("SetHostnameAsFQDN", |p, _| bool_ptr(p.set_hostname_as_fqdn)),
    ("OS", |p, f| pointer(p.os.as_ref(), f)),
    ("HostUsers", |p, _| bool_ptr(p.host_users)),
    ("SchedulingGates", |p, f| {
        list(p.scheduling_gates.as_deref(), f)
    }),
    ("ResourceClaims", |p, f| {
        list(p.resource_claims.as_deref(), f)
    }),
    ("Resources", |p, f| pointer(p.resources.as_ref(), f)),
];

const NODE_SPEC: &[Field<NodeSpec>] = &[
    ("PodCIDR", |n, _| string(n.pod_cidr.as_deref())),
    ("PodCIDRs", |n, f| list(n.pod_cidrs.as_deref(), f)),
    ("ProviderID", |n, _| string(n.provider_id.as_deref())),
    ("Unschedulable", |n, _| {
        Value::Bool(n.unschedulable.unwrap_or_default())
    }),
    ("Taints", |n, f| list(n.taints.as_deref(), f)),
    ("ConfigSource", |n, f| pointer(n.config_source.as_ref(), f)),
    ("DoNotUseExternalID", |n, _| {
        string(n.external_id.as_deref())
    }),
];

/// The positions in `table` of the fields `filter` keeps.
fn project<T>(table: &[Field<T>], filter: &FieldFilter) -> Vec<usize> {
    (0..table.len())
        .filter(|&i| filter.allows(table[i].0))
        .collect()
}

fn build<T>(object: &T, table: &[Field<T>], fields: &[usize], filter: &FieldFilter) -> Value {
    Value::Struct(
        fields
            .iter()
            .map(|&i| {
                let (name, read) = table[i];
                (name.to_owned(), read(object, filter))
            })
            .collect(),
    )
}

fn with_default<T: Default>(value: Option<&T>, f: impl FnOnce(&T) -> Value) -> Value {
    match value {
        Some(value) => f(value),
        None => f(&T::default()),
    }
}

/// Go `string`.
fn string(v: Option<&str>) -> Value {
    Value::String(v.unwrap_or_default().to_owned())
}

/// Go `*string`.
fn string_ptr(v: Option<&str>) -> Value {
    v.map_or(Value::Nil, |s| Value::String(s.to_owned()))
}

/// Go `*bool`.
fn bool_ptr(v: Option<bool>) -> Value {
    v.map_or(Value::Nil, Value::Bool)
}

/// Go `*int64` / `*int32`.
fn int_ptr(v: Option<i64>) -> Value {
    v.map_or(Value::Nil, Value::Int)
}

/// Go `map[string]string` (nil when absent, which templates see as empty).
fn string_map(v: Option<&BTreeMap<String, String>>) -> Value {
    Value::Map(
        v.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Go slice (nil when absent).
fn list<T: Serialize>(v: Option<&[T]>, filter: &FieldFilter) -> Value {
    Value::List(
        v.unwrap_or_default()
            .iter()
            .map(|item| to_value(item, filter))
            .collect(),
    )
}

/// Go pointer to a struct.
fn pointer<T: Serialize>(v: Option<&T>, filter: &FieldFilter) -> Value {
    v.map_or(Value::Nil, |v| to_value(v, filter))
}

fn to_value<T: Serialize>(v: &T, filter: &FieldFilter) -> Value {
    // Kubernetes API types always serialise to JSON; a failure would be a k8s-openapi bug and
    // is rendered as nil rather than aborting the reconcile.
    serde_json::to_value(v).map_or(Value::Nil, |json| json_to_value(&json, filter))
}

#[cfg(test)]
mod tests;
