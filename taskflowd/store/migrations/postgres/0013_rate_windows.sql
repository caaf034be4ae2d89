-- A claim of a rate-limited task counts the task's starts in the last minute, and the
-- failed attempts a retried row no longer shows. Failures by time (retry_history takes a
-- row only at a failure). Starts are read through the open rows' and the completion
-- indexes, as no index may refer to a claim's columns (see 0003: claims stay HOT).
CREATE INDEX retry_history_failed_at ON retry_history (failed_at);
