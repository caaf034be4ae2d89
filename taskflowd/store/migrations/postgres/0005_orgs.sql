-- Organizations (DESIGN §11): every record of org data carries its org. Existing rows
-- move into one default organization, whose members all existing users become.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    max_tasks INTEGER,
    max_workflows INTEGER,
    max_running_jobs INTEGER,
    api_limit_per_min INTEGER,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);

CREATE TABLE org_members (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user ON org_members (user_id);

INSERT INTO orgs (id, slug, name, created_at, updated_at)
    VALUES ('00000000-0000-4000-8000-000000000001', 'default', 'Default', now(), now());

INSERT INTO org_members (org_id, user_id, role, created_at)
    SELECT '00000000-0000-4000-8000-000000000001', id,
        CASE WHEN role = 'ADMIN' THEN 'OWNER' ELSE 'MEMBER' END, created_at
    FROM users WHERE deleted_at IS NULL;

ALTER TABLE users ADD COLUMN default_org_id TEXT;
UPDATE users SET default_org_id = '00000000-0000-4000-8000-000000000001'
    WHERE deleted_at IS NULL;

-- Existing rows take the default org; new rows must name theirs (the default is dropped).
ALTER TABLE tasks ADD COLUMN org_id TEXT NOT NULL
    DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE tasks ALTER COLUMN org_id DROP DEFAULT;
CREATE INDEX tasks_org ON tasks (org_id, created_at, id);

ALTER TABLE job_executions ADD COLUMN org_id TEXT NOT NULL
    DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE job_executions ALTER COLUMN org_id DROP DEFAULT;
CREATE INDEX job_executions_org ON job_executions (org_id, created_at, id);
-- Claims take each org's due jobs in turn (a fair share of worker slots).
CREATE INDEX job_executions_org_ready ON job_executions (org_id, priority, run_at)
    WHERE completed_at IS NULL;
CREATE INDEX job_executions_org_completed_at ON job_executions (org_id, completed_at)
    WHERE completed_at IS NOT NULL;

ALTER TABLE dead_letter_jobs ADD COLUMN org_id TEXT NOT NULL
    DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE dead_letter_jobs ALTER COLUMN org_id DROP DEFAULT;
CREATE INDEX dead_letter_jobs_org ON dead_letter_jobs (org_id, created_at, id);

ALTER TABLE api_keys ADD COLUMN org_id TEXT NOT NULL
    DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE api_keys ALTER COLUMN org_id DROP DEFAULT;

-- An Idempotency-Key is spent in one org only: the key joins the primary key.
ALTER TABLE idempotency_keys ADD COLUMN org_id TEXT NOT NULL
    DEFAULT '00000000-0000-4000-8000-000000000001';
ALTER TABLE idempotency_keys ALTER COLUMN org_id DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (org_id, user_id, key);
