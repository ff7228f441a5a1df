"""Log records otel_flash makes itself and gives up once they are emitted.

The logging bridge and the stream capture make one OTel ``LogRecord`` per line and emit
it. When ``Logger.emit`` returns every processor has seen the record, and none of ours
reads its context again: :class:`HandedLogRecord` marks such a record. An export queue
that keeps the record itself instead of a copy (the in-process
:class:`~otel_flash.telemetry.delivery.BoundedLogRecordProcessor`) marks it
:attr:`~HandedLogRecord.kept`, and the maker then calls :meth:`HandedLogRecord.release`,
so that what waits in the queue holds nothing of the execution it was emitted in.
"""

from __future__ import annotations

from opentelemetry._logs import Logger, LogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context

__all__ = ["NO_CONTEXT", "HandedLogRecord", "emit_handed"]

NO_CONTEXT = Context()
"""What a queued log record holds instead of the context it was emitted in (one shared empty context)."""


class HandedLogRecord(LogRecord):
    """A record its maker gives up once emitted: if kept, :meth:`release` runs as ``Logger.emit`` returns."""

    kept = False
    """Set by a processor that keeps the record itself past its ``on_emit``."""

    def release(self) -> None:
        """Drop the context the record was emitted in, and its bounded attribute map if nothing was dropped.

        Queued records outlive many garbage collections: what stays holds as few tracked
        objects as it can (a plain dict of attributes is not tracked; a bounded map that
        dropped some stays, since it must still say how many). What an exporter reads
        (ids, body, attributes, dropped count) is unchanged.
        """
        self.context = NO_CONTEXT
        attributes = self.attributes
        if type(attributes) is BoundedAttributes and not attributes.dropped:
            self.attributes = attributes.copy()


def emit_handed(logger: Logger, record: HandedLogRecord) -> None:
    """Emit ``record``, then release it if a processor kept it: every processor has seen it by then."""
    try:
        logger.emit(record)
    finally:
        if record.kept:
            record.release()
