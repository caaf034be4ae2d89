-- Claims read each org's due jobs best first (priority DESC, then run_at): an index in
-- that order serves them without sorting the org's whole backlog on every claim.
DROP INDEX job_executions_org_ready;
CREATE INDEX job_executions_org_ready ON job_executions (org_id, priority DESC, run_at)
    WHERE status IN ('PENDING', 'RETRYING');
