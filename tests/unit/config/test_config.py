"""Settings: defaults < TOML file < TASKFLOW_* environment < CLI overrides, and every error.

The environment is always an injected mapping (os.environ is never touched), and each test
runs in its own empty working directory with the system-wide default path redirected, so a
taskflowd.toml on the host cannot leak in.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from taskflowd import config
from taskflowd.config import (
    ROLES,
    ConfigError,
    Settings,
    find_config_file,
    known_keys,
    load_settings,
)

REAL_DEFAULT_PATHS = config.DEFAULT_CONFIG_PATHS


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory; the /etc default is redirected under tmp_path."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    system = tmp_path / "etc" / "taskflowd" / "taskflowd.toml"
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", (Path("taskflowd.toml"), system))
    yield cwd


@pytest.fixture
def system_config(tmp_path: Path) -> Path:
    """Where the (redirected) system-wide config file lives; not created."""
    return tmp_path / "etc" / "taskflowd" / "taskflowd.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(
    toml: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    where: Path | None = None,
) -> Settings:
    """load_settings with an explicit TOML file (when given) and an injected environment."""
    config_file = None
    if toml is not None:
        config_file = str(write(where or Path("given.toml").absolute(), toml))
    return load_settings(config_file, env=dict(env or {}), overrides=overrides)


def assert_config_error(caught: pytest.ExceptionInfo[ConfigError], key: str) -> None:
    message = str(caught.value)
    assert caught.value.key == key
    assert key in message
    assert "\n" not in message, f"not one line: {message!r}"


# --- layering ------------------------------------------------------------------


def test_defaults() -> None:
    settings = load()
    assert settings == Settings()
    assert settings.database == "sqlite:///taskflowd.db"
    assert settings.queue == "database"
    assert settings.roles == ROLES
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8080
    assert settings.worker.concurrency == 32
    assert settings.auth.allow_registration is True
    assert settings.handlers.shell_enabled is False
    assert settings.http.cors_origins == ()
    assert settings.log.format == "auto"
    assert all(settings.has_role(role) for role in ROLES)


def test_toml_overrides_defaults() -> None:
    settings = load(
        """
        database = "postgresql://taskflow@db.internal/taskflow"
        queue = "redis://cache:6379/0"
        roles = ["api", "worker"]
        admin_email = "root@example.com"

        [http]
        port = 9001
        cors_origins = ["https://app.example.com"]

        [worker]
        concurrency = 4
        lease_s = 10

        [auth]
        allow_registration = false

        [log]
        level = "DEBUG"
        """
    )
    assert settings.database == "postgresql://taskflow@db.internal/taskflow"
    assert settings.queue == "redis://cache:6379/0"
    assert settings.roles == ("api", "worker")
    assert not settings.has_role("scheduler")
    assert settings.admin_email == "root@example.com"
    assert settings.http.port == 9001
    assert settings.http.cors_origins == ("https://app.example.com",)
    assert settings.worker.concurrency == 4
    assert settings.worker.lease_s == 10.0
    assert isinstance(settings.worker.lease_s, float)
    assert settings.auth.allow_registration is False
    assert settings.log.level == "DEBUG"
    assert settings.http.host == "127.0.0.1", "keys not in the file keep their defaults"
    assert settings.worker.batch_size == 64


def test_env_overrides_toml() -> None:
    toml = """
    database = "sqlite:///from-toml.db"
    roles = ["scheduler"]
    [worker]
    concurrency = 4
    lease_s = 10.0
    [auth]
    allow_registration = true
    """
    env = {
        "TASKFLOW_WORKER__CONCURRENCY": "7",
        "TASKFLOW_WORKER__LEASE_S": "2.5",
        "TASKFLOW_DATABASE": "postgresql://u@h/db",
        "TASKFLOW_ROLES": "api, worker",
        "TASKFLOW_AUTH__ALLOW_REGISTRATION": "false",
        "TASKFLOW_HTTP__CORS_ORIGINS": "https://a.example,https://b.example",
        "TASKFLOW_ADMIN_EMAIL": "ops@example.com",
        "PATH": "/usr/bin",
        "HOME": "/root",
    }
    settings = load(toml, env)
    assert settings.worker.concurrency == 7
    assert settings.worker.lease_s == 2.5
    assert settings.database == "postgresql://u@h/db"
    assert settings.roles == ("api", "worker")
    assert settings.auth.allow_registration is False
    assert settings.http.cors_origins == ("https://a.example", "https://b.example")
    assert settings.admin_email == "ops@example.com"


def test_env_alone_overrides_defaults() -> None:
    settings = load(env={"TASKFLOW_HTTP__PORT": " 9100 ", "TASKFLOW_LOG__FORMAT": "text"})
    assert settings.http.port == 9100
    assert settings.log.format == "text"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_env_bool_parsing(text: str, expected: bool) -> None:
    settings = load(env={"TASKFLOW_HANDLERS__SHELL_ENABLED": text})
    assert settings.handlers.shell_enabled is expected


def test_overrides_beat_env_and_toml() -> None:
    settings = load(
        "[http]\nport = 9200\n",
        {"TASKFLOW_HTTP__PORT": "9100", "TASKFLOW_WORKER__CONCURRENCY": "5"},
        {"http.port": "9000", "worker.concurrency": None, "log.level": "ERROR"},
    )
    assert settings.http.port == 9000
    assert settings.worker.concurrency == 5, "a None override leaves the lower layers alone"
    assert settings.log.level == "ERROR"


def test_overrides_accept_typed_values() -> None:
    settings = load(overrides={"http.port": 9000, "roles": ["worker"], "auth.bcrypt_rounds": 4})
    assert settings.http.port == 9000
    assert settings.roles == ("worker",)
    assert settings.auth.bcrypt_rounds == 4


def test_taskflow_config_env_selects_the_file(workdir: Path, tmp_path: Path) -> None:
    write(workdir / "taskflowd.toml", "[http]\nport = 1111\n")
    chosen = write(tmp_path / "elsewhere.toml", "[http]\nport = 2222\n")
    settings = load_settings(env={"TASKFLOW_CONFIG": str(chosen)})
    assert settings.http.port == 2222


def test_explicit_file_beats_taskflow_config(tmp_path: Path) -> None:
    from_env = write(tmp_path / "env.toml", "[http]\nport = 2222\n")
    explicit = write(tmp_path / "explicit.toml", "[http]\nport = 3333\n")
    settings = load_settings(str(explicit), env={"TASKFLOW_CONFIG": str(from_env)})
    assert settings.http.port == 3333


def test_default_file_in_working_directory_is_read(workdir: Path) -> None:
    write(workdir / "taskflowd.toml", "[http]\nport = 4444\n")
    assert load_settings(env={}).http.port == 4444


# --- find_config_file ----------------------------------------------------------


def test_default_search_paths() -> None:
    assert list(REAL_DEFAULT_PATHS) == [
        Path("taskflowd.toml"),
        Path("/etc/taskflowd/taskflowd.toml"),
    ]


def test_find_config_file_none_when_nothing_exists() -> None:
    assert find_config_file(None, {}) is None
    assert find_config_file(None, {"TASKFLOW_CONFIG": ""}) is None


def test_find_config_file_prefers_the_working_directory(workdir: Path, system_config: Path) -> None:
    write(system_config, "")
    assert find_config_file(None, {}) == system_config
    write(workdir / "taskflowd.toml", "")
    found = find_config_file(None, {})
    assert found == Path("taskflowd.toml")
    assert found is not None and found.resolve() == (workdir / "taskflowd.toml").resolve()


def test_find_config_file_real_defaults_find_the_working_directory_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", REAL_DEFAULT_PATHS)
    write(workdir / "taskflowd.toml", "")
    assert find_config_file(None, {}) == Path("taskflowd.toml")


def test_find_config_file_explicit_then_env(workdir: Path) -> None:
    write(workdir / "taskflowd.toml", "")
    assert find_config_file("a.toml", {"TASKFLOW_CONFIG": "b.toml"}) == Path("a.toml")
    assert find_config_file(None, {"TASKFLOW_CONFIG": "b.toml"}) == Path("b.toml")
    assert find_config_file("", {"TASKFLOW_CONFIG": "b.toml"}) == Path("b.toml")


def test_a_directory_named_like_the_default_is_not_a_config_file(workdir: Path) -> None:
    (workdir / "taskflowd.toml").mkdir()
    assert find_config_file(None, {}) is None


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("nope = 1\n", "nope"),
        ("[http]\nnope = 1\n", "http.nope"),
        ("[bogus]\nx = 1\n", "bogus"),
        ("[worker.deeper]\nx = 1\n", "worker.deeper"),
        ("http = 1\n", "http"),
    ],
    ids=["top-level", "in-section", "unknown-section", "nested-table", "section-as-value"],
)
def test_unknown_toml_key(toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(toml)
    assert_config_error(caught, key)
    assert "unknown" in str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["TASKFLOW_NOPE", "TASKFLOW_HTTP_PORT", "TASKFLOW_HTTP__NOPE", "TASKFLOW_WORKER"],
)
def test_unknown_env_var(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env={name: "1"})
    assert_config_error(caught, name)


def test_the_client_commands_variables_are_not_settings() -> None:
    """A shell set up for `taskflowd task …` can still start the daemon; its other
    misspelt variables are still refused."""
    client = {"TASKFLOW_URL": "http://127.0.0.1:8080", "TASKFLOW_API_KEY": "tfk_secret"}
    assert load(env=client) == Settings()
    with pytest.raises(ConfigError) as caught:
        load(env={**client, "TASKFLOW_URLS": "x"})
    assert_config_error(caught, "TASKFLOW_URLS")


def test_unknown_override() -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides={"http.nope": "1"})
    assert_config_error(caught, "http.nope")


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[http]\nport = "8080"\n', "http.port"),
        ("[http]\nport = 80.5\n", "http.port"),
        ("[auth]\nallow_registration = 1\n", "auth.allow_registration"),
        ('[auth]\nallow_registration = "yes"\n', "auth.allow_registration"),
        ("[worker]\nconcurrency = true\n", "worker.concurrency"),
        ("[worker]\nlease_s = true\n", "worker.lease_s"),
        ('[worker]\nlease_s = "30"\n', "worker.lease_s"),
        ("database = 5\n", "database"),
        ("[database]\nurl = 'sqlite:///x.db'\n", "database"),
        ('roles = "api"\n', "roles"),
        ("roles = [1, 2]\n", "roles"),
        ("[http]\ncors_origins = 'https://a.example'\n", "http.cors_origins"),
    ],
)
def test_wrong_type_in_toml(toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(toml)
    assert_config_error(caught, key)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("TASKFLOW_HTTP__PORT", "eighty", "http.port"),
        ("TASKFLOW_HTTP__PORT", "80.0", "http.port"),
        ("TASKFLOW_WORKER__LEASE_S", "long", "worker.lease_s"),
        ("TASKFLOW_AUTH__ALLOW_REGISTRATION", "maybe", "auth.allow_registration"),
        ("TASKFLOW_AUTH__ALLOW_REGISTRATION", "", "auth.allow_registration"),
    ],
)
def test_wrong_type_in_env(name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env={name: value})
    assert_config_error(caught, key)


def test_wrong_type_in_override() -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides={"worker.concurrency": "many"})
    assert_config_error(caught, "worker.concurrency")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http.port", "70000"),
        ("http.port", "-1"),
        ("http.max_body_bytes", "1023"),
        ("worker.concurrency", "0"),
        ("worker.lease_s", "1.5"),
        ("auth.bcrypt_rounds", "17"),
        ("auth.access_token_ttl_s", "29"),
        ("scheduler.lookahead_ms", "60001"),
        ("cluster.heartbeat_s", "0.4"),
        ("log.level", "TRACE"),
        ("log.format", "xml"),
    ],
)
def test_out_of_range(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides={key: value})
    assert_config_error(caught, key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http.port", "0"),
        ("http.port", "65535"),
        ("worker.concurrency", "1"),
        ("worker.lease_s", "2"),
        ("auth.bcrypt_rounds", "4"),
        ("auth.bcrypt_rounds", "16"),
    ],
)
def test_range_bounds_are_inclusive(key: str, value: str) -> None:
    load(overrides={key: value})


def test_out_of_range_in_toml() -> None:
    with pytest.raises(ConfigError) as caught:
        load("[http]\nport = 65536\n")
    assert_config_error(caught, "http.port")


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/taskflow",
        "sqlite://",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:////",
        "taskflowd.db",
        "",
        "postgresql://",
        "postgresql:///",
        "redis://localhost:6379/0",
    ],
)
def test_bad_database_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env={"TASKFLOW_DATABASE": url})
    assert_config_error(caught, "database")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///taskflowd.db",
        "sqlite:////var/lib/taskflowd/taskflowd.db",
        "postgresql://user@host/db",
        "postgres://user:pw@host:5432/db",
        "postgresql:///db",
        "postgresql://host",
    ],
)
def test_good_database_url(url: str) -> None:
    assert load(env={"TASKFLOW_DATABASE": url}).database == url


@pytest.mark.parametrize("url", ["amqp://rabbit", "db", "", "http://redis:6379", "memory"])
def test_bad_queue_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env={"TASKFLOW_QUEUE": url})
    assert_config_error(caught, "queue")


@pytest.mark.parametrize(
    "url", ["database", "redis://localhost:6379/0", "rediss://cache:6380", "unix:///run/r.sock"]
)
def test_good_queue_url(url: str) -> None:
    assert load(env={"TASKFLOW_QUEUE": url}).queue == url


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("env", "api,cook"),
        ("env", ""),
        ("env", " , "),
        ("toml", 'roles = ["api", "API"]\n'),
        ("toml", "roles = []\n"),
    ],
)
def test_bad_role(source: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        if source == "env":
            load(env={"TASKFLOW_ROLES": value})
        else:
            load(value)
    assert_config_error(caught, "roles")


@pytest.mark.parametrize(
    "http",
    [{"http.tls_cert": "/etc/tls/cert.pem"}, {"http.tls_key": "/etc/tls/key.pem"}],
    ids=["cert-only", "key-only"],
)
def test_tls_cert_and_key_go_together(http: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load(overrides=http)
    assert_config_error(caught, "http.tls_key")


def test_tls_cert_with_key_is_accepted() -> None:
    settings = load(
        "[http]\ntls_cert = '/etc/tls/cert.pem'\ntls_key = '/etc/tls/key.pem'\n",
    )
    assert (settings.http.tls_cert, settings.http.tls_key) == (
        "/etc/tls/cert.pem",
        "/etc/tls/key.pem",
    )


@pytest.mark.parametrize(
    "toml",
    [
        "[http\nport = 1\n",
        "port = \n",
        "database = 'unterminated\n",
        "[http]\nport = 1\nport = 2\n",
    ],
    ids=["unclosed-table", "missing-value", "unterminated-string", "duplicate-key"],
)
def test_invalid_toml(toml: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(toml)
    assert_config_error(caught, "config")
    assert "given.toml" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(str(missing), env={})
    assert_config_error(caught, "config")
    assert str(missing) in str(caught.value)


def test_missing_file_named_by_taskflow_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"TASKFLOW_CONFIG": str(missing)})
    assert_config_error(caught, "config")


def test_config_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(str(tmp_path), env={})
    assert_config_error(caught, "config")


def test_file_that_is_not_utf8() -> None:
    path = Path("latin1.toml").absolute()
    path.write_bytes("admin_email = 'caf\xe9@example.com'\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert_config_error(caught, "config")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"TASKFLOW_HANDLERS__OPEN_TO_USERS": "thumbnail,shell"}, "handlers.open_to_users"),
        (
            {"TASKFLOW_HANDLERS__ADMIN_ONLY": "a,b", "TASKFLOW_HANDLERS__OPEN_TO_USERS": "b"},
            "handlers.open_to_users",
        ),
    ],
)
def test_handler_access_that_cannot_hold(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env=env)
    assert_config_error(caught, key)


def test_handler_access_lists() -> None:
    settings = load('[handlers]\nadmin_only = ["http"]\nopen_to_users = ["thumbnail"]\n')
    assert settings.handlers.admin_only == ("http",)
    assert settings.handlers.open_to_users == ("thumbnail",)


# --- the declaration table -----------------------------------------------------


def test_known_keys_are_dotted_and_documented() -> None:
    keys = known_keys()
    assert "database" in keys
    assert "http.port" in keys
    assert "worker.concurrency" in keys
    assert "http" not in keys, "sections are not settings"
    for key, declaration in keys.items():
        assert key == key.lower()
        assert declaration.metadata["help"], f"{key} has no help text"


def test_every_known_key_can_be_set_from_the_environment() -> None:
    """Each key maps to one TASKFLOW_ name that load_settings accepts with its default."""
    defaults = Settings()
    env: dict[str, str] = {}
    for key in known_keys():
        value: Any = defaults
        for part in key.split("."):
            value = getattr(value, part)
        if isinstance(value, tuple):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env["TASKFLOW_" + key.upper().replace(".", "__")] = text
    assert load(env=env) == defaults


def test_the_example_file_lists_every_key_with_its_default_and_help() -> None:
    """config/taskflowd.toml is the operator's reference: every key, its default, and
    the declaration's help text in the comment above it."""
    text = (Path(__file__).resolve().parents[3] / "config" / "taskflowd.toml").read_text()
    data = tomllib.loads(text)
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    keys = known_keys()
    assert set(flat) == set(keys)
    comments = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for key, declaration in keys.items():
        default = declaration.default
        assert flat[key] == (list(default) if isinstance(default, tuple) else default), key
        assert " ".join(declaration.metadata["help"].split()) in comments, key
