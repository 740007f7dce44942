"""Errors a user can fix. Each renders as one clear line (the CLI prints ``str(err)``)."""

from __future__ import annotations

from pydantic import ValidationError


class InputError(ValueError):
    """Bad input: a missing file or column, an unknown method, a malformed item or setting."""

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ItemError(InputError):
    """An item (one line of the input) does not validate; the caller adds the line number."""


class AnswerError(InputError):
    """A worker's answer does not fit the task's form (missing field, value out of range, ...)."""


def first_error(err: ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of a pydantic error, e.g. ``("responses.1.text", "...")``."""
    e = err.errors()[0]
    return ".".join(str(p) for p in e["loc"]) or "(root)", e["msg"]
