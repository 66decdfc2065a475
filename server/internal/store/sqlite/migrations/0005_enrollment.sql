-- Agent enrolment: join tokens, issued certificates, published bundles,
-- and what an agent's latest heartbeat said.
-- Times are INTEGER microseconds since the Unix epoch, as in 0001.

-- Only the hex SHA-256 of a join token is stored.
CREATE TABLE join_tokens (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    uses       INTEGER NOT NULL CHECK (uses > 0),
    used       INTEGER NOT NULL DEFAULT 0,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Every certificate issued to an agent, so that an audit can name it.
CREATE TABLE agent_certificates (
    serial     TEXT PRIMARY KEY,
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL
);
CREATE INDEX agent_certificates_agent ON agent_certificates(agent_id);

-- Signed rule bundles by the digest of their file.
CREATE TABLE bundles (
    digest       TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    created      INTEGER NOT NULL,
    expires      INTEGER,
    published_at INTEGER NOT NULL,
    data         BLOB NOT NULL
);
CREATE INDEX bundles_published ON bundles(published_at);

ALTER TABLE agents ADD COLUMN spool_batches INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN spool_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN bundle_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN hostname TEXT NOT NULL DEFAULT '';
