-- Cluster nodes: every ppm-server sharing this database writes its own row
-- when it starts, after every revision it applies, and on a heartbeat. The
-- rows are not config: no revision, no history, not exported.
CREATE TABLE cluster_nodes (
    -- --node-id, or generated once and kept in the node's data directory.
    id             TEXT   PRIMARY KEY,
    -- The ppm version the node runs.
    version        TEXT   NOT NULL,
    -- The newest schema version (migration) the node's build knows.
    schema_version BIGINT NOT NULL,
    -- The config revision the node serves.
    revision       BIGINT NOT NULL,
    -- Its listeners, JSON array of strings (`api 0.0.0.0:81`...).
    listeners      TEXT   NOT NULL,
    -- Unix ms by the database's clock, so nodes' clocks do not matter.
    started_at     BIGINT NOT NULL,
    last_seen      BIGINT NOT NULL
);
