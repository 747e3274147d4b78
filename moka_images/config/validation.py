"""Turn YAML files into strict models, reporting every problem with file, field and a fix."""

from __future__ import annotations

import difflib
import json
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from moka_images.errors import ManifestError, ValidationProblem

M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 256 * 1024
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class Strict(BaseModel):
    """Base for declaration models: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, so a YAML bomb cannot expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases are not allowed (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:  # `? [a, b]`: a list or mapping as a key
                raise yaml.YAMLError(f"a key must be a plain value (line {key_node.start_mark.line + 1})") from None
            if key in seen:
                raise yaml.YAMLError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, display: str) -> tuple[Any, list[ValidationProblem]]:
    """Load one YAML document safely; problems name the file."""
    try:
        info = path.stat()
    except OSError as exc:
        return None, [ValidationProblem(display, "", f"cannot read: {exc.strerror}")]
    if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/zero would block or never end
        return None, [ValidationProblem(display, "", "not a regular file", "declarations are plain files")]
    size = info.st_size
    if size > MAX_YAML_BYTES:
        return None, [ValidationProblem(display, "", f"file is {size} bytes, over the {MAX_YAML_BYTES} limit")]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [ValidationProblem(display, "", "not UTF-8 text")]
    except OSError as exc:  # no permission, I/O error
        return None, [ValidationProblem(display, "", f"cannot read: {exc.strerror}")]
    try:
        docs = list(yaml.load_all(text, Loader=_NoAliasLoader))
    except yaml.YAMLError as exc:
        return None, [ValidationProblem(display, "", f"not valid YAML: {exc}".replace("\n", " "))]
    except RecursionError:  # PyYAML composes recursively: thousands of nested [ or { exhaust the stack
        return None, [ValidationProblem(display, "", "nested too deeply", "a declaration is a few levels deep")]
    if len(docs) != 1:
        return None, [ValidationProblem(display, "", f"expected one YAML document, found {len(docs)}")]
    return docs[0], []


def problem(message: str, fix: str | None = None) -> PydanticCustomError:
    """An error for a validator to raise: its message and fix reach the ValidationProblem unchanged."""
    return PydanticCustomError("moka", "{message}", {"message": message, "fix": fix})


def validate(model: type[M], data: Any, display: str,
             context: Mapping[str, Any] | None = None) -> tuple[M | None, list[ValidationProblem]]:
    """Validate `data` against `model` (validators see `context`); every problem names the field."""
    if not isinstance(data, dict):
        return None, [ValidationProblem(display, "", f"expected a mapping at the top, got {type(data).__name__}")]
    try:
        return model.model_validate(data, context=dict(context or {})), []
    except ValidationError as exc:
        return None, [_problem(model, display, err) for err in exc.errors()]


def load(model: type[M], path: Path, display: str | None = None) -> M:
    """Read and validate one file, raising ManifestError with every problem."""
    shown = display or str(path)
    data, problems = read_yaml(path, shown)
    if problems:
        raise ManifestError(problems)
    value, problems = validate(model, data, shown)
    if problems or value is None:
        raise ManifestError(problems)
    return value


def _problem(model: type[BaseModel], display: str, err: Any) -> ValidationProblem:
    loc = [str(p) for p in err["loc"] if p != "[key]"]  # a bad mapping key is reported at the key itself
    # A key that is empty or holds dots, spaces or newlines is quoted: the field stays one readable line.
    field = ".".join(p if _PLAIN_KEY.fullmatch(p) else json.dumps(p) for p in loc)
    if err["type"] == "extra_forbidden":
        known = _keys_at(model, loc[:-1])
        near = difflib.get_close_matches(loc[-1], known, n=1)
        fix = f"did you mean `{near[0]}`?" if near else (f"allowed: {', '.join(sorted(known))}" if known else None)
        return ValidationProblem(display, field, "unknown key", fix)
    if err["type"] == "moka":
        return ValidationProblem(display, field, err["ctx"]["message"], err["ctx"]["fix"])
    if err["type"] == "missing":
        return ValidationProblem(display, field, "required field is missing")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_type" and not isinstance(err.get("input"), dict | list | None):
        return ValidationProblem(display, field, msg, "quote the value: YAML read it as a number, boolean or date")
    return ValidationProblem(display, field, msg)


def _keys_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at `loc`, best effort."""
    current: Any = model
    for part in loc:  # list indexes and dict keys match no field and are stepped over
        fields = getattr(current, "model_fields", None) or {}
        info = fields.get(part)
        if info is not None:
            current = _model_of(info.annotation)
    fields = getattr(current, "model_fields", None)
    return [info.alias or name for name, info in fields.items()] if fields else []


def _model_of(annotation: Any) -> Any:
    """The BaseModel inside list[...], dict[..., ...] or X | None, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None
