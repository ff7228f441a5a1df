"""A bounded queue of finished spans or log records and the thread that exports them in batches.

What the SDK's batch processors do (``opentelemetry.sdk._shared_internal.BatchProcessor``),
with the bound enforced and counted by a :class:`~otel_flash.telemetry.delivery.DeliveryLedger`
and an execution's items taken in one call: the SDK's ``emit`` costs a call, a pid check
and a wake-up test per item, and an execution makes four spans at once. The batching is
the SDK's: the thread wakes every ``schedule_delay_ms`` to export what is queued, and
sooner when a full batch (``max_export_batch_size``) waits; it exports while a full
batch waits; ``force_flush`` exports everything now; ``shutdown`` stops taking items,
exports what is queued (waiting at most its timeout) and shuts the exporter down. A
child forked by ``os.fork`` (its at-fork hooks) starts with an empty queue and a thread of
its own.
"""

from __future__ import annotations

import collections
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from opentelemetry.instrumentation.utils import suppress_instrumentation

from otel_flash._internal import internal_logger
from otel_flash.export_settings import BatchSettings

if TYPE_CHECKING:  # delivery builds its processors on this queue
    from otel_flash.telemetry.delivery import DeliveryLedger

__all__ = ["ExportQueue"]

_Item = TypeVar("_Item")
_Item_contra = TypeVar("_Item_contra", contravariant=True)


class BatchExporter(Protocol[_Item_contra]):
    """What the queue hands batches to: an SDK span or log record exporter."""

    def export(self, batch: Sequence[_Item_contra], /) -> Any:
        """Export one batch (failures are the exporter's to count and report)."""

    def shutdown(self) -> Any:
        """Release the exporter."""


class ExportQueue(Generic[_Item]):
    """Items waiting for ``exporter``, at most ``batch.max_queue_size`` of them (``ledger`` counts)."""

    def __init__(self, exporter: BatchExporter[_Item], batch: BatchSettings, ledger: DeliveryLedger) -> None:
        self._exporter = exporter
        self._ledger = ledger
        self._limit = batch.max_queue_size
        self._batch_size = batch.max_export_batch_size
        self._delay_s = batch.schedule_delay_ms / 1000
        self._shutdown = False
        self._gave_up = False  # shutdown waited its time: no further export
        self._start()
        weak_restart = weakref.WeakMethod(self._start)
        os.register_at_fork(after_in_child=lambda: _call_alive(weak_restart))

    def _start(self) -> None:
        """A fresh queue, lock, wake-up and export thread (at start, and in a forked child)."""
        self._items: collections.deque[_Item] = collections.deque()
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._work, name="flash-export", daemon=True)
        self._thread.start()

    def put_many(self, items: Sequence[_Item]) -> None:
        """Queue as many of ``items`` as fit (the ledger counts the rest dropped); never waits."""
        taken = self._ledger.accept_many(len(items), self._limit)
        if self._shutdown:
            return  # as the SDK's: accepted, never exported (the final report counts them)
        queue = self._items
        queue.extend(items if taken == len(items) else items[:taken])
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def put(self, item: _Item) -> None:
        """Queue ``item`` if it fits."""
        self.put_many((item,))

    def force_flush(self) -> bool:
        """Export everything queued now; False once shut down."""
        if self._shutdown:
            return False
        self._export(everything=True)
        return True

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Stop taking items, export what is queued (waiting ``timeout_millis`` at most), then shut the
        exporter down."""
        if self._shutdown:
            return
        self._shutdown = True
        self._wake.set()
        self._thread.join(timeout_millis / 1000)
        self._gave_up = True
        self._exporter.shutdown()

    def _work(self) -> None:
        while not self._shutdown:
            woken = self._wake.wait(self._delay_s)
            if self._shutdown:
                break
            self._export(at_least_one=not woken)
            self._wake.clear()
        self._export(everything=True)

    def _export(self, *, everything: bool = False, at_least_one: bool = False) -> None:
        """Export full batches while any waits; with ``at_least_one`` one more, with ``everything`` all."""
        with self._export_lock:
            queue, size = self._items, self._batch_size
            exported = 0
            while queue and not self._gave_up:
                if len(queue) < size and not everything and not (at_least_one and exported == 0):
                    return
                batch = [queue.popleft() for _ in range(min(size, len(queue)))]
                exported += 1
                self._hand(batch)

    def _hand(self, batch: list[_Item]) -> None:
        with suppress_instrumentation():  # the exporter's own HTTP or gRPC calls make no telemetry
            try:
                self._exporter.export(batch)
            except Exception:  # a failure must not end the thread (the counting exporters catch theirs)
                internal_logger().exception("telemetry: exporting a batch of %d failed", len(batch))


def _call_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    found = method()
    if found is not None:
        found()
