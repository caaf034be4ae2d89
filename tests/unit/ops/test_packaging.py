"""packaging/: the files parse, name only metrics that exist and settings that exist, and
the checks that can run here (promtool, the image's health check command) pass."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from taskflowd.background import Supervisor
from taskflowd.config import ConfigError, Settings, load_settings
from taskflowd.events import EventBus
from taskflowd.metrics import QUEUE_DEPTH, QUEUED_STATES, Metrics

yaml = pytest.importorskip("yaml", reason="PyYAML checks the packaging YAML files")

ROOT = Path(__file__).resolve().parents[3]
PACKAGING = ROOT / "packaging"
DASHBOARD = PACKAGING / "grafana" / "dashboards" / "taskflowd.json"
METRIC = re.compile(r"\b(?:taskflow|process|python)_[a-z_]+\b")
ENV_REFERENCE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def one_yaml(path: Path) -> Any:
    (document,) = load_yaml(path)
    return document


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    """Every sample name a real Metrics registry can expose."""
    metrics = Metrics(EventBus(), Supervisor(lambda name, exc: None), handler_names=["echo"])
    return metrics.exposed_names()


def test_every_yaml_and_json_file_parses() -> None:
    files = sorted(PACKAGING.rglob("*.yaml")) + sorted(PACKAGING.rglob("*.yml"))
    assert len(files) >= 12
    for path in files:
        assert load_yaml(path), f"{path} is empty"
    for path in PACKAGING.rglob("*.json"):
        json.loads(path.read_text())


def _dashboard_exprs() -> Iterator[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        yield variable["definition"]


def test_dashboard_uses_only_real_metric_names(exposed: set[str]) -> None:
    exprs = list(_dashboard_exprs())
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    assert {
        "taskflow_jobs_total",
        "taskflow_queue_depth",
        "taskflow_job_duration_seconds_bucket",
        "taskflow_job_queue_wait_seconds_bucket",
        "taskflow_http_requests_total",
        "taskflow_scheduler_lateness_seconds_bucket",
    } <= named
    assert named - exposed == set()


def test_dashboard_uses_the_provisioned_datasource() -> None:
    (datasource,) = one_yaml(PACKAGING / "grafana/provisioning/datasources/prometheus.yaml")[
        "datasources"
    ]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    (provider,) = one_yaml(PACKAGING / "grafana/provisioning/dashboards/taskflowd.yaml")[
        "providers"
    ]
    compose = one_yaml(PACKAGING / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_alert_rules_and_autoscaling_use_real_metric_names(exposed: set[str]) -> None:
    rules = one_yaml(PACKAGING / "prometheus/alerts.yml")
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    assert named and named - exposed == set()

    hpa = one_yaml(PACKAGING / "k8s/hpa.yaml")
    (external,) = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert external["metric"]["name"] == QUEUE_DEPTH
    state = external["metric"]["selector"]["matchLabels"]["state"]
    assert state in {s.lower() for s in QUEUED_STATES}
    adapter = one_yaml(PACKAGING / "k8s/prometheus-adapter-values.yaml")
    (rule,) = adapter["rules"]["external"]
    assert METRIC.findall(rule["seriesQuery"]) == [QUEUE_DEPTH]
    assert rule["name"]["as"] == QUEUE_DEPTH
    assert rule["metricsQuery"].startswith("max ")  # every replica reports the whole queue


def _resolve(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the default."""
    return ENV_REFERENCE.sub(lambda m: m.group(2) or "", value)


def _check_env(env: dict[str, str]) -> Settings:
    try:
        return load_settings(config_file=None, env={k: _resolve(str(v)) for k, v in env.items()})
    except ConfigError as exc:
        raise AssertionError(f"packaging sets a bad setting: {exc}") from None


def test_compose_describes_the_cluster() -> None:
    compose = one_yaml(PACKAGING / "compose.yaml")
    services = compose["services"]
    assert {"postgres", "redis", "taskflowd-1", "taskflowd-2", "prometheus", "grafana"} <= set(
        services
    )
    for name in ("taskflowd-1", "taskflowd-2"):
        node = services[name]
        assert node["build"]["dockerfile"] == "packaging/Dockerfile"
        settings = _check_env(node["environment"])
        assert settings.database.startswith("postgresql://")
        assert "postgres:5432" in settings.database
    prometheus = one_yaml(PACKAGING / "prometheus/prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "taskflowd"]
    assert job["metrics_path"] == "/metrics"
    targets = set(job["static_configs"][0]["targets"])
    assert targets == {"taskflowd-1:8080", "taskflowd-2:8080"}
    for mount in services["prometheus"]["volumes"][:2]:
        source = mount.split(":")[0]
        assert (PACKAGING / source).is_file(), mount


def test_kubernetes_manifests(tmp_path: Path) -> None:
    kustomization = one_yaml(PACKAGING / "k8s/kustomization.yaml")
    kinds = {one_yaml(PACKAGING / "k8s" / name)["kind"] for name in kustomization["resources"]}
    assert kinds == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    config = one_yaml(PACKAGING / "k8s/configmap.yaml")["data"]["taskflowd.toml"]
    (tmp_path / "taskflowd.toml").write_text(config)
    settings = load_settings(config_file=str(tmp_path / "taskflowd.toml"), env={})
    secret = one_yaml(PACKAGING / "k8s/secret.yaml")["stringData"]
    assert all("REPLACE-ME" in v for k, v in secret.items() if "PASSWORD" in k or "DATABASE" in k)
    _check_env(secret)

    deployment = one_yaml(PACKAGING / "k8s/deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["terminationGracePeriodSeconds"] > settings.worker.shutdown_grace_s
    assert container["args"][:3] == ["serve", "--config", "/etc/taskflowd/taskflowd.toml"]
    pdb = one_yaml(PACKAGING / "k8s/pdb.yaml")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def _dockerfile() -> list[str]:
    """Instructions of the Dockerfile, continuation lines joined."""
    text = (PACKAGING / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    lines = _dockerfile()
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and " AS builder" in stages[0]
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and not user[-1].startswith(("0", "root"))
    assert 'VOLUME ["/var/lib/taskflowd"]' in lines
    assert "WORKDIR /var/lib/taskflowd" in lines
    assert "EXPOSE 8080" in lines
    assert lines[-1] == 'CMD ["serve"]'
    env = {
        k: v
        for line in lines
        if line.startswith("ENV TASKFLOW_")
        for k, v in [line.split()[1].split("=", 1)]
    }
    assert _check_env(env).http.host == "0.0.0.0"
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the image copies {source}, which is missing"
    (ignore,) = [p for p in PACKAGING.glob("Dockerfile.dockerignore")]
    assert "!taskflowd/" in ignore.read_text().split()


def _health_command() -> list[str]:
    (line,) = [line for line in _dockerfile() if line.startswith("HEALTHCHECK ")]
    command: list[str] = json.loads(line[line.index("CMD ") + 4 :])
    assert "curl" not in " ".join(command) and "/health" in command[-1]
    return command


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def test_the_image_health_check_command_works(unused_tcp_port: int) -> None:
    command = [sys.executable if part == "python" else part for part in _health_command()]
    app = web.Application()
    app.router.add_get("/health", _health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    env = {"TASKFLOW_HTTP__PORT": str(unused_tcp_port), "PATH": "/usr/bin:/bin"}
    try:
        healthy = await asyncio.create_subprocess_exec(*command, env=env)
        assert await healthy.wait() == 0
    finally:
        await runner.cleanup()
    unhealthy = await asyncio.create_subprocess_exec(
        *command, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    assert await unhealthy.wait() != 0


@pytest.mark.parametrize(
    ("check", "path"),
    [("config", "prometheus/prometheus.yml"), ("rules", "prometheus/alerts.yml")],
)
def test_promtool_accepts_the_prometheus_files(check: str, path: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", check, str(PACKAGING / path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_file_in_the_image_context_is_valid() -> None:
    # The compose and k8s files lean on config/taskflowd.toml's keys; it must load.
    data = tomllib.loads((ROOT / "config/taskflowd.toml").read_text())
    assert "http" in data
    load_settings(config_file=str(ROOT / "config/taskflowd.toml"), env={})
