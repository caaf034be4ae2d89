-- Claims and lease renewals as heap-only (HOT) updates.
--
-- PostgreSQL rewrites every index of a row on an update unless no indexed column
-- changes and the new version fits on the same page. A claim changes status, lease and
-- start time; so no index may refer to those columns, and pages keep half their room
-- free (fillfactor) for the claimed versions of a whole batch of jobs. The queue's
-- indexes cover every execution that has not ended (completed_at IS NULL: queued and
-- running alike) and queries filter the status on the row. The lease reaper reads the
-- due part of that index: a running job was due when it was claimed.
DROP INDEX job_executions_status;
DROP INDEX job_executions_lease;
DROP INDEX job_executions_ready;
DROP INDEX job_executions_run_at;
CREATE INDEX job_executions_ready ON job_executions (priority, run_at)
    WHERE completed_at IS NULL;
CREATE INDEX job_executions_run_at ON job_executions (run_at)
    WHERE completed_at IS NULL;
-- The open executions of one task (to reschedule, cancel or end it).
CREATE INDEX job_executions_open ON job_executions (task_id)
    WHERE completed_at IS NULL;
ALTER TABLE job_executions SET (fillfactor = 50);
