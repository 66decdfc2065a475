-- Governance (issue 7): exceptions (waivers), alerts, notification
-- channels and their delivery log. Times are INTEGER microseconds since the
-- Unix epoch, as in 0001; NULL is "not set".

-- An exception accepts a failing rule on one host (host_id), a group
-- (group_id, no foreign key: groups are deleted for good while an
-- exception's record must stay answerable) or the fleet (neither).
CREATE TABLE exceptions (
    id            INTEGER PRIMARY KEY,
    rule_id       TEXT NOT NULL,
    host_id       INTEGER REFERENCES hosts(id),
    group_id      INTEGER,
    justification TEXT NOT NULL,
    expires_at    INTEGER,
    state         TEXT NOT NULL CHECK (state IN ('requested','approved','rejected','revoked','expired')),
    requested_by  TEXT NOT NULL,
    requested_at  INTEGER NOT NULL,
    decided_by    TEXT NOT NULL DEFAULT '',
    decided_at    INTEGER,
    decision_note TEXT NOT NULL DEFAULT '',
    revoked_by    TEXT NOT NULL DEFAULT '',
    revoked_at    INTEGER,
    revoke_note   TEXT NOT NULL DEFAULT '',
    expired_at    INTEGER,
    CHECK (host_id IS NULL OR group_id IS NULL)
);
CREATE INDEX exceptions_rule ON exceptions(rule_id);
-- ExpireExceptions looks only at approved rows with an expiry.
CREATE INDEX exceptions_expiring ON exceptions(expires_at) WHERE state = 'approved' AND expires_at IS NOT NULL;

-- One row per incident; key identifies the condition. The partial unique
-- index is the dedup: at most one unresolved alert per key, whoever raises.
CREATE TABLE alerts (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    key            TEXT NOT NULL,
    severity       TEXT NOT NULL,
    host_id        INTEGER,
    agent_id       INTEGER,
    rule_id        TEXT NOT NULL DEFAULT '',
    exception_id   INTEGER,
    labels         TEXT NOT NULL DEFAULT '{}',
    title          TEXT NOT NULL,
    detail         TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL CHECK (state IN ('active','acknowledged','silenced','resolved')),
    opened_at      INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    count          INTEGER NOT NULL CHECK (count > 0),
    ack_by         TEXT NOT NULL DEFAULT '',
    ack_at         INTEGER,
    silenced_until INTEGER,
    resolved_by    TEXT NOT NULL DEFAULT '',
    resolved_at    INTEGER
);
CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE state <> 'resolved';
CREATE INDEX alerts_open_kind ON alerts(kind) WHERE state <> 'resolved';
CREATE INDEX alerts_last_seen ON alerts(last_seen_at, id);
CREATE INDEX alerts_host ON alerts(host_id, last_seen_at) WHERE host_id IS NOT NULL;
CREATE INDEX alerts_resolved ON alerts(resolved_at) WHERE state = 'resolved';

-- secret is sealed by the server (AES-GCM) before it reaches the store.
CREATE TABLE notification_channels (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    config       TEXT NOT NULL DEFAULT '{}',
    secret       BLOB NOT NULL DEFAULT x'',
    min_severity TEXT NOT NULL DEFAULT '',
    labels       TEXT NOT NULL DEFAULT '{}',
    kinds        TEXT NOT NULL DEFAULT '[]',
    enabled      INTEGER NOT NULL,
    created_by   TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL
);

-- alert_id has no foreign key: a test message has none, and the log is
-- about what was sent, whatever happens to the alert. duration in
-- nanoseconds (a Go time.Duration).
CREATE TABLE notification_deliveries (
    id         INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    alert_id   INTEGER,
    event      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    ok         INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    status     TEXT NOT NULL DEFAULT '',
    duration   INTEGER NOT NULL
);
CREATE INDEX notification_deliveries_channel ON notification_deliveries(channel_id, at, id);
CREATE INDEX notification_deliveries_at ON notification_deliveries(at, id);
