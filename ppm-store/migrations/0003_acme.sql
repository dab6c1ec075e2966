-- ACME: accounts at certificate authorities, one order record per
-- ACME-managed certificate, DNS providers for DNS-01 and settings edited
-- through the API. None of this is config: no revision, no history.
--
-- 0001 reserved placeholder ACME tables that nothing ever wrote; they are
-- replaced by the shapes the ACME manager uses.
DROP INDEX IF EXISTS acme_orders_certificate;
DROP TABLE IF EXISTS acme_orders;
DROP TABLE IF EXISTS acme_accounts;

-- One account per (directory, contact email, EAB key id), created once.
CREATE TABLE acme_accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    directory_url TEXT    NOT NULL,
    email         TEXT    NOT NULL DEFAULT '',
    eab_key_id    TEXT    NOT NULL DEFAULT '',
    -- instant-acme account credentials (JSON, holds the account key).
    credentials   TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (directory_url, email, eab_key_id)
);

-- The order state of an ACME-managed certificate (config `certificates.id`).
CREATE TABLE acme_orders (
    certificate_id  INTEGER PRIMARY KEY,
    domain_names    TEXT    NOT NULL,            -- JSON array
    challenge       TEXT    NOT NULL CHECK (challenge IN ('http-01', 'dns-01')),
    dns_provider_id INTEGER,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'validating', 'issued', 'failed')),
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,  -- failures since the last success
    next_attempt_at INTEGER,                     -- unix ms; NULL: nothing scheduled
    not_after       INTEGER,                     -- unix ms of the issued certificate
    renew_at        INTEGER,                     -- unix ms
    issued_at       INTEGER,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX acme_orders_next_attempt ON acme_orders (next_attempt_at);

-- DNS providers for DNS-01. `spec` holds the provider's settings and
-- credentials as JSON; the API never returns the credentials.
CREATE TABLE acme_dns_providers (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    kind                TEXT    NOT NULL,
    spec                TEXT    NOT NULL,
    propagation_seconds INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- ACME settings set through the API; they override the command-line ones.
CREATE TABLE acme_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
