"""RunPod serverless handlers, all jobs of a worker process on one executor.

Plain (the job's output is the ``FunctionResponse``)::

    import runpod
    from otel_flash.integrations.runpod import handler

    runpod.serverless.start({"handler": handler})

``handler`` is the one to use with runpod-flash's client. Under both handlers each
captured line is also written to the container's stdout as it is emitted
(``FLASH_ECHO_LINES``, see :mod:`otel_flash.capture.echo`), so the client's live log view
shows it, and its de-duplication drops it from the final ``stdout``.

Streaming (yields ``{"type": "log", "line": ...}`` per captured line as it is
emitted, then ``{"type": "response", "response": {...}}``); with
``return_aggregate_stream`` the job's output is a list, which runpod-flash's client
cannot decode (it reports the call as failed)::

    from otel_flash.integrations.runpod import stream_handler

    runpod.serverless.start({"handler": stream_handler, "return_aggregate_stream": True})

The executor is created on the first job, not at import, and lives as long as
the process: class instances persist across jobs (the reference worker builds an
executor per job and loses them). Telemetry is flushed after every job, since a
serverless worker can be stopped at any moment between jobs, and at exit. The job
id is recorded on ``flash.execute`` as ``flash.job_id`` and ``faas.invocation_id``
(``faas.trigger`` is ``pubsub``); the start-up is the ``flash.worker.init`` span.

As in the reference worker, the plain handler returns the response as a dict:
RunPod moves a non-null ``error`` out of ``output`` into the job's ``error`` and
marks the job failed. The streaming events never carry a top-level ``error``,
so a failed execution arrives as its ``response`` event with ``success: false``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from otel_flash.capture import resolve_auto
from otel_flash.config import FlashConfig
from otel_flash.exceptions import WorkerSaturated
from otel_flash.executor import RemoteExecutor
from otel_flash.export_settings import ExportSettings
from otel_flash.protocol import FunctionResponse
from otel_flash.semconv import JOB_ID
from otel_flash.streaming import ExecutionStreams, event_dict
from otel_flash.telemetry import configure_telemetry, invocation_attributes, worker_init

__all__ = ["RunPodWorker", "handler", "process_executor", "stream_handler"]


def process_executor() -> RemoteExecutor:
    """The worker process's executor, on SDK providers installed as the OTel global ones.

    Its start-up is the ``flash.worker.init`` span; ``FLASH_ECHO_LINES=auto`` means on.

    The worker owns its process, so spans user code starts with the plain OTel API
    (``trace.get_tracer``) join the executions' traces, and OTLP spans and log records are
    encoded and sent by an export process unless ``FLASH_EXPORT_PROCESS=0``. The providers are flushed and
    shut down when the process exits.
    """
    started = time.time_ns()
    export = ExportSettings.from_environ(os.environ, process=True)  # OTLP encoding off the worker's GIL
    config = resolve_auto(FlashConfig.from_env(export=export), under_runpod=True)
    telemetry = configure_telemetry(config)
    atexit.register(telemetry.shutdown)
    with worker_init(telemetry.tracer_provider, started):
        return RemoteExecutor(config)


class RunPodWorker:
    """The jobs of one worker process, on one lazily created executor.

    Args:
        executor_factory: builds the executor on the first job (default:
            :func:`process_executor`, configured from the environment).
        flush_each_job: flush spans and log records after every job.
    """

    def __init__(
        self,
        executor_factory: Callable[[], RemoteExecutor] = process_executor,
        *,
        flush_each_job: bool = True,
    ) -> None:
        self._factory = executor_factory
        self._flush_each_job = flush_each_job
        self._lock = threading.Lock()
        self._executor: RemoteExecutor | None = None
        self._streams: ExecutionStreams | None = None

    @property
    def executor(self) -> RemoteExecutor:
        """The process's executor, created (and registered for shutdown at exit) on first use."""
        return self._ensure()[0]

    async def handle(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Run the job's ``input`` request; return the ``FunctionResponse`` as a JSON-able dict.

        An input that is not a valid request gives a failed response, never an exception;
        so does a job the executor refuses (:class:`WorkerSaturated`).
        """
        request: Any = job.get("input")
        try:
            response = await self.executor.execute(request, attributes=_attributes(job))
        except WorkerSaturated as exc:
            response = FunctionResponse(success=False, error=str(exc), stdout="")
        await self._flush()
        return response.model_dump(mode="json")

    async def stream(self, job: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """Yield a log event per captured line as it is emitted, then the response event."""
        request: Any = job.get("input")
        executor, streams = self._ensure()
        try:
            executor.check_capacity()
        except WorkerSaturated as exc:
            yield event_dict(FunctionResponse(success=False, error=str(exc), stdout=""))
            return
        try:
            async for event in streams.stream(request, attributes=_attributes(job)):
                yield event_dict(event)
        finally:
            await self._flush()

    def shutdown(self) -> None:
        """Shut the executor down (flushing telemetry); a later job creates a new one."""
        with self._lock:
            executor, self._executor, self._streams = self._executor, None, None
        if executor is not None:
            atexit.unregister(self.shutdown)
            executor.shutdown()

    def _ensure(self) -> tuple[RemoteExecutor, ExecutionStreams]:
        with self._lock:
            if self._executor is None or self._streams is None:
                self._executor = self._factory()
                self._streams = ExecutionStreams(self._executor)
                atexit.register(self.shutdown)
            return self._executor, self._streams

    async def _flush(self) -> None:
        if self._flush_each_job and self._executor is not None:
            await asyncio.to_thread(self._executor.force_flush)


def _attributes(job: Mapping[str, Any]) -> dict[str, str]:
    job_id = job.get("id")
    if job_id is None:
        return invocation_attributes("pubsub")
    return {JOB_ID: str(job_id), **invocation_attributes("pubsub", str(job_id))}


_worker = RunPodWorker()


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """RunPod handler: run ``job["input"]`` (a ``FunctionRequest``) on the process's executor."""
    return await _worker.handle(job)


async def stream_handler(job: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """RunPod generator handler: the job's log lines as they are emitted, then its response."""
    async for event in _worker.stream(job):
        yield event
