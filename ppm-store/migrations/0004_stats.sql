-- Traffic time series: counters rolled up per minute and per hour, and
-- totals since the database was created. Not config: no revision, no
-- history, not exported.
--
-- scope: 'host' (key '<kind>:<id>', such as 'proxy:3'), 'upstream' (key
-- 'host:port') or 'stream' (key: the stream id). ts: unix seconds at the
-- start of the minute or hour.
CREATE TABLE stats_minute (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
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
    PRIMARY KEY (scope, key, ts)
) WITHOUT ROWID;
CREATE INDEX stats_minute_ts ON stats_minute (ts);

CREATE TABLE stats_hour (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
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
    PRIMARY KEY (scope, key, ts)
) WITHOUT ROWID;
CREATE INDEX stats_hour_ts ON stats_hour (ts);

-- Totals per scope and key; ts is the last rollup that added to it.
CREATE TABLE stats_total (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
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
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
