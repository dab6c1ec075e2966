-- Traffic statistics per node: several processes (nodes) may share one
-- database file, and each adds its own rows, keyed by its node id, so the
-- API can sum them across nodes with a per-node breakdown. SQLite cannot
-- change a primary key, so each table is rebuilt. Rows recorded before
-- this migration keep node_id '' (no node was recorded then).

CREATE TABLE stats_minute_by_node (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    node_id         TEXT    NOT NULL DEFAULT '',
    requests        INTEGER NOT NULL DEFAULT 0,
    no_response     INTEGER NOT NULL DEFAULT 0,
    status_1xx      INTEGER NOT NULL DEFAULT 0,
    status_2xx      INTEGER NOT NULL DEFAULT 0,
    status_3xx      INTEGER NOT NULL DEFAULT 0,
    status_4xx      INTEGER NOT NULL DEFAULT 0,
    status_5xx      INTEGER NOT NULL DEFAULT 0,
    bytes_in        INTEGER NOT NULL DEFAULT 0,
    bytes_out       INTEGER NOT NULL DEFAULT 0,
    upstream_errors INTEGER NOT NULL DEFAULT 0,
    retries         INTEGER NOT NULL DEFAULT 0,
    duration_us_sum INTEGER NOT NULL DEFAULT 0,
    duration_count  INTEGER NOT NULL DEFAULT 0,
    upstream_us_sum INTEGER NOT NULL DEFAULT 0,
    upstream_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key, ts, node_id)
) WITHOUT ROWID;
INSERT INTO stats_minute_by_node (scope, key, ts, node_id, requests, no_response, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, bytes_in, bytes_out, upstream_errors, retries, duration_us_sum, duration_count, upstream_us_sum, upstream_count)
    SELECT scope, key, ts, '', requests, no_response, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, bytes_in, bytes_out, upstream_errors, retries, duration_us_sum, duration_count, upstream_us_sum, upstream_count FROM stats_minute;
DROP TABLE stats_minute;
ALTER TABLE stats_minute_by_node RENAME TO stats_minute;
CREATE INDEX stats_minute_ts ON stats_minute (ts);

CREATE TABLE stats_hour_by_node (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    node_id         TEXT    NOT NULL DEFAULT '',
    requests        INTEGER NOT NULL DEFAULT 0,
    no_response     INTEGER NOT NULL DEFAULT 0,
    status_1xx      INTEGER NOT NULL DEFAULT 0,
    status_2xx      INTEGER NOT NULL DEFAULT 0,
    status_3xx      INTEGER NOT NULL DEFAULT 0,
    status_4xx      INTEGER NOT NULL DEFAULT 0,
    status_5xx      INTEGER NOT NULL DEFAULT 0,
    bytes_in        INTEGER NOT NULL DEFAULT 0,
    bytes_out       INTEGER NOT NULL DEFAULT 0,
    upstream_errors INTEGER NOT NULL DEFAULT 0,
    retries         INTEGER NOT NULL DEFAULT 0,
    duration_us_sum INTEGER NOT NULL DEFAULT 0,
    duration_count  INTEGER NOT NULL DEFAULT 0,
    upstream_us_sum INTEGER NOT NULL DEFAULT 0,
    upstream_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key, ts, node_id)
) WITHOUT ROWID;
INSERT INTO stats_hour_by_node (scope, key, ts, node_id, requests, no_response, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, bytes_in, bytes_out, upstream_errors, retries, duration_us_sum, duration_count, upstream_us_sum, upstream_count)
    SELECT scope, key, ts, '', requests, no_response, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, bytes_in, bytes_out, upstream_errors, retries, duration_us_sum, duration_count, upstream_us_sum, upstream_count FROM stats_hour;
DROP TABLE stats_hour;
ALTER TABLE stats_hour_by_node RENAME TO stats_hour;
CREATE INDEX stats_hour_ts ON stats_hour (ts);

-- Totals per node, scope and key; ts is the last rollup that added to it.
CREATE TABLE stats_total_by_node (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    node_id         TEXT    NOT NULL DEFAULT '',
    requests        INTEGER NOT NULL DEFAULT 0,
    no_response     INTEGER NOT NULL DEFAULT 0,
    status_1xx      INTEGER NOT NULL DEFAULT 0,
    status_2xx      INTEGER NOT NULL DEFAULT 0,
    status_3xx      INTEGER NOT NULL DEFAULT 0,
    status_4xx      INTEGER NOT NULL DEFAULT 0,
    status_5xx      INTEGER NOT NULL DEFAULT 0,
    bytes_in        INTEGER NOT NULL DEFAULT 0,
    bytes_out       INTEGER NOT NULL DEFAULT 0,
    upstream_errors INTEGER NOT NULL DEFAULT 0,
    retries         INTEGER NOT NULL DEFAULT 0,
    duration_us_sum INTEGER NOT NULL DEFAULT 0,
    duration_count  INTEGER NOT NULL DEFAULT 0,
    upstream_us_sum INTEGER NOT NULL DEFAULT 0,
    upstream_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key, node_id)
) WITHOUT ROWID;
INSERT INTO stats_total_by_node (scope, key, ts, node_id, requests, no_response, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, bytes_in, bytes_out, upstream_errors, retries, duration_us_sum, duration_count, upstream_us_sum, upstream_count)
    SELECT scope, key, ts, '', requests, no_response, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, bytes_in, bytes_out, upstream_errors, retries, duration_us_sum, duration_count, upstream_us_sum, upstream_count FROM stats_total;
DROP TABLE stats_total;
ALTER TABLE stats_total_by_node RENAME TO stats_total;
