"""The names otel_flash writes into telemetry: span names, attribute keys and metric names.

One module is the contract between the code that writes a name (the executor, the
installer, the HTTP and RunPod entry points) and the code that reads it (metrics, tests,
dashboards): each name is a constant here, never a literal in two places. The ``faas.*``
keys follow the OpenTelemetry FaaS semantic conventions; ``flash.*`` ones are ours.
"""

from __future__ import annotations

__all__ = [
    "CODE_FUNCTION_NAME",
    "DEPENDENCIES_CACHE_HITS_METRIC",
    "DEPENDENCIES_EXIT_CODE",
    "DEPENDENCIES_INSTALLER",
    "DEPENDENCIES_INSTALLS_METRIC",
    "DEPENDENCIES_KIND",
    "DEPENDENCIES_PYTHON_SPAN",
    "DEPENDENCIES_REQUIREMENTS",
    "DEPENDENCIES_SKIPPED",
    "DEPENDENCIES_SYSTEM_SPAN",
    "EXECUTE_SPAN",
    "EXECUTIONS_METRIC",
    "EXECUTION_TYPE",
    "FAAS_COLDSTART",
    "FAAS_INVOCATION_ID",
    "FAAS_TRIGGER",
    "FUNCTION_CALL_SPAN",
    "FUNCTION_LOAD_SPAN",
    "INSTANCE_ID",
    "JOB_ID",
    "LOG_DISPOSITION",
    "LOG_LINES",
    "LOG_LINES_METRIC",
    "LOG_OMITTED_BYTES",
    "LOG_OMITTED_BYTES_METRIC",
    "LOG_OMITTED_LINES",
    "MODULES_COUNT",
    "MODULES_SETUP_SPAN",
    "OUTCOME",
    "PHASE",
    "PHASE_DURATION_METRIC",
    "REQUEST_ID",
    "RESULT_SERIALIZE_SPAN",
    "SUCCESS",
    "THREADS_ABANDONED_METRIC",
    "WORKER_INIT_SPAN",
    "WORKSPACE_PATH",
    "WORKSPACE_SETUP_SPAN",
]

# Span names: the root, then its phases in the order they run.
EXECUTE_SPAN = "flash.execute"
"""The root (SERVER) span of one execution."""
WORKSPACE_SETUP_SPAN = "flash.workspace.setup"
"""Phase: the execution's working directory made."""
DEPENDENCIES_SYSTEM_SPAN = "flash.dependencies.system"
"""Phase: the request's system packages installed with apt-get."""
DEPENDENCIES_PYTHON_SPAN = "flash.dependencies.python"
"""Phase: the request's Python packages installed with uv or pip."""
MODULES_SETUP_SPAN = "flash.modules.setup"
"""Phase: the request's own source files made importable."""
FUNCTION_LOAD_SPAN = "flash.function.load"
"""Phase: the request's code compiled, its target resolved, its arguments decoded."""
FUNCTION_CALL_SPAN = "flash.function.call"
"""Phase: the user's function (or method) running."""
RESULT_SERIALIZE_SPAN = "flash.result.serialize"
"""Phase: the result encoded for the response."""
WORKER_INIT_SPAN = "flash.worker.init"
"""A worker's start-up: providers, the zygote of process isolation, warm imports."""

# Attributes of ``flash.execute``.
SUCCESS = "flash.success"
"""bool: the response's ``success``."""
EXECUTION_TYPE = "flash.execution_type"
"""str: the request's ``execution_type`` (``function`` or ``class``)."""
INSTANCE_ID = "flash.instance_id"
"""str: the kept class instance the request used."""
JOB_ID = "flash.job_id"
"""str: the RunPod job id (or the ``id`` of an HTTP body shaped as a job)."""
REQUEST_ID = "flash.request_id"
"""str: the HTTP worker's ``X-Request-ID`` of the request."""
LOG_LINES = "flash.log.lines"
"""int: lines captured from the execution (kept or not)."""
LOG_OMITTED_LINES = "flash.log.omitted_lines"
"""int: captured lines left out of the response's bounded log."""
LOG_OMITTED_BYTES = "flash.log.omitted_bytes"
"""int: bytes of captured output left out of the response's bounded log."""
FAAS_COLDSTART = "faas.coldstart"
"""bool: true on the first execution of a worker (of one executor)."""
FAAS_INVOCATION_ID = "faas.invocation_id"
"""str: the RunPod job id, or the HTTP request id."""
FAAS_TRIGGER = "faas.trigger"
"""str: what started the execution (``pubsub``, ``http``, ``other``, ...)."""

# Attributes of the phase spans.
WORKSPACE_PATH = "flash.workspace.path"
"""str: the execution's working directory (``flash.workspace.setup``)."""
MODULES_COUNT = "flash.modules.count"
"""int: how many source files the request brought (``flash.modules.setup``)."""
CODE_FUNCTION_NAME = "code.function.name"
"""str: the qualified name of what ``flash.function.call`` calls (OTel code conventions)."""
DEPENDENCIES_INSTALLER = "flash.dependencies.installer"
"""str: the installer that ran (``uv``, ``pip``, ``apt-get``); also a metric label."""
DEPENDENCIES_REQUIREMENTS = "flash.dependencies.requirements"
"""list[str]: the requirements handed to the installer (redacted)."""
DEPENDENCIES_EXIT_CODE = "flash.dependencies.exit_code"
"""int: the installer's exit status, when it failed."""
DEPENDENCIES_SKIPPED = "flash.dependencies.skipped"
"""bool: everything asked for was already installed, so no installer ran."""

# Metric names and their labels.
EXECUTIONS_METRIC = "flash.executions"
"""Counter: executions, by ``flash.outcome`` and ``flash.execution_type``."""
PHASE_DURATION_METRIC = "flash.phase.duration"
"""Histogram (s): each phase's duration (and ``execute``'s), by ``flash.phase`` and ``flash.outcome``."""
LOG_LINES_METRIC = LOG_LINES
"""Counter: captured lines, by ``flash.log.disposition``."""
LOG_OMITTED_BYTES_METRIC = LOG_OMITTED_BYTES
"""Counter (By): bytes of captured output omitted."""
DEPENDENCIES_INSTALLS_METRIC = "flash.dependencies.installs"
"""Counter: installer processes run, by kind, installer and outcome."""
DEPENDENCIES_CACHE_HITS_METRIC = "flash.dependencies.cache_hits"
"""Counter: installs skipped because everything was already installed."""
THREADS_ABANDONED_METRIC = "flash.threads.abandoned"
"""Gauge: worker threads still running a timed-out execution."""
OUTCOME = "flash.outcome"
"""Metric label: ``success`` or ``error``."""
PHASE = "flash.phase"
"""Metric label: the phase, its span name without ``flash.`` (``execute`` for the whole)."""
LOG_DISPOSITION = "flash.log.disposition"
"""Metric label: ``kept`` or ``omitted``."""
DEPENDENCIES_KIND = "flash.dependencies.kind"
"""Metric label: ``python`` or ``system``."""
