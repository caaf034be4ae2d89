-- API keys: how programs authenticate. The key is shown once at creation; only its
-- SHA-256 is kept, with a short prefix so users can tell their keys apart.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at, id);

-- Runs of a task may carry their own idempotency key, unique per task.
ALTER TABLE job_executions ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX job_executions_idempotency ON job_executions (task_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
