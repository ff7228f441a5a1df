"""The collector + Jaeger + worker stack files are consistent (parsed only: no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    """collector-config.yaml."""
    return _load("collector-config.yaml")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml."""
    return _load("docker-compose.yml")


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Ports a service listens on inside the network (the container side of ``ports``, and ``expose``)."""
    found = {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports", [])}
    return found | {int(port) for port in service.get("expose", [])}


def test_every_pipeline_uses_declared_components(collector: dict[str, Any]) -> None:
    """Each receiver, processor and exporter a pipeline names is declared, and each declared one is used."""
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for pipeline in collector["service"]["pipelines"].values():
        for kind, names in used.items():
            names.update(pipeline.get(kind, []))
    for kind, names in used.items():
        assert names == set(collector[kind]), kind
    assert set(collector["service"].get("extensions", [])) <= set(collector.get("extensions", {}))


def test_pipelines_route_traces_to_jaeger_and_logs_metrics_to_debug(collector: dict[str, Any]) -> None:
    """Traces leave over OTLP, logs and metrics go to ``debug/*`` exporters; ``logging`` is absent."""
    pipelines = collector["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["otlp/jaeger"]
    assert pipelines["logs"]["exporters"] == ["debug/logs"]
    assert pipelines["metrics"]["exporters"] == ["debug/metrics"]
    assert "logging" not in collector["exporters"]
    for pipeline in pipelines.values():
        assert pipeline["processors"][0] == "memory_limiter"
        assert pipeline["processors"][-1] == "batch"


def test_collector_output_shows_log_bodies_and_ids(collector: dict[str, Any]) -> None:
    """The logs pipeline prints records in full (``detailed``: bodies and trace ids), not counts only."""
    [exporter] = collector["service"]["pipelines"]["logs"]["exporters"]
    assert exporter.split("/")[0] == "debug"
    assert collector["exporters"][exporter]["verbosity"] == "detailed"


@pytest.mark.parametrize("doc", ["README.md", "docs/telemetry.md"])
def test_docs_name_the_debug_exporters_as_configured(collector: dict[str, Any], doc: str) -> None:
    """README and docs/telemetry.md name each debug exporter the config has, with its verbosity."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    debug = {
        name: config["verbosity"]
        for name, config in collector["exporters"].items()
        if name.startswith("debug")
    }
    assert debug
    for name, verbosity in debug.items():
        assert re.search(rf"`{re.escape(name)}`[^.]*\b{verbosity}\b", text), (doc, name, verbosity)


def test_otlp_receivers_listen_on_all_interfaces(collector: dict[str, Any]) -> None:
    """gRPC on 0.0.0.0:4317 and HTTP on 0.0.0.0:4318, so other containers can reach them."""
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_collector_exports_to_the_jaeger_service_port(
    collector: dict[str, Any], compose: dict[str, Any]
) -> None:
    """The jaeger exporter names the compose ``jaeger`` service on a port that service listens on."""
    host, port = collector["exporters"]["otlp/jaeger"]["endpoint"].rsplit(":", 1)
    assert host in compose["services"]
    assert int(port) in _container_ports(compose["services"][host])


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    """Collector contrib and Jaeger v2 images carry an explicit version, never ``latest``."""
    images = {name: service.get("image", "") for name, service in compose["services"].items()}
    assert re.fullmatch(r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+", images["otel-collector"])
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", images["jaeger"])
    assert 16686 in _container_ports(compose["services"]["jaeger"])


def test_collector_mounts_its_config_and_publishes_otlp_ports(compose: dict[str, Any]) -> None:
    """The config file in the repo is mounted where ``--config`` points; 4317 and 4318 are published."""
    service = compose["services"]["otel-collector"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}
    assert (ROOT / "collector-config.yaml").is_file()
    assert f"--config={mounts['./collector-config.yaml']}" in service["command"]
    assert {4317, 4318} <= _container_ports(service)


def test_worker_endpoint_names_the_collector_service(
    compose: dict[str, Any], collector: dict[str, Any]
) -> None:
    """The worker exports to the collector service on the port its receiver for that protocol binds."""
    worker = compose["services"]["worker"]
    endpoint = worker["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    match = re.fullmatch(r"http://([\w.-]+):(\d+)", endpoint)
    assert match is not None, endpoint
    assert match.group(1) in compose["services"]
    protocol = worker["environment"].get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    receiver = collector["receivers"]["otlp"]["protocols"]["grpc" if protocol == "grpc" else "http"]
    assert int(match.group(2)) == int(receiver["endpoint"].rsplit(":", 1)[1])
    assert "otel-collector" in worker["depends_on"]


def test_worker_is_built_here_and_serves_on_its_published_port(compose: dict[str, Any]) -> None:
    """The Dockerfile installs the server extra and runs ``otel-flash serve`` on the published port."""
    worker = compose["services"]["worker"]
    assert worker["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'pip install "\.\[server\]"', dockerfile)
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    argv = yaml.safe_load(cmd.removeprefix("CMD "))
    assert argv[:2] == ["otel-flash", "serve"]
    port = argv[argv.index("--port") + 1]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert int(port) in _container_ports(worker)


def test_worker_takes_its_api_key_from_the_environment(compose: dict[str, Any]) -> None:
    """Compose passes FLASH_API_KEY through and refuses to start without it; no key is baked in."""
    environment = compose["services"]["worker"]["environment"]
    assert re.fullmatch(r"\$\{FLASH_API_KEY:\?.+\}", environment["FLASH_API_KEY"])
    assert "FLASH_ALLOW_UNAUTHENTICATED" not in environment
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FLASH_API_KEY=" not in "".join(line for line in dockerfile.splitlines() if line.startswith("ENV"))
    assert "--allow-unauthenticated" not in dockerfile.split("\nCMD ", 1)[1]


def test_worker_port_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    """The worker's published port binds the host's 127.0.0.1, not every interface."""
    ports = [str(port) for port in compose["services"]["worker"]["ports"]]
    assert ports and all(port.startswith("127.0.0.1:") for port in ports)


def test_healthcheck_waits_for_200_from_ping() -> None:
    """The HEALTHCHECK counts the worker healthy on /ping 200 only (204 means still initialising)."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    check = dockerfile.split("HEALTHCHECK", 1)[1].split("\nCMD ", 1)[0]
    assert "/ping" in check and "status != 200" in check
    assert "--start-period=" in check


def test_worker_stop_grace_period_covers_the_whole_shutdown(compose: dict[str, Any]) -> None:
    """Docker waits for the drain, uvicorn's close, the telemetry flush and its summary before SIGKILL."""
    from otel_flash.config import FlashConfig

    worker = compose["services"]["worker"]
    config = FlashConfig.from_env({key: str(value) for key, value in worker["environment"].items()})
    match = re.fullmatch(r"(\d+)s", str(worker["stop_grace_period"]))
    assert match is not None
    needed = config.shutdown_grace_s + 1 + config.export.shutdown_timeout_s + 2
    assert int(match.group(1)) >= needed
