"""Live execution streams: order, slow readers, readers that leave, the NDJSON form."""

from __future__ import annotations

import asyncio
import json

import pytest

from otel_flash import FunctionResponse, RemoteExecutor
from otel_flash.streaming import ExecutionStreams, LogLine, dropped_marker, event_json
from tests.requests import function_request, stdout_lines

COUNT = """
import logging

def count(n):
    for i in range(n):
        logging.getLogger("count").info("line %d", i)
    return n
"""


async def _until_idle(streams: ExecutionStreams) -> None:
    for _ in range(6000):
        if streams.running == 0:
            return
        await asyncio.sleep(0.01)
    pytest.fail("the execution did not finish")


@pytest.mark.asyncio
async def test_stream_yields_every_line_in_order_then_the_response(executor: RemoteExecutor) -> None:
    """A reader that keeps up gets each captured line once, in order, then the response."""
    streams = ExecutionStreams(executor)
    events = [event async for event in streams.stream(function_request(COUNT, "count", 50))]
    *lines, response = events
    assert isinstance(response, FunctionResponse)
    assert [event.line[-7:].strip(" |") for event in lines if isinstance(event, LogLine)] == [
        f"line {i}" for i in range(50)
    ]
    assert [event.line for event in lines if isinstance(event, LogLine)] == stdout_lines(response.stdout)


@pytest.mark.asyncio
async def test_slow_reader_gets_a_dropped_marker_and_the_full_response(executor: RemoteExecutor) -> None:
    """Past max_pending unread lines, lines are dropped from the live stream and counted in markers."""
    streams = ExecutionStreams(executor, max_pending=5)
    events = streams.stream(function_request(COUNT, "count", 100))
    first = await anext(events)
    await _until_idle(streams)  # every other line was emitted while nobody read
    rest = [event async for event in events]
    *lines, response = [first, *rest]
    texts = [event.line for event in lines if isinstance(event, LogLine)]
    markers = [text for text in texts if text.startswith("[... ")]
    delivered = [int(text.rsplit(" ", 1)[1]) for text in texts if text not in markers]
    dropped = [int(marker.split()[1]) for marker in markers]
    assert markers == [dropped_marker(count) for count in dropped]
    assert len(delivered) + sum(dropped) == 100
    assert delivered == sorted(delivered)
    assert len(delivered) < 20
    assert isinstance(response, FunctionResponse)
    assert len(stdout_lines(response.stdout)) == 100


@pytest.mark.asyncio
async def test_reader_that_leaves_does_not_stop_the_execution(executor: RemoteExecutor) -> None:
    """Closing the stream after one line leaves the execution running to completion."""
    streams = ExecutionStreams(executor)
    events = streams.stream(function_request(COUNT, "count", 200))
    await anext(events)
    await events.aclose()
    assert await streams.drain(60) == 0


def test_event_json_is_one_ndjson_line() -> None:
    """Each event is one JSON object on one line, newlines inside a line escaped."""
    text = event_json(LogLine("Traceback:\n  boom"))
    assert text.count("\n") == 1 and text.endswith("\n")
    assert json.loads(text) == {"type": "log", "line": "Traceback:\n  boom"}
    response = json.loads(event_json(FunctionResponse(success=True, json_result=1)))
    assert response["type"] == "response"
    assert response["response"]["json_result"] == 1
