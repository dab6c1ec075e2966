-- ppm-store schema for PostgreSQL, version 1. The same tables as the SQLite
-- schema (`migrations/`), in PostgreSQL types.
--
-- Every top-level entity takes its id from a sequence, so an id is never
-- reused after a delete: history, audit entries and exports keep pointing at
-- one entity. Imports write explicit ids and then move the sequence past
-- them. Child rows carry a `position` so the order of the model's lists
-- survives a round trip. Timestamps are unix milliseconds; structured value
-- objects (balancing, health checks, filter configs) are JSON text, exactly
-- as the SQLite backend stores them.

-- The config revision: one row, bumped by every config write. Writers lock
-- this row first, so config writes from every node run one at a time.
CREATE TABLE meta (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO meta (id, revision) VALUES (1, 0);

-- Every committed revision is announced on the channel
-- `ppm_revision.<schema>` with the revision as payload, to every node
-- listening, whichever process wrote it.
CREATE FUNCTION ppm_notify_revision() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ppm_revision.' || TG_TABLE_SCHEMA, NEW.revision::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER meta_revision_notify
    AFTER UPDATE OF revision ON meta
    FOR EACH ROW EXECUTE FUNCTION ppm_notify_revision();

CREATE TABLE config_history (
    revision  BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    client_ip TEXT,
    summary   TEXT   NOT NULL,
    changes   TEXT   NOT NULL,
    snapshot  TEXT
);

CREATE TABLE access_lists (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT    NOT NULL,
    default_action TEXT    NOT NULL,
    satisfy        TEXT    NOT NULL,
    pass_auth      BOOLEAN NOT NULL
);

CREATE TABLE access_list_rules (
    access_list_id BIGINT NOT NULL REFERENCES access_lists (id) ON DELETE CASCADE,
    position       BIGINT NOT NULL,
    action         TEXT   NOT NULL,
    address        TEXT   NOT NULL,
    PRIMARY KEY (access_list_id, position)
);

CREATE TABLE access_list_users (
    access_list_id BIGINT NOT NULL REFERENCES access_lists (id) ON DELETE CASCADE,
    position       BIGINT NOT NULL,
    username       TEXT   NOT NULL,
    password_hash  TEXT   NOT NULL,
    PRIMARY KEY (access_list_id, position),
    UNIQUE (access_list_id, username)
);

CREATE TABLE certificates (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL,
    source          TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    private_key_pem TEXT NOT NULL
);

CREATE TABLE certificate_domains (
    certificate_id BIGINT NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    position       BIGINT NOT NULL,
    name           TEXT   NOT NULL,
    PRIMARY KEY (certificate_id, position)
);

CREATE TABLE proxy_hosts (
    id                      BIGSERIAL PRIMARY KEY,
    balancing               TEXT    NOT NULL,
    forward_scheme          TEXT    NOT NULL,
    upstream_sni            TEXT,
    upstream_verify_tls     BOOLEAN NOT NULL,
    health_check            TEXT,
    passive_max_fails       BIGINT  NOT NULL,
    passive_fail_timeout_ms BIGINT  NOT NULL,
    retries                 BIGINT  NOT NULL,
    connect_timeout_ms      BIGINT,
    read_timeout_ms         BIGINT,
    write_timeout_ms        BIGINT,
    max_body_size           BIGINT,
    allow_websocket_upgrade BOOLEAN NOT NULL,
    access_list_id          BIGINT REFERENCES access_lists (id),
    certificate_id          BIGINT REFERENCES certificates (id),
    ssl_forced              BOOLEAN NOT NULL,
    hsts_enabled            BOOLEAN NOT NULL,
    hsts_subdomains         BOOLEAN NOT NULL,
    http2_support           BOOLEAN NOT NULL,
    block_exploits          BOOLEAN NOT NULL,
    enabled                 BOOLEAN NOT NULL
);
CREATE INDEX proxy_hosts_access_list ON proxy_hosts (access_list_id);
CREATE INDEX proxy_hosts_certificate ON proxy_hosts (certificate_id);

CREATE TABLE locations (
    id                 BIGSERIAL PRIMARY KEY,
    proxy_host_id      BIGINT NOT NULL REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    position           BIGINT NOT NULL,
    path               TEXT   NOT NULL,
    match_kind         TEXT   NOT NULL,
    balancing          TEXT,
    forward_scheme     TEXT,
    rewrite            TEXT,
    connect_timeout_ms BIGINT,
    read_timeout_ms    BIGINT,
    write_timeout_ms   BIGINT,
    UNIQUE (proxy_host_id, position)
);

CREATE TABLE redirection_hosts (
    id              BIGSERIAL PRIMARY KEY,
    status          BIGINT  NOT NULL,
    forward_scheme  TEXT,
    forward_domain  TEXT    NOT NULL,
    preserve_path   BOOLEAN NOT NULL,
    certificate_id  BIGINT REFERENCES certificates (id),
    ssl_forced      BOOLEAN NOT NULL,
    hsts_enabled    BOOLEAN NOT NULL,
    hsts_subdomains BOOLEAN NOT NULL,
    block_exploits  BOOLEAN NOT NULL,
    enabled         BOOLEAN NOT NULL
);
CREATE INDEX redirection_hosts_certificate ON redirection_hosts (certificate_id);

CREATE TABLE dead_hosts (
    id              BIGSERIAL PRIMARY KEY,
    certificate_id  BIGINT REFERENCES certificates (id),
    ssl_forced      BOOLEAN NOT NULL,
    hsts_enabled    BOOLEAN NOT NULL,
    hsts_subdomains BOOLEAN NOT NULL,
    enabled         BOOLEAN NOT NULL
);
CREATE INDEX dead_hosts_certificate ON dead_hosts (certificate_id);

-- Served names of every host kind, in one table, so a name belongs to one
-- host; `name_key` is the normalised form and carries the uniqueness.
CREATE TABLE domain_names (
    name_key            TEXT   NOT NULL PRIMARY KEY,
    name                TEXT   NOT NULL,
    position            BIGINT NOT NULL,
    proxy_host_id       BIGINT REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    redirection_host_id BIGINT REFERENCES redirection_hosts (id) ON DELETE CASCADE,
    dead_host_id        BIGINT REFERENCES dead_hosts (id) ON DELETE CASCADE,
    CHECK (num_nonnulls(proxy_host_id, redirection_host_id, dead_host_id) = 1)
);
CREATE INDEX domain_names_proxy_host ON domain_names (proxy_host_id);
CREATE INDEX domain_names_redirection_host ON domain_names (redirection_host_id);
CREATE INDEX domain_names_dead_host ON domain_names (dead_host_id);

CREATE TABLE streams (
    id              BIGSERIAL PRIMARY KEY,
    incoming_port   BIGINT  NOT NULL CHECK (incoming_port BETWEEN 0 AND 65535),
    bind_address    TEXT    NOT NULL,
    protocol        TEXT    NOT NULL,
    balancing       TEXT    NOT NULL,
    access_list_id  BIGINT REFERENCES access_lists (id),
    certificate_id  BIGINT REFERENCES certificates (id),
    proxy_protocol  BIGINT,
    idle_timeout_ms BIGINT  NOT NULL,
    enabled         BOOLEAN NOT NULL
);
CREATE INDEX streams_access_list ON streams (access_list_id);
CREATE INDEX streams_certificate ON streams (certificate_id);

CREATE TABLE stream_ports (
    port      BIGINT NOT NULL,
    transport TEXT   NOT NULL CHECK (transport IN ('tcp', 'udp')),
    stream_id BIGINT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    PRIMARY KEY (port, transport)
);
CREATE INDEX stream_ports_stream ON stream_ports (stream_id);

CREATE TABLE upstreams (
    id            BIGSERIAL PRIMARY KEY,
    proxy_host_id BIGINT REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    location_id   BIGINT REFERENCES locations (id) ON DELETE CASCADE,
    stream_id     BIGINT REFERENCES streams (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    host          TEXT   NOT NULL,
    port          BIGINT NOT NULL,
    weight        BIGINT NOT NULL,
    CHECK (num_nonnulls(proxy_host_id, location_id, stream_id) = 1)
);
CREATE INDEX upstreams_proxy_host ON upstreams (proxy_host_id);
CREATE INDEX upstreams_location ON upstreams (location_id);
CREATE INDEX upstreams_stream ON upstreams (stream_id);

CREATE TABLE header_rules (
    id            BIGSERIAL PRIMARY KEY,
    proxy_host_id BIGINT REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    location_id   BIGINT REFERENCES locations (id) ON DELETE CASCADE,
    direction     TEXT   NOT NULL CHECK (direction IN ('request', 'response')),
    position      BIGINT NOT NULL,
    name          TEXT   NOT NULL,
    value         TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    CHECK (num_nonnulls(proxy_host_id, location_id) = 1)
);
CREATE INDEX header_rules_proxy_host ON header_rules (proxy_host_id);
CREATE INDEX header_rules_location ON header_rules (location_id);

CREATE TABLE filters (
    id                  BIGSERIAL PRIMARY KEY,
    proxy_host_id       BIGINT REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    location_id         BIGINT REFERENCES locations (id) ON DELETE CASCADE,
    redirection_host_id BIGINT REFERENCES redirection_hosts (id) ON DELETE CASCADE,
    dead_host_id        BIGINT REFERENCES dead_hosts (id) ON DELETE CASCADE,
    position            BIGINT NOT NULL,
    kind                TEXT   NOT NULL,
    config              TEXT   NOT NULL,
    priority            BIGINT,
    CHECK (num_nonnulls(proxy_host_id, location_id, redirection_host_id, dead_host_id) = 1)
);
CREATE INDEX filters_proxy_host ON filters (proxy_host_id);
CREATE INDEX filters_location ON filters (location_id);
CREATE INDEX filters_redirection_host ON filters (redirection_host_id);
CREATE INDEX filters_dead_host ON filters (dead_host_id);

CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Control-plane tables (they do not change the config revision).

CREATE TABLE users (
    id                  BIGSERIAL PRIMARY KEY,
    email               TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    role                TEXT    NOT NULL,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    password_changed_at BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
-- Logins are unique case-insensitively, as SQLite's COLLATE NOCASE.
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    token_hash   TEXT   NOT NULL UNIQUE,
    scopes       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    user_id   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor     TEXT   NOT NULL,
    client_ip TEXT,
    action    TEXT   NOT NULL,
    entity    TEXT   NOT NULL,
    entity_id BIGINT,
    before    TEXT,
    after     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE server_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
