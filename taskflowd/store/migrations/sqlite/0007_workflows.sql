-- Workflows (DESIGN.md §9): DAGs of steps. Each workflow is backed by a hidden task
-- (tasks.workflow_id) so that its step executions are ordinary jobs of that task.
CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL,
    status TEXT NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    cron_expression TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    misfire_policy TEXT NOT NULL DEFAULT 'RUN_ONCE',
    next_run_at INTEGER,
    created_by TEXT NOT NULL REFERENCES users (id),
    org_id TEXT NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX workflows_created_by ON workflows (created_by, created_at, id);
CREATE INDEX workflows_org ON workflows (org_id, created_at, id);
CREATE INDEX workflows_created_at ON workflows (created_at, id);

ALTER TABLE tasks ADD COLUMN workflow_id TEXT;

-- A run keeps the steps it started with: editing the workflow does not change it.
CREATE TABLE workflow_runs (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    owner_id TEXT NOT NULL,
    org_id TEXT NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001',
    task_id TEXT NOT NULL REFERENCES tasks (id),
    steps TEXT NOT NULL,
    status TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    tick_at INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX workflow_runs_workflow ON workflow_runs (workflow_id, created_at, id);
CREATE INDEX workflow_runs_owner ON workflow_runs (owner_id, created_at, id);
CREATE INDEX workflow_runs_org ON workflow_runs (org_id, created_at, id);
CREATE INDEX workflow_runs_created_at ON workflow_runs (created_at, id);
CREATE UNIQUE INDEX workflow_runs_tick ON workflow_runs (workflow_id, tick_at) WHERE tick_at IS NOT NULL;

-- How each step of a run was decided: RUN (its execution carries the rest) or SKIPPED.
-- The primary key makes the decision once per (run, step), whichever node gets there.
CREATE TABLE workflow_steps (
    run_id TEXT NOT NULL REFERENCES workflow_runs (id),
    step_key TEXT NOT NULL,
    decision TEXT NOT NULL,
    skip_cause TEXT,
    decided_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_key)
);

ALTER TABLE job_executions ADD COLUMN workflow_run_id TEXT;
ALTER TABLE job_executions ADD COLUMN step_key TEXT;
CREATE UNIQUE INDEX job_executions_step ON job_executions (workflow_run_id, step_key)
    WHERE workflow_run_id IS NOT NULL;
