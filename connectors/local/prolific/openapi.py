"""Prolific's published OpenAPI document, used the way botocore's model serves the local MTurk
server: every request the local server takes and every answer it gives is checked against it
(``openapi-core``). The document is not shipped with crowdbridge: it is read from
``CROWD_PROLIFIC_OPENAPI`` or ``../shared/data/prolific/prolific-openapi.yml`` beside the
checkout; without it the server runs unchecked (``document()`` is None).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

SERVER = "https://api.prolific.com"


def document_path() -> Path | None:
    given = os.environ.get("CROWD_PROLIFIC_OPENAPI")
    if given:
        return Path(given) if Path(given).is_file() else None
    here = Path(__file__).resolve()
    for root in here.parents:
        candidate = root.parent / "shared" / "data" / "prolific" / "prolific-openapi.yml"
        if candidate.is_file():
            return candidate
    return None


@cache
def document() -> Any | None:
    """The parsed document as an ``openapi_core.OpenAPI`` (loaded once per process; about 2 s)."""
    path = document_path()
    if path is None:
        return None
    import yaml
    from openapi_core import Config, OpenAPI

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as f:
        spec = yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
    # The published document itself breaks one rule of the OpenAPI schema (schema names with
    # spaces), so the document is not validated; requests and responses still are, against it.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def check_request(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                  body: bytes) -> str | None:
    """None if the request is one the document allows, else why not (one line)."""
    api = document()
    if api is None:
        return None
    from openapi_core.testing import MockRequest

    req = MockRequest(SERVER, method.lower(), path, headers=headers, args={k: v[0] for k, v in query.items()},
                      data=body or None, content_type=headers.get("content-type", "application/json").split(";")[0])
    try:
        api.validate_request(req)
    except Exception as exc:  # noqa: BLE001 - openapi-core raises one of many validation errors
        if _exploded_object(path, query, exc):
            return None
        return _reason(exc)
    return None


# Query parameters the document gives as an exploded object (``?workspace_id=…`` for a ``filter``
# object that is one of several shapes): openapi-core 0.23 cannot deserialise those, so such a
# parameter is checked here instead: one of its shapes' properties must be given.
EXPLODED = {("/api/v1/participant-groups/", "filter"): ({"workspace_id"}, {"project_id"})}


def _exploded_object(path: str, query: dict[str, list[str]], exc: BaseException) -> bool:
    for (where, name), shapes in EXPLODED.items():
        if path == where and str(exc) == f"Missing required query parameter: {name}":
            return any(shape <= set(query) for shape in shapes)
    return False


def check_response(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                   body: bytes, status: int, answer: Any) -> str | None:
    api = document()
    if api is None:
        return None
    from openapi_core.testing import MockRequest, MockResponse

    req = MockRequest(SERVER, method.lower(), path, headers=headers, args={k: v[0] for k, v in query.items()},
                      data=body or None, content_type="application/json")
    resp = MockResponse(json.dumps(answer).encode(), status_code=status, content_type="application/json")
    try:
        api.validate_response(req, resp)
    except Exception as exc:  # noqa: BLE001
        return _reason(exc)
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) not in text:
        text += f": {cause}"
    return " ".join(text.split())[:500]
