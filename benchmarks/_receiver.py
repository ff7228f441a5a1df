"""An OTLP/gRPC receiver in a process of its own, so benchmarks do not share its CPU and GIL.

``python -m benchmarks._receiver`` prints its endpoint, then answers each line read
on stdin with ``<spans> <log records> <metric exports>`` received so far.
"""

from __future__ import annotations

import subprocess
import sys
from types import TracebackType
from typing import Self

from tests.otlp_receivers import GrpcReceiver, Received


def _counts(received: Received) -> str:
    with received._changed:
        traces, logs = list(received.requests["traces"]), list(received.requests["logs"])
        metrics = len(received.requests["metrics"])
    spans = sum(len(scope.spans) for r in traces for rs in r.resource_spans for scope in rs.scope_spans)
    records = sum(len(scope.log_records) for r in logs for rl in r.resource_logs for scope in rl.scope_logs)
    return f"{spans} {records} {metrics}"


class ReceiverProcess:
    """Runs this module in a child process; :meth:`counts` asks what arrived."""

    endpoint: str

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.endpoint = self._process.stdout.readline().strip()
        return self

    def counts(self) -> tuple[int, int, int]:
        """Spans, log records and metric export requests received so far."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        spans, records, metrics = (int(part) for part in self._process.stdout.readline().split())
        return spans, records, metrics

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(10)


def main() -> None:
    """Serve until stdin closes, answering count requests."""
    with GrpcReceiver() as receiver:
        print(receiver.endpoint, flush=True)
        for _ in sys.stdin:
            print(_counts(receiver.received), flush=True)


if __name__ == "__main__":
    main()
