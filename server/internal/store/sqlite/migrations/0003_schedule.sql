-- Scheduling and posture history.

-- Transitions written before ingest maintained valid_to: close each with
-- the time of the next transition of the same (host, rule).
UPDATE transitions SET valid_to = n.next_at
FROM (SELECT id, lead(at) OVER (PARTITION BY host_id, rule_id ORDER BY at, id) AS next_at FROM transitions) AS n
WHERE transitions.id = n.id AND n.next_at IS NOT NULL AND transitions.valid_to IS NULL;

-- Ingest closes a rule's open transition (valid_to IS NULL) on every
-- change: find it without walking the rule's whole history.
CREATE INDEX transitions_open ON transitions(host_id, rule_id) WHERE valid_to IS NULL;
