-- Failing rules by rule: FailingAt (exceptions applied to posture "now",
-- the rule_failing alert check) reads the hosts failing a few rules; the
-- primary key (host_id, rule_id) made that a scan of current_state.
CREATE INDEX current_state_failing ON current_state (rule_id, host_id) WHERE status = 'fail';
