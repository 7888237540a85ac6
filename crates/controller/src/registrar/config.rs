//! Where a pod's SPIFFE ID and DNS names come from: `pod_label`, `pod_annotation` or
//! `identity_template` (gated by `identity_template_label`), and `dns_name_templates`, all
//! validated once at startup with dummy pod values as upstream does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use spire_gotmpl::{Template, Value};
use spire_id::{SpiffeId, TrustDomain};

use super::DEFAULT_DISABLED_NAMESPACES;
use super::error::RegistrarError;
use super::go_url::spiffe_id_string;
use super::validate::validate_dns_name;
use crate::config::registrar::{CrdMode, PodIdentity, RegistrarConfig};

/// `ns/{{.Pod.Namespace}}/sa/{{.Pod.ServiceAccount}}`: the identity template used when neither
/// `pod_label`, `pod_annotation` nor `identity_template` is configured.
pub const DEFAULT_IDENTITY_TEMPLATE: &str = "ns/{{.Pod.Namespace}}/sa/{{.Pod.ServiceAccount}}";

/// `{{.Pod.Name}}`: the DNS name templates when `dns_name_templates` is absent.
pub const DEFAULT_DNS_NAME_TEMPLATE: &str = "{{.Pod.Name}}";

/// Name the identity template is parsed under (appears in Go template errors).
const IDENTITY_TEMPLATE_NAME: &str = "IdentityTemplate";

/// Name each DNS name template is parsed under (appears in Go template errors).
const DNS_NAME_TEMPLATE_NAME: &str = "DNSNameTemplate";

/// What a template must contain (spaces removed) to reference the context.
const CONTEXT_REFERENCE: &str = "{{.Context.";

/// The registrar settings that shape `SpiffeID` objects, as decoded from the HCL file. Strings
/// follow upstream: empty means "not set".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarSettings {
    /// `trust_domain`.
    pub trust_domain: TrustDomain,
    /// `cluster`: the k8s_psat cluster name used in node alias IDs and selectors.
    pub cluster: String,
    /// `pod_label`: the label whose value is the pod's SPIFFE ID path.
    pub pod_label: String,
    /// `pod_annotation`: the annotation whose value is the pod's SPIFFE ID path.
    pub pod_annotation: String,
    /// `identity_template`: Go template rendering the SPIFFE ID path.
    pub identity_template: String,
    /// `identity_template_label`: when set, only pods with this label equal to `true`
    /// (case-insensitive) get a templated identity.
    pub identity_template_label: String,
    /// `dns_name_templates`; `None` means `["{{.Pod.Name}}"]`, `Some([])` means no DNS names.
    pub dns_name_templates: Option<Vec<String>>,
    /// `context`: values for `{{.Context.<key>}}`.
    pub context: Option<BTreeMap<String, String>>,
    /// `disabled_namespaces`: namespaces whose pods and endpoints are ignored.
    pub disabled_namespaces: Vec<String>,
}

/// Where pod SPIFFE IDs come from, after defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// The value of this pod label is the ID path; pods without it get no object.
    PodLabel(String),
    /// The value of this pod annotation is the ID path; pods without it get no object.
    PodAnnotation(String),
    /// The rendered template is the ID path.
    Template {
        /// The template text (the default is [`DEFAULT_IDENTITY_TEMPLATE`]).
        template: String,
        /// When set, only pods whose label of this name equals `true` (case-insensitive).
        label: Option<String>,
    },
}

/// The pod fields templates see as `.Pod.<Field>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `.Pod.Name`: `metadata.name`.
    pub name: String,
    /// `.Pod.UID`: `metadata.uid`.
    pub uid: String,
    /// `.Pod.Namespace`: `metadata.namespace`.
    pub namespace: String,
    /// `.Pod.ServiceAccount`: `spec.serviceAccountName`.
    pub service_account: String,
    /// `.Pod.Hostname`: `spec.hostname`.
    pub hostname: String,
    /// `.Pod.NodeName`: `spec.nodeName`.
    pub node_name: String,
}

/// The registrar engine's validated settings with their templates parsed: what the pod, node
/// and endpoints logic consults. Built by [`Registrar::new`].
#[derive(Clone, Debug)]
pub struct Registrar {
    trust_domain: TrustDomain,
    cluster: String,
    source: IdentitySource,
    identity_template: Option<Template>,
    dns_name_templates: Vec<Template>,
    context: Option<BTreeMap<String, String>>,
    disabled_namespaces: Vec<String>,
}

// === impl RegistrarSettings ===

impl RegistrarSettings {
    /// Settings with upstream's defaults: identity from the default template, DNS names from
    /// the default template, `kube-system` and `kube-public` disabled.
    pub fn new(trust_domain: TrustDomain, cluster: impl Into<String>) -> Self {
        Self {
            trust_domain,
            cluster: cluster.into(),
            pod_label: String::new(),
            pod_annotation: String::new(),
            identity_template: String::new(),
            identity_template_label: String::new(),
            dns_name_templates: None,
            context: None,
            disabled_namespaces: DEFAULT_DISABLED_NAMESPACES
                .iter()
                .map(|ns| (*ns).to_owned())
                .collect(),
        }
    }

    /// The settings of a resolved CRD-mode configuration file (`mode` = `crd`). The file's
    /// checks are repeated by [`Registrar::new`], which also validates the templates.
    pub fn from_config(config: &RegistrarConfig, crd: &CrdMode) -> Self {
        let mut settings = Self {
            dns_name_templates: Some(crd.dns_name_templates.clone()),
            context: crd.context.clone(),
            disabled_namespaces: config.disabled_namespaces.clone(),
            ..Self::new(config.trust_domain.clone(), config.cluster.clone())
        };
        match &crd.identity {
            PodIdentity::Label(label) => settings.pod_label = label.clone(),
            PodIdentity::Annotation(annotation) => settings.pod_annotation = annotation.clone(),
            PodIdentity::Template { template, label } => {
                settings.identity_template = template.clone();
                settings.identity_template_label = label.clone().unwrap_or_default();
            }
        }
        settings
    }
}

// === impl PodInfo ===

impl PodInfo {
    /// Reads the template fields of `pod`; absent fields are empty.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let field = |v: Option<&String>| v.cloned().unwrap_or_default();
        Self {
            name: field(meta.name.as_ref()),
            uid: field(meta.uid.as_ref()),
            namespace: field(meta.namespace.as_ref()),
            service_account: field(spec.and_then(|s| s.service_account_name.as_ref())),
            hostname: field(spec.and_then(|s| s.hostname.as_ref())),
            node_name: field(spec.and_then(|s| s.node_name.as_ref())),
        }
    }

    /// The values upstream validates templates with at startup.
    fn dummy() -> Self {
        let xx = || "xx".to_owned();
        Self {
            name: xx(),
            uid: "123".to_owned(),
            namespace: xx(),
            service_account: xx(),
            hostname: xx(),
            node_name: xx(),
        }
    }

    fn to_value(&self) -> Value {
        let s = |v: &str| Value::String(v.to_owned());
        Value::Struct(BTreeMap::from([
            ("Name".to_owned(), s(&self.name)),
            ("UID".to_owned(), s(&self.uid)),
            ("Namespace".to_owned(), s(&self.namespace)),
            ("ServiceAccount".to_owned(), s(&self.service_account)),
            ("Hostname".to_owned(), s(&self.hostname)),
            ("NodeName".to_owned(), s(&self.node_name)),
        ]))
    }
}

// === impl Registrar ===

impl Registrar {
    /// Applies defaults, checks the settings, parses the templates and renders them once with
    /// dummy pod values (identity must form a valid SPIFFE ID path under a test trust domain,
    /// each DNS name must be valid), failing with upstream's messages.
    pub fn new(settings: RegistrarSettings) -> Result<Self, RegistrarError> {
        let RegistrarSettings {
            trust_domain,
            cluster,
            pod_label,
            pod_annotation,
            identity_template,
            identity_template_label,
            dns_name_templates,
            context,
            disabled_namespaces,
        } = settings;

        if !pod_label.is_empty() && !pod_annotation.is_empty() {
            return Err(RegistrarError::LabelAndAnnotation);
        }
        if !identity_template.is_empty() && (!pod_label.is_empty() || !pod_annotation.is_empty()) {
            return Err(RegistrarError::TemplateWithLabelOrAnnotation);
        }
        if context.is_none() {
            if references_context(&identity_template) {
                return Err(RegistrarError::IdentityTemplateContext);
            }
            if dns_name_templates
                .iter()
                .flatten()
                .any(|t| references_context(t))
            {
                return Err(RegistrarError::DnsNameTemplateContext);
            }
        }
        let dns_name_templates =
            dns_name_templates.unwrap_or_else(|| vec![DEFAULT_DNS_NAME_TEMPLATE.to_owned()]);

        let source = if !pod_label.is_empty() {
            IdentitySource::PodLabel(pod_label)
        } else if !pod_annotation.is_empty() {
            IdentitySource::PodAnnotation(pod_annotation)
        } else {
            IdentitySource::Template {
                template: if identity_template.is_empty() {
                    DEFAULT_IDENTITY_TEMPLATE.to_owned()
                } else {
                    identity_template
                },
                label: Some(identity_template_label).filter(|l| !l.is_empty()),
            }
        };

        let identity_template = match &source {
            IdentitySource::Template { template, .. } => Some(
                Template::parse(IDENTITY_TEMPLATE_NAME, template)
                    .map_err(RegistrarError::ParseIdentityTemplate)?,
            ),
            _ => None,
        };
        let dns_name_templates = dns_name_templates
            .iter()
            .map(|t| {
                Template::parse(DNS_NAME_TEMPLATE_NAME, &t.replace(' ', ""))
                    .map_err(RegistrarError::ParseDnsNameTemplate)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let config = Self {
            trust_domain,
            cluster,
            source,
            identity_template,
            dns_name_templates,
            context,
            disabled_namespaces,
        };
        config.validate_templates()?;
        Ok(config)
    }

    fn validate_templates(&self) -> Result<(), RegistrarError> {
        let data = self.template_data(&PodInfo::dummy());
        if let Some(template) = &self.identity_template {
            let path = template
                .execute(&data)
                .map_err(RegistrarError::ExecuteIdentityTemplate)?;
            SpiffeId::parse(&format!("spiffe://testdomain/{path}"))
                .map_err(RegistrarError::ValidateIdentityTemplate)?;
        }
        for template in &self.dns_name_templates {
            let name = template
                .execute(&data)
                .map_err(RegistrarError::ExecuteDnsNameTemplate)?;
            validate_dns_name(&name).map_err(RegistrarError::ValidateDnsNameTemplate)?;
        }
        Ok(())
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The k8s_psat cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Where pod identities come from.
    pub fn identity_source(&self) -> &IdentitySource {
        &self.source
    }

    /// True when pods and endpoints in `namespace` are ignored.
    pub fn is_namespace_disabled(&self, namespace: &str) -> bool {
        self.disabled_namespaces.iter().any(|ns| ns == namespace)
    }

    /// The data templates execute against: `.Pod` (a struct of [`PodInfo`]'s Go field names)
    /// and `.Context` (the configured map; empty when none, where Go's nil map behaves alike).
    pub fn template_data(&self, pod: &PodInfo) -> Value {
        let context = self
            .context
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Struct(BTreeMap::from([
            ("Context".to_owned(), Value::Map(context)),
            ("Pod".to_owned(), pod.to_value()),
        ]))
    }

    /// The SPIFFE ID (as upstream formats it) the pod should have, or `None` when the pod is
    /// not selected: label/annotation absent, or `identity_template_label` not `true`.
    pub fn pod_identity(&self, pod: &Pod) -> Result<Option<String>, RegistrarError> {
        let meta = &pod.metadata;
        let path = match &self.source {
            IdentitySource::PodLabel(key) => meta.labels.as_ref().and_then(|l| l.get(key)).cloned(),
            IdentitySource::PodAnnotation(key) => {
                meta.annotations.as_ref().and_then(|a| a.get(key)).cloned()
            }
            IdentitySource::Template { label, .. } => {
                if let Some(label) = label {
                    let selected = meta
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(label))
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                    if !selected {
                        return Ok(None);
                    }
                }
                match &self.identity_template {
                    Some(template) => Some(
                        template
                            .execute(&self.template_data(&PodInfo::from_pod(pod)))
                            .map_err(RegistrarError::ExecuteIdentityTemplate)?,
                    ),
                    None => None,
                }
            }
        };
        Ok(path.map(|p| spiffe_id_string(&self.trust_domain, &p)))
    }

    /// The pod's DNS names: each DNS name template rendered, in order (not validated, as
    /// upstream; the first becomes the X509-SVID's CN).
    pub fn pod_dns_names(&self, pod: &Pod) -> Result<Vec<String>, RegistrarError> {
        let data = self.template_data(&PodInfo::from_pod(pod));
        self.dns_name_templates
            .iter()
            .map(|t| {
                t.execute(&data)
                    .map_err(RegistrarError::ExecuteDnsNameTemplate)
            })
            .collect()
    }

    /// `spiffe://<td>/k8s-workload-registrar/<cluster>/node/<node>`: the node alias ID pods on
    /// `node_name` are parented to.
    pub fn node_alias_id(&self, node_name: &str) -> String {
        node_alias_id(&self.trust_domain, &self.cluster, node_name)
    }
}

/// `spiffe://<td>/k8s-workload-registrar/<cluster>/node/<node>`.
pub(crate) fn node_alias_id(trust_domain: &TrustDomain, cluster: &str, node_name: &str) -> String {
    spiffe_id_string(
        trust_domain,
        &format!("k8s-workload-registrar/{cluster}/node/{node_name}"),
    )
}

fn references_context(template: &str) -> bool {
    template.replace(' ', "").contains(CONTEXT_REFERENCE)
}

#[cfg(test)]
mod tests;
