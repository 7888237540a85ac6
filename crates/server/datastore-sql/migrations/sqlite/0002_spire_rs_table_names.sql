-- Every object spire-rs creates carries the spire_rs_ prefix, so that none shares a name with
-- SPIRE's schema (registered_entries, bundles, join_tokens and ca_journals did). A database can
-- then hold SPIRE's tables and ours side by side while it is taken over, SPIRE's untouched.
-- Implicit names (PostgreSQL's primary-key indexes and sequences) are left as the database
-- chose them: it picks names that do not collide.
ALTER TABLE revision_counter RENAME TO spire_rs_revision_counter;
ALTER TABLE change_events RENAME TO spire_rs_change_events;
ALTER TABLE registered_entries RENAME TO spire_rs_registered_entries;
ALTER TABLE entry_selectors RENAME TO spire_rs_entry_selectors;
ALTER TABLE entry_federates_with RENAME TO spire_rs_entry_federates_with;
ALTER TABLE attested_nodes RENAME TO spire_rs_attested_nodes;
ALTER TABLE node_selectors RENAME TO spire_rs_node_selectors;
ALTER TABLE bundles RENAME TO spire_rs_bundles;
ALTER TABLE federation_relationships RENAME TO spire_rs_federation_relationships;
ALTER TABLE join_tokens RENAME TO spire_rs_join_tokens;
ALTER TABLE ca_journals RENAME TO spire_rs_ca_journals;
DROP INDEX change_events_created_at;
CREATE INDEX spire_rs_change_events_created_at ON spire_rs_change_events (created_at);
DROP INDEX registered_entries_spiffe_id;
CREATE INDEX spire_rs_registered_entries_spiffe_id ON spire_rs_registered_entries (spiffe_id);
DROP INDEX registered_entries_similarity;
CREATE UNIQUE INDEX spire_rs_registered_entries_similarity ON spire_rs_registered_entries (parent_id, spiffe_id, similarity_key);
DROP INDEX registered_entries_expires_at;
CREATE INDEX spire_rs_registered_entries_expires_at ON spire_rs_registered_entries (expires_at) WHERE expires_at <> 0;
DROP INDEX entry_selectors_type_value;
CREATE INDEX spire_rs_entry_selectors_type_value ON spire_rs_entry_selectors (selector_type, selector_value);
DROP INDEX entry_federates_with_trust_domain;
CREATE INDEX spire_rs_entry_federates_with_trust_domain ON spire_rs_entry_federates_with (trust_domain);
DROP INDEX attested_nodes_cert_not_after;
CREATE INDEX spire_rs_attested_nodes_cert_not_after ON spire_rs_attested_nodes (cert_not_after);
DROP INDEX node_selectors_type_value;
CREATE INDEX spire_rs_node_selectors_type_value ON spire_rs_node_selectors (selector_type, selector_value);
DROP INDEX join_tokens_expires_at;
CREATE INDEX spire_rs_join_tokens_expires_at ON spire_rs_join_tokens (expires_at);
DROP INDEX ca_journals_active_x509_authority_id;
CREATE INDEX spire_rs_ca_journals_active_x509_authority_id ON spire_rs_ca_journals (active_x509_authority_id);
DROP INDEX ca_journals_updated_at;
CREATE INDEX spire_rs_ca_journals_updated_at ON spire_rs_ca_journals (updated_at);
