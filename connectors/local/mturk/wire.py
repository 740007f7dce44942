"""AWS JSON 1.1 for the local MTurk server, driven by botocore's own ``mturk`` service model.

Every request body is validated against its operation's input shape and every response is shaped
(datetimes to epoch seconds) and checked against the output shape through the one generic path
here, as botocore does on the client side; per-operation code never parses or formats JSON itself.
A request the real service would refuse is refused the same way: HTTP 400 ``RequestError`` with
a ``TurkErrorCode``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

TARGET_PREFIX = "MTurkRequesterServiceV20170117"
CONTENT_TYPE = "application/x-amz-json-1.1"


class MTurkError(Exception):
    """An error answered to the client in the service's format."""

    def __init__(
        self,
        message: str,
        turk_code: str = "AWS.MechanicalTurk.InvalidParameterValue",
        code: str = "RequestError",
        status: int = 400,
    ):
        super().__init__(message)
        self.message, self.turk_code, self.code, self.status = message, turk_code, code, status

    def body(self) -> bytes:
        return json.dumps(
            {
                "__type": f"com.amazonaws.mturk#{self.code}",
                "Message": self.message,
                "TurkErrorCode": self.turk_code,
            }
        ).encode()


def invalid(message: str, turk_code: str = "AWS.MechanicalTurk.InvalidParameterValue") -> MTurkError:
    return MTurkError(message, turk_code)


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("mturk")


def operation_model(name: str) -> OperationModel:
    model = service_model()
    if name not in model.operation_names:
        raise MTurkError(f"Unknown operation {name}", "AWS.MechanicalTurk.UnknownOperation")
    return model.operation_model(name)


# --------------------------------------------------------------------------- validation
def _check_scalar(shape: Shape, value: Any, path: str, patterns: bool = True) -> None:
    meta = shape.metadata
    t = shape.type_name
    if t == "string":
        if not isinstance(value, str):
            raise invalid(f"{path} must be a string")
        if "min" in meta and len(value) < meta["min"]:
            raise invalid(f"{path} must be at least {meta['min']} characters long")
        if "max" in meta and len(value) > meta["max"]:
            raise invalid(f"{path} must be at most {meta['max']} characters long")
        if "enum" in meta and value not in meta["enum"]:
            raise invalid(f"{path} must be one of {', '.join(meta['enum'])}")
        if patterns and "pattern" in meta and not re.search(meta["pattern"], value):
            raise invalid(f"{path} does not match {meta['pattern']}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"{path} must be an integer")
        if "min" in meta and value < meta["min"]:
            raise invalid(f"{path} must be >= {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise invalid(f"{path} must be <= {meta['max']}")
    elif t == "boolean":
        if not isinstance(value, bool):
            raise invalid(f"{path} must be a boolean")
    elif t in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(f"{path} must be a number")
    elif t == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise invalid(f"{path} must be a timestamp")
    elif t == "blob" and not isinstance(value, str):
        raise invalid(f"{path} must be base64 text")


def validate(shape: Shape | None, value: Any, path: str = "") -> None:
    """Raise ``RequestError`` unless ``value`` (decoded JSON) conforms to ``shape``."""
    if shape is None:
        if value not in (None, {}):
            raise invalid("this operation takes no parameters")
        return
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            raise invalid(f"{path or 'request'} must be an object")
        unknown = sorted(set(value) - set(shape.members))
        if unknown:
            raise invalid(f"unknown parameter {path + '.' if path else ''}{unknown[0]}")
        for name in shape.required_members:
            if value.get(name) is None:
                raise invalid(f"missing required parameter {path + '.' if path else ''}{name}")
        for name, v in value.items():
            if v is not None:
                validate(shape.members[name], v, f"{path}.{name}" if path else name)
    elif t == "list":
        if not isinstance(value, list):
            raise invalid(f"{path} must be a list")
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"]:
            raise invalid(f"{path} must have at least {meta['min']} entries")
        if "max" in meta and len(value) > meta["max"]:
            raise invalid(f"{path} must have at most {meta['max']} entries")
        for i, v in enumerate(value):
            validate(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        if not isinstance(value, dict):
            raise invalid(f"{path} must be a map")
        for k, v in value.items():
            validate(shape.key, k, f"{path} key")
            validate(shape.value, v, f"{path}.{k}")
    else:
        _check_scalar(shape, value, path)


def to_wire(shape: Shape | None, value: Any, path: str = "") -> Any:
    """Shape a response value for the wire (datetimes as epoch seconds, Decimals as strings),
    refusing anything the output shape does not allow: a server bug must not reach clients."""
    if shape is None:
        return {}
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            raise TypeError(f"response {path}: expected an object")
        extra = set(value) - set(shape.members)
        if extra:
            raise TypeError(f"response {path}: members not in the model: {sorted(extra)}")
        return {k: to_wire(shape.members[k], v, f"{path}.{k}") for k, v in value.items() if v is not None}
    if t == "list":
        return [to_wire(shape.member, v, f"{path}[]") for v in value]
    if t == "map":
        return {k: to_wire(shape.value, v, f"{path}.{k}") for k, v in value.items()}
    if t == "timestamp":
        if isinstance(value, datetime):
            return round(value.timestamp(), 3)
        raise TypeError(f"response {path}: expected a datetime")
    if isinstance(value, Decimal):
        value = f"{value:.2f}"
    try:
        # no `pattern` on output: MTurk answers requester-chosen ids in EntityId fields (a review
        # result's QuestionId is the HIT's own QuestionIdentifier), and botocore never checks them
        _check_scalar(shape, value, path, patterns=False)
    except MTurkError as e:
        raise TypeError(f"response does not match the model: {e.message}") from e
    return value


def decode_request(target: str | None, body: bytes) -> tuple[str, dict[str, Any]]:
    """Operation name and validated parameters of one request."""
    if not target or not target.startswith(TARGET_PREFIX + "."):
        raise MTurkError("missing or wrong X-Amz-Target header", "AWS.MechanicalTurk.UnknownOperation")
    op = target.split(".", 1)[1]
    model = operation_model(op)
    try:
        params = json.loads(body or b"{}")
    except ValueError as e:
        raise invalid(f"request body is not JSON: {e}") from e
    validate(model.input_shape, params)
    return op, params or {}


def encode_response(op: str, result: dict[str, Any]) -> bytes:
    return json.dumps(to_wire(operation_model(op).output_shape, result)).encode()
