-- taskflowd schema, SQLite. Times are integer microseconds since the Unix epoch, JSON documents are text.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 1,
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;
CREATE INDEX users_created_at ON users (created_at, id);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    handler TEXT NOT NULL,
    payload TEXT NOT NULL,
    cron_expression TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    scheduled_at INTEGER,
    delay_ms INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 0,
    backoff_ms INTEGER NOT NULL DEFAULT 1000,
    timeout_ms INTEGER,
    rate_limit INTEGER,
    concurrency INTEGER,
    misfire_policy TEXT NOT NULL DEFAULT 'RUN_ONCE',
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_run_at INTEGER,
    next_run_at INTEGER,
    deleted_at INTEGER
);
CREATE INDEX tasks_created_by ON tasks (created_by, created_at, id);
CREATE INDEX tasks_created_at ON tasks (created_at, id);
CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_next_run_at ON tasks (next_run_at)
    WHERE deleted_at IS NULL AND status = 'ACTIVE' AND type = 'RECURRING';

CREATE TABLE job_executions (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    job_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    tick_at INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    handler TEXT NOT NULL,
    payload TEXT NOT NULL,
    max_retries INTEGER NOT NULL DEFAULT 0,
    backoff_ms INTEGER NOT NULL DEFAULT 1000,
    timeout_ms INTEGER,
    started_at INTEGER,
    completed_at INTEGER,
    duration_ms INTEGER,
    result TEXT,
    error TEXT,
    request_id TEXT,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    fence INTEGER NOT NULL DEFAULT 0,
    rescues INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX job_executions_tick ON job_executions (task_id, tick_at) WHERE tick_at IS NOT NULL;
CREATE INDEX job_executions_task_id ON job_executions (task_id, created_at, id);
CREATE INDEX job_executions_owner ON job_executions (owner_id, created_at, id);
CREATE INDEX job_executions_created_at ON job_executions (created_at, id);
CREATE INDEX job_executions_status ON job_executions (status);
CREATE INDEX job_executions_ready ON job_executions (priority, run_at)
    WHERE status IN ('PENDING', 'RETRYING');
CREATE INDEX job_executions_run_at ON job_executions (run_at)
    WHERE status IN ('PENDING', 'RETRYING');
CREATE INDEX job_executions_lease ON job_executions (lease_expires_at)
    WHERE status = 'PROCESSING';

CREATE TABLE retry_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL REFERENCES job_executions (id),
    attempt INTEGER NOT NULL,
    error TEXT NOT NULL,
    failed_at INTEGER NOT NULL,
    next_run_at INTEGER
);
CREATE INDEX retry_history_execution ON retry_history (execution_id, attempt);

CREATE TABLE dead_letter_jobs (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL UNIQUE REFERENCES job_executions (id),
    task_id TEXT NOT NULL REFERENCES tasks (id),
    job_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX dead_letter_jobs_task_id ON dead_letter_jobs (task_id);
CREATE INDEX dead_letter_jobs_owner ON dead_letter_jobs (owner_id, created_at, id);
CREATE INDEX dead_letter_jobs_created_at ON dead_letter_jobs (created_at, id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    family_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    roles TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
