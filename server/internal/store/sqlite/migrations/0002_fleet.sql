-- Fleet inventory, scheduling, posture history, accounts and audit.
-- Times are INTEGER microseconds since the Unix epoch, as in 0001.

-- Host columns: the owning agent (NULL = scanned agentless by the server),
-- the schedule (next due time, a lease held by the scheduler scanning it, a
-- pending request that survives the lease), the posture of the last scan,
-- and a soft delete so that history stays answerable after decommission.
ALTER TABLE hosts ADD COLUMN agent_id INTEGER;
ALTER TABLE hosts ADD COLUMN next_scan_at INTEGER;
ALTER TABLE hosts ADD COLUMN last_scan_at INTEGER;
ALTER TABLE hosts ADD COLUMN due_reason TEXT NOT NULL DEFAULT 'first';
ALTER TABLE hosts ADD COLUMN requested_at INTEGER;
ALTER TABLE hosts ADD COLUMN lease_owner TEXT;
ALTER TABLE hosts ADD COLUMN lease_until INTEGER;
ALTER TABLE hosts ADD COLUMN score REAL;
ALTER TABLE hosts ADD COLUMN band TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN deleted_at INTEGER;
CREATE INDEX hosts_due ON hosts(next_scan_at) WHERE deleted_at IS NULL;

ALTER TABLE scans ADD COLUMN message TEXT NOT NULL DEFAULT '';
CREATE INDEX scans_started ON scans(started_at);

-- valid_to closes a transition when the next one for the same (host, rule)
-- is written, so "state at T" is the set of rows with at <= T < valid_to.
ALTER TABLE transitions ADD COLUMN valid_to INTEGER;
CREATE INDEX transitions_at ON transitions(at);
CREATE INDEX scan_results_observed ON scan_results(observed_at);

CREATE TABLE host_groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE agents (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL CHECK (status IN ('active','revoked')),
    version      TEXT NOT NULL DEFAULT '',
    os           TEXT NOT NULL DEFAULT '',
    cert_serial  TEXT NOT NULL DEFAULT '',
    labels       TEXT NOT NULL DEFAULT '{}',
    enrolled_at  INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at   INTEGER
);

-- SSH credentials for agentless hosts, sealed with AES-256-GCM by the
-- server before they reach the store; the store never sees plaintext.
CREATE TABLE host_credentials (
    host_id    INTEGER PRIMARY KEY REFERENCES hosts(id),
    sealed     BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);

-- framework '' is the score over every rule. day is micros of UTC midnight.
CREATE TABLE posture_snapshots (
    host_id   INTEGER NOT NULL,
    framework TEXT NOT NULL,
    day       INTEGER NOT NULL,
    score     REAL NOT NULL,
    pass      INTEGER NOT NULL,
    fail      INTEGER NOT NULL,
    error     INTEGER NOT NULL,
    skipped   INTEGER NOT NULL,
    band      TEXT NOT NULL,
    scan_id   INTEGER NOT NULL,
    PRIMARY KEY (host_id, framework, day)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
);

-- Session and API tokens; only the SHA-256 of a token is stored.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('session','api')),
    name         TEXT NOT NULL DEFAULT '',
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);

-- Append-only; each entry's hash covers the previous entry's hash.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '{}',
    source     TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
