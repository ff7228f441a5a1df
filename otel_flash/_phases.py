"""One execution's phases: the state gathered while it runs, and the span each phase is."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from otel_flash.redaction import Redactor
from otel_flash.runtime import Instance, Workspace, record_failure
from otel_flash.semconv import (
    DEPENDENCIES_INSTALLER,
    DEPENDENCIES_PYTHON_SPAN,
    DEPENDENCIES_SKIPPED,
    DEPENDENCIES_SYSTEM_SPAN,
)

_DEPENDENCY_KINDS = {DEPENDENCIES_SYSTEM_SPAN: "system", DEPENDENCIES_PYTHON_SPAN: "python"}


class InstallFacts(NamedTuple):
    """One dependency phase, for the install metrics."""

    kind: str
    installer: str
    skipped: bool
    failed: bool


@dataclass(slots=True)
class RunState:
    """Facts gathered while one execution runs, in its workspace."""

    workspace: Workspace
    tracer: trace.Tracer  # the execution's: light spans when only otel_flash's queues observe them
    phases_ms: dict[str, float] = field(default_factory=dict)
    failed_phase: str | None = None
    instance: Instance | None = None
    root_attributes: dict[str, str] = field(default_factory=dict)
    spans_observed: bool = True
    installs: list[InstallFacts] = field(default_factory=list)


class Phase:
    """One phase: a current child span, its timing, and its failure recorded.

    A plain class rather than ``start_as_current_span``: phases are on every
    request's path, and this saves the decorator and generator layers. When nothing
    observes spans (:mod:`otel_flash.telemetry.observation`) a phase makes no span at all: records
    keep the ids of the root's stand-in span, and the phase is still timed. Dependency
    phases (slow anyway) always get a span: the installer writes its facts there.
    """

    __slots__ = ("_attributes", "_detach", "_name", "_redact", "_span", "_started", "_state", "_token")

    def __init__(
        self,
        name: str,
        state: RunState,
        attributes: Mapping[str, str] | None,
        redact: Redactor,
    ) -> None:
        self._redact = redact
        self._name = name
        self._state = state
        self._attributes = attributes

    def __enter__(self) -> trace.Span:
        self._started = time.perf_counter_ns()
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: Token[Context] | None = None
        if not self._state.spans_observed and self._name not in _DEPENDENCY_KINDS:
            return self._span  # nothing would see it: the root stand-in stays current
        tracer = self._state.tracer
        start_current = getattr(tracer, "start_current", None)  # a LightTracer's: in fewer calls
        if start_current is not None:
            self._span, self._token = start_current(self._name, self._attributes)
            self._detach: Callable[[Token[Context]], None] = tracer.detach  # type: ignore[attr-defined]  # a LightTracer's
        else:
            self._span = tracer.start_span(self._name, attributes=self._attributes)
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
            self._detach = otel_context.detach
        return self._span

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._token is not None:
            self._detach(self._token)
        if exc is not None:
            self._state.failed_phase = self._name
            record_failure(self._span, exc, self._redact)
        if self._token is not None:  # else a lean phase: no span to end, no install facts
            self._span.end()
            if self._name in _DEPENDENCY_KINDS:
                self._state.installs.append(_install_facts(self._name, self._span, exc is not None))
        elapsed_ms = (time.perf_counter_ns() - self._started) / 1e6
        self._state.phases_ms[self._name.removeprefix("flash.")] = elapsed_ms


def _install_facts(name: str, span: trace.Span, failed: bool) -> InstallFacts:
    """What the installer wrote on its phase's span."""
    attributes = getattr(span, "attributes", None) or {}
    installer = str(attributes.get(DEPENDENCIES_INSTALLER, "unknown"))
    return InstallFacts(
        _DEPENDENCY_KINDS[name], installer, bool(attributes.get(DEPENDENCIES_SKIPPED)), failed
    )
