use spire_id::IdError;
use spire_id::go_fmt::quote;

use super::validate::DnsNameError;

/// Why the registrar refused a configuration, could not derive an object or entry, or rejected
/// a `SpiffeID`. Messages are upstream's, so logs and admission responses read the same.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrarError {
    /// `pod_label` and `pod_annotation` are both set.
    #[error(
        "workload registration mode specification is incorrect, can't specify both pod_label and pod_annotation"
    )]
    LabelAndAnnotation,
    /// `identity_template` is set together with `pod_label` or `pod_annotation`.
    #[error(
        "workload registration configuration is incorrect, can only use one of identity_template, pod_annotation, or pod_label"
    )]
    TemplateWithLabelOrAnnotation,
    /// `identity_template` uses `{{.Context.…}}` but no `context` is configured.
    #[error("identity_template references non-existing context")]
    IdentityTemplateContext,
    /// A DNS name template uses `{{.Context.…}}` but no `context` is configured.
    #[error("dns_name_template references non-existing context")]
    DnsNameTemplateContext,
    /// The identity template does not parse.
    #[error("parsing identity template: {0}")]
    ParseIdentityTemplate(spire_gotmpl::Error),
    /// A DNS name template does not parse.
    #[error("parsing dns name template: {0}")]
    ParseDnsNameTemplate(spire_gotmpl::Error),
    /// The identity template failed to execute (at startup with dummy data, or for a pod).
    #[error("executing identity template: {0}")]
    ExecuteIdentityTemplate(spire_gotmpl::Error),
    /// The identity template, rendered with dummy data, is not a valid SPIFFE ID path.
    #[error("validating identity template: {0}")]
    ValidateIdentityTemplate(IdError),
    /// A DNS name template failed to execute (at startup with dummy data, or for a pod).
    #[error("executing the dns name template: {0}")]
    ExecuteDnsNameTemplate(spire_gotmpl::Error),
    /// A DNS name template, rendered with dummy data, is not a valid DNS name.
    #[error("validating the dns name template: {0}")]
    ValidateDnsNameTemplate(DnsNameError),
    /// `spec.parentId` of a `SpiffeID` is not a SPIFFE ID.
    #[error("malformed CRD parent ID: {0}")]
    MalformedParentId(IdError),
    /// `spec.spiffeId` of a `SpiffeID` is not a SPIFFE ID.
    #[error("malformed CRD SPIFFE ID: {0}")]
    MalformedSpiffeId(IdError),
    /// Webhook: `spec.parentId` is outside the trust domain (`prefix` is `spiffe://<td>`).
    #[error("spec.parentId must begin with {prefix}")]
    ParentIdOutsideTrustDomain {
        /// `spiffe://<trust domain>`.
        prefix: String,
    },
    /// Webhook: `spec.spiffeId` is outside the trust domain (`prefix` is `spiffe://<td>`).
    #[error("spec.spiffeId must begin with {prefix}")]
    SpiffeIdOutsideTrustDomain {
        /// `spiffe://<trust domain>`.
        prefix: String,
    },
    /// Webhook: `k8s_psat` selectors on an object outside the registrar's namespace.
    #[error(
        "spec.Selector.Cluster and spec.Selector.AgentNodeUid can only be used by the k8s-workload-registrar"
    )]
    PsatSelectorOutsideRegistrar,
    /// Webhook: `spec.selector.namespace` differs from the object's namespace.
    #[error("spec.Selector.Namespace must match namespace of resource")]
    NamespaceMismatch,
    /// Webhook: a DNS name in `spec.dnsNames` is invalid.
    #[error("invalid DNS name {}: {source}", quote(.name))]
    InvalidDnsName {
        /// The offending name.
        name: String,
        /// Why it is invalid.
        source: DnsNameError,
    },
    /// Webhook (create): an entry with the same selectors and SPIFFE ID belongs to another object.
    #[error("Duplicate detected")]
    Duplicate,
    /// Webhook (create): an entry listed by spire-server has an unusable SPIFFE ID.
    #[error("entry SPIFFE ID is malformed: {0}")]
    MalformedEntrySpiffeId(IdError),
}
