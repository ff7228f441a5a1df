"""Secrets never leave the worker: stdout, exported logs, span events and errors show ***."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_flash import FlashConfig, RemoteExecutor
from otel_flash.redaction import Redactor, redact_urls
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request

SECRET = "sk-live-0123456789abcdef"
LEAKY = f"""
import logging, sys
log = logging.getLogger("leaky")

def leak():
    log.info("using key {SECRET}")
    print("fetching https://alice:hunter22@example.org/data")
    sys.stderr.write("Authorization: Bearer {SECRET}\\n")
    log.info("extra", extra={{"api_key": "{SECRET}"}})
    raise RuntimeError("auth failed for {SECRET}")
"""


@pytest.fixture
def guarded(telemetry: TelemetryCapture) -> Iterator[RemoteExecutor]:
    """An executor whose config holds SECRET as an environment secret."""
    config = FlashConfig.from_env({"RUNPOD_API_KEY": SECRET})
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        yield executor


def test_from_env_collects_values_of_secret_variables() -> None:
    """Variables matching the patterns become secret values; others do not; repr hides them."""
    config = FlashConfig.from_env({"HF_TOKEN": "hf_abcdefgh", "DB_PASSWORD": "pa55word!", "HOME": "/root"})
    assert config.secret_values == {"hf_abcdefgh", "pa55word!"}
    assert "hf_abcdefgh" not in repr(config)
    custom = FlashConfig.from_env(
        {"FLASH_SECRET_ENV": "MY_*", "MY_KEY": "value-123", "HF_TOKEN": "hf_abcdefgh"}
    )
    assert custom.secret_values == {"value-123"}


def test_redactor_covers_values_urls_and_authorization() -> None:
    """Each kind of secret is replaced by ***."""
    redact = Redactor({SECRET})
    assert redact(f"key={SECRET}!") == "key=***!"
    assert redact("pip install https://u:tok@host/simple") == "pip install https://***@host/simple"
    assert redact("Authorization: Bearer abc.def") == "Authorization: ***"
    assert redact("{'authorization': 'Basic Zm9v'}") == "{'authorization': '***'}"
    assert redact("nothing secret") == "nothing secret"


def test_nothing_leaks_anywhere(guarded: RemoteExecutor, telemetry: TelemetryCapture) -> None:
    """stdout, error, exported bodies and attributes, span events and status hold no secret."""
    response = guarded.execute_sync(function_request(LEAKY, "leak"))
    assert response.success is False
    shown = [response.stdout or "", response.error or ""]
    for record in telemetry.log_records():
        shown.append(str(record.log_record.body))
        shown.extend(str(value) for value in (record.log_record.attributes or {}).values())
    for span in telemetry.spans():
        shown.append(span.status.description or "")
        for event in span.events:
            shown.extend(str(value) for value in (event.attributes or {}).values())
    text = "\n".join(shown)
    assert SECRET not in text and "hunter22" not in text
    assert "using key ***" in (response.stdout or "")
    assert "fetching https://***@example.org/data" in (response.stdout or "")
    assert "Authorization: ***" in (response.stdout or "")
    assert "RuntimeError: auth failed for ***" in (response.error or "")


@pytest.mark.parametrize("passed_on", [False, True])
def test_installers_get_no_secrets_unless_configured(
    telemetry: TelemetryCapture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passed_on: bool
) -> None:
    """The installer subprocess's environment lacks the secret variables, unless the config says so."""
    monkeypatch.setenv("SERVICE_API_KEY", SECRET)
    monkeypatch.setenv("PLAIN_SETTING", "visible")
    script = tmp_path / "env-installer"
    script.write_text(f'#!/bin/sh\nenv > "{tmp_path}/env"\n')
    script.chmod(0o755)
    config = FlashConfig(
        installer="pip",
        install_target=str(tmp_path / "target"),
        installer_command=(str(script),),
        installers_get_secrets=passed_on,
    )
    request = {**function_request("def f():\n    return 1\n", "f"), "dependencies": ["flashdemo-absent>=1"]}
    with RemoteExecutor(
        config, tracer_provider=telemetry.tracer_provider, logger_provider=telemetry.logger_provider
    ) as executor:
        executor.execute_sync(request)
    environment = (tmp_path / "env").read_text()
    assert "PLAIN_SETTING=visible" in environment
    assert (f"SERVICE_API_KEY={SECRET}" in environment) is passed_on


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("AuthoRization: Bearer abc.def", "AuthoRization: ***"),
        ("PROXY-AUTHORIZATION=Basic Zm9v", "PROXY-AUTHORIZATION=***"),
        ('{"authorization": "token abc"}', '{"authorization": "***"}'),
        ("GET https://h/x?token=abc&page=2", "GET https://h/x?token=***&page=2"),
        (
            "https://h/?access_token=a1&api_key=b2&apikey=c3",
            "https://h/?access_token=***&api_key=***&apikey=***",
        ),
        ("/blob?sv=1&sig=Zm9v%3D&se=2", "/blob?sv=1&sig=***&se=2"),
        ("s3/o?X-Amz-Signature=dead&X-Amz-Date=1", "s3/o?X-Amz-Signature=***&X-Amz-Date=1"),
        ("?password=p&secret=s&key=k&signature=g", "?password=***&secret=***&key=***&signature=***"),
        ("'https://h/?client_secret=zz'", "'https://h/?client_secret=***'"),
        ("?page=2&sort=name", "?page=2&sort=name"),
        ("a 1.2.3@example, e-mail me@host.org", "a 1.2.3@example, e-mail me@host.org"),
    ],
)
def test_redactor_covers_mixed_case_headers_and_query_parameters(text: str, shown: str) -> None:
    """Authorization in any case and secret query parameters are hidden; ordinary text is left alone."""
    assert Redactor()(text) == shown


def test_nested_and_bytes_values_are_redacted_and_untouched_values_kept() -> None:
    """Dicts, lists, tuples and bytes are redacted item by item; clean values stay the same objects."""
    redact = Redactor({SECRET})
    value = {"a": [f"x {SECRET}", 1], "b": (b"https://u:p@h", None), "c": {"d": "plain"}}
    assert redact.value(value) == {"a": ["x ***", 1], "b": (b"https://***@h", None), "c": {"d": "plain"}}
    plain = {"a": ["x", 1.5], "b": (b"\xff\xfe", True)}
    assert redact.value(plain) is plain
    assert redact.value(b"\xff " + SECRET.encode()) == b"\xff ***"


# Pieces that start a match of some pattern everywhere and end few: the shapes that made the
# old URL pattern quadratic, and their relatives for every other pattern.
_PIECES = st.sampled_from(
    ["a", ".", ":", "/", "//", "@", "?", "&", ";", "=", " ", "\n", "'", '"', "x://", "token", "Bearer ",
     "AuthoRization", ": ", "sk-live-0123", "%3D", "é", "\U0001f600"]
)  # fmt: skip
_NOISE = st.lists(_PIECES, max_size=60).map("".join)
_SECRETS = st.sampled_from(
    [
        ("https://user:pw123zz@host/p", "pw123zz"),
        ("https://h/?token=tk999zz&x=1", "tk999zz"),
        ("Authorization: Bearer ab777zz", "ab777zz"),
        (f"key {SECRET}", SECRET),
    ]
)


@settings(max_examples=300, deadline=None)
@given(before=_NOISE, secret=_SECRETS, after=_NOISE)
def test_adversarial_text_of_any_shape_is_redacted_correctly(
    before: str, secret: tuple[str, str], after: str
) -> None:
    """Whatever surrounds a secret, it is gone, redacting twice changes nothing, and text keeps its ends."""
    redact = Redactor({SECRET})
    line, hidden = secret
    text = f"{before} {line} {after}"
    once = redact(text)
    assert hidden not in once
    assert redact(once) == once
    long = redact(before * 200)  # long runs of the shapes: correct too (their speed is benchmarked)
    assert redact(long) == long
    if "@" not in text:
        assert redact_urls(text) is text
