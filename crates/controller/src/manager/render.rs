//! From specs to SPIRE entries: a ClusterSPIFFEID spec parsed once ([`ParsedClusterSpiffeId`]) and
//! rendered per pod ([`render_pod_entry`]), and a ClusterStaticEntry spec taken as it is
//! ([`render_static_entry`]). Messages are spire-controller-manager's.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use spire_config::de::GoDuration;
use spire_gotmpl::{Template, Value};
use spire_id::go_fmt::quote;
use spire_id::{SpiffeId, TrustDomain};
use spire_proto::spire::api::types::{Entry, Selector, Spiffeid};

use super::data::{DataShape, FieldFilter};
use super::selector::LabelMatcher;
use super::{Error, id_to_proto};

/// Template names, as Go's parse and execution errors quote them.
const SPIFFE_ID_TEMPLATE: &str = "spiffeIDTemplate";
const DNS_NAME_TEMPLATE: &str = "dnsNameTemplate";
const WORKLOAD_SELECTOR_TEMPLATE: &str = "workloadSelectorTemplate";
const PARENT_ID_TEMPLATE: &str = "customParentIDTemplate";

/// What every rendering shares: the controller's trust domain, cluster and parent ID template.
#[derive(Clone, Debug)]
pub struct RenderContext {
    trust_domain: TrustDomain,
    cluster_name: String,
    cluster_domain: String,
    parent_id_template: Option<Tmpl>,
    parent_shape: DataShape,
}

/// A validated ClusterSPIFFEID spec: templates parsed, selectors and durations checked.
#[derive(Clone, Debug)]
pub struct ParsedClusterSpiffeId {
    spiffe_id: Tmpl,
    namespace_selector: LabelMatcher,
    pod_selector: LabelMatcher,
    x509_svid_ttl: i32,
    jwt_svid_ttl: i32,
    federates_with: Vec<String>,
    dns_names: Vec<Tmpl>,
    workload_selectors: Vec<Tmpl>,
    admin: bool,
    downstream: bool,
    auto_populate_dns_names: bool,
    fallback: bool,
    hint: String,
    fields: FieldFilter,
}

/// A template that is either plain text (Go renders text without actions verbatim) or parsed.
#[derive(Clone, Debug)]
pub(crate) enum Tmpl {
    Literal(String),
    Parsed { text: String, template: Template },
}

/// Template data for one pod, built on first use.
pub(crate) struct PodData<'a> {
    ctx: &'a RenderContext,
    pod: &'a Pod,
    node: &'a Node,
    shape: &'a DataShape,
    value: Option<Value>,
}

// === impl RenderContext ===

impl RenderContext {
    /// The context for `trust_domain` and `cluster_name`; `cluster_domain` may be empty.
    /// `parent_id_template` replaces the default parent
    /// `spiffe://{{ .TrustDomain }}/spire/agent/k8s_psat/{{ .ClusterName }}/{{ .NodeMeta.UID }}`.
    pub fn new(
        trust_domain: TrustDomain,
        cluster_name: impl Into<String>,
        cluster_domain: impl Into<String>,
        parent_id_template: Option<&str>,
    ) -> Result<Self, Error> {
        let parent_id_template = parent_id_template
            .filter(|t| !t.is_empty())
            .map(|text| {
                Tmpl::parse(PARENT_ID_TEMPLATE, text).map_err(|e| {
                    Error::InvalidConfig(format!("unable to parse parent ID template: {e}"))
                })
            })
            .transpose()?;
        let parent_shape = DataShape::new(FieldFilter::from_templates(
            parent_id_template.iter().map(Tmpl::text),
        ));
        Ok(Self {
            trust_domain,
            cluster_name: cluster_name.into(),
            cluster_domain: cluster_domain.into(),
            parent_id_template,
            parent_shape,
        })
    }

    /// The trust domain entries are rendered in.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The cluster name (`.ClusterName`).
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The cluster DNS domain (`.ClusterDomain`), possibly empty.
    pub fn cluster_domain(&self) -> &str {
        &self.cluster_domain
    }

    /// The parent ID of every pod entry on `node`: the agent's ID under k8s_psat, or the
    /// rendered `parentIDTemplate`. It depends only on the node, so callers may cache it.
    pub fn parent_id(&self, node: &Node) -> Result<Spiffeid, Error> {
        let fail = |detail: String| Error::Render(format!("failed to render parent ID: {detail}"));
        let rendered = match &self.parent_id_template {
            None => format!(
                "spiffe://{}/spire/agent/k8s_psat/{}/{}",
                self.trust_domain.name(),
                self.cluster_name,
                node.metadata.uid.as_deref().unwrap_or_default()
            ),
            Some(template) => {
                let mut data = None;
                template
                    .render(|| data.get_or_insert_with(|| self.parent_data(node)))
                    .map_err(|e| fail(format!("failed to execute template: {e}")))?
            }
        };
        let id = SpiffeId::parse(&rendered).map_err(|e| fail(format!("invalid SPIFFE ID: {e}")))?;
        Ok(id_to_proto(&id))
    }

    /// `.TrustDomain`, `.ClusterName`, `.ClusterDomain`, `.NodeMeta`, `.NodeSpec`.
    fn parent_data(&self, node: &Node) -> Value {
        let shape = &self.parent_shape;
        let mut root = self.root_fields();
        if shape.allows("NodeMeta") {
            root.insert("NodeMeta".into(), shape.object_meta(&node.metadata));
        }
        if shape.allows("NodeSpec") {
            root.insert("NodeSpec".into(), shape.node_spec(node.spec.as_ref()));
        }
        Value::Struct(root)
    }

    fn root_fields(&self) -> std::collections::BTreeMap<String, Value> {
        std::collections::BTreeMap::from([
            (
                "TrustDomain".to_owned(),
                Value::String(self.trust_domain.name().to_owned()),
            ),
            (
                "ClusterName".to_owned(),
                Value::String(self.cluster_name.clone()),
            ),
            (
                "ClusterDomain".to_owned(),
                Value::String(self.cluster_domain.clone()),
            ),
        ])
    }
}

// === impl ParsedClusterSpiffeId ===

impl ParsedClusterSpiffeId {
    /// Validates `spec` as the ClusterSPIFFEID webhook does.
    pub fn parse(spec: &crate::crd::ClusterSpiffeIdSpec) -> Result<Self, Error> {
        if spec.spiffe_id_template.is_empty() {
            return Err(Error::InvalidSpec("empty SPIFFEID template".into()));
        }
        let spiffe_id = Tmpl::parse(SPIFFE_ID_TEMPLATE, &spec.spiffe_id_template)
            .map_err(|e| Error::InvalidSpec(format!("invalid SPIFFEID template: {e}")))?;
        let namespace_selector = LabelMatcher::parse(spec.namespace_selector.as_ref())?;
        let pod_selector = LabelMatcher::parse(spec.pod_selector.as_ref())?;
        let x509_svid_ttl = parse_ttl("ttl", spec.ttl.as_deref())?;
        let jwt_svid_ttl = parse_ttl("jwtTtl", spec.jwt_ttl.as_deref())?;
        let federates_with = parse_federates_with(&spec.federates_with)?;
        let dns_names = spec
            .dns_name_templates
            .iter()
            .map(|text| {
                Tmpl::parse(DNS_NAME_TEMPLATE, text)
                    .map_err(|e| Error::InvalidSpec(format!("invalid dnsNameTemplate value: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let workload_selectors = spec
            .workload_selector_templates
            .iter()
            .map(|text| {
                Tmpl::parse(WORKLOAD_SELECTOR_TEMPLATE, text).map_err(|e| {
                    Error::InvalidSpec(format!("invalid workloadSelectorTemplates value: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fields = FieldFilter::from_templates(
            std::iter::once(&spiffe_id)
                .chain(&dns_names)
                .chain(&workload_selectors)
                .filter(|t| !t.is_literal())
                .map(Tmpl::text),
        );
        Ok(Self {
            spiffe_id,
            namespace_selector,
            pod_selector,
            x509_svid_ttl,
            jwt_svid_ttl,
            federates_with,
            dns_names,
            workload_selectors,
            admin: spec.admin,
            downstream: spec.downstream,
            auto_populate_dns_names: spec.auto_populate_dns_names,
            fallback: spec.fallback,
            hint: spec.hint.clone(),
            fields,
        })
    }

    /// Which namespaces the object targets.
    pub fn namespace_selector(&self) -> &LabelMatcher {
        &self.namespace_selector
    }

    /// Which pods (within the namespaces) the object targets.
    pub fn pod_selector(&self) -> &LabelMatcher {
        &self.pod_selector
    }

    /// Applies only to pods no non-fallback object declared an entry for.
    pub fn fallback(&self) -> bool {
        self.fallback
    }

    /// Adds the DNS names of the services whose endpoints target the pod.
    pub fn auto_populate_dns_names(&self) -> bool {
        self.auto_populate_dns_names
    }

    /// The pod and node fields the templates can reach.
    pub fn fields(&self) -> &FieldFilter {
        &self.fields
    }

    /// Whether rendering needs pod or node data at all (some template is not plain text).
    pub(crate) fn needs_data(&self) -> bool {
        std::iter::once(&self.spiffe_id)
            .chain(&self.dns_names)
            .chain(&self.workload_selectors)
            .any(|t| !t.is_literal())
    }
}

/// Renders the entry `parsed` declares for `pod` scheduled on `node`. `service_dns_names` are
/// the names of the services targeting the pod ([`service_dns_names`]); they are added only
/// with `autoPopulateDNSNames`.
pub fn render_pod_entry(
    parsed: &ParsedClusterSpiffeId,
    ctx: &RenderContext,
    pod: &Pod,
    node: &Node,
    service_dns_names: &[String],
) -> Result<Entry, Error> {
    let parent_id = ctx.parent_id(node)?;
    let shape = DataShape::new(parsed.fields().clone());
    let mut data = PodData::new(ctx, pod, node, &shape);
    render_with(parsed, ctx, pod, parent_id, service_dns_names, &mut data)
}

/// [`render_pod_entry`] with the parent ID and lazily built template data supplied by the
/// caller (the declare loop caches both).
pub(crate) fn render_with(
    parsed: &ParsedClusterSpiffeId,
    ctx: &RenderContext,
    pod: &Pod,
    parent_id: Spiffeid,
    service_dns_names: &[String],
    data: &mut PodData<'_>,
) -> Result<Entry, Error> {
    let spiffe_id = {
        let fail = |detail: String| Error::Render(format!("failed to render SPIFFE ID: {detail}"));
        let rendered = parsed
            .spiffe_id
            .render(|| data.get())
            .map_err(|e| fail(format!("failed to execute template: {e}")))?;
        let id = SpiffeId::parse(&rendered).map_err(|e| fail(format!("invalid SPIFFE ID: {e}")))?;
        if id.trust_domain() != &ctx.trust_domain {
            return Err(fail(format!(
                "invalid SPIFFE ID: expected trust domain {} but got {}",
                quote(ctx.trust_domain.name()),
                quote(id.trust_domain().name())
            )));
        }
        id_to_proto(&id)
    };

    let mut dns_names = Vec::with_capacity(parsed.dns_names.len());
    let mut seen = HashSet::new();
    for template in &parsed.dns_names {
        let name = template.render(|| data.get()).map_err(|e| {
            Error::Render(format!(
                "failed to render DNS name: failed to execute template: {e}"
            ))
        })?;
        if seen.insert(name.clone()) {
            dns_names.push(name);
        }
    }
    if parsed.auto_populate_dns_names {
        for name in service_dns_names {
            if seen.insert(name.clone()) {
                dns_names.push(name.clone());
            }
        }
    }

    let mut selectors = Vec::with_capacity(1 + parsed.workload_selectors.len());
    selectors.push(Selector {
        r#type: "k8s".into(),
        value: ["pod-uid:", pod.metadata.uid.as_deref().unwrap_or_default()].concat(),
    });
    for template in &parsed.workload_selectors {
        let fail =
            |detail: String| Error::Render(format!("failed to render workload selector: {detail}"));
        let rendered = template
            .render(|| data.get())
            .map_err(|e| fail(format!("failed to execute template: {e}")))?;
        let selector = parse_selector(&rendered).map_err(|e| {
            fail(format!(
                "invalid workload selector {}: {e}",
                quote(&rendered)
            ))
        })?;
        selectors.push(selector);
    }

    Ok(Entry {
        spiffe_id: Some(spiffe_id),
        parent_id: Some(parent_id),
        selectors,
        x509_svid_ttl: parsed.x509_svid_ttl,
        jwt_svid_ttl: parsed.jwt_svid_ttl,
        federates_with: parsed.federates_with.clone(),
        admin: parsed.admin,
        downstream: parsed.downstream,
        dns_names,
        hint: parsed.hint.clone(),
        ..Entry::default()
    })
}

/// The DNS names of the services whose `endpoints` target a pod: `<svc>`, `<svc>.<ns>`,
/// `<svc>.<ns>.svc` and, with a cluster domain, `<svc>.<ns>.svc.<domain>`, sorted.
pub fn service_dns_names(endpoints: &[&Endpoints], cluster_domain: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(endpoints.len() * 4);
    for ep in endpoints {
        let name = ep.metadata.name.as_deref().unwrap_or_default();
        let namespace = ep.metadata.namespace.as_deref().unwrap_or_default();
        names.push(name.to_owned());
        names.push(format!("{name}.{namespace}"));
        names.push(format!("{name}.{namespace}.svc"));
        if !cluster_domain.is_empty() {
            names.push(format!("{name}.{namespace}.svc.{cluster_domain}"));
        }
    }
    names.sort();
    names
}

/// The UIDs of the pods `endpoints` targets (ready or not).
pub(crate) fn endpoints_target_pods(endpoints: &Endpoints) -> impl Iterator<Item = &str> {
    endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|subset| {
            subset
                .addresses
                .iter()
                .flatten()
                .chain(subset.not_ready_addresses.iter().flatten())
        })
        .filter_map(|address| address.target_ref.as_ref())
        .filter(|target| target.kind.as_deref() == Some("Pod"))
        .filter_map(|target| target.uid.as_deref())
}

/// The entry a ClusterStaticEntry spec declares.
pub fn render_static_entry(spec: &crate::crd::ClusterStaticEntrySpec) -> Result<Entry, Error> {
    let spiffe_id = SpiffeId::parse(&spec.spiffe_id)
        .map_err(|e| Error::InvalidSpec(format!("failed to parse SPIFFEID: {e}")))?;
    let parent_id = SpiffeId::parse(&spec.parent_id)
        .map_err(|e| Error::InvalidSpec(format!("failed to parse ParentID: {e}")))?;
    let selectors = spec
        .selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidSpec(format!("failed to parse Selectors: {e}")))?;
    let federates_with = parse_federates_with(&spec.federates_with)?;
    let x509_svid_ttl = parse_ttl("x509SVIDTTL", spec.x509_svid_ttl.as_deref())?;
    let jwt_svid_ttl = parse_ttl("jwtSVIDTTL", spec.jwt_svid_ttl.as_deref())?;
    Ok(Entry {
        spiffe_id: Some(id_to_proto(&spiffe_id)),
        parent_id: Some(id_to_proto(&parent_id)),
        selectors,
        x509_svid_ttl,
        jwt_svid_ttl,
        federates_with,
        admin: spec.admin,
        downstream: spec.downstream,
        dns_names: spec.dns_names.clone(),
        hint: spec.hint.clone(),
        store_svid: spec.store_svid,
        ..Entry::default()
    })
}

/// `type:value`, split at the first colon; neither part may be empty.
fn parse_selector(s: &str) -> Result<Selector, &'static str> {
    match s.split_once(':') {
        None => Err("expected at least one colon separate the type from the value"),
        Some(("", _)) => Err("type cannot be empty"),
        Some((_, "")) => Err("value cannot be empty"),
        Some((t, v)) => Ok(Selector {
            r#type: t.to_owned(),
            value: v.to_owned(),
        }),
    }
}

/// Trust domain names (or IDs) to the bare names the entry API takes.
fn parse_federates_with(values: &[String]) -> Result<Vec<String>, Error> {
    values
        .iter()
        .map(|value| {
            TrustDomain::parse(value)
                .map(|td| td.name().to_owned())
                .map_err(|e| Error::InvalidSpec(format!("invalid federatesWith value: {e}")))
        })
        .collect()
}

/// A Go duration as the entry API's whole seconds (absent = 0, the server default).
fn parse_ttl(field: &str, value: Option<&str>) -> Result<i32, Error> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let duration: Duration = GoDuration::parse(value)
        .map_err(|e| Error::InvalidSpec(format!("invalid {field} value: {e}")))?
        .into();
    Ok(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX))
}

// === impl Tmpl ===

impl Tmpl {
    pub(crate) fn parse(name: &str, text: &str) -> Result<Self, spire_gotmpl::Error> {
        if !text.contains("{{") {
            return Ok(Self::Literal(text.to_owned()));
        }
        Ok(Self::Parsed {
            text: text.to_owned(),
            template: Template::parse(name, text)?,
        })
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Self::Literal(text) | Self::Parsed { text, .. } => text,
        }
    }

    pub(crate) fn is_literal(&self) -> bool {
        matches!(self, Self::Literal(_))
    }

    /// Renders against the data `data` yields; plain text never asks for it.
    pub(crate) fn render<'v>(
        &self,
        data: impl FnOnce() -> &'v Value,
    ) -> Result<String, spire_gotmpl::Error> {
        match self {
            Self::Literal(text) => Ok(text.clone()),
            Self::Parsed { template, .. } => template.execute(data()),
        }
    }
}

// === impl PodData ===

impl<'a> PodData<'a> {
    pub(crate) fn new(
        ctx: &'a RenderContext,
        pod: &'a Pod,
        node: &'a Node,
        shape: &'a DataShape,
    ) -> Self {
        Self {
            ctx,
            pod,
            node,
            shape,
            value: None,
        }
    }

    /// `.TrustDomain`, `.ClusterName`, `.ClusterDomain`, `.PodMeta`, `.PodSpec`, `.NodeMeta`,
    /// `.NodeSpec` (the last four only when a template names them).
    pub(crate) fn get(&mut self) -> &Value {
        self.value.get_or_insert_with(|| {
            let shape = self.shape;
            let mut root = self.ctx.root_fields();
            if shape.allows("PodMeta") {
                root.insert("PodMeta".into(), shape.object_meta(&self.pod.metadata));
            }
            if shape.allows("PodSpec") {
                root.insert("PodSpec".into(), shape.pod_spec(self.pod.spec.as_ref()));
            }
            if shape.allows("NodeMeta") {
                root.insert("NodeMeta".into(), shape.object_meta(&self.node.metadata));
            }
            if shape.allows("NodeSpec") {
                root.insert("NodeSpec".into(), shape.node_spec(self.node.spec.as_ref()));
            }
            Value::Struct(root)
        })
    }
}

#[cfg(test)]
mod tests;
