"""Entry points for hosting platforms (``otel_flash.integrations.runpod``); each is an optional extra."""
