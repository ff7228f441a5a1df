"""A re-creation of worker-flash's HTTP handler, the comparison row of ``bench_worker``'s throughput.

worker-flash (RunPod) is not on PyPI, so this is not its code: it does per request
what its load-balancer handler (``lb_handler.py``) does, after reading its source:
a FastAPI ``async`` ``POST /execute`` that unwraps ``input``, validates a pydantic
request, runs the function the way its executor does without tracing (exec the code,
a buffer handler on the root logger, ``redirect_stdout``, cloudpickle the result) and
returns ``model_dump()``. ``python -m benchmarks._reference_worker PORT`` serves it.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from benchmarks.bench_execution import reference_style


class _Request(BaseModel):
    function_name: str
    function_code: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    serialization_format: str = "cloudpickle"


class _Response(BaseModel):
    success: bool
    result: str | None = None
    error: str | None = None
    stdout: str | None = None


def create_app() -> FastAPI:
    """The handler: one ``POST /execute`` and a ``/health``."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.post("/execute")
    async def execute(request: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed = _Request(**request.get("input", request))
            output = _Response(**reference_style(parsed.model_dump()))
        except Exception as error:
            output = _Response(success=False, error=f"Error in handler: {error}")
        return output.model_dump()

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
