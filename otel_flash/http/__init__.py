"""The HTTP worker's internals behind :mod:`otel_flash.server` (internal).

Modules: ``guard`` (who may call and what is accepted, before any route runs), ``intake``
(one request's body read, decoded and validated), ``limits`` (uvicorn's connection bounds).
"""

from otel_flash.http.guard import RequestGuard, is_loopback_host
from otel_flash.http.intake import HttpJob, read_job

__all__ = ["HttpJob", "RequestGuard", "is_loopback_host", "read_job"]
