"""Spans as a tree: built from parent ids, rendered with each span's duration."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode


@dataclass(slots=True)
class SpanNode:
    """One span and the spans whose parent it is, in start order."""

    span: ReadableSpan
    children: list[SpanNode] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The span's name."""
        return self.span.name

    @property
    def duration_ms(self) -> float:
        """End minus start, in milliseconds (0 while unfinished)."""
        start, end = self.span.start_time, self.span.end_time
        return (end - start) / 1e6 if start is not None and end is not None else 0.0

    def shape(self) -> tuple[str, tuple[object, ...]]:
        """``(name, (child shapes...))``: the tree without ids or times, for comparisons."""
        return (self.name, tuple(child.shape() for child in self.children))


def build_span_tree(spans: Iterable[ReadableSpan]) -> list[SpanNode]:
    """Roots (spans whose parent is not among ``spans``) with their descendants."""
    ordered = sorted(spans, key=lambda span: span.start_time or 0)
    nodes = {_span_id(span): SpanNode(span) for span in ordered}
    roots: list[SpanNode] = []
    for span in ordered:
        parent = span.parent.span_id if span.parent is not None else None
        node = nodes[_span_id(span)]
        if parent is not None and parent in nodes:
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    return roots


def format_span_tree(roots: Iterable[SpanNode]) -> str:
    """An indented listing, one span a line: name, duration, ``ERROR`` where it failed."""
    lines: list[str] = []

    def walk(node: SpanNode, depth: int) -> None:
        failed = " ERROR" if node.span.status.status_code is StatusCode.ERROR else ""
        lines.append(f"{'  ' * depth}{node.name}  {node.duration_ms:.2f} ms{failed}")
        for child in node.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return "\n".join(lines)


def _span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    return context.span_id if context is not None else 0
