-- Ingest throughput: every result row of every scan is appended to
-- scan_results, and each of its B-tree indexes costs a descent and an
-- insert per row. The observed_at index only serves retention
-- (PruneResults deletes rows older than a cut-off), and rows arrive in
-- observed_at order, so a BRIN index (one summary per 128 pages, nothing
-- to do per row while a range is open) finds the old ranges just as well.
DROP INDEX IF EXISTS scan_results_observed;
CREATE INDEX scan_results_observed ON scan_results USING brin (observed_at) WITH (autosummarize = on);

-- Transitions are appended only and never looked up by id: id orders
-- rows of one rule at the same instant (StateAt, Transitions), which the
-- sequence guarantees without a unique index. Dropping the primary key
-- saves one of the four index inserts per logged change.
ALTER TABLE transitions DROP CONSTRAINT IF EXISTS transitions_pkey;
