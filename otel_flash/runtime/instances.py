"""Class instances that persist across requests, keyed by ``instance_id``."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_log = logging.getLogger("flash.instances")


@dataclass(slots=True)
class Instance:
    """A live instance and its bookkeeping, as reported in ``instance_info``.

    Concurrent requests may call methods of one instance: ``lock`` guards the bookkeeping.
    """

    instance_id: str
    class_name: str
    obj: Any
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: datetime = field(default_factory=lambda: datetime.now(UTC))
    method_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self) -> dict[str, Any]:
        """The ``instance_info`` of a response."""
        with self.lock:
            calls, last_used = self.method_calls, self.last_used
        return {
            "class_name": self.class_name,
            "created_at": self.created_at.isoformat(),
            "method_calls": calls,
            "last_used": last_used.isoformat(),
        }

    def record_call(self) -> None:
        """Count one method call now (safe from concurrent requests)."""
        with self.lock:
            self.method_calls += 1
            self.last_used = datetime.now(UTC)


class InstanceRegistry:
    """Instances by id, at most ``maxsize``; the least recently used is evicted (and logged)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._instances: OrderedDict[str, Instance] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, instance_id: str) -> Instance | None:
        """The instance with this id, marked as most recently used, or None."""
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is not None:
                self._instances.move_to_end(instance_id)
            return instance

    def add(self, class_name: str, obj: Any, instance_id: str | None = None) -> Instance:
        """Register a new instance (replacing one with the same id); evict beyond the bound."""
        instance = Instance(instance_id or uuid.uuid4().hex, class_name, obj)
        evicted: list[Instance] = []
        with self._lock:
            self._instances[instance.instance_id] = instance
            self._instances.move_to_end(instance.instance_id)
            while len(self._instances) > self._maxsize:
                evicted.append(self._instances.popitem(last=False)[1])
        for old in evicted:
            _log.warning(
                "evicted instance %s of %s (registry holds at most %d)",
                old.instance_id,
                old.class_name,
                self._maxsize,
            )
        return instance

    def __len__(self) -> int:
        with self._lock:
            return len(self._instances)

    def __contains__(self, instance_id: object) -> bool:
        with self._lock:
            return instance_id in self._instances
