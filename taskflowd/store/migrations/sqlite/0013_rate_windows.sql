-- A claim of a rate-limited task counts the task's starts in the last minute: read by
-- task_id alone that walked the task's whole history inside the claim's transaction
-- (0.4 s with 200,000 past executions). Started rows by (task, start), and failures by
-- time for the attempts a retried row no longer shows (retry_history takes a row only
-- at a failure).
CREATE INDEX job_executions_task_started ON job_executions (task_id, started_at)
    WHERE started_at IS NOT NULL;
CREATE INDEX retry_history_failed_at ON retry_history (failed_at);
