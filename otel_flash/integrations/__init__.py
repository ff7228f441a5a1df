"""Entry points for hosting platforms (``otel_flash.integrations.runpod``); each is an optional extra.

Import each by its own path: importing this package imports none of them, so a missing
extra costs nothing until its integration is used.
"""

__all__: list[str] = []
