"""What a node's web application is built from, handed in by the composition root
(`taskflowd.daemon`), so neither the API nor the dashboard knows the daemon."""

from __future__ import annotations

from dataclasses import dataclass

from taskflowd.background import Supervisor
from taskflowd.cluster import Membership
from taskflowd.config import Settings
from taskflowd.events import EventBus
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.metrics import Metrics
from taskflowd.queue.base import JobQueue
from taskflowd.services.tasks import TaskService
from taskflowd.store import SqlStore
from taskflowd.webhooks.service import WebhookService
from taskflowd.workflows.service import WorkflowService


@dataclass(frozen=True, slots=True)
class NodeParts:
    """The node's components, once its database is ready (the JWT secret lives there)."""

    settings: Settings
    store: SqlStore
    queue: JobQueue
    handlers: HandlerRegistry
    events: EventBus
    supervisor: Supervisor
    tasks: TaskService
    workflows: WorkflowService
    metrics: Metrics
    jwt_secret: str
    membership: Membership | None = None
    webhooks: WebhookService | None = None
