-- The audit trail (DESIGN.md §10): one row per recorded change, chained by SHA-256.
-- seq is the event's position in the chain; nothing ever updates a row.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at TIMESTAMPTZ NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    actor_email TEXT,
    org_id TEXT,
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    changes TEXT NOT NULL,
    request_id TEXT,
    ip TEXT,
    user_agent TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_target ON audit_events (target_type, target_id, seq);
CREATE INDEX audit_events_at ON audit_events (at);

-- The chain's head (the last event's position and hash; appends lock this row) and its
-- checkpoint: the last pruned event, which the first kept event follows.
CREATE TABLE audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_seq BIGINT NOT NULL,
    pruned_hash TEXT NOT NULL
);
INSERT INTO audit_chain (id, seq, hash, pruned_seq, pruned_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0,
        '0000000000000000000000000000000000000000000000000000000000000000');
