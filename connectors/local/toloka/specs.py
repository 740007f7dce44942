"""Project input/output field specs: validating values against them, and the form a worker sees.

A Toloka project declares typed input fields (what a task carries) and output fields (what a
worker answers). The server checks task inputs and known solutions against them and derives
the simulated crowd's view of a task from them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .errors import field_error

_SCALAR: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "url": (str,),
    "file": (str,),
    "coordinates": (str,),
    "integer": (int,),
    "float": (int, float, Decimal),
    "boolean": (bool,),
    "json": (object,),
}


def _check_one(kind: str, spec: dict[str, Any], value: Any) -> str | None:
    if kind.startswith("array_"):
        if not isinstance(value, list):
            return "INVALID_TYPE"
        for v in value:
            err = _check_one(kind[len("array_") :], spec, v)
            if err:
                return err
        return None
    types = _SCALAR.get(kind, (object,))
    if kind == "integer" and isinstance(value, bool):
        return "INVALID_TYPE"
    if not isinstance(value, types):
        return "INVALID_TYPE"
    allowed = spec.get("allowed_values")
    if allowed is not None and value not in allowed:
        return "VALUE_NOT_ALLOWED"
    if kind == "string" and spec.get("max_length") is not None and len(value) > spec["max_length"]:
        return "VALUE_TOO_LONG"
    return None


def check_values(
    values: Any, specs: dict[str, dict[str, Any]], prefix: str, *, require: bool = True
) -> dict[str, dict[str, str]]:
    """Per-field errors of ``values`` against ``specs`` (``prefix`` names the path, e.g.
    ``input_values``). ``require=False`` checks only the fields present (known solutions)."""
    if not isinstance(values, dict):
        return {prefix: field_error("INVALID_TYPE", "Must be an object")}
    errors: dict[str, dict[str, str]] = {}
    for name, spec in specs.items():
        value = values.get(name)
        if value is None:
            if require and spec.get("required", True):
                errors[f"{prefix}.{name}"] = field_error(
                    "VALUE_REQUIRED", "Value must be present and not null"
                )
            continue
        code = _check_one(spec.get("type", "string"), spec, value)
        if code:
            errors[f"{prefix}.{name}"] = field_error(code, f"Invalid value for {spec.get('type')} field")
    for name in values:
        if name not in specs and not name.startswith("__"):
            errors[f"{prefix}.{name}"] = field_error("VALUE_NOT_ALLOWED", "Field is not in the project spec")
    return errors


def sim_field_kind(spec: dict[str, Any]) -> str:
    """How a worker answers an output field: choice, multi_choice, text or spans."""
    kind = spec.get("type", "string")
    if kind == "string" and spec.get("allowed_values"):
        return "choice"
    if kind == "array_string" and spec.get("allowed_values"):
        return "multi_choice"
    if kind in ("json", "array_json"):
        return "spans"
    return "text"


def solved(output: dict[str, Any], known: list[dict[str, Any]]) -> bool:
    """Correct when some known solution's every given field equals the answer (lists as sets)."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, list) and isinstance(b, list) and all(isinstance(x, str) for x in a + b):
            return sorted(a) == sorted(b)
        return a == b

    return any(
        all(same(output.get(k), v) for k, v in (ks.get("output_values") or {}).items()) for ks in known
    )
