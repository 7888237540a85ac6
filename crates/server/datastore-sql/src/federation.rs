//! Federation relationships. The endpoint profile and URL are stored here; the trust
//! domain's bundle lives in `bundles` and is joined in on every read.

use sqlx::any::AnyRow;

use spire_id::{SpiffeId, TrustDomain};
use spire_server_datastore::{
    Aggregate, BundleEndpointProfile, ChangeOp, Error as DsError, FederationRelationship, Page,
    Pagination, Result as DsResult,
};

use crate::SqlStore;
use crate::bundles::{decode, set_in};
use crate::db::{
    Sql, WriteTx, corrupt, get_opt_string, get_string, insert_unless_exists, parse_text_token,
    push_limit, split_page, text_token,
};

const NOT_FOUND: &str = "federation relationship not found";
const SELECT: &str = "SELECT f.trust_domain, f.bundle_endpoint_url, f.profile, f.endpoint_spiffe_id, b.data \
    FROM spire_rs_federation_relationships f LEFT JOIN spire_rs_bundles b ON b.trust_domain = f.trust_domain";

// === impl SqlStore ===

impl SqlStore {
    pub(crate) async fn create_relationship_impl(
        &self,
        relationship: FederationRelationship,
    ) -> DsResult<FederationRelationship> {
        check_bundle_domain(&relationship)?;
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let (profile, endpoint_id) = profile_columns(&relationship.profile);
            let name = relationship.trust_domain.name().to_owned();
            let mut sql = Sql::new(
                "INSERT INTO spire_rs_federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id) VALUES (",
            );
            sql.bind(name.clone()).push(", ");
            sql.bind(relationship.bundle_endpoint_url.clone()).push(", ");
            sql.bind(profile).push(", ");
            sql.bind(endpoint_id).push(")");
            if !insert_unless_exists(tx.conn(), sql).await? {
                return Err(DsError::AlreadyExists {
                    message: "federation relationship already exists".to_owned(),
                    existing: None,
                });
            }
            tx.record(Aggregate::FederationRelationship, name, ChangeOp::Created);
            self.finish_write(&mut tx, relationship).await
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn fetch_relationship_impl(
        &self,
        trust_domain: &TrustDomain,
    ) -> DsResult<Option<FederationRelationship>> {
        let mut sql = Sql::new(SELECT);
        sql.push(" WHERE f.trust_domain = ")
            .bind(trust_domain.name().to_owned());
        let mut conn = self.reader().await?;
        sql.fetch_optional(&mut conn)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    pub(crate) async fn list_relationships_impl(
        &self,
        page: Option<Pagination>,
    ) -> DsResult<Page<FederationRelationship>> {
        let (after, page_size) = match &page {
            Some(p) => (parse_text_token(&p.token)?, p.page_size),
            None => (None, 0),
        };
        let mut sql = Sql::new(SELECT);
        if let Some(after) = after {
            sql.push(" WHERE f.trust_domain > ").bind(after);
        }
        sql.push(" ORDER BY f.trust_domain");
        push_limit(&mut sql, page_size);
        let mut conn = self.reader().await?;
        let (rows, more) = split_page(sql.fetch_all(&mut conn).await?, page_size);
        let items = rows.iter().map(from_row).collect::<DsResult<Vec<_>>>()?;
        let next_token = match items.last() {
            Some(last) if more => Some(text_token(last.trust_domain.name())),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    pub(crate) async fn update_relationship_impl(
        &self,
        relationship: FederationRelationship,
    ) -> DsResult<FederationRelationship> {
        check_bundle_domain(&relationship)?;
        let mut tx = self.begin_write().await?;
        let outcome = async {
            let (profile, endpoint_id) = profile_columns(&relationship.profile);
            let name = relationship.trust_domain.name().to_owned();
            let mut sql =
                Sql::new("UPDATE spire_rs_federation_relationships SET bundle_endpoint_url = ");
            sql.bind(relationship.bundle_endpoint_url.clone())
                .push(", profile = ");
            sql.bind(profile).push(", endpoint_spiffe_id = ");
            sql.bind(endpoint_id).push(" WHERE trust_domain = ");
            sql.bind(name.clone());
            if sql.execute(tx.conn()).await? == 0 {
                return Err(DsError::NotFound(NOT_FOUND.to_owned()));
            }
            tx.record(Aggregate::FederationRelationship, name, ChangeOp::Updated);
            self.finish_write(&mut tx, relationship).await
        }
        .await;
        tx.finish(outcome).await
    }

    pub(crate) async fn delete_relationship_impl(
        &self,
        trust_domain: &TrustDomain,
    ) -> DsResult<()> {
        let mut tx = self.begin_write().await?;
        let name = trust_domain.name().to_owned();
        let mut sql =
            Sql::new("DELETE FROM spire_rs_federation_relationships WHERE trust_domain = ");
        sql.bind(name.clone());
        let outcome = match sql.execute(tx.conn()).await {
            Ok(0) => Err(DsError::NotFound(NOT_FOUND.to_owned())),
            Ok(_) => {
                tx.record(Aggregate::FederationRelationship, name, ChangeOp::Deleted);
                Ok(())
            }
            Err(e) => Err(e),
        };
        tx.finish(outcome).await
    }

    /// Stores the relationship's bundle when it carries one, and returns the relationship
    /// with the bundle as stored.
    async fn finish_write(
        &self,
        tx: &mut WriteTx<'_>,
        mut relationship: FederationRelationship,
    ) -> DsResult<FederationRelationship> {
        relationship.trust_domain_bundle = match relationship.trust_domain_bundle.take() {
            Some(bundle) => Some(set_in(tx, self.backend, bundle, false).await?),
            None => {
                let mut sql = Sql::new("SELECT data FROM spire_rs_bundles WHERE trust_domain = ");
                sql.bind(relationship.trust_domain.name().to_owned());
                match sql.fetch_optional(tx.conn()).await? {
                    Some(row) => Some(decode(&get_string(&row, "data")?)?),
                    None => None,
                }
            }
        };
        Ok(relationship)
    }
}

fn check_bundle_domain(relationship: &FederationRelationship) -> DsResult<()> {
    match &relationship.trust_domain_bundle {
        Some(bundle) if bundle.trust_domain != relationship.trust_domain => {
            Err(DsError::InvalidArgument(
                "trust domain bundle does not belong to the relationship's trust domain".to_owned(),
            ))
        }
        _ => Ok(()),
    }
}

fn profile_columns(profile: &BundleEndpointProfile) -> (&'static str, String) {
    match profile {
        BundleEndpointProfile::HttpsWeb => ("https_web", String::new()),
        BundleEndpointProfile::HttpsSpiffe { endpoint_spiffe_id } => {
            ("https_spiffe", endpoint_spiffe_id.to_string())
        }
    }
}

fn from_row(row: &AnyRow) -> DsResult<FederationRelationship> {
    let name = get_string(row, "trust_domain")?;
    let trust_domain = TrustDomain::parse(&name)
        .map_err(|e| corrupt(format_args!("trust domain {name:?}: {e}")))?;
    let profile = match get_string(row, "profile")?.as_str() {
        "https_web" => BundleEndpointProfile::HttpsWeb,
        "https_spiffe" => {
            let id = get_string(row, "endpoint_spiffe_id")?;
            BundleEndpointProfile::HttpsSpiffe {
                endpoint_spiffe_id: SpiffeId::parse(&id)
                    .map_err(|e| corrupt(format_args!("endpoint SPIFFE ID {id:?}: {e}")))?,
            }
        }
        other => return Err(corrupt(format_args!("bundle endpoint profile {other:?}"))),
    };
    let bundle = get_opt_string(row, "data")?;
    Ok(FederationRelationship {
        trust_domain,
        bundle_endpoint_url: get_string(row, "bundle_endpoint_url")?,
        profile,
        trust_domain_bundle: bundle.as_deref().map(decode).transpose()?,
    })
}
