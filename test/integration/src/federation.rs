//! Federation through a [`TestServer`]'s admin API: the Bundle API's own and federated
//! bundles (what `bundle show` / `bundle set` / `bundle delete` do) and the TrustDomain API's
//! relationships and `RefreshBundle`.

use spire_proto::spire::api::server::bundle::v1::{
    BatchDeleteFederatedBundleRequest, BatchSetFederatedBundleRequest, GetBundleRequest,
    GetFederatedBundleRequest, batch_delete_federated_bundle_request::Mode,
};
use spire_proto::spire::api::server::trustdomain::v1::{
    BatchCreateFederationRelationshipRequest, RefreshBundleRequest,
    trust_domain_client::TrustDomainClient,
};
use spire_proto::spire::api::types;
use spire_proto::spire::api::types::federation_relationship::BundleEndpointProfile;
use tonic::transport::Channel;

use crate::server::check_status;
use crate::{Error, Result, TestServer};

// === impl TestServer ===

impl TestServer {
    /// The TrustDomain service client.
    pub async fn trust_domains(&self) -> Result<TrustDomainClient<Channel>> {
        Ok(TrustDomainClient::new(self.admin_channel().await?))
    }

    /// The own trust domain's whole bundle (`bundle show`).
    pub async fn bundle(&self) -> Result<types::Bundle> {
        Ok(self
            .bundles()
            .await?
            .get_bundle(GetBundleRequest { output_mask: None })
            .await
            .map_err(Error::rpc("GetBundle"))?
            .into_inner())
    }

    /// Stores `bundle` as the bundle of its trust domain (`bundle set`).
    pub async fn set_federated_bundle(&self, bundle: types::Bundle) -> Result<()> {
        let mut results = self
            .bundles()
            .await?
            .batch_set_federated_bundle(BatchSetFederatedBundleRequest {
                bundle: vec![bundle],
                output_mask: None,
            })
            .await
            .map_err(Error::rpc("BatchSetFederatedBundle"))?
            .into_inner()
            .results;
        let result = results
            .pop()
            .ok_or_else(|| Error::Unexpected("BatchSetFederatedBundle: no result".into()))?;
        check_status("BatchSetFederatedBundle", result.status)
    }

    /// The stored bundle of another trust domain (`None`: not found).
    pub async fn federated_bundle(&self, trust_domain: &str) -> Result<Option<types::Bundle>> {
        let answer = self
            .bundles()
            .await?
            .get_federated_bundle(GetFederatedBundleRequest {
                trust_domain: trust_domain.to_owned(),
                output_mask: None,
            })
            .await;
        match answer {
            Ok(bundle) => Ok(Some(bundle.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(Error::Rpc {
                call: "GetFederatedBundle",
                status,
            }),
        }
    }

    /// Deletes the bundle of `trust_domain` (`bundle delete -id … -mode …`).
    pub async fn delete_federated_bundle(&self, trust_domain: &str, mode: Mode) -> Result<()> {
        let mut results = self
            .bundles()
            .await?
            .batch_delete_federated_bundle(BatchDeleteFederatedBundleRequest {
                trust_domains: vec![trust_domain.to_owned()],
                mode: mode.into(),
            })
            .await
            .map_err(Error::rpc("BatchDeleteFederatedBundle"))?
            .into_inner()
            .results;
        let result = results
            .pop()
            .ok_or_else(|| Error::Unexpected("BatchDeleteFederatedBundle: no result".into()))?;
        check_status("BatchDeleteFederatedBundle", result.status)
    }

    /// Creates a relationship with `trust_domain`, whose bundle endpoint at `url` presents
    /// the X509-SVID `endpoint_spiffe_id` (`federation create … -bundleEndpointProfile
    /// https_spiffe`).
    pub async fn create_spiffe_federation(
        &self,
        trust_domain: &str,
        url: &str,
        endpoint_spiffe_id: &str,
    ) -> Result<()> {
        let relationship = types::FederationRelationship {
            trust_domain: trust_domain.to_owned(),
            bundle_endpoint_url: url.to_owned(),
            trust_domain_bundle: None,
            bundle_endpoint_profile: Some(BundleEndpointProfile::HttpsSpiffe(
                types::HttpsspiffeProfile {
                    endpoint_spiffe_id: endpoint_spiffe_id.to_owned(),
                },
            )),
        };
        let mut results = self
            .trust_domains()
            .await?
            .batch_create_federation_relationship(BatchCreateFederationRelationshipRequest {
                federation_relationships: vec![relationship],
                output_mask: None,
            })
            .await
            .map_err(Error::rpc("BatchCreateFederationRelationship"))?
            .into_inner()
            .results;
        let result = results.pop().ok_or_else(|| {
            Error::Unexpected("BatchCreateFederationRelationship: no result".into())
        })?;
        check_status("BatchCreateFederationRelationship", result.status)
    }

    /// Fetches the bundle of `trust_domain` from its endpoint now (`federation refresh`).
    pub async fn refresh_bundle(&self, trust_domain: &str) -> Result<()> {
        self.trust_domains()
            .await?
            .refresh_bundle(RefreshBundleRequest {
                trust_domain: trust_domain.to_owned(),
            })
            .await
            .map_err(Error::rpc("RefreshBundle"))?;
        Ok(())
    }
}
