"""An execution's spans recorded light and handed to the export queue in one step.

An SDK span costs 15-25 µs to start and end (sampler, id generator, bounded
attributes, locks, a processor call per span). When the only span processors are
otel_flash's own export queues (:class:`~otel_flash.telemetry.delivery.BoundedSpanProcessor`)
and the sampler is the default, nobody needs a span before it ends: a
:class:`LightSpan` records its name, ids, attributes, events and status in the
fields of an SDK ``ReadableSpan``, and when an execution's root span ends, it and
its ended children are handed to the queues as they are, together (one call per
execution).
User code still sees real ids in the context (its own spans and log records
parent correctly); the spans exported are those the SDK would have exported.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, TracerProvider
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

from otel_flash.telemetry.delivery import BoundedSpanProcessor
from otel_flash.telemetry.sdk import (
    READABLE_SPAN_FIELDS,
    SPAN_KEY,
    context_access,
    sampled_span_context,
    span_processors,
)
from otel_flash.telemetry.span_data import UNSET, EncodableSpan, SpanData

_INTERNAL = SpanKind.INTERNAL


def light_processors(provider: trace.TracerProvider) -> tuple[BoundedSpanProcessor, ...]:
    """The provider's span processors when light spans may stand in for SDK spans, else ``()``.

    That is: an SDK provider with the default sampler whose processors are all
    otel_flash export queues, none of which needs ``on_start``.
    """
    if not isinstance(provider, TracerProvider) or provider.sampler is not DEFAULT_ON:
        return ()
    processors = span_processors(provider)
    if not processors or not all(type(processor) is BoundedSpanProcessor for processor in processors):
        return ()
    return processors  # type: ignore[return-value]  # each checked to be a BoundedSpanProcessor


def light_tracer(provider: trace.TracerProvider, previous: LightTracer | None) -> LightTracer | None:
    """A :class:`LightTracer` for ``provider`` when light spans may stand in for SDK spans, else None.

    ``previous`` (the one an earlier call returned) is returned again while the
    provider's processors are the same: an execution asks once, cheaply.
    """
    if previous is not None and span_processors(provider) is previous.processors:
        return previous
    processors = light_processors(provider)
    if not processors or not isinstance(provider, TracerProvider):
        return None
    return LightTracer(provider, processors)


class LightTracer(trace.Tracer):
    """Starts :class:`LightSpan` s for ``provider``, ending up in ``processors``."""

    def __init__(self, provider: TracerProvider, processors: tuple[BoundedSpanProcessor, ...]) -> None:
        self.resource = provider.resource
        self.scope = InstrumentationScope("otel_flash")  # as provider.get_tracer("otel_flash") has it
        self.processors = processors
        self._current, self._attach, self._reset = context_access()

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        *_: Any,
        **__: Any,
    ) -> trace.Span:
        """A span; a child of the current (or ``context``'s) span, in its trace."""
        return self._start(trace.get_current_span(context), name, kind, attributes)

    def start_current(self, name: str, attributes: types.Attributes) -> tuple[trace.Span, Token[Context]]:
        """A child of the current span, made current (undo with :meth:`detach`): an execution's phase.

        What ``start_span`` then ``attach(set_span_in_context(span))`` do, in a third of the calls.
        """
        current = self._current()
        parent = current.get(SPAN_KEY)
        if type(parent) is not LightSpan and not isinstance(parent, trace.Span):  # type first: cheaper
            parent = trace.INVALID_SPAN
        span = self._start(parent, name, _INTERNAL, attributes)
        return span, self._attach(Context({**current, SPAN_KEY: span}))

    def detach(self, token: Token[Context]) -> None:
        """Make current again what was before :meth:`start_current` (as ``context.detach``, in one call)."""
        try:
            self._reset(token)
        except ValueError:  # made current in another context: the API's detach reports it
            otel_context.detach(token)

    def _start(
        self, parent: trace.Span, name: str, kind: SpanKind, attributes: types.Attributes
    ) -> trace.Span:
        state = DEFAULT_TRACE_STATE
        if type(parent) is LightSpan:  # an execution's phase: its root's trace, sampled
            parent_context: SpanContext | None = parent._context
            trace_id, state = parent._context[0], parent._context[4]  # a SpanContext is a tuple
            root = parent._root or parent
        else:
            parent_context = parent.get_span_context()
            if not parent_context.is_valid:
                parent_context, trace_id = None, random.getrandbits(128) or 1
            elif not parent_context.trace_flags.sampled:
                return trace.NonRecordingSpan(parent_context)  # the default sampler drops it, so do we
            else:
                trace_id, state = parent_context.trace_id, parent_context.trace_state  # as the SDK's spans
            root = None
        own = sampled_span_context(trace_id, random.getrandbits(64) or 1, state)
        return LightSpan(self, name, own, parent_context, kind, attributes, root)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:  # type: ignore[override]  # unused
        """Not used by the executor; phases attach their spans themselves."""
        raise NotImplementedError

    def export(self, spans: Sequence[LightSpan]) -> None:
        """Hand ended spans to every processor, in one call each."""
        for processor in self.processors:
            processor.on_end_many(spans)


class LightSpan(trace.Span, EncodableSpan):
    """A recording span in plain fields, handed to the export queues as it is when its execution's root ends.

    Its fields are those of the SDK's ``ReadableSpan``
    (:data:`~otel_flash.telemetry.sdk.READABLE_SPAN_FIELDS`), so any exporter reads it
    as one; when it ends it also keeps its :class:`SpanData` for otel_flash's encoder
    and redactor.
    """

    __slots__ = (*READABLE_SPAN_FIELDS, "_children", "_data", "_root", "_tracer")
    _context: SpanContext  # never None here

    def __init__(
        self,
        tracer: LightTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        root: LightSpan | None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self._events: list[Event] | tuple[()] = ()  # a list once an event is added (most spans have none)
        self._links = ()
        self._status = UNSET
        self._start_time = time.time_ns()
        self._end_time: int | None = None
        self._resource = tracer.resource
        self._instrumentation_scope = tracer.scope
        self._instrumentation_info = None
        self._root = root
        self._data: SpanData | None = None
        self._children: list[LightSpan] | None = None if root is not None else []
        if root is not None and root._children is not None:
            root._children.append(self)

    def get_span_context(self) -> SpanContext:
        """The span's ids."""
        return self._context

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The attributes set so far (as an SDK span's ``attributes``)."""
        return self._attributes

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """Set several attributes."""
        if self._end_time is None:
            self._attributes.update(attributes)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """Set one attribute."""
        if self._end_time is None:
            self._attributes[key] = value

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        """Add an event (now, unless ``timestamp``)."""
        if self._end_time is None:
            if not isinstance(self._events, list):
                self._events = []
            self._events.append(Event(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Links are not recorded on execution spans."""

    def update_name(self, name: str) -> None:
        """Rename the span (until it ends)."""
        if self._end_time is None:
            self._name = name

    def is_recording(self) -> bool:
        """True until the span ends."""
        return self._end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status, as the SDK does (OK is final; UNSET never overrides)."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        new = status if isinstance(status, Status) else Status(status, description)
        if new.status_code is not StatusCode.UNSET:
            self._status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event, as the SDK records it."""
        recorded: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        self.add_event("exception", {**recorded, **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span; a root hands itself and its ended children to the export queues."""
        if self._end_time is not None:
            return
        self._end_time = end_time or time.time_ns()
        children = self._children
        if children is not None:
            self._children = None
            self._tracer.export([self, *[child for child in children if child._end_time is not None]])
        elif self._root is None or self._root._children is None:
            self._tracer.export([self])  # ended after its root (an abandoned call): on its own

    @property
    def data(self) -> SpanData:  # type: ignore[override]  # EncodableSpan's slot, read lazily here
        """The ended span's :class:`SpanData`, made when first read (in the export thread, not at ``end``).

        Nothing changes a span once it has ended, so the tuple made later is the one
        ``end`` would have made; making it there would cost the execution's path one
        more tuple per span, and keep one more tracked object alive while it is queued.
        """
        data = self._data
        if data is None:
            data = tuple.__new__(  # SpanData's own __new__ is a Python call
                SpanData,
                (
                    self._context,
                    self._parent,
                    self._name,
                    self._kind,
                    self._start_time,
                    self._end_time,
                    self._attributes,
                    self._events,
                    self._status,
                    self._resource,
                    self._instrumentation_scope,
                    (),
                    0,
                    0,
                    0,
                ),
            )
            if self._end_time is not None:  # a span still running may change: read again next time
                self._data = data
        return data
