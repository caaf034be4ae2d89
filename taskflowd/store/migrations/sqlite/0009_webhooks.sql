-- Webhooks (DESIGN.md §10): endpoints of an org, and the outbox of deliveries to them.
-- `events` is the subscribed event types as ",type,type," (matched with LIKE); the
-- secrets are sealed like payloads when encryption keys are configured.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL,
    task_id TEXT,
    workflow_id TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until INTEGER,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    failing_since INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, status);
CREATE INDEX webhook_endpoints_created_at ON webhook_endpoints (org_id, created_at, id);

-- One row per (message, endpoint), written in the transaction of the change it reports.
-- `message_id` is the webhook-id header: stable across retries and redeliveries. A row
-- being sent holds a lease: `next_attempt_at` is then its expiry, so a sender that died
-- leaves the row due again; `fence` grows with every claim.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    fence INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_owner TEXT,
    response_status INTEGER,
    response_body TEXT,
    error TEXT,
    duration_ms INTEGER,
    last_attempt_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('PENDING', 'SENDING');
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at, id);
