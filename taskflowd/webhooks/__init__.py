"""Webhooks: signed messages to users' HTTP endpoints about their jobs, tasks and
workflow runs (DESIGN.md §10).

`rules` holds the Standard Webhooks signature, the retry schedule and event names (free
of I/O); `outbox` writes deliveries in the transaction of the change they report;
`records` keeps endpoints and deliveries; `sender` delivers them from worker nodes under
leases; `service` is what the API calls.
"""
