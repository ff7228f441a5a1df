"""The SDK internals otel_flash reads (telemetry/sdk.py), checked against opentelemetry-sdk 1.45.1."""

from __future__ import annotations

from importlib import metadata

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter, MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_flash.telemetry import sdk


def test_the_installed_sdk_is_the_release_the_private_reads_were_checked_against() -> None:
    """A new SDK minor release means re-reading its providers before moving ``CHECKED_SDK_VERSION``."""
    installed = metadata.version("opentelemetry-sdk").split(".")[:2]
    assert installed == sdk.CHECKED_SDK_VERSION.split(".")[:2]


@pytest.mark.parametrize("build", ["ours", "a caller's"])
def test_span_processors_are_read_in_order(build: str) -> None:
    """The span processors of our providers and of a caller's stock provider, as added."""
    if build == "ours":
        provider = sdk.new_tracer_provider(Resource.get_empty())
    else:
        provider = TracerProvider(shutdown_on_exit=False)
    assert sdk.span_processors(provider) == ()
    first = SimpleSpanProcessor(InMemorySpanExporter())
    second = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(first)
    provider.add_span_processor(second)
    assert sdk.span_processors(provider) == (first, second)


@pytest.mark.parametrize("build", ["ours", "a caller's"])
def test_log_record_processors_are_read_in_order(build: str) -> None:
    """The log record processors of our providers and of a caller's stock provider, as added."""
    if build == "ours":
        provider = sdk.new_logger_provider(Resource.get_empty())
    else:
        provider = LoggerProvider(shutdown_on_exit=False)
    assert sdk.log_record_processors(provider) == ()
    processor = SimpleLogRecordProcessor(InMemoryLogRecordExporter())  # type: ignore[no-untyped-call]  # SDK lacks annotation
    provider.add_log_record_processor(processor)
    assert sdk.log_record_processors(provider) == (processor,)


@pytest.mark.parametrize("build", ["ours", "a caller's"])
def test_a_span_ended_elsewhere_reaches_every_processor(build: str) -> None:
    """``span_end_hook`` hands a finished span to the provider's processors."""
    provider = (
        sdk.new_tracer_provider(Resource.get_empty())
        if build == "ours"
        else TracerProvider(shutdown_on_exit=False)
    )
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = TracerProvider(shutdown_on_exit=False).get_tracer("elsewhere").start_span("ended elsewhere")
    span.end()
    hook = sdk.span_end_hook(provider)
    assert hook is not None
    hook(span)  # type: ignore[arg-type]  # an SDK span is a ReadableSpan
    assert [finished.name for finished in exporter.get_finished_spans()] == ["ended elsewhere"]


def test_what_cannot_be_read_is_said_so() -> None:
    """A provider that is not the SDK's has no readable processors: None, not an empty list."""
    assert sdk.span_processors(object()) is None  # type: ignore[arg-type]  # not a provider on purpose
    assert sdk.span_end_hook(object()) is None  # type: ignore[arg-type]  # not a provider on purpose


def test_exemplar_filter_is_the_one_a_meter_provider_was_built_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter given to a meter provider, or ``OTEL_METRICS_EXEMPLAR_FILTER``'s, is read back."""
    given = MeterProvider(exemplar_filter=AlwaysOnExemplarFilter(), shutdown_on_exit=False)
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_off")
    from_env = MeterProvider(shutdown_on_exit=False)
    assert isinstance(sdk.exemplar_filter(given), AlwaysOnExemplarFilter)
    assert isinstance(sdk.exemplar_filter(from_env), AlwaysOffExemplarFilter)
    assert sdk.exemplar_filter(object()) is None  # type: ignore[arg-type]  # not a provider on purpose


def test_enable_undoes_otel_sdk_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our providers record under ``OTEL_SDK_DISABLED=true`` (the setting means: export nothing)."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    silenced = sdk.new_tracer_provider(Resource.get_empty())
    assert not silenced.get_tracer("t").start_span("s").get_span_context().is_valid
    enabled = sdk.enable(sdk.new_tracer_provider(Resource.get_empty()))
    assert enabled.get_tracer("t").start_span("s").get_span_context().is_valid


def test_readable_span_fields_are_the_ones_its_constructor_sets() -> None:
    """A class setting ``READABLE_SPAN_FIELDS`` itself sets every field a ``ReadableSpan`` reads."""
    assert set(vars(ReadableSpan("s"))) == set(sdk.READABLE_SPAN_FIELDS)


def test_a_sampled_span_context_is_the_one_the_api_builds() -> None:
    """Built without the constructor, it equals and reads as ``SpanContext(...)``."""
    built = sdk.sampled_span_context(2**128 - 1, 1)
    expected = SpanContext(2**128 - 1, 1, False, TraceFlags(TraceFlags.SAMPLED))
    assert built == expected
    assert (built.trace_id, built.span_id, built.is_remote, built.trace_flags, built.trace_state) == (
        expected.trace_id,
        expected.span_id,
        False,
        expected.trace_flags,
        expected.trace_state,
    )
    assert built.is_valid and type(built) is SpanContext


def test_context_access_is_the_apis_current_context() -> None:
    """What ``context_access`` sets the API reads; its token detaches through the API, or its reset."""
    current, attach, reset = sdk.context_access()
    span = NonRecordingSpan(sdk.sampled_span_context(5, 7))
    token = attach(Context({**current(), sdk.SPAN_KEY: span}))
    try:
        assert trace.get_current_span() is span
        assert current() is otel_context.get_current()
    finally:
        otel_context.detach(token)
    assert trace.get_current_span() is not span
    token = attach(Context({**current(), sdk.SPAN_KEY: span}))
    reset(token)
    assert trace.get_current_span() is not span
