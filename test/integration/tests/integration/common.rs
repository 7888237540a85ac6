//! Shared by the suite: the x509pop test PKI and small assertions on Workload API answers.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use spire_integration_tests::spiffe::{WorkloadApiClient, X509Context, X509Svid};
use spire_integration_tests::{chain_verifies, eventually};

/// A test CA for x509pop and one node certificate it signed, as PEM files in `dir`.
pub(crate) struct NodePki {
    /// `ca.pem`: the server's `ca_bundle_path`.
    pub(crate) ca_path: PathBuf,
    /// `node.key`: the agent's `private_key_path`.
    pub(crate) key_path: PathBuf,
    /// `node.pem`: the agent's `certificate_path`.
    pub(crate) cert_path: PathBuf,
}

impl NodePki {
    /// A CA and a leaf with CN `cn` (EC P-256, clientAuth).
    pub(crate) fn new(dir: &Path, cn: &str) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "x509pop test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name.push(DnType::CommonName, cn);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();

        let pki = Self {
            ca_path: dir.join("ca.pem"),
            key_path: dir.join("node.key"),
            cert_path: dir.join("node.pem"),
        };
        std::fs::write(&pki.ca_path, ca_cert.pem()).unwrap();
        std::fs::write(&pki.key_path, key.serialize_pem()).unwrap();
        std::fs::write(&pki.cert_path, leaf_cert.pem()).unwrap();
        pki
    }

    /// The server's `NodeAttestor "x509pop"` block.
    pub(crate) fn server_plugin(&self) -> String {
        format!(
            "NodeAttestor \"x509pop\" {{\n        plugin_data {{ ca_bundle_path = \"{}\" }}\n    }}",
            self.ca_path.display()
        )
    }
}

/// DER chain of an SVID, leaf first.
pub(crate) fn chain(svid: &X509Svid) -> Vec<Vec<u8>> {
    svid.cert_chain()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect()
}

/// DER serial (hex) of an SVID's leaf.
pub(crate) fn serial(svid: &X509Svid) -> String {
    spire_integration_tests::leaf_serial(svid.leaf().as_ref()).unwrap()
}

/// The SPIFFE IDs of a context's SVIDs, in order.
pub(crate) fn ids(context: &X509Context) -> Vec<String> {
    context
        .svids()
        .iter()
        .map(|s| s.spiffe_id().to_string())
        .collect()
}

/// Asserts that every SVID of `context` chains to the own trust domain's bundle in it.
pub(crate) fn assert_verifies(context: &X509Context, trust_domain: &str) {
    let td = spire_integration_tests::spiffe::TrustDomain::new(trust_domain).unwrap();
    let bundle = context
        .bundle_set()
        .get(&td)
        .expect("the own trust domain's bundle");
    let roots: Vec<Vec<u8>> = bundle
        .authorities()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    for svid in context.svids() {
        assert!(
            chain_verifies(&chain(svid), &roots),
            "{} does not chain to the bundle",
            svid.spiffe_id()
        );
    }
}

/// Fetches the X509 context, retrying while the agent has no identity for us yet.
pub(crate) async fn fetch_context_eventually(client: &WorkloadApiClient) -> X509Context {
    eventually("an X509 context from the Workload API", || async {
        client.fetch_x509_context().await.ok()
    })
    .await
    .unwrap()
}
