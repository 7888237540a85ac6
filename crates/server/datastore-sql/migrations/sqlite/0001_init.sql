-- Initial schema, SQLite flavour. Booleans are INTEGER 0/1 (the sqlx Any driver cannot map a
-- declared BOOLEAN column); times are unix seconds.

-- The one revision counter. Writers bump it as the last step before COMMIT, so its row lock
-- orders committers and change-event revisions follow commit order without gaps.
CREATE TABLE revision_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO revision_counter (id, revision) VALUES (1, 0);

CREATE TABLE change_events (
    revision BIGINT PRIMARY KEY,
    aggregate TEXT NOT NULL,
    record_key TEXT NOT NULL,
    op TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX change_events_created_at ON change_events (created_at);

-- `seq` gives creation order and page tokens; selectors, federates_with and dns_names are
-- stored as JSON for reading, and selectors / federates_with again as rows for filtering.
CREATE TABLE registered_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL UNIQUE,
    spiffe_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    similarity_key TEXT NOT NULL,
    selectors TEXT NOT NULL,
    federates_with TEXT NOT NULL,
    dns_names TEXT NOT NULL,
    x509_svid_ttl INTEGER NOT NULL,
    jwt_svid_ttl INTEGER NOT NULL,
    admin INTEGER NOT NULL,
    downstream INTEGER NOT NULL,
    store_svid INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    revision_number BIGINT NOT NULL,
    hint TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX registered_entries_spiffe_id ON registered_entries (spiffe_id);
-- "Similar" entries (same parent, SPIFFE ID and selectors) share a similarity key, a hash
-- that already covers parent and SPIFFE ID. Leading with those two keeps the index's inserts
-- together (a batch is usually one agent's or one service's entries) where a hash alone
-- would dirty a random page per row, and it serves parent_id lookups as well.
CREATE UNIQUE INDEX registered_entries_similarity ON registered_entries (parent_id, spiffe_id, similarity_key);
CREATE INDEX registered_entries_expires_at ON registered_entries (expires_at) WHERE expires_at <> 0;

CREATE TABLE entry_selectors (
    entry_seq INTEGER NOT NULL REFERENCES registered_entries (seq) ON DELETE CASCADE,
    selector_type TEXT NOT NULL,
    selector_value TEXT NOT NULL,
    PRIMARY KEY (entry_seq, selector_type, selector_value)
) WITHOUT ROWID;
CREATE INDEX entry_selectors_type_value ON entry_selectors (selector_type, selector_value);

CREATE TABLE entry_federates_with (
    entry_seq INTEGER NOT NULL REFERENCES registered_entries (seq) ON DELETE CASCADE,
    trust_domain TEXT NOT NULL,
    PRIMARY KEY (entry_seq, trust_domain)
) WITHOUT ROWID;
CREATE INDEX entry_federates_with_trust_domain ON entry_federates_with (trust_domain);

CREATE TABLE attested_nodes (
    spiffe_id TEXT PRIMARY KEY,
    attestation_type TEXT NOT NULL,
    cert_serial_number TEXT NOT NULL,
    cert_not_after BIGINT NOT NULL,
    new_cert_serial_number TEXT NOT NULL,
    new_cert_not_after BIGINT NOT NULL,
    can_reattest INTEGER NOT NULL
);
CREATE INDEX attested_nodes_cert_not_after ON attested_nodes (cert_not_after);

-- Node selectors may be set before the node row exists, so there is no foreign key.
CREATE TABLE node_selectors (
    spiffe_id TEXT NOT NULL,
    selector_type TEXT NOT NULL,
    selector_value TEXT NOT NULL,
    PRIMARY KEY (spiffe_id, selector_type, selector_value)
) WITHOUT ROWID;
CREATE INDEX node_selectors_type_value ON node_selectors (selector_type, selector_value);

CREATE TABLE bundles (
    trust_domain TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE federation_relationships (
    trust_domain TEXT PRIMARY KEY,
    bundle_endpoint_url TEXT NOT NULL,
    profile TEXT NOT NULL,
    endpoint_spiffe_id TEXT NOT NULL
);

CREATE TABLE join_tokens (
    token TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

CREATE TABLE ca_journals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    active_x509_authority_id TEXT NOT NULL,
    data BLOB NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX ca_journals_active_x509_authority_id ON ca_journals (active_x509_authority_id);
CREATE INDEX ca_journals_updated_at ON ca_journals (updated_at);
