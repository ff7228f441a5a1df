"""``isolation="process"``: each execution's load, call and serialization in a fresh process (internal).

Modules: ``session`` (the worker's side: :class:`ProcessIsolation`), ``zygote`` (the worker's
handle on the zygote), ``child`` (the zygote and the child it forks: ``python -m
otel_flash.isolation.child``), ``forwarders`` (the child's ``sys.stdout``/``sys.stderr``),
``relay`` (what a child sends, re-emitted into the worker's providers), ``wire`` (the
frames between them), ``messages`` (what the frames carry), ``endings`` (how a child ended).
"""

from otel_flash.isolation.session import ProcessIsolation, ProcessSession

__all__ = ["ProcessIsolation", "ProcessSession"]
