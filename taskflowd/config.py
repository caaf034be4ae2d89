"""Settings: one declarative table, read from TOML, then `TASKFLOW_*` env, then CLI flags.

Each section is a frozen dataclass; each field's metadata carries its help text and an
optional check. Unknown keys, wrong types and bad values raise `ConfigError`, whose
message is one line naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from taskflowd.domain.orgs import MAX_QUOTA, Quotas

ENV_PREFIX = "TASKFLOW_"
ROLES = ("api", "scheduler", "worker")
DEFAULT_CONFIG_PATHS = (Path("taskflowd.toml"), Path("/etc/taskflowd/taskflowd.toml"))
# TASKFLOW_* variables that are not settings: the config file's path, and the server and
# API key of the client commands (`taskflowd task …`), which a shell may well have set
# when it runs `taskflowd serve`.
NOT_SETTINGS = frozenset(f"{ENV_PREFIX}{name}" for name in ("CONFIG", "URL", "API_KEY"))

Check = Callable[[Any], str | None]


class ConfigError(Exception):
    """A setting is unknown or has a bad value; `str()` is one line naming the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


def setting(default: Any, help: str, check: Check | None = None) -> Any:
    """Declare one setting: its default, one line of help, and an optional value check."""
    if isinstance(default, list | dict):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata={"help": help, "check": check})


def _between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g}, got {value!r}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def _database_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme == "sqlite":
        if not value.startswith("sqlite:///") or value in ("sqlite:///", "sqlite:////"):
            return "a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        return None
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.path.strip("/") and not parts.hostname:
            return "a PostgreSQL URL needs a host or a database name"
        return None
    return f"unsupported scheme {parts.scheme or '(none)'!r}: use sqlite:/// or postgresql://"


def _queue_url(value: Any) -> str | None:
    if value == "database":
        return None
    parts = urlsplit(value)
    if parts.scheme in ("redis", "rediss", "unix"):
        return None
    return f'must be "database" or a redis:// URL, got {value!r}'


def _optional_redis_url(value: Any) -> str | None:
    if value == "" or urlsplit(value).scheme in ("redis", "rediss", "unix"):
        return None
    return f"must be empty or a redis:// URL, got {value!r}"


def _roles(value: Any) -> str | None:
    unknown = [r for r in value if r not in ROLES]
    if unknown or not value:
        return f"roles are a non-empty list of {', '.join(ROLES)}; got {list(value)!r}"
    return None


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = setting("127.0.0.1", "Address the HTTP API and dashboard listen on.")
    port: int = setting(8080, "TCP port of the HTTP API and dashboard.", _between(0, 65535))
    max_body_bytes: int = setting(
        1_048_576, "Largest request body accepted (413 beyond).", _between(1024, 64 * 2**20)
    )
    tls_cert: str = setting("", "PEM certificate file; with tls_key, serve HTTPS.")
    tls_key: str = setting("", "PEM private key file for tls_cert.")
    cors_origins: tuple[str, ...] = setting((), "Origins allowed by CORS (never a wildcard).")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: str = setting(
        "", "HS256 secret (>= 32 bytes); empty: generated once and kept in the database."
    )
    issuer: str = setting("taskflowd", "JWT `iss` claim.")
    audience: str = setting("taskflowd-api", "JWT `aud` claim.")
    access_token_ttl_s: int = setting(900, "Access token lifetime.", _between(30, 86400))
    refresh_token_ttl_s: int = setting(604_800, "Refresh token lifetime.", _between(60, 90 * 86400))
    bcrypt_rounds: int = setting(12, "bcrypt cost factor.", _between(4, 16))
    bcrypt_threads: int = setting(
        2, "Threads hashing passwords off the event loop.", _between(1, 64)
    )
    allow_registration: bool = setting(True, "Whether POST /api/v1/auth/register is open.")
    login_limit_per_min: int = setting(
        10, "Login attempts per client address and email per minute.", _between(1, 100_000)
    )
    api_limit_per_min: int = setting(
        600_000,
        "API requests per user (per client address when signed out) per minute, with a "
        "burst of as many; one connection sending requests back to back stays below it.",
        _between(1, 100_000_000),
    )
    api_max_in_flight: int = setting(
        16,
        "Requests of one user answered at once on a node; more at the same moment are "
        "refused (429): this is what stops a client with many connections.",
        _between(1, 100_000),
    )
    job_limit_per_min: int = setting(
        1_200_000,
        "Jobs one user may create per minute (tasks, runs, batch items), with a burst of as "
        "many at once.",
        _between(1, 100_000_000),
    )
    principal_cache_ttl_s: float = setting(
        1.0,
        "How long a node trusts an authenticated credential before reading its user or key "
        "again (changes that end access reach every node at once regardless); 0 disables.",
        _between(0, 60),
    )


@dataclass(frozen=True, slots=True)
class OrgSettings:
    """Default quotas of every organization (site admins override them per org)."""

    max_tasks: int = setting(0, "Live tasks per org; 0: unlimited.", _between(0, MAX_QUOTA))
    max_workflows: int = setting(0, "Workflows per org; 0: unlimited.", _between(0, MAX_QUOTA))
    max_running_jobs: int = setting(
        0,
        "Jobs of one org running at once across the cluster; 0: unlimited.",
        _between(0, MAX_QUOTA),
    )
    api_limit_per_min: int = setting(
        0,
        "API requests per minute of all of an org's members together, on top of the "
        "per-user limit; 0: unlimited.",
        _between(0, MAX_QUOTA),
    )

    def quotas(self) -> Quotas:
        return Quotas(
            self.max_tasks, self.max_workflows, self.max_running_jobs, self.api_limit_per_min
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = setting(32, "Jobs run at once on this node.", _between(1, 10_000))
    batch_size: int = setting(64, "Jobs claimed per round trip.", _between(1, 10_000))
    lease_s: float = setting(
        30.0, "Lease on a claimed job; renewed while it runs.", _between(2, 3600)
    )
    shutdown_grace_s: float = setting(
        30.0, "On SIGTERM, how long running jobs may finish.", _between(0, 86400)
    )
    max_rescues: int = setting(
        3, "Lease expiries a job survives before it is dead-lettered.", _between(0, 100)
    )
    backoff_cap_ms: int = setting(
        3_600_000, "Upper bound of one retry delay.", _between(0, 7 * 86_400_000)
    )
    safety_poll_s: float = setting(
        5.0, "Slow sweep for due work in case a wake-up was missed.", _between(0.1, 3600)
    )


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    lookahead_ms: int = setting(
        1000,
        "How far ahead cron ticks are enqueued (they still start on time).",
        _between(0, 60_000),
    )
    misfire_grace_s: float = setting(
        10.0, "A tick later than this counts as missed (misfire policies).", _between(0, 86400)
    )
    run_all_limit: int = setting(
        100, "Most missed ticks one task replays under RUN_ALL.", _between(1, 100_000)
    )
    sweep_interval_s: float = setting(
        30.0, "Safety sweep interval of the timer.", _between(0.5, 3600)
    )


def _not_shell(value: Any) -> str | None:
    return "the shell handler is for admins only" if "shell" in value else None


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    shell_enabled: bool = setting(False, "Enable the `shell` handler (admin-only).")
    admin_only: tuple[str, ...] = setting(
        (), "Handlers only admins may use, whatever the handler says (built-ins or plugins)."
    )
    open_to_users: tuple[str, ...] = setting(
        (),
        "Handlers every user may use although they ask for admins only (plugins; never shell).",
        _not_shell,
    )
    allow_missing: bool = setting(
        False,
        "Start a worker node even though active tasks use handlers it lacks (their jobs fail).",
    )
    http_allow_private: bool = setting(
        False, "Let the `http` handler reach private, loopback and link-local addresses."
    )
    http_allowed_networks: tuple[str, ...] = setting(
        (), "CIDRs the `http` handler may reach even though they are private."
    )
    http_timeout_s: float = setting(30.0, "Total timeout of one http request.", _between(0.1, 3600))
    http_max_response_bytes: int = setting(
        1_048_576, "Largest http response body kept.", _between(1, 64 * 2**20)
    )
    shell_max_output_bytes: int = setting(
        65_536, "Output kept per stream of a shell job.", _between(1, 64 * 2**20)
    )


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = setting("INFO", "Log level.", _one_of("DEBUG", "INFO", "WARNING", "ERROR"))
    format: str = setting(
        "auto",
        "auto: text on a terminal, else JSON; json: one object per line; text: for people.",
        _one_of("auto", "json", "text"),
    )


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    token: str = setting("", "If set, /metrics requires `Authorization: Bearer <token>`.")
    org_series: int = setting(
        100,
        "Orgs labelled by id in the per-org metrics (queue depth: the busiest orgs; jobs by "
        'outcome: the first orgs seen since start); the rest are summed as org="other". '
        "0: no per-org metrics.",
        _between(0, 10_000),
    )


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    heartbeat_s: float = setting(5.0, "Node heartbeat interval.", _between(0.5, 600))
    node_ttl_s: float = setting(
        30.0, "A node silent this long is considered dead.", _between(2, 3600)
    )
    redis: str = setting(
        "",
        "Redis for cluster-wide rate limits and events; empty: the queue's when it is a "
        "redis:// URL, else none (limits per node, events over PostgreSQL NOTIFY).",
        _optional_redis_url,
    )


_DAY_S = 86_400
_KEEP = _between(0, 100 * 365 * _DAY_S)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    executions_s: int = setting(
        30 * _DAY_S, "Finished executions (and their retry history) kept; 0: forever.", _KEEP
    )
    dead_letters_s: int = setting(
        30 * _DAY_S,
        "Handled dead letters (their task is deleted) kept; unhandled ones stay; 0: forever.",
        _KEEP,
    )
    tasks_s: int = setting(
        30 * _DAY_S, "Finished one-time/delayed tasks and deleted tasks kept; 0: forever.", _KEEP
    )
    workflow_runs_s: int = setting(
        30 * _DAY_S,
        "Finished workflow runs kept (a run goes once its step executions are gone); 0: forever.",
        _KEEP,
    )
    webhook_deliveries_s: int = setting(14 * _DAY_S, "Webhook deliveries kept; 0: forever.", _KEEP)
    audit_s: int = setting(365 * _DAY_S, "Audit events kept; 0: forever.", _KEEP)
    interval_s: float = setting(60.0, "Pause between pruning passes.", _between(1, 86_400))
    batch_size: int = setting(
        50, "Rows deleted per short transaction while pruning.", _between(1, 100_000)
    )


def _encryption_keys(value: Any) -> str | None:
    from taskflowd.store.codec import BadKey, parse_key

    try:
        for index, text in enumerate(value):
            parse_key(index, text)
    except BadKey as exc:
        return f"{exc} (generate one with: openssl rand -base64 32)"
    return None


def _schedule(value: Any) -> str | None:
    if not value or any(not 0 < v <= 86_400 for v in value):
        return f"must be a non-empty list of seconds between 0 and 86400, got {list(value)!r}"
    return None


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    retry_schedule_s: tuple[float, ...] = setting(
        (5.0, 30.0, 120.0, 600.0, 3600.0),
        "Pause before each retry of a failed delivery (with 10 % jitter); the last entry "
        "repeats until max_age_s.",
        _schedule,
    )
    max_age_s: float = setting(
        86_400.0, "How long a delivery is retried after it was written.", _between(0, 30 * _DAY_S)
    )
    timeout_s: float = setting(10.0, "Total timeout of one delivery request.", _between(0.1, 300))
    max_in_flight: int = setting(64, "Deliveries sent at once by this node.", _between(1, 10_000))
    max_in_flight_per_endpoint: int = setting(
        4, "Deliveries sent at once to one endpoint by this node.", _between(1, 1000)
    )
    disable_after_s: float = setting(
        5 * _DAY_S,
        "An endpoint whose every delivery failed for this long is disabled.",
        _between(60, 365 * _DAY_S),
    )
    poll_interval_s: float = setting(
        1.0,
        "How often a worker node looks for due deliveries it was not told about.",
        _between(0.05, 60),
    )
    max_endpoints_per_org: int = setting(
        100, "Webhook endpoints one org may have.", _between(1, 100_000)
    )
    rotation_overlap_s: float = setting(
        86_400.0,
        "After a secret rotation, how long deliveries carry the old secret's signature too.",
        _between(0, 30 * _DAY_S),
    )


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    encryption_keys: tuple[str, ...] = setting(
        (),
        "Base64 AES-256 keys (32 bytes each) sealing payloads, results and errors at rest; "
        "the first seals, all open; empty: stored in the clear.",
        _encryption_keys,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    database: str = setting(
        "sqlite:///taskflowd.db", "Database URL: sqlite:///path or postgresql://…", _database_url
    )
    queue: str = setting("database", 'Job queue: "database" or redis://host:port/db.', _queue_url)
    roles: tuple[str, ...] = setting(ROLES, "Components this node runs.", _roles)
    admin_email: str = setting("", "Email of the admin created on first start with no users.")
    admin_password: str = setting("", "Its password; empty: generated and printed once.")
    http: HttpSettings = field(default_factory=HttpSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    orgs: OrgSettings = field(default_factory=OrgSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    handlers: HandlerSettings = field(default_factory=HandlerSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)

    def has_role(self, role: str) -> bool:
        return role in self.roles


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _kind(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def _parse_text(tp: Any, value: str) -> Any:
    """Parse env or flag text into `tp`; returns the text unchanged when it does not parse."""
    if get_origin(tp) is tuple:
        return [item.strip() for item in value.split(",") if item.strip()]
    if tp is bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return value
    if tp is int or tp is float:
        try:
            return tp(value.strip())
        except ValueError:
            return value
    return value


def _numbers(key: str, value: Any) -> tuple[float, ...]:
    """A list of numbers (from TOML, or comma-separated text from env or flags)."""
    if isinstance(value, list | tuple):
        numbers = []
        for item in value:
            if isinstance(item, str):
                try:
                    item = float(item)
                except ValueError:
                    break
            if isinstance(item, bool) or not isinstance(item, int | float):
                break
            numbers.append(float(item))
        else:
            return tuple(numbers)
    raise ConfigError(key, f"expected a list of numbers, got {value!r}")


def _coerce(key: str, tp: Any, value: Any, *, from_text: bool) -> Any:
    """Check `value` against the declared type; text from env or flags is parsed first."""
    if from_text and isinstance(value, str):
        value = _parse_text(tp, value)
    if get_origin(tp) is tuple:
        if get_args(tp)[0] is float:
            return _numbers(key, value)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected a list of strings, got {value!r}")
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not tp:
        raise ConfigError(key, f"expected {_kind(tp)}, got {value!r}")
    return value


def _build(cls: type[Any], prefix: str, layers: list[tuple[dict[str, Any], bool]]) -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if _is_section(tp):
            kwargs[f.name] = _build(tp, f"{key}.", layers)
            continue
        value: Any = f.default
        for values, from_text in layers:
            if key in values:
                value = _coerce(key, tp, values[key], from_text=from_text)
        check: Check | None = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(key, problem)
        kwargs[f.name] = value
    return cls(**kwargs)


def known_keys(cls: type[Any] = Settings, prefix: str = "") -> dict[str, dataclasses.Field[Any]]:
    """Every setting's dotted key mapped to its declaration, in declaration order."""
    hints = get_type_hints(cls)
    keys: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            keys.update(known_keys(hints[f.name], f"{prefix}{f.name}."))
        else:
            keys[f"{prefix}{f.name}"] = f
    return keys


def _flatten_toml(
    data: Mapping[str, Any], known: Mapping[str, Any], prefix: str = ""
) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if key in known:
            flat[key] = value
        elif isinstance(value, dict) and any(k.startswith(f"{key}.") for k in known):
            flat.update(_flatten_toml(value, known, f"{key}."))
        else:
            raise ConfigError(key, "unknown setting")
    return flat


def _from_env(env: Mapping[str, str], known: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        if key not in known:
            raise ConfigError(name, "unknown setting in the environment")
        values[key] = value
    return values


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The file to read: --config, else $TASKFLOW_CONFIG, else the first default that exists."""
    if explicit:
        return Path(explicit)
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env[f"{ENV_PREFIX}CONFIG"])
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def load_settings(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults < TOML file < environment < `overrides` (CLI flags).

    Raises ConfigError for an unreadable file, unknown keys, wrong types and bad values.
    """
    env = os.environ if env is None else env
    known = known_keys()
    layers: list[tuple[dict[str, Any], bool]] = []
    path = find_config_file(config_file, env)
    if path is not None:
        import tomllib  # only a node with a config file parses TOML (issue 12)

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
        layers.append((_flatten_toml(data, known), False))
    layers.append((_from_env(env, known), True))
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in flags:
        if key not in known:
            raise ConfigError(key, "unknown setting")
    layers.append((flags, True))
    settings: Settings = _build(Settings, "", layers)
    if bool(settings.http.tls_cert) != bool(settings.http.tls_key):
        raise ConfigError("http.tls_key", "tls_cert and tls_key must be set together")
    both = sorted(set(settings.handlers.admin_only) & set(settings.handlers.open_to_users))
    if both:
        raise ConfigError("handlers.open_to_users", f"also in handlers.admin_only: {both}")
    return settings
