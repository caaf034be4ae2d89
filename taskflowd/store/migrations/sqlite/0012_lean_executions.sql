-- Every execution written pays for every index of job_executions. These four serve no
-- query: nothing reads executions by owner (lists go by org or task), claims read each
-- org's head through job_executions_org_ready, and the lease reaper finds running jobs
-- through job_executions_status.
DROP INDEX job_executions_owner;
DROP INDEX job_executions_owner_completed_at;
DROP INDEX job_executions_ready;
DROP INDEX job_executions_lease;
