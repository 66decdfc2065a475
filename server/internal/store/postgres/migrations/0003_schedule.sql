-- Scheduling and posture history.

-- Transitions written before ingest maintained valid_to: close each with
-- the time of the next transition of the same (host, rule).
UPDATE transitions t SET valid_to = n.next_at
FROM (SELECT id, lead(at) OVER (PARTITION BY host_id, rule_id ORDER BY at, id) AS next_at FROM transitions) n
WHERE t.id = n.id AND n.next_at IS NOT NULL AND t.valid_to IS NULL;

-- Ingest reads each rule's open transition (valid_to IS NULL) to close
-- it on a change: find it without walking the host's whole history.
CREATE INDEX transitions_open ON transitions(host_id, rule_id) WHERE valid_to IS NULL;

-- Every scan rewrites each rule's current_state row (scan id, time). Free
-- room in each page lets PostgreSQL update in place (HOT) without a new
-- primary key entry per row.
ALTER TABLE current_state SET (fillfactor = 70);

