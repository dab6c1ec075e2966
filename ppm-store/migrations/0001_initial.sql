-- ppm-store schema, version 1.
--
-- Every top-level entity uses AUTOINCREMENT so an id is never reused after a
-- delete: history, audit entries and exports keep pointing at one entity.
-- Child rows (domain names, upstreams, headers, filters, rules...) carry a
-- `position` so the order of the model's lists survives a round trip.
-- Booleans are INTEGER 0/1, timestamps are unix milliseconds, structured
-- value objects (balancing, health checks, filter configs) are JSON text.

-- The config revision: one row, bumped by every config write.
CREATE TABLE meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO meta (id, revision) VALUES (1, 0);

-- One row per committed revision: who, when, what changed. `changes` is a
-- JSON list of entity-level changes; `snapshot` is the whole config after the
-- write, stored on replacements and every few revisions as a checkpoint, so a
-- snapshot at any revision is a checkpoint plus a few changes.
CREATE TABLE config_history (
    revision  INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    client_ip TEXT,
    summary   TEXT    NOT NULL,
    changes   TEXT    NOT NULL,
    snapshot  TEXT
);

CREATE TABLE access_lists (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL,
    default_action TEXT    NOT NULL,
    satisfy        TEXT    NOT NULL,
    pass_auth      INTEGER NOT NULL
);

CREATE TABLE access_list_rules (
    access_list_id INTEGER NOT NULL REFERENCES access_lists (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    action         TEXT    NOT NULL,
    address        TEXT    NOT NULL,
    PRIMARY KEY (access_list_id, position)
);

CREATE TABLE access_list_users (
    access_list_id INTEGER NOT NULL REFERENCES access_lists (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    username       TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    PRIMARY KEY (access_list_id, position),
    UNIQUE (access_list_id, username)
);

CREATE TABLE certificates (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    source          TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    private_key_pem TEXT NOT NULL
);

-- A certificate's names are not unique: renewals and overlapping wildcards
-- are normal.
CREATE TABLE certificate_domains (
    certificate_id INTEGER NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    name           TEXT    NOT NULL,
    PRIMARY KEY (certificate_id, position)
);

CREATE TABLE proxy_hosts (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    balancing               TEXT    NOT NULL,
    forward_scheme          TEXT    NOT NULL,
    upstream_sni            TEXT,
    upstream_verify_tls     INTEGER NOT NULL,
    health_check            TEXT,
    passive_max_fails       INTEGER NOT NULL,
    passive_fail_timeout_ms INTEGER NOT NULL,
    retries                 INTEGER NOT NULL,
    connect_timeout_ms      INTEGER,
    read_timeout_ms         INTEGER,
    write_timeout_ms        INTEGER,
    max_body_size           INTEGER,
    allow_websocket_upgrade INTEGER NOT NULL,
    access_list_id          INTEGER REFERENCES access_lists (id),
    certificate_id          INTEGER REFERENCES certificates (id),
    ssl_forced              INTEGER NOT NULL,
    hsts_enabled            INTEGER NOT NULL,
    hsts_subdomains         INTEGER NOT NULL,
    http2_support           INTEGER NOT NULL,
    block_exploits          INTEGER NOT NULL,
    enabled                 INTEGER NOT NULL
);
CREATE INDEX proxy_hosts_access_list ON proxy_hosts (access_list_id);
CREATE INDEX proxy_hosts_certificate ON proxy_hosts (certificate_id);

CREATE TABLE locations (
    id                 INTEGER PRIMARY KEY,
    proxy_host_id      INTEGER NOT NULL REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    position           INTEGER NOT NULL,
    path               TEXT    NOT NULL,
    match_kind         TEXT    NOT NULL,
    balancing          TEXT,
    forward_scheme     TEXT,
    rewrite            TEXT,
    connect_timeout_ms INTEGER,
    read_timeout_ms    INTEGER,
    write_timeout_ms   INTEGER,
    UNIQUE (proxy_host_id, position)
);

CREATE TABLE redirection_hosts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    status          INTEGER NOT NULL,
    forward_scheme  TEXT,
    forward_domain  TEXT    NOT NULL,
    preserve_path   INTEGER NOT NULL,
    certificate_id  INTEGER REFERENCES certificates (id),
    ssl_forced      INTEGER NOT NULL,
    hsts_enabled    INTEGER NOT NULL,
    hsts_subdomains INTEGER NOT NULL,
    block_exploits  INTEGER NOT NULL,
    enabled         INTEGER NOT NULL
);
CREATE INDEX redirection_hosts_certificate ON redirection_hosts (certificate_id);

CREATE TABLE dead_hosts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    certificate_id  INTEGER REFERENCES certificates (id),
    ssl_forced      INTEGER NOT NULL,
    hsts_enabled    INTEGER NOT NULL,
    hsts_subdomains INTEGER NOT NULL,
    enabled         INTEGER NOT NULL
);
CREATE INDEX dead_hosts_certificate ON dead_hosts (certificate_id);

-- Served names of every host kind, in one table, so a name belongs to one
-- host. `name` is kept as written; `name_key` is its normalised form
-- (lower-case, punycode) and carries the uniqueness.
CREATE TABLE domain_names (
    name_key            TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL,
    position            INTEGER NOT NULL,
    proxy_host_id       INTEGER REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    redirection_host_id INTEGER REFERENCES redirection_hosts (id) ON DELETE CASCADE,
    dead_host_id        INTEGER REFERENCES dead_hosts (id) ON DELETE CASCADE,
    CHECK ((proxy_host_id IS NOT NULL) + (redirection_host_id IS NOT NULL)
           + (dead_host_id IS NOT NULL) = 1)
) WITHOUT ROWID;
CREATE INDEX domain_names_proxy_host ON domain_names (proxy_host_id);
CREATE INDEX domain_names_redirection_host ON domain_names (redirection_host_id);
CREATE INDEX domain_names_dead_host ON domain_names (dead_host_id);

CREATE TABLE streams (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incoming_port   INTEGER NOT NULL CHECK (incoming_port BETWEEN 0 AND 65535),
    bind_address    TEXT    NOT NULL,
    protocol        TEXT    NOT NULL,
    balancing       TEXT    NOT NULL,
    access_list_id  INTEGER REFERENCES access_lists (id),
    certificate_id  INTEGER REFERENCES certificates (id),
    proxy_protocol  INTEGER,
    idle_timeout_ms INTEGER NOT NULL,
    enabled         INTEGER NOT NULL
);
CREATE INDEX streams_access_list ON streams (access_list_id);
CREATE INDEX streams_certificate ON streams (certificate_id);

-- The ports streams hold, one row per transport: a `both` stream holds tcp
-- and udp, so it conflicts with a tcp or a udp stream on the same port.
CREATE TABLE stream_ports (
    port      INTEGER NOT NULL,
    transport TEXT    NOT NULL CHECK (transport IN ('tcp', 'udp')),
    stream_id INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    PRIMARY KEY (port, transport)
) WITHOUT ROWID;
CREATE INDEX stream_ports_stream ON stream_ports (stream_id);

-- Upstreams of proxy hosts, locations and streams.
CREATE TABLE upstreams (
    id            INTEGER PRIMARY KEY,
    proxy_host_id INTEGER REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    location_id   INTEGER REFERENCES locations (id) ON DELETE CASCADE,
    stream_id     INTEGER REFERENCES streams (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    port          INTEGER NOT NULL,
    weight        INTEGER NOT NULL,
    CHECK ((proxy_host_id IS NOT NULL) + (location_id IS NOT NULL)
           + (stream_id IS NOT NULL) = 1)
);
CREATE INDEX upstreams_proxy_host ON upstreams (proxy_host_id);
CREATE INDEX upstreams_location ON upstreams (location_id);
CREATE INDEX upstreams_stream ON upstreams (stream_id);

-- Header rules of proxy hosts and locations; direction is request/response.
CREATE TABLE header_rules (
    id            INTEGER PRIMARY KEY,
    proxy_host_id INTEGER REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    location_id   INTEGER REFERENCES locations (id) ON DELETE CASCADE,
    direction     TEXT    NOT NULL CHECK (direction IN ('request', 'response')),
    position      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    CHECK ((proxy_host_id IS NOT NULL) + (location_id IS NOT NULL) = 1)
);
CREATE INDEX header_rules_proxy_host ON header_rules (proxy_host_id);
CREATE INDEX header_rules_location ON header_rules (location_id);

-- Filters attached to hosts and locations: a registered kind and its JSON
-- config. Global filters live in settings.
CREATE TABLE filters (
    id                  INTEGER PRIMARY KEY,
    proxy_host_id       INTEGER REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    location_id         INTEGER REFERENCES locations (id) ON DELETE CASCADE,
    redirection_host_id INTEGER REFERENCES redirection_hosts (id) ON DELETE CASCADE,
    dead_host_id        INTEGER REFERENCES dead_hosts (id) ON DELETE CASCADE,
    position            INTEGER NOT NULL,
    kind                TEXT    NOT NULL,
    config              TEXT    NOT NULL,
    priority            INTEGER,
    CHECK ((proxy_host_id IS NOT NULL) + (location_id IS NOT NULL)
           + (redirection_host_id IS NOT NULL) + (dead_host_id IS NOT NULL) = 1)
);
CREATE INDEX filters_proxy_host ON filters (proxy_host_id);
CREATE INDEX filters_location ON filters (location_id);
CREATE INDEX filters_redirection_host ON filters (redirection_host_id);
CREATE INDEX filters_dead_host ON filters (dead_host_id);

-- Global settings, one row per top-level field of `Settings`, value in JSON.
CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Control-plane tables (they do not change the config revision).

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    email               TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name                TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    role                TEXT    NOT NULL,
    disabled            INTEGER NOT NULL DEFAULT 0,
    password_changed_at INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Kept when the user is deleted: `actor` names who it was.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    user_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    actor     TEXT    NOT NULL,
    client_ip TEXT,
    action    TEXT    NOT NULL,
    entity    TEXT    NOT NULL,
    entity_id INTEGER,
    before    TEXT,
    after     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE acme_accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    directory_url TEXT    NOT NULL,
    email         TEXT,
    account_url   TEXT,
    key_pem       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (directory_url, email)
);

CREATE TABLE acme_orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES acme_accounts (id) ON DELETE CASCADE,
    -- A loose reference: imports and rollbacks rewrite certificates by id.
    certificate_id INTEGER,
    domain_names   TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    order_url      TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX acme_orders_certificate ON acme_orders (certificate_id);
