-- Initial schema, MySQL 8.0 / MariaDB 10.11 flavour, with the spire_rs_ prefix from the start
-- (migration 2 renamed the other backends' tables). Times are unix seconds.
--
-- Text is stored as binary strings (VARBINARY, BLOB): they compare and sort byte by byte, as
-- COLLATE "C" does on PostgreSQL, without the trailing-space padding of MySQL's _bin
-- collations. InnoDB caps an index key at 3 072 bytes: one 2 048-byte SPIFFE ID fits, so
-- single-column keys index the value itself; the unique keys over several long columns
-- (selector rows) index a SHA-256 of them instead, in a stored generated column.
-- Booleans are SMALLINT 0/1 (what sqlx's Any driver can read back).

-- The one revision counter. Writers bump it as the last step before COMMIT, so its row lock
-- orders committers and change-event revisions follow commit order without gaps.
CREATE TABLE spire_rs_revision_counter (
    id INT NOT NULL PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
INSERT INTO spire_rs_revision_counter (id, revision) VALUES (1, 0);

CREATE TABLE spire_rs_change_events (
    revision BIGINT NOT NULL PRIMARY KEY,
    aggregate VARBINARY(64) NOT NULL,
    record_key BLOB NOT NULL,
    op VARBINARY(16) NOT NULL,
    created_at BIGINT NOT NULL,
    KEY spire_rs_change_events_created_at (created_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- `seq` gives creation order and page tokens; selectors, federates_with and dns_names are
-- stored as JSON for reading, and selectors / federates_with again as rows for filtering.
-- "Similar" entries (same parent, SPIFFE ID and selectors) share a similarity key, a hash
-- that already covers parent and SPIFFE ID, so it is unique on its own here.
CREATE TABLE spire_rs_registered_entries (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entry_id VARBINARY(255) NOT NULL,
    spiffe_id VARBINARY(2048) NOT NULL,
    parent_id VARBINARY(2048) NOT NULL,
    similarity_key VARBINARY(64) NOT NULL,
    selectors MEDIUMBLOB NOT NULL,
    federates_with MEDIUMBLOB NOT NULL,
    dns_names MEDIUMBLOB NOT NULL,
    x509_svid_ttl INT NOT NULL,
    jwt_svid_ttl INT NOT NULL,
    admin SMALLINT NOT NULL,
    downstream SMALLINT NOT NULL,
    store_svid SMALLINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revision_number BIGINT NOT NULL,
    hint BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE KEY spire_rs_registered_entries_entry_id (entry_id),
    UNIQUE KEY spire_rs_registered_entries_similarity (similarity_key),
    KEY spire_rs_registered_entries_spiffe_id (spiffe_id),
    KEY spire_rs_registered_entries_parent_id (parent_id),
    KEY spire_rs_registered_entries_expires_at (expires_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_entry_selectors (
    entry_seq BIGINT NOT NULL,
    selector_type BLOB NOT NULL,
    selector_value BLOB NOT NULL,
    selector_hash BINARY(32) AS (UNHEX(SHA2(CONCAT(LENGTH(selector_type), ':', selector_type, selector_value), 256))) STORED,
    UNIQUE KEY spire_rs_entry_selectors_entry (entry_seq, selector_hash),
    KEY spire_rs_entry_selectors_type_value (selector_type(255), selector_value(255)),
    CONSTRAINT spire_rs_entry_selectors_entry_seq FOREIGN KEY (entry_seq)
        REFERENCES spire_rs_registered_entries (seq) ON DELETE CASCADE
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_entry_federates_with (
    entry_seq BIGINT NOT NULL,
    trust_domain VARBINARY(255) NOT NULL,
    PRIMARY KEY (entry_seq, trust_domain),
    KEY spire_rs_entry_federates_with_trust_domain (trust_domain),
    CONSTRAINT spire_rs_entry_federates_with_entry_seq FOREIGN KEY (entry_seq)
        REFERENCES spire_rs_registered_entries (seq) ON DELETE CASCADE
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_attested_nodes (
    spiffe_id VARBINARY(2048) NOT NULL PRIMARY KEY,
    attestation_type BLOB NOT NULL,
    cert_serial_number BLOB NOT NULL,
    cert_not_after BIGINT NOT NULL,
    new_cert_serial_number BLOB NOT NULL,
    new_cert_not_after BIGINT NOT NULL,
    can_reattest SMALLINT NOT NULL,
    KEY spire_rs_attested_nodes_cert_not_after (cert_not_after)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

-- Node selectors may be set before the node row exists, so there is no foreign key.
CREATE TABLE spire_rs_node_selectors (
    spiffe_id VARBINARY(2048) NOT NULL,
    selector_type BLOB NOT NULL,
    selector_value BLOB NOT NULL,
    selector_hash BINARY(32) AS (UNHEX(SHA2(CONCAT(LENGTH(spiffe_id), ':', spiffe_id, LENGTH(selector_type), ':', selector_type, selector_value), 256))) STORED,
    UNIQUE KEY spire_rs_node_selectors_selector (selector_hash),
    KEY spire_rs_node_selectors_spiffe_id (spiffe_id),
    KEY spire_rs_node_selectors_type_value (selector_type(255), selector_value(255))
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_bundles (
    trust_domain VARBINARY(255) NOT NULL PRIMARY KEY,
    data LONGBLOB NOT NULL
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_federation_relationships (
    trust_domain VARBINARY(255) NOT NULL PRIMARY KEY,
    bundle_endpoint_url BLOB NOT NULL,
    profile VARBINARY(64) NOT NULL,
    endpoint_spiffe_id BLOB NOT NULL
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_join_tokens (
    token VARBINARY(2048) NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    KEY spire_rs_join_tokens_expires_at (expires_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

CREATE TABLE spire_rs_ca_journals (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    active_x509_authority_id VARBINARY(1024) NOT NULL,
    data LONGBLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    KEY spire_rs_ca_journals_active_x509_authority_id (active_x509_authority_id),
    KEY spire_rs_ca_journals_updated_at (updated_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
