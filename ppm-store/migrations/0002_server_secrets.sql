-- Server-wide secrets (e.g. the session-signing key), created once and shared
-- by every process using the database.
CREATE TABLE server_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
