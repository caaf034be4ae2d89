"""Assembles the daemon's web application from its components.

A node with the `api` role serves the whole API; other nodes serve only what probes and
scrapers need.
"""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.app import build_app
from taskflowd.api.context import ApiContext
from taskflowd.api.parts import NodeParts
from taskflowd.api.routes import docs, executions, ops, tasks, webhooks, workflows
from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.ratelimit import GcraRateLimiter, RateLimiter
from taskflowd.auth.ratelimit_redis import RedisRateLimiter
from taskflowd.auth.service import AuthService
from taskflowd.cluster import shared_redis_url
from taskflowd.dashboard.app import install_dashboard
from taskflowd.metrics import http_report
from taskflowd.services.readiness import Probe


def build_daemon_app(node: NodeParts) -> web.Application:
    settings = node.settings
    hasher = PasswordHasher(settings.auth.bcrypt_rounds, settings.auth.bcrypt_threads)
    auth = AuthService(node.store, hasher, settings.auth, node.jwt_secret, events=node.events)
    # Cluster-wide limits when the cluster shares a Redis; else this node's own.
    redis_url = shared_redis_url(settings)
    shared = RedisRateLimiter.from_url(redis_url) if redis_url else None
    limiter: RateLimiter = shared or GcraRateLimiter()
    checks: list[tuple[str, Probe]] = [("handlers", node.handlers.check_plugins)]
    if node.membership is not None:
        checks.append(("scheduler", node.membership.check_scheduler))
    if shared is not None:
        checks.append(("redis", shared.ping))
    ops_ctx = ops.OpsContext.build(
        node.store,
        node.queue,
        node.metrics,
        metrics_token=settings.metrics.token,
        node_ttl_s=settings.cluster.node_ttl_s,
        checks=checks,
    )
    serves_api = settings.has_role("api")
    routes = (tasks.install, executions.install, workflows.install) if serves_api else ()
    if serves_api and node.webhooks is not None:
        routes = (*routes, webhooks.install)
    ctx = ApiContext(
        settings,
        node.store,
        auth,
        limiter,
        extra_routes=(ops.mount(ops_ctx, stats=serves_api), *routes),
        reports=(http_report(node.metrics),),
        accounts=serves_api,
        quotas=node.tasks.quotas,
    )
    app = build_app(ctx)
    if serves_api:
        docs.install(app)
    app[tasks.TASKS_KEY] = node.tasks
    app[workflows.WORKFLOWS_KEY] = node.workflows
    if node.webhooks is not None:
        app[webhooks.WEBHOOKS_KEY] = node.webhooks
    if serves_api:
        install_dashboard(app, node, auth, stats=ops_ctx.stats)

    async def close_hasher(_: web.Application) -> None:
        hasher.close()
        if shared is not None:
            await shared.close()

    app.on_cleanup.append(close_hasher)
    return app
