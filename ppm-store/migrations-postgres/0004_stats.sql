-- Traffic time series: counters rolled up per minute and per hour, and
-- totals since the database was created. Not config: no revision, no
-- history, not exported.
--
-- Every node adds its own rows (node_id: its --node-id or generated id), so
-- nodes never write the same row and the API sums them across nodes with a
-- per-node breakdown. scope: 'host' (key '<kind>:<id>', such as 'proxy:3'),
-- 'upstream' (key 'host:port') or 'stream' (key: the stream id). ts: unix
-- seconds at the start of the minute or hour.
CREATE TABLE stats_minute (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              BIGINT  NOT NULL,
    node_id         TEXT    NOT NULL,
    requests        BIGINT  NOT NULL DEFAULT 0,
    no_response     BIGINT  NOT NULL DEFAULT 0,
    status_1xx      BIGINT  NOT NULL DEFAULT 0,
    status_2xx      BIGINT  NOT NULL DEFAULT 0,
    status_3xx      BIGINT  NOT NULL DEFAULT 0,
    status_4xx      BIGINT  NOT NULL DEFAULT 0,
    status_5xx      BIGINT  NOT NULL DEFAULT 0,
    bytes_in        BIGINT  NOT NULL DEFAULT 0,
    bytes_out       BIGINT  NOT NULL DEFAULT 0,
    upstream_errors BIGINT  NOT NULL DEFAULT 0,
    retries         BIGINT  NOT NULL DEFAULT 0,
    duration_us_sum BIGINT  NOT NULL DEFAULT 0,
    duration_count  BIGINT  NOT NULL DEFAULT 0,
    upstream_us_sum BIGINT  NOT NULL DEFAULT 0,
    upstream_count  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key, ts, node_id)
);
CREATE INDEX stats_minute_ts ON stats_minute (ts);

CREATE TABLE stats_hour (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              BIGINT  NOT NULL,
    node_id         TEXT    NOT NULL,
    requests        BIGINT  NOT NULL DEFAULT 0,
    no_response     BIGINT  NOT NULL DEFAULT 0,
    status_1xx      BIGINT  NOT NULL DEFAULT 0,
    status_2xx      BIGINT  NOT NULL DEFAULT 0,
    status_3xx      BIGINT  NOT NULL DEFAULT 0,
    status_4xx      BIGINT  NOT NULL DEFAULT 0,
    status_5xx      BIGINT  NOT NULL DEFAULT 0,
    bytes_in        BIGINT  NOT NULL DEFAULT 0,
    bytes_out       BIGINT  NOT NULL DEFAULT 0,
    upstream_errors BIGINT  NOT NULL DEFAULT 0,
    retries         BIGINT  NOT NULL DEFAULT 0,
    duration_us_sum BIGINT  NOT NULL DEFAULT 0,
    duration_count  BIGINT  NOT NULL DEFAULT 0,
    upstream_us_sum BIGINT  NOT NULL DEFAULT 0,
    upstream_count  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key, ts, node_id)
);
CREATE INDEX stats_hour_ts ON stats_hour (ts);

-- Totals per node, scope and key; ts is the last rollup that added to it.
CREATE TABLE stats_total (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              BIGINT  NOT NULL,
    node_id         TEXT    NOT NULL,
    requests        BIGINT  NOT NULL DEFAULT 0,
    no_response     BIGINT  NOT NULL DEFAULT 0,
    status_1xx      BIGINT  NOT NULL DEFAULT 0,
    status_2xx      BIGINT  NOT NULL DEFAULT 0,
    status_3xx      BIGINT  NOT NULL DEFAULT 0,
    status_4xx      BIGINT  NOT NULL DEFAULT 0,
    status_5xx      BIGINT  NOT NULL DEFAULT 0,
    bytes_in        BIGINT  NOT NULL DEFAULT 0,
    bytes_out       BIGINT  NOT NULL DEFAULT 0,
    upstream_errors BIGINT  NOT NULL DEFAULT 0,
    retries         BIGINT  NOT NULL DEFAULT 0,
    duration_us_sum BIGINT  NOT NULL DEFAULT 0,
    duration_count  BIGINT  NOT NULL DEFAULT 0,
    upstream_us_sum BIGINT  NOT NULL DEFAULT 0,
    upstream_count  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key, node_id)
);
