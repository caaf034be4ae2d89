"""Which client method serves each operation of the OpenAPI document (by operationId)."""

from __future__ import annotations

from typing import Any

import aiohttp

CLIENT_METHODS = {
    "health": "health",
    "readiness": "ready",
    "scrape_metrics": "metrics",
    "openapi_document": "openapi",
    "get_stats": "stats",
    "register": "auth.register",
    "login": "auth.login",
    "refresh": "auth.refresh",
    "logout": "auth.logout",
    "me": "auth.me",
    "change_password": "auth.change_password",
    "list_users": "users.list",
    "create_user": "users.create",
    "get_user": "users.get",
    "update_user": "users.update",
    "delete_user": "users.delete",
    "list_tasks": "tasks.list",
    "create_task": "tasks.create",
    "create_tasks": "tasks.create_batch",
    "get_task": "tasks.get",
    "update_task": "tasks.update",
    "delete_task": "tasks.delete",
    "run_task": "tasks.run",
    "run_task_many": "tasks.runs",
    "pause_task": "tasks.pause",
    "resume_task": "tasks.resume",
    "task_executions": "tasks.executions",
    "list_executions": "executions.list",
    "get_execution": "executions.get",
    "cancel_execution": "executions.cancel",
    "list_dead_letter": "dead_letters.list",
    "retry_dead_letter": "dead_letters.retry",
    "delete_dead_letter": "dead_letters.delete",
    "list_api_keys": "api_keys.list",
    "create_api_key": "api_keys.create",
    "revoke_api_key": "api_keys.revoke",
    "list_workflows": "workflows.list",
    "create_workflow": "workflows.create",
    "get_workflow": "workflows.get",
    "update_workflow": "workflows.update",
    "delete_workflow": "workflows.delete",
    "run_workflow": "workflows.run",
    "pause_workflow": "workflows.pause",
    "resume_workflow": "workflows.resume",
    "list_workflow_runs": "workflow_runs.list",
    "get_workflow_run": "workflow_runs.get",
    "cancel_workflow_run": "workflow_runs.cancel",
    "retry_workflow_run": "workflow_runs.retry",
    "list_orgs": "orgs.list",
    "create_org": "orgs.create",
    "get_org": "orgs.get",
    "update_org": "orgs.update",
    "delete_org": "orgs.delete",
    "list_members": "orgs.members",
    "invite_member": "orgs.invite",
    "update_member": "orgs.set_role",
    "remove_member": "orgs.remove",
    "list_audit_events": "audit.list",
    "list_webhooks": "webhooks.list",
    "create_webhook": "webhooks.create",
    "get_webhook": "webhooks.get",
    "update_webhook": "webhooks.update",
    "delete_webhook": "webhooks.delete",
    "ping_webhook": "webhooks.test",
    "rotate_webhook_secret": "webhooks.rotate_secret",
    "list_webhook_deliveries": "webhooks.deliveries",
    "redeliver_webhook_delivery": "webhooks.redeliver",
}


async def openapi_document(base_url: str) -> dict[str, Any]:
    """The server's OpenAPI document, read without the client."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/api/openapi.json") as response,
    ):
        document: dict[str, Any] = await response.json()
    return document


async def operation_ids(base_url: str) -> set[str]:
    document = await openapi_document(base_url)
    return {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


async def openapi_schemas(base_url: str) -> dict[str, Any]:
    schemas: dict[str, Any] = (await openapi_document(base_url))["components"]["schemas"]
    return schemas


def method_of(client: object, dotted: str) -> Any:
    target: Any = client
    for name in dotted.split("."):
        target = getattr(target, name)
    return target
