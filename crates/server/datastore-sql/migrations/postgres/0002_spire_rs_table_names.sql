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
ALTER INDEX change_events_created_at RENAME TO spire_rs_change_events_created_at;
ALTER INDEX registered_entries_spiffe_id RENAME TO spire_rs_registered_entries_spiffe_id;
ALTER INDEX registered_entries_similarity RENAME TO spire_rs_registered_entries_similarity;
ALTER INDEX registered_entries_expires_at RENAME TO spire_rs_registered_entries_expires_at;
ALTER INDEX entry_selectors_type_value RENAME TO spire_rs_entry_selectors_type_value;
ALTER INDEX entry_federates_with_trust_domain RENAME TO spire_rs_entry_federates_with_trust_domain;
ALTER INDEX attested_nodes_cert_not_after RENAME TO spire_rs_attested_nodes_cert_not_after;
ALTER INDEX node_selectors_type_value RENAME TO spire_rs_node_selectors_type_value;
ALTER INDEX join_tokens_expires_at RENAME TO spire_rs_join_tokens_expires_at;
ALTER INDEX ca_journals_active_x509_authority_id RENAME TO spire_rs_ca_journals_active_x509_authority_id;
ALTER INDEX ca_journals_updated_at RENAME TO spire_rs_ca_journals_updated_at;
