"""Installing a request's dependencies: system packages with apt, Python packages with uv or pip (internal).

Modules: ``installer`` (:class:`DependencyInstaller`, the entry point), ``commands`` (each
installer's argv), ``requirements`` (validating entries, checking what is installed),
``output`` (an installer run as a subprocess whose lines stream out as log records).
"""

from otel_flash.dependencies.installer import DependencyInstaller

__all__ = ["DependencyInstaller"]
