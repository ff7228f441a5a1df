"""The HTTP worker's internals behind :mod:`otel_flash.server` (internal).

Modules: ``asgi`` (plain ASGI plumbing: request headers, JSON answers, :class:`Refusal`),
``console`` (the worker's own log lines on stderr), ``guard`` (who may call and what is
accepted, before any route runs), ``intake`` (one request's body read, decoded and
validated), ``limits`` (uvicorn's connection bounds).
None imports a web framework (``limits`` imports uvicorn).
"""

from otel_flash.http.asgi import ASGIApp, Receive, Refusal, Scope, Send, route_path, send_json
from otel_flash.http.console import ConsoleHandler
from otel_flash.http.guard import RequestGuard, is_loopback_host
from otel_flash.http.intake import HttpJob, read_job

__all__ = [
    "ASGIApp",
    "ConsoleHandler",
    "HttpJob",
    "Receive",
    "Refusal",
    "RequestGuard",
    "Scope",
    "Send",
    "is_loopback_host",
    "read_job",
    "route_path",
    "send_json",
]
