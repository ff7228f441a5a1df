"""A bounded head-and-tail line buffer: the start and the end of a log survive."""

from __future__ import annotations

from collections import deque


class BoundedLines:
    """Keeps at most ``max_lines`` lines and ``max_bytes`` bytes, head and tail.

    The head fills up to half of each budget; every later line goes to the tail,
    which drops its oldest lines to stay within what the head left over. So a
    log that fits is kept whole, and one that does not keeps its beginning (the
    install output) and its end (the error). Not thread-safe: the caller locks.
    """

    __slots__ = (
        "_head",
        "_head_bytes",
        "_head_open",
        "_max_bytes",
        "_max_lines",
        "_tail",
        "_tail_bytes",
        "omitted_bytes",
        "omitted_lines",
    )

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._head: list[str] = []
        self._head_bytes = 0
        self._head_open = True
        self._tail: deque[tuple[str, int]] = deque()
        self._tail_bytes = 0
        self.omitted_lines = 0
        self.omitted_bytes = 0

    def append(self, line: str, size: int) -> None:
        """Add a line that takes ``size`` bytes (newline included)."""
        if self._head_open:
            if len(self._head) < self._max_lines // 2 and self._head_bytes + size <= self._max_bytes // 2:
                self._head.append(line)
                self._head_bytes += size
                return
            self._head_open = False
        tail = self._tail
        tail.append((line, size))
        self._tail_bytes += size
        line_budget = self._max_lines - len(self._head)
        byte_budget = self._max_bytes - self._head_bytes
        while tail and (len(tail) > line_budget or self._tail_bytes > byte_budget):
            _, dropped = tail.popleft()
            self._tail_bytes -= dropped
            self.omitted_lines += 1
            self.omitted_bytes += dropped

    def head(self) -> list[str]:
        """The kept lines before the gap."""
        return list(self._head)

    def tail(self) -> list[str]:
        """The kept lines after the gap."""
        return [line for line, _ in self._tail]
