-- ACME on PostgreSQL: the tables of the SQLite schema's 0003_acme.sql, plus
-- what several nodes need to share ACME: a lease naming the one node that
-- talks to the CA, and the pending HTTP-01 challenge tokens, so whichever
-- node the CA reaches answers. None of this is config: no revision, no
-- history. Times are unix ms.

-- One account per (directory, contact email, EAB key id), created once.
CREATE TABLE acme_accounts (
    id            BIGSERIAL PRIMARY KEY,
    directory_url TEXT   NOT NULL,
    email         TEXT   NOT NULL DEFAULT '',
    eab_key_id    TEXT   NOT NULL DEFAULT '',
    -- instant-acme account credentials (JSON, holds the account key).
    credentials   TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (directory_url, email, eab_key_id)
);

-- The order state of an ACME-managed certificate (config `certificates.id`).
CREATE TABLE acme_orders (
    certificate_id  BIGINT PRIMARY KEY,
    domain_names    TEXT   NOT NULL,            -- JSON array
    challenge       TEXT   NOT NULL CHECK (challenge IN ('http-01', 'dns-01')),
    dns_provider_id BIGINT,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'validating', 'issued', 'failed')),
    error           TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,  -- failures since the last success
    next_attempt_at BIGINT,                     -- NULL: nothing scheduled
    not_after       BIGINT,
    renew_at        BIGINT,
    issued_at       BIGINT,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX acme_orders_next_attempt ON acme_orders (next_attempt_at);

-- DNS providers for DNS-01. `spec` holds the provider's settings and
-- credentials as JSON; the API never returns the credentials.
CREATE TABLE acme_dns_providers (
    id                  BIGSERIAL PRIMARY KEY,
    name                TEXT   NOT NULL UNIQUE,
    kind                TEXT   NOT NULL,
    spec                TEXT   NOT NULL,
    propagation_seconds BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- ACME settings set through the API; they override the command-line ones.
CREATE TABLE acme_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Leases: `holder` may do the named job until `expires_at` (database
-- clock); it renews well before, and another node takes an expired lease.
CREATE TABLE cluster_leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Pending HTTP-01 challenges, published by the node running the order.
-- Every change is announced on `ppm_acme_tokens.<schema>`; every node
-- keeps its in-memory copy in step and records in `cluster_nodes` the
-- newest `serial` it loaded, so the publisher can wait for the others.
CREATE TABLE acme_http01_tokens (
    token             TEXT   PRIMARY KEY,
    key_authorization TEXT   NOT NULL,
    serial            BIGSERIAL NOT NULL
);

ALTER TABLE cluster_nodes ADD COLUMN acme_tokens_loaded BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION ppm_notify_acme_tokens() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ppm_acme_tokens.' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER acme_http01_tokens_notify
    AFTER INSERT OR UPDATE OR DELETE ON acme_http01_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION ppm_notify_acme_tokens();
