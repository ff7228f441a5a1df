"""The HTTP worker's gate and limits: API keys, Host, Content-Type, docs, body and connection limits."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from otel_flash import ConfigError, FlashConfig, RemoteExecutor
from otel_flash.cli import refuse_unauthenticated
from otel_flash.http.guard import host_name, is_loopback_host
from otel_flash.http.limits import header_deadline_protocol
from otel_flash.server import create_app
from otel_flash.testing import TelemetryCapture
from tests.requests import HELLO, function_request
from tests.test_server import serving

KEY = "k-0123456789abcdef-current"
OLD_KEY = "k-0123456789abcdef-previous"
# Leaves a file behind when it runs: a refused request must not have run it.
TOUCH = """
def touch(path):
    open(path, "w").close()
    return "ran"
"""


@pytest.fixture
def keyed(telemetry: TelemetryCapture) -> Iterator[str]:
    """A worker that accepts two API keys (a rotation); yields its base URL."""
    config = FlashConfig(api_keys=(KEY, OLD_KEY))
    with (
        RemoteExecutor(
            config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
        ) as executor,
        serving(create_app(executor), config) as url,
    ):
        yield url


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/execute", "/execute/stream"])
def test_execution_without_a_key_is_401_with_a_bearer_challenge(
    keyed: str, path: str, tmp_path: Path
) -> None:
    """Without Authorization the execution routes answer 401 with WWW-Authenticate: Bearer and run nothing."""
    marker = tmp_path / "ran"
    response = httpx.post(f"{keyed}{path}", json=function_request(TOUCH, "touch", str(marker)), timeout=60)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "an API key is required: Authorization: Bearer <key>"}
    assert not marker.exists()


@pytest.mark.parametrize("header", [f"Bearer {KEY}x", f"Basic {KEY}", "Bearer", KEY])
def test_a_wrong_key_or_scheme_is_401(keyed: str, header: str) -> None:
    """A wrong key, another scheme or a bare key is refused with 401."""
    response = httpx.post(
        f"{keyed}/execute", json=function_request(HELLO, "hello", "x"), headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("key", [KEY, OLD_KEY])
def test_every_configured_key_is_accepted(keyed: str, key: str) -> None:
    """Each of the comma-separated keys opens /execute, so a key can be rotated without downtime."""
    response = httpx.post(
        f"{keyed}/execute", json=function_request(HELLO, "hello", "k"), headers=_bearer(key), timeout=60
    )
    assert response.status_code == 200
    assert response.json()["json_result"] == "Hello, k!"


def test_ping_stays_open_without_a_key(keyed: str) -> None:
    """Health checks need no key."""
    response = httpx.get(f"{keyed}/ping")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_keys_are_redacted_from_what_the_worker_shows_and_exports(
    keyed: str, telemetry: TelemetryCapture
) -> None:
    """A key that user code prints or logs reaches neither the response nor the exported records."""
    code = (
        "import logging\ndef leak(key):\n    print(key)\n    logging.getLogger('x').warning('key %s', key)\n"
    )
    response = httpx.post(
        f"{keyed}/execute", json=function_request(code, "leak", OLD_KEY), headers=_bearer(KEY), timeout=60
    )
    body = response.json()
    assert body["success"] is True
    assert OLD_KEY not in response.text
    assert "***" in body["stdout"]
    assert not [text for text in telemetry.log_bodies() if OLD_KEY in text]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_body_that_is_not_application_json_is_415_and_not_run(
    client: httpx.Client, content_type: str | None, tmp_path: Path
) -> None:
    """A browser's no-preflight body types (and no type at all) are refused before parsing."""
    import json

    marker = tmp_path / "ran"
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps(function_request(TOUCH, "touch", str(marker)))
    response = client.post("/execute", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("the request body must be application/json")
    assert not marker.exists()


def test_application_json_with_a_charset_is_run(client: httpx.Client) -> None:
    """Parameters of the media type do not matter."""
    import json

    body = json.dumps(function_request(HELLO, "hello", "cs"))
    response = client.post(
        "/execute", content=body, headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert response.json()["json_result"] == "Hello, cs!"


def test_a_worker_mounted_under_a_prefix_keeps_its_checks(executor: RemoteExecutor, tmp_path: Path) -> None:
    """Mounted at /worker in an app of the user's, /worker/execute refuses non-JSON bodies and runs JSON."""
    import json
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    worker = create_app(executor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with worker.router.lifespan_context(worker):  # an injected executor: ready once started
            yield

    parent = FastAPI(lifespan=lifespan)
    parent.mount("/worker", worker)
    marker = tmp_path / "ran"
    body = json.dumps(function_request(TOUCH, "touch", str(marker)))
    with serving(parent, ready=False) as url, httpx.Client(base_url=f"{url}/worker", timeout=60) as client:
        refused = client.post("/execute", content=body, headers={"content-type": "text/plain"})
        served = client.post("/execute", json=function_request(HELLO, "hello", "mounted"))
    assert refused.status_code == 415 and not marker.exists()
    assert served.json()["json_result"] == "Hello, mounted!"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.0.0.5", "127.0.0.1.evil.example"])
def test_a_foreign_host_on_a_loopback_bind_is_421(client: httpx.Client, host: str, tmp_path: Path) -> None:
    """DNS rebinding: a Host that is not a loopback name is refused, on every route."""
    marker = tmp_path / "ran"
    response = client.post(
        "/execute", json=function_request(TOUCH, "touch", str(marker)), headers={"host": host}
    )
    assert response.status_code == 421
    assert "answers only loopback names" in response.json()["detail"]
    assert client.get("/ping", headers={"host": host}).status_code == 421
    assert not marker.exists()


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1", "127.1.2.3:9", "[::1]:8000"])
def test_loopback_host_names_are_served(client: httpx.Client, host: str) -> None:
    """localhost, 127.x and [::1], with or without a port, reach the worker."""
    response = client.post("/execute", json=function_request(HELLO, "hello", "h"), headers={"host": host})
    assert response.json()["json_result"] == "Hello, h!"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LOCALHOST.", True),
     ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.2", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback_host(host: str, loopback: bool) -> None:
    """Only loopback names and addresses count as loopback (0.0.0.0 listens everywhere)."""
    assert is_loopback_host(host) is loopback


def test_host_name_drops_the_port() -> None:
    """The name part of a Host header, IPv6 brackets kept."""
    assert [host_name(h) for h in ("a:80", "a", "[::1]:8000", "[::1]")] == ["a", "a", "[::1]", "[::1]"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_are_off_unless_asked_for(path: str) -> None:
    """/docs, /redoc and /openapi.json answer 404 by default and 200 with http_docs."""
    with serving(create_app(config=FlashConfig())) as url:
        assert httpx.get(f"{url}{path}").status_code == 404
    with serving(create_app(config=FlashConfig(http_docs=True))) as url:
        assert httpx.get(f"{url}{path}").status_code == 200


def _scope(address: tuple[str, int | None], path: str = "/execute") -> dict[str, Any]:
    """The ASGI scope uvicorn gives a JSON POST that reached ``address``."""
    headers = [(b"host", b"worker.example"), (b"content-type", b"application/json")]
    return {"type": "http", "method": "POST", "path": path, "server": address, "headers": headers}


def test_an_embedded_app_refuses_public_requests_without_a_key() -> None:
    """serve's start-up rule per request: no key and a non-loopback address is 403 unless allowed."""
    from otel_flash.http.guard import RequestGuard

    async def app(_scope: MutableMapping[str, Any], _receive: Any, _send: Any) -> None:
        """The app behind the gate; refusal() decides without calling it."""

    def guard(keys: tuple[str, ...] = (), allow: bool = False) -> RequestGuard:
        return RequestGuard(
            app,
            api_keys=keys,
            allow_unauthenticated=allow,
            open_paths=frozenset({"/ping"}),
            json_paths=frozenset({"/execute"}),
        )

    refused = guard().refusal(_scope(("10.1.2.3", 8000)))
    assert refused is not None and refused.status == 403 and "FLASH_API_KEY" in refused.detail
    assert guard().refusal(_scope(("10.1.2.3", 8000), "/ping")) is None
    assert guard(allow=True).refusal(_scope(("10.1.2.3", 8000))) is None
    assert guard().refusal(_scope(("/run/worker.sock", None))) is None  # a Unix socket is local
    with_key = guard(keys=(KEY,)).refusal(_scope(("10.1.2.3", 8000)))
    assert with_key is not None and with_key.status == 401


def test_refusal_rule_for_unauthenticated_public_binds() -> None:
    """serve refuses a non-loopback address without a key, unless allowed explicitly."""
    assert refuse_unauthenticated("127.0.0.1", FlashConfig()) is None
    assert refuse_unauthenticated("0.0.0.0", FlashConfig(api_keys=(KEY,))) is None
    assert refuse_unauthenticated("0.0.0.0", FlashConfig(allow_unauthenticated=True)) is None
    reason = refuse_unauthenticated("0.0.0.0", FlashConfig())
    assert reason is not None and "FLASH_API_KEY" in reason and "--allow-unauthenticated" in reason


def test_serve_refuses_a_public_address_without_a_key() -> None:
    """`otel-flash serve --host 0.0.0.0` without a key exits 2 before listening, saying what to do."""
    import subprocess

    from tests.stack import OTEL_FLASH, clean_env

    result = subprocess.run(
        [OTEL_FLASH, "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "refusing to serve on '0.0.0.0' without an API key" in result.stderr
    assert "--allow-unauthenticated" in result.stderr


def test_serve_options_override_the_environment() -> None:
    """`serve --api-key K1 --api-key K2 --docs --allow-unauthenticated` set those fields, and only those."""
    from otel_flash.cli import _serve_overrides, build_parser

    given = build_parser().parse_args(
        ["serve", "--api-key", KEY, "--api-key", OLD_KEY, "--docs", "--allow-unauthenticated"]
    )
    assert _serve_overrides(given) == {
        "api_keys": (KEY, OLD_KEY),
        "http_docs": True,
        "allow_unauthenticated": True,
    }
    assert _serve_overrides(build_parser().parse_args(["serve"])) == {}


def test_api_keys_come_from_the_environment_and_are_secrets() -> None:
    """FLASH_API_KEY holds comma-separated keys; each is a secret value; short keys are refused."""
    config = FlashConfig.from_env({"FLASH_API_KEY": f"{KEY}, {OLD_KEY}"})
    assert config.api_keys == (KEY, OLD_KEY)
    assert {KEY, OLD_KEY} <= config.secret_values
    assert KEY not in repr(config)
    assert {KEY} <= FlashConfig(api_keys=(KEY,)).replace(max_workers=2).secret_values
    with pytest.raises(ConfigError, match="at least 16 characters") as refused:
        FlashConfig.from_env({"FLASH_API_KEY": "short-key"})
    assert "short-key" not in str(refused.value)


def _raw_connection(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def test_a_slow_body_gets_408_and_its_connection_closed() -> None:
    """A body that does not arrive within body_timeout_s is answered 408, whatever the client does next."""
    config = FlashConfig(body_timeout_s=1)
    with serving(create_app(config=config), config) as url, _raw_connection(url) as sock:
        sock.sendall(
            b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"function_'
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request body not received within 1 s" in answer


def test_an_idle_keep_alive_connection_is_closed() -> None:
    """After keepalive_timeout_s without a new request the worker closes the connection."""
    config = FlashConfig(keepalive_timeout_s=1)
    with serving(create_app(config=config), config) as url, _raw_connection(url) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        answer = _read_all(sock)  # ends when the server closes the idle connection
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started < 25


def test_connections_over_the_cap_get_503() -> None:
    """With max_connections open, one more request is answered 503; the worker serves again after."""
    config = FlashConfig(max_connections=2)
    with serving(create_app(config=config), config) as url:
        held = [_raw_connection(url) for _ in range(2)]
        try:
            over = httpx.get(f"{url}/ping", timeout=30)
        finally:
            for sock in held:
                sock.close()
        assert over.status_code == 503
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ping", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the worker did not serve again"
            time.sleep(0.05)


@pytest.mark.parametrize("base", [H11Protocol, HttpToolsProtocol], ids=["h11", "httptools"])
@pytest.mark.parametrize(
    "sent", [b"", b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"], ids=["silent", "headers-never-finished"]
)
def test_a_connection_slow_to_send_its_headers_is_closed(sent: bytes, base: type[asyncio.Protocol]) -> None:
    """A connection that sends nothing, or never finishes its headers, is closed after header_timeout_s.

    Both of uvicorn's protocols (0.54 here) have the internals the deadline hooks.
    """
    config = FlashConfig(header_timeout_s=1)
    protocol = header_deadline_protocol(config.header_timeout_s, base)
    with serving(create_app(config=config), config, http=protocol) as url, _raw_connection(url) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert _read_all(sock) == b""  # closed without an answer
    assert time.monotonic() - started < 25


def test_the_header_deadline_spares_running_requests_and_kept_alive_ones(executor: RemoteExecutor) -> None:
    """A request running past header_timeout_s is answered, and its connection serves the next request."""
    code = "import time\ndef nap():\n    time.sleep(2.5)\n    return 'rested'\n"
    config = FlashConfig(header_timeout_s=1, keepalive_timeout_s=30)
    with serving(create_app(executor), config) as url, httpx.Client(base_url=url, timeout=60) as client:
        first = client.post("/execute", json=function_request(code, "nap"))
        second = client.post("/execute", json=function_request(HELLO, "hello", "kept"))
        assert client.get("/ping").status_code == 200
    assert first.json()["json_result"] == "rested"
    assert second.json()["json_result"] == "Hello, kept!"


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def client(executor: RemoteExecutor) -> Iterator[httpx.Client]:
    """A client of a worker without API keys."""
    with serving(create_app(executor)) as url, httpx.Client(base_url=url, timeout=60) as instance:
        yield instance
