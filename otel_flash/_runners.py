"""Where a request's target runs: one interface, in this process or in a function process.

The executor writes the three phases (``flash.function.load``, ``flash.function.call``,
``flash.result.serialize``) once, over a :class:`Runner`. Loading and calling each
return the pipeline's blocking :class:`~otel_flash.runtime.Call`, which the executor
performs with its limits whatever the mode, and take its value back (:meth:`Runner.loaded`,
:meth:`Runner.called`); serializing and finishing return the
:class:`~otel_flash.runtime.Call` to perform, or (in this process, where nothing
blocks) the fields themselves and None. No generator: these steps are on every
request's path.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from otel_flash._phases import RunState
from otel_flash.isolation import ProcessSession
from otel_flash.protocol import FunctionRequest
from otel_flash.runtime import Call, Target, TargetLoader, encode_result
from otel_flash.semconv import INSTANCE_ID


class Runner(Protocol):
    """Loads, calls and serializes one request's target; then :meth:`finish` (or :meth:`abort`)."""

    def load(self) -> Call:
        """The step loading the target; its value goes to :meth:`loaded`."""
        ...

    def loaded(self, value: Any) -> str:
        """Take the load step's value; the target's qualified name."""
        ...

    def call(self) -> Call:
        """The step calling the loaded target (a coroutine function runs to completion)."""
        ...

    def called(self, value: Any) -> None:
        """Take the call step's value."""
        ...

    def serialize(self) -> dict[str, Any] | Call:
        """The response fields carrying the result, or the step that returns them."""
        ...

    def finish(self) -> Call | None:
        """The step releasing what the steps held (None: nothing held); after the last step, always."""
        ...

    def abort(self) -> None:
        """Give up now, from any thread (the execution was abandoned)."""
        ...


class ThreadRunner:
    """``isolation="thread"``: the target runs in this process, its limit starting now."""

    __slots__ = ("_deadline", "_limit", "_request", "_result", "_state", "_target", "_targets")

    def __init__(
        self, targets: TargetLoader, request: FunctionRequest, state: RunState, limit: float | None
    ) -> None:
        self._targets = targets
        self._request = request
        self._state = state
        self._limit = limit
        self._deadline = None if limit is None else time.monotonic() + limit
        self._target: Target | None = None
        self._result: Any = None

    def load(self) -> Call:
        """Load the function, or the method of a (kept) instance, within the limit."""
        return Call(self._targets.load, (self._request,), deadline=self._deadline, limit_s=self._limit)

    def loaded(self, value: Any) -> str:
        """Keep the target; its instance becomes the state's."""
        target: Target = value
        self._target = target
        self._state.instance = target.instance
        return target.qualname

    def call(self) -> Call:
        """Call it within the limit."""
        target = self._target
        if target is None:
            msg = "call() before load()"
            raise RuntimeError(msg)
        return Call(target.fn, target.args, target.kwargs, self._deadline, self._limit)

    def called(self, value: Any) -> None:
        """Keep the result; a kept instance counts the call."""
        self._result = value
        target = self._target
        if target is not None and target.instance is not None:
            target.instance.record_call()
            self._state.root_attributes[INSTANCE_ID] = target.instance.instance_id

    def serialize(self) -> dict[str, Any]:
        """Encode the result here, without a blocking step."""
        return encode_result(self._result, self._request.serialization_format)

    def finish(self) -> None:
        """Nothing to release."""

    def abort(self) -> None:
        """Nothing to stop: a thread past its limit is abandoned by the call itself."""


class ProcessRunner:
    """``isolation="process"``: each step is a blocking exchange with the session's child."""

    __slots__ = ("_session",)

    def __init__(self, session: ProcessSession) -> None:
        self._session = session

    def load(self) -> Call:
        """Fork the child and load the target there."""
        return Call(self._session.load)

    def loaded(self, value: Any) -> str:
        """The qualified name the child reported."""
        qualname: str = value
        return qualname

    def call(self) -> Call:
        """Call it in the child."""
        return Call(self._session.call)

    def called(self, value: Any) -> None:
        """Nothing to keep: the result stays in the child until serialized."""

    def serialize(self) -> Call:
        """The step returning the result's fields, encoded in the child."""
        return Call(self._session.serialize)

    def finish(self) -> Call:
        """The step killing what is left of the child and taking in its last output."""
        return Call(self._session.finish)

    def abort(self) -> None:
        """Kill the child now."""
        self._session.abort()
