-- Host inventory (agent issue): the latest facts of each host, searchable
-- rows for packages, ports and services, a log of what changed, and the
-- bookkeeping of imported offline results archives. Times are INTEGER
-- microseconds since the Unix epoch, as in 0001.

-- body is the whole normalised inventory as JSON (store.HostFacts).
CREATE TABLE host_facts (
    host_id      INTEGER PRIMARY KEY REFERENCES hosts(id),
    os           TEXT NOT NULL DEFAULT '',
    kernel       TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL,
    collected_at INTEGER NOT NULL
);

CREATE TABLE host_packages (
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    name    TEXT NOT NULL,
    arch    TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (host_id, name, arch)
);
CREATE INDEX host_packages_name ON host_packages(name);

CREATE TABLE host_ports (
    host_id  INTEGER NOT NULL REFERENCES hosts(id),
    protocol TEXT NOT NULL,
    address  TEXT NOT NULL,
    port     INTEGER NOT NULL,
    process  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (host_id, protocol, address, port)
);
CREATE INDEX host_ports_port ON host_ports(port);

CREATE TABLE host_services (
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    name    TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    active  INTEGER NOT NULL,
    PRIMARY KEY (host_id, name)
);
CREATE INDEX host_services_name ON host_services(name);

-- Written only when an inventory differs from the host's previous one.
CREATE TABLE fact_changes (
    id      INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    change  TEXT NOT NULL CHECK (change IN ('added','removed','changed')),
    item    TEXT NOT NULL,
    old     TEXT NOT NULL DEFAULT '',
    new     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX fact_changes_host_at ON fact_changes(host_id, at);

-- One row per offline results archive (by digest): importing it again
-- changes nothing; finished_at NULL means an interrupted import to resume.
CREATE TABLE imported_archives (
    digest      TEXT PRIMARY KEY,
    host_id     INTEGER NOT NULL REFERENCES hosts(id),
    scan_id     INTEGER NOT NULL REFERENCES scans(id),
    agent_id    INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);
