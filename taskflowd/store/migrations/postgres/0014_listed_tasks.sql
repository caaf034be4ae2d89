-- The task list (GET /api/v1/tasks) reads an org's tasks that are not deleted and not a
-- workflow's, newest first. Through tasks_org the deleted and workflow tasks were read
-- and dropped, and on PostgreSQL, with statistics gone stale while an org's tasks grew
-- (autovacuum analyses late), the planner read all of the org's tasks and sorted them:
-- 2 ms for a page of 20 among 1,600 tasks. In this index a page is its first rows.
CREATE INDEX tasks_org_listed ON tasks (org_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND workflow_id IS NULL;
