"""Command line: `taskflowd serve | migrate | user … | check-config | backup | rotate-keys
| bench | version`, and the client commands `task …` and `runs wait`
(taskflowd/client_cli.py)."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from typing import Any

from taskflowd import __version__, client_cli
from taskflowd.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument("--database", metavar="URL", help="sqlite:///path or postgresql://…")


def _at_least(low: int) -> Callable[[str], int]:
    def integer(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return integer


def _bench_workflow_args(bench: argparse.ArgumentParser) -> None:
    """The flags of `taskflowd bench --workflows` (taskflowd/bench_workflows.py)."""
    bench.add_argument(
        "--workflows",
        action="store_true",
        help="instead: workflow step hand-off latency and fan-out/fan-in drain rate",
    )
    bench.add_argument(
        "--chain-steps", type=_at_least(2), default=100, help="--workflows: steps of the chain"
    )
    bench.add_argument(
        "--chains", type=_at_least(1), default=3, help="--workflows: chain runs, in turn"
    )
    bench.add_argument(
        "--workflow-runs",
        type=_at_least(1),
        default=1000,
        help="--workflows: runs of a 10-step fan-out/fan-in (and 10x as many plain jobs)",
    )


def _bench_api_args(bench: argparse.ArgumentParser) -> None:
    """The flags of `taskflowd bench --api` (taskflowd/bench_api.py)."""
    bench.add_argument("--api", action="store_true", help="measure the HTTP API and the client")
    bench.add_argument("--duration", type=int, default=10, help="--api: seconds per request kind")
    bench.add_argument("--connections", type=int, default=32, help="--api: HTTP connections")
    bench.add_argument("--threads", type=int, default=2, help="--api: load generator threads")
    bench.add_argument(
        "--load",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="--api: HTTP load generator (auto: wrk when installed)",
    )
    bench.add_argument("--runs", type=int, default=5000, help="--api: runs, one per request")
    bench.add_argument("--batches", type=int, default=20, help="--api: batches of 1,000 runs")
    bench.add_argument("--latency-runs", type=int, default=200, help="--api: latency samples")
    bench.add_argument(
        "--client-only",
        action="store_true",
        help="--api: only what the client gets (runs one per request and batched, latency), "
        "without the HTTP load of each request kind",
    )
    bench.add_argument(
        "--orgs",
        type=int,
        default=0,
        metavar="N",
        help="--api: also measure the org-scoped requests and the drain with N other orgs "
        "full of tasks and executions, against the bench user's org alone before and after",
    )
    bench.add_argument(
        "--org-rounds",
        type=_at_least(1),
        default=3,
        metavar="K",
        help="--orgs: times the other orgs are made, measured and deleted, between "
        "measures of the org alone",
    )


DAEMON_COMMANDS = frozenset(
    {
        "serve",
        "migrate",
        "rotate-keys",
        "check-config",
        "version",
        "user",
        "audit",
        "backup",
        "bench",
    }
)
"""The commands that are not the client's (`taskflowd.commands` runs all but `version`)."""


def _parser(*, client: bool = True) -> argparse.ArgumentParser:
    """The command line parser; without the client commands unless `client`."""
    parser = argparse.ArgumentParser(
        prog="taskflowd", description="Task scheduler and job runner daemon."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the daemon (API, scheduler, workers)")
    _config_args(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", help="listen port (default 8080)")
    serve.add_argument("--queue", metavar="URL", help='"database" or redis://host:6379/0')
    serve.add_argument("--role", metavar="LIST", help="comma list of api,scheduler,worker")

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    _config_args(migrate)
    migrate.add_argument(
        "--vacuum",
        action="store_true",
        help="SQLite: rewrite a file made by an older version so pruning shrinks it",
    )
    rotate = sub.add_parser(
        "rotate-keys", help="re-encrypt stored payloads under the first encryption key"
    )
    _config_args(rotate)

    check = sub.add_parser("check-config", help="validate the configuration and print it")
    _config_args(check)

    sub.add_parser("version", help="print the version")

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_sub.add_parser("create", help="create a user")
    _config_args(create)
    create.add_argument("email")
    create.add_argument("--first-name", default="")
    create.add_argument("--last-name", default="")
    create.add_argument("--admin", action="store_true", help="give the ADMIN role")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    listing = user_sub.add_parser("list", help="list users")
    _config_args(listing)
    setpw = user_sub.add_parser("set-password", help="set a user's password")
    _config_args(setpw)
    setpw.add_argument("email")
    setpw.add_argument("--password-stdin", action="store_true")
    deactivate = user_sub.add_parser("deactivate", help="deactivate a user")
    _config_args(deactivate)
    deactivate.add_argument("email")

    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify", help="check the audit trail's hash chain; exit status 1 when it is broken"
    )
    _config_args(verify)

    backup = sub.add_parser("backup", help="online copy of a SQLite database")
    _config_args(backup)
    backup.add_argument("file", help="destination file")

    bench = sub.add_parser("bench", help="measure throughput and latency of a configuration")
    _config_args(bench)
    bench.add_argument("--queue", metavar="URL")
    bench.add_argument("--jobs", type=int, default=20_000, help="no-op jobs to drain")
    bench.add_argument("--delayed", type=int, default=10_000, help="jobs due in the same second")
    bench.add_argument("--far", type=int, default=0, help="jobs scheduled a day ahead")
    bench.add_argument("--concurrency", type=int, help="worker slots")
    bench.add_argument(
        "--prune",
        type=int,
        default=0,
        metavar="N",
        help="instead: drain --jobs jobs in pairs, plain then with the pruner deleting "
        "some of N old executions",
    )
    bench.add_argument(
        "--pairs",
        type=_at_least(1),
        default=5,
        metavar="K",
        help="--prune: pairs of drains, plain then pruned (the cost is their median)",
    )
    bench.add_argument(
        "--webhooks",
        action="store_true",
        help="instead: webhook delivery latency, and --jobs drained with no and 10 endpoints",
    )
    bench.add_argument(
        "--audit",
        type=int,
        default=0,
        metavar="N",
        help="instead: append N audit events, then time `taskflowd audit verify` over them",
    )
    bench.add_argument(
        "--encrypt", action="store_true", help="seal payloads and results with a fresh key"
    )
    bench.add_argument(
        "--handler",
        choices=("noop", "tcp", "redis"),
        default="noop",
        help="job body: none, one TCP round trip, or one Redis INCR",
    )
    bench.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="--handler redis: the server"
    )
    bench.add_argument("--rate", type=float, default=200.0, help="jobs/s for the latency run")
    bench.add_argument("--latency-jobs", type=int, default=1000, help="jobs of the latency run")
    _bench_workflow_args(bench)
    _bench_api_args(bench)

    if client:
        client_cli.add_commands(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"database": getattr(args, "database", None)}
    for flag, key in (
        ("host", "http.host"),
        ("port", "http.port"),
        ("queue", "queue"),
        ("role", "roles"),
        ("concurrency", "worker.concurrency"),
    ):
        value = getattr(args, flag, None)
        overrides[key] = None if value is None else str(value)
    return load_settings(getattr(args, "config", None), overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    # Building the client commands' parsers is most of building the parser (~5 ms of
    # every start, issue 12): a daemon command named first does without them.
    args = _parser(client=not words or words[0] not in DAEMON_COMMANDS).parse_args(words)
    if args.command == "version":
        print(f"taskflowd {__version__}")
        return 0
    if args.command in client_cli.COMMANDS:
        return client_cli.main(args)
    if args.command == "serve":
        # The collector is paused for start-up: loading and building a node makes some
        # 80,000 objects that live as long as it and almost no garbage, and ~100
        # collections walked them for nothing (~20 ms of CPU before the node answers,
        # issue 12). `Daemon.run` turns it back on once the node serves; a start that
        # fails turns it back on here.
        gc.disable()
        try:
            return _command(args)
        finally:
            gc.enable()
    return _command(args)


def _command(args: argparse.Namespace) -> int:
    """Run the daemon command `args` names."""
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"taskflowd: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from taskflowd import commands, logs

    logs.configure(settings.log.level, settings.log.format, background=True)
    handler = commands.COMMANDS[args.command]
    try:
        return handler(settings, args)
    except commands.CommandError as exc:
        print(f"taskflowd: {exc}", file=sys.stderr)
        return 1
