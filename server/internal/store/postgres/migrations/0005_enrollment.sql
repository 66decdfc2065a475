-- Agent enrolment: join tokens, issued certificates, published bundles,
-- and what an agent's latest heartbeat said.

-- Only the hex SHA-256 of a join token is stored.
CREATE TABLE join_tokens (
    id         BIGSERIAL PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    uses       INTEGER NOT NULL CHECK (uses > 0),
    used       INTEGER NOT NULL DEFAULT 0,
    labels     JSONB NOT NULL DEFAULT '{}',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Every certificate issued to an agent, so that an audit can name it.
CREATE TABLE agent_certificates (
    serial     TEXT PRIMARY KEY,
    agent_id   BIGINT NOT NULL REFERENCES agents(id),
    not_before TIMESTAMPTZ NOT NULL,
    not_after  TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_certificates_agent ON agent_certificates(agent_id);

-- Signed rule bundles by the digest of their file.
CREATE TABLE bundles (
    digest       TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    created      TIMESTAMPTZ NOT NULL,
    expires      TIMESTAMPTZ,
    published_at TIMESTAMPTZ NOT NULL,
    data         BYTEA NOT NULL
);
CREATE INDEX bundles_published ON bundles(published_at);

ALTER TABLE agents
    ADD COLUMN spool_batches BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN spool_bytes   BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN bundle_digest TEXT NOT NULL DEFAULT '',
    ADD COLUMN hostname      TEXT NOT NULL DEFAULT '';
