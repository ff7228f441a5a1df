"""Captured lines echoed to the container's stdout, so RunPod's log view shows them live.

runpod-flash's client polls a queue-based worker's container log while a job runs
and prints each new line; when the job ends it prints the response's ``stdout``
minus the lines it already showed. It matches the two after normalising both: one
leading ``worker log:`` and one leading RFC 3339 timestamp (the container log's own,
or the one our renderer puts first) are stripped. So each line is echoed in its
normalised form: whether or not the log view prefixes its own timestamp, the echoed
line and the ``stdout`` line then normalise alike, and the client shows it once.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

from otel_flash.config import FlashConfig

_WORKER_LOG = "worker log:"
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\s+")


def container_form(line: str) -> str | None:
    """One physical stdout line as it is echoed; None for a line the log view could never match.

    The log view deletes every literal ``\\n`` pair from container lines, so a line
    holding one is not echoed: it shows once, at the end, with the ``stdout``.
    """
    text = line.strip()
    if "\\n" in text:
        return None
    if text[: len(_WORKER_LOG)].lower() == _WORKER_LOG:
        text = text[len(_WORKER_LOG) :].strip()
    match = _TIMESTAMP.match(text)
    text = text[match.end() :] if match else text
    return text or None


class LineEcho:
    """A line subscriber writing each captured line to ``stream`` (default: the real stdout).

    Called under the execution log's lock from the emitting thread: it only writes.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def __call__(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.__stdout__
        if stream is None:
            return
        echoed = [form for physical in line.splitlines() if (form := container_form(physical))]
        if echoed:
            stream.write("".join(f"{form}\n" for form in echoed))
            stream.flush()


def resolve_auto(config: FlashConfig, under_runpod: bool) -> FlashConfig:
    """``config`` with ``echo_lines="auto"`` made ``on`` under RunPod, else ``off``.

    An executor echoes when its config says ``on``; the entry point that builds it resolves ``auto``.
    """
    if config.echo_lines != "auto":
        return config
    return config.replace(echo_lines="on" if under_runpod else "off")
