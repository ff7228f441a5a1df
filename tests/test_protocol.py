"""The wire protocol accepts runpod-flash's requests and names bad fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from runpod_flash.protos.remote_execution import FunctionRequest as FlashRequest

from otel_flash import FunctionRequest, FunctionResponse, RequestError, parse_request
from otel_flash.protocol import reference_accepts
from tests.requests import pickled

RUNPOD_FLASH_REQUEST = {
    "function_name": "add",
    "function_code": "def add(a, b):\n    return a + b\n",
    "args": [pickled(1), pickled(2)],
    "kwargs": {},
    "dependencies": ["numpy"],
    "execution_type": "function",
    "method_name": "__call__",
    "create_new_instance": True,
    "accelerate_downloads": True,
}


def test_runpod_flash_shape_is_accepted_as_is() -> None:
    """A request exactly as runpod-flash dumps it validates with its defaults intact."""
    request = parse_request(RUNPOD_FLASH_REQUEST)
    assert request.function_name == "add"
    assert request.serialization_format == "cloudpickle"
    assert request.dependencies == ["numpy"]


def test_input_envelope_is_unwrapped() -> None:
    """RunPod's {"input": {...}} envelope yields the inner request."""
    assert parse_request({"input": RUNPOD_FLASH_REQUEST}) == parse_request(RUNPOD_FLASH_REQUEST)


def test_model_instance_passes_through() -> None:
    """A FunctionRequest is returned unchanged."""
    request = FunctionRequest.model_validate(RUNPOD_FLASH_REQUEST)
    assert parse_request(request) is request


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"function_code": "x = 1"}, "'function_name' is required for execution_type 'function'"),
        (
            {"execution_type": "class", "class_code": "x"},
            "'class_name' is required for execution_type 'class'",
        ),
        (
            {"execution_type": "klass", "function_name": "f"},
            "execution_type: Input should be 'function' or 'class'",
        ),
        (
            {"function_name": "f", "function_code": "x", "args": "notalist"},
            "args: Input should be a valid list",
        ),
        (
            {"function_name": "f", "function_code": "x", "serialization_format": "yaml"},
            "serialization_format: Input should be 'cloudpickle' or 'json'",
        ),
    ],
)
def test_invalid_requests_name_the_field(payload: dict[str, object], message: str) -> None:
    """Each validation error message names the offending field."""
    with pytest.raises(RequestError) as caught:
        parse_request(payload)
    assert message in str(caught.value)


def test_non_object_payload_is_refused() -> None:
    """A JSON array is not a request."""
    with pytest.raises(RequestError, match="request must be a JSON object, got list"):
        parse_request([1, 2])  # type: ignore[arg-type]  # the point of the test


def test_response_ignores_unknown_fields_and_defaults_optional_ones() -> None:
    """Old and new clients can read each other's responses."""
    response = FunctionResponse.model_validate({"success": True, "future_field": 1})
    assert response.model_dump(exclude_none=True) == {"success": True}


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        ({"function_name": "f"}, True),
        ({"input": {"function_name": "f", "execution_type": "klass"}}, True),
        ({"execution_type": "stream"}, True),
        ({"function_name": "f", "serialization_format": "yaml"}, True),
        ({"function_code": "x = 1"}, False),
        ({"execution_type": "class", "class_code": "x"}, False),
        ({"function_name": "f", "args": "notalist"}, False),
        ({"input": 5}, False),
    ],
)
def test_reference_accepts_what_runpod_flashs_model_accepts(
    payload: dict[str, object], accepted: bool
) -> None:
    """Model-valid means runpod-flash's own FunctionRequest validates it (its envelope unwrapped)."""
    assert reference_accepts(payload) is accepted
    inner = payload.get("input", payload)
    try:
        FlashRequest.model_validate(inner)
    except ValidationError:
        assert not accepted
    else:
        assert accepted
