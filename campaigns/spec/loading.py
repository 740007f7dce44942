"""Read a campaign spec (YAML) and item files (JSONL) so every mistake is one line naming ``file:line``.

The YAML is composed into nodes first (PyYAML keeps each node's line), then constructed and
validated by pydantic; a validation error's field path is walked back through the nodes to find
the line the user has to fix, e.g. ``spec.yaml:12: pricing.reward: more than 3 decimal places: 0.1234``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from campaigns.errors import SpecError
from campaigns.spec.model import CampaignSpec
from decomposition.graph import get_graph
from decomposition.kinds import get_kind

Lines = dict[tuple[str, ...], int]  # field path (keys and list indices as text) -> 1-based line


def load_spec(path: str | Path) -> CampaignSpec:
    """Parse and validate a spec file; ``base_dir`` is its folder, so relative paths resolve there."""
    p = Path(path)
    text = _read_text(p)
    node, data = _parse_yaml(text, p)
    if not isinstance(node, MappingNode) or not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise SpecError(f"{p}:{line}: a campaign spec must be a YAML mapping of fields")
    lines = _lines(node, p)
    if "base_dir" in data:  # set from the file's location, never from its content
        raise SpecError(f"{p}:{lines[('base_dir',)]}: base_dir: unknown field")
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc.errors(), lines, p)) from None
    try:  # the task kind's own settings belong to the spec too: refuse them here, at their line
        get_kind(get_graph(spec.kind).settings_kind).settings_model.model_validate(spec.settings)
    except ValidationError as exc:
        errors = [{**e, "loc": ("settings", *e["loc"])} for e in exc.errors()]
        raise SpecError(_describe(errors, lines, p)) from None
    spec.base_dir = p.resolve().parent
    return spec


def load_items(path: str | Path,
               validate: Callable[[dict[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
    """Read JSONL items: one JSON object per line, blank lines skipped, ``id`` unique.

    ``validate(item)`` raises ``ValueError`` (a pydantic ``ValidationError`` is one) to refuse an
    item; its message is reported with the item's line.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{p}: no such file") from None
    except OSError as exc:
        raise SpecError(f"{p}: cannot read: {exc.strerror or exc}") from None
    items: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    for n, line_bytes in enumerate(raw.splitlines(), 1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError(f"{p}:{n}: not UTF-8 text") from None
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{p}:{n}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(item, dict):
            raise SpecError(f"{p}:{n}: an item must be a JSON object, not {type(item).__name__}")
        if validate is not None:
            try:
                validate(item)
            except (ValueError, TypeError) as exc:
                raise SpecError(f"{p}:{n}: {_one_line(exc)}") from None
            except KeyError as exc:
                raise SpecError(f"{p}:{n}: missing field {exc}") from None
        if "id" in item:
            key = str(item["id"])
            if key in first_seen:
                raise SpecError(f"{p}:{n}: duplicate id {key!r} (first on line {first_seen[key]})")
            first_seen[key] = n
        items.append(item)
    return items


# ---------------------------------------------------------------------------------------- helpers
def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{p}: no such file") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(f"{p}: cannot read: {exc.strerror or exc}") from None


def _parse_yaml(text: str, p: Path) -> tuple[Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise SpecError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: YAML error: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def _lines(node: Node, p: Path, path: tuple[str, ...] = (), lines: Lines | None = None) -> Lines:
    """Map every field path to its line: a mapping key's own line, a list item's first line."""
    lines = {} if lines is None else lines
    lines.setdefault(path, node.start_mark.line + 1)
    if len(path) > 50:  # a recursive anchor; pydantic will refuse the data anyway
        return lines
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
            if key in seen and key != "<<":
                where = f"{p}:{key_node.start_mark.line + 1}"
                raise SpecError(f"{where}: {'.'.join((*path, key))}: duplicate key")
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _lines(value_node, p, (*path, key), lines)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, p, (*path, str(i)), lines)
    return lines


def _describe(errors: list[Any], lines: Lines, p: Path) -> str:
    """The first problem (in file order) as ``file:line: field.path: message``, plus a count of the rest."""
    problems = sorted((_locate(err, lines) + (_message(err),) for err in errors), key=lambda t: t[0])
    line, field, message = problems[0]
    rest = len(problems) - 1
    more = f" (and {rest} more problem{'s' if rest > 1 else ''})" if rest else ""
    return f"{p}:{line}: {field + ': ' if field else ''}{message}{more}"


def _locate(err: Any, lines: Lines) -> tuple[int, str]:
    """Walk the error's location through the YAML paths, skipping pydantic's own tags (union members)."""
    matched: tuple[str, ...] = ()
    for part in (str(x) for x in err["loc"]):
        if (*matched, part) in lines:
            matched = (*matched, part)
    shown = list(matched)
    if err["type"] == "missing" and err["loc"]:
        shown.append(str(err["loc"][-1]))
    return lines[matched], ".".join(shown)


def _message(err: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    value = err.get("input")
    got = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    return msg[:1].lower() + msg[1:] + got


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        return f"{field + ': ' if field else ''}{_message(err)}"
    return " ".join(str(exc).split()) or type(exc).__name__
