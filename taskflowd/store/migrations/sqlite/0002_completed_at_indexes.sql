-- Statistics read executions finished in a recent window, overall and per owner.
CREATE INDEX job_executions_completed_at ON job_executions (completed_at)
    WHERE completed_at IS NOT NULL;
CREATE INDEX job_executions_owner_completed_at ON job_executions (owner_id, completed_at)
    WHERE completed_at IS NOT NULL;
