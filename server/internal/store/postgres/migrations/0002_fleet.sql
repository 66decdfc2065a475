-- Fleet inventory, scheduling, posture history, accounts and audit.

-- Host columns: the owning agent (NULL = scanned agentless by the server),
-- the schedule (next due time, a lease held by the replica scanning it, a
-- pending request that survives the lease), the posture of the last scan,
-- and a soft delete so that history stays answerable after decommission.
ALTER TABLE hosts
    ADD COLUMN agent_id      BIGINT,
    ADD COLUMN next_scan_at  TIMESTAMPTZ,
    ADD COLUMN last_scan_at  TIMESTAMPTZ,
    ADD COLUMN due_reason    TEXT NOT NULL DEFAULT 'first',
    ADD COLUMN requested_at  TIMESTAMPTZ,
    ADD COLUMN lease_owner   TEXT,
    ADD COLUMN lease_until   TIMESTAMPTZ,
    ADD COLUMN score         DOUBLE PRECISION,
    ADD COLUMN band          TEXT NOT NULL DEFAULT '',
    ADD COLUMN deleted_at    TIMESTAMPTZ;
CREATE INDEX hosts_due ON hosts(next_scan_at) WHERE deleted_at IS NULL;

ALTER TABLE scans ADD COLUMN message TEXT NOT NULL DEFAULT '';
CREATE INDEX scans_started ON scans(started_at);

-- valid_to closes a transition when the next one for the same (host, rule)
-- is written, so "state at T" is the set of rows with at <= T < valid_to.
ALTER TABLE transitions ADD COLUMN valid_to TIMESTAMPTZ;
CREATE INDEX transitions_at ON transitions(at);
CREATE INDEX scan_results_observed ON scan_results(observed_at);

CREATE TABLE host_groups (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE agents (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL CHECK (status IN ('active','revoked')),
    version      TEXT NOT NULL DEFAULT '',
    os           TEXT NOT NULL DEFAULT '',
    cert_serial  TEXT NOT NULL DEFAULT '',
    labels       JSONB NOT NULL DEFAULT '{}',
    enrolled_at  TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- SSH credentials for agentless hosts, sealed with AES-256-GCM by the
-- server before they reach the store; the store never sees plaintext.
CREATE TABLE host_credentials (
    host_id    BIGINT PRIMARY KEY REFERENCES hosts(id),
    sealed     BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- framework '' is the score over every rule.
CREATE TABLE posture_snapshots (
    host_id   BIGINT NOT NULL,
    framework TEXT NOT NULL,
    day       DATE NOT NULL,
    score     DOUBLE PRECISION NOT NULL,
    pass      INTEGER NOT NULL,
    fail      INTEGER NOT NULL,
    error     INTEGER NOT NULL,
    skipped   INTEGER NOT NULL,
    band      TEXT NOT NULL,
    scan_id   BIGINT NOT NULL,
    PRIMARY KEY (host_id, framework, day)
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ
);

-- Session and API tokens; only the SHA-256 of a token is stored.
CREATE TABLE tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('session','api')),
    name         TEXT NOT NULL DEFAULT '',
    hash         TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX tokens_user ON tokens(user_id);

-- Append-only; each entry's hash covers the previous entry's hash.
CREATE TABLE audit_log (
    id         BIGINT PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '{}',
    source     TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
