-- Named leases: background work that one node at a time does (pruning old records).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Pruning deletes finished executions all day: vacuum the churning tables after a small
-- share of dead rows rather than the default fifth of the table (see README, Retention).
ALTER TABLE job_executions SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE retry_history SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE tasks SET (autovacuum_vacuum_scale_factor = 0.05);
