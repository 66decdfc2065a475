CREATE TABLE hosts (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    address     TEXT NOT NULL DEFAULT '',
    os          TEXT NOT NULL DEFAULT '',
    labels      JSONB NOT NULL DEFAULT '{}',
    group_names JSONB NOT NULL DEFAULT '[]',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE scans (
    id             BIGSERIAL PRIMARY KEY,
    host_id        BIGINT NOT NULL REFERENCES hosts(id),
    trigger        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('running','completed','failed')),
    bundle_version TEXT NOT NULL DEFAULT '',
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ,
    total          INTEGER NOT NULL DEFAULT 0,
    pass           INTEGER NOT NULL DEFAULT 0,
    fail           INTEGER NOT NULL DEFAULT 0,
    skipped        INTEGER NOT NULL DEFAULT 0,
    error          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX scans_host ON scans(host_id, started_at);

-- One row per applied batch: the idempotency key for agent retries.
CREATE TABLE ingested_batches (
    scan_id     BIGINT NOT NULL REFERENCES scans(id),
    seq         BIGINT NOT NULL,
    results     INTEGER NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scan_id, seq)
);

CREATE TABLE evidence (
    hash TEXT PRIMARY KEY,
    body JSONB NOT NULL
);

-- The high-volume tables below (scan_results, current_state, transitions)
-- carry no foreign keys on purpose: PostgreSQL checks a foreign key with one
-- query per inserted row, which halved ingest throughput when measured.
-- Ingest guarantees the references itself: it reads the scan (and so its
-- host) and inserts the evidence bodies in the same transaction, before
-- writing any row that points at them.
CREATE TABLE scan_results (
    id            BIGSERIAL PRIMARY KEY,
    scan_id       BIGINT NOT NULL,
    host_id       BIGINT NOT NULL,
    rule_id       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pass','fail','skipped','error')),
    severity      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    refs          JSONB NOT NULL,
    evidence_hash TEXT,
    observed_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX scan_results_scan ON scan_results(scan_id, rule_id);

CREATE TABLE current_state (
    host_id       BIGINT NOT NULL,
    rule_id       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pass','fail','skipped','error')),
    severity      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    refs          JSONB NOT NULL,
    evidence_hash TEXT,
    scan_id       BIGINT NOT NULL,
    observed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (host_id, rule_id)
);

CREATE TABLE transitions (
    id            BIGSERIAL PRIMARY KEY,
    host_id       BIGINT NOT NULL,
    rule_id       TEXT NOT NULL,
    from_status   TEXT NOT NULL,
    to_status     TEXT NOT NULL CHECK (to_status IN ('pass','fail','skipped','error')),
    severity      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    refs          JSONB NOT NULL,
    evidence_hash TEXT,
    scan_id       BIGINT NOT NULL,
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX transitions_host_rule_at ON transitions(host_id, rule_id, at);
CREATE INDEX transitions_host_at ON transitions(host_id, at);
