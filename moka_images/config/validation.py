"""Turn YAML files into strict models, reporting every problem with file, line, field and a fix."""

from __future__ import annotations

import difflib
import json
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from ..errors import ManifestError, ValidationProblem

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str, ...]

MAX_YAML_BYTES = 256 * 1024
MAX_DEPTH = 20  # a declaration is a few levels deep: anything deeper is a mistake or an attack
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CORE = "tag:yaml.org,2002:"
# Plain data. Other tags (!!set, !!omap, !!binary, !!python/..., merge keys) have no place in a declaration.
_PLAIN_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map"))
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "timestamp": "a date", "null": "null"}
# libyaml parses and composes several times faster than the pure-Python parser; both give the same nodes.
_Parser: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Strict(BaseModel):
    """Base for declaration models: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


@dataclass(frozen=True)
class Document:
    """One YAML document as read: its data, the nodes that say where each value sits, and the paths of the values
    YAML refused (their raw text stands in the data)."""

    data: Any
    root: yaml.Node
    refused: frozenset[Loc]

    def line(self, loc: Sequence[str]) -> int:
        """The 1-based line of the value at `loc` (a key's own line), or of the nearest enclosing value."""
        at = node = self.root
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            at, node = found
        return at.start_mark.line + 1

    def key_lines(self) -> dict[str, int]:
        """The line of each top-level key."""
        items = self.root.value if isinstance(self.root, yaml.MappingNode) else []
        return {k.value: k.start_mark.line + 1 for k, _ in items if isinstance(k, yaml.ScalarNode)}

    def covers(self, loc: Loc) -> bool:
        """Whether YAML already refused the value at `loc` or one enclosing it."""
        return any(loc[:len(r)] == r for r in self.refused)


def _child(node: yaml.Node, part: str) -> tuple[yaml.Node, yaml.Node] | None:
    """(where it is written, the value) of a mapping entry or list item."""
    if isinstance(node, yaml.MappingNode):
        return next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
    if isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
        item = node.value[int(part)]
        return item, item
    return None


class _Loader(_Parser):
    """Plain data from a composed node tree. A value YAML cannot read is recorded, and its raw text stands in
    for it, so that the rest of the file is still read and validated."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.refused: list[tuple[yaml.Node, str, str | None]] = []
        self.stood_in: list[yaml.Node] = []  # refused values whose raw text stands in the data

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            return self.constructed_objects[node]
        if node.tag not in _PLAIN_TAGS:
            return self._stand_in(node, *_tag_problem(node))
        try:
            return super().construct_object(node, deep=deep)
        # PyYAML lets a scalar that its tag cannot convert escape as a bare ValueError, KeyError or AttributeError.
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError, yaml.YAMLError) as exc:
            self.recursive_objects.pop(node, None)
            return self._stand_in(node, *_value_problem(node, exc))

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        kept = []
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key_node.tag not in _PLAIN_TAGS:
                continue  # refused above: a merge key or an odd tag
            try:
                hash(key)
            except TypeError:  # `? [a, b]`: a list or mapping as a key
                self.refused.append((key_node, "a key must be a plain value", "write a name, not a list or mapping"))
                continue
            if key in seen:
                self.refused.append((key_node, f"duplicate key `{_short(key)}`", "keep one"))
                continue
            seen.add(key)
            kept.append((key_node, value_node))
        node.value = kept
        return super().construct_mapping(node, deep=deep)

    def _stand_in(self, node: Any, message: str, fix: str | None) -> Any:
        self.refused.append((node, message, fix))
        self.stood_in.append(node)
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        self.constructed_objects[node] = value
        return value


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _tag_problem(node: yaml.Node) -> tuple[str, str | None]:
    if node.tag == _CORE + "merge":
        return "merge keys (`<<`) are not allowed", "write the keys out"
    shown = "!!" + node.tag.removeprefix(_CORE) if node.tag.startswith(_CORE) else node.tag
    return f"the tag `{_short(shown)}` is not allowed", "write plain text, numbers, true/false, dates, lists, mappings"


def _value_problem(node: yaml.Node, exc: Exception) -> tuple[str, str | None]:
    kind = node.tag.removeprefix(_CORE)
    what = _KINDS.get(kind, kind)
    if not isinstance(node, yaml.ScalarNode):
        return f"YAML cannot read this {kind}", None
    detail = f" ({exc})" if kind == "timestamp" and isinstance(exc, ValueError) else ""
    if kind == "int" and isinstance(exc, ValueError) and "digits" in str(exc):
        detail = " (too many digits)"
    fix = "write an existing date as YYYY-MM-DD" if kind == "timestamp" else f"write {what}"
    return f"`{_short(node.value)}` is not {what}{detail}", f"{fix}, or keep it as text: quote it, with no `!!` tag"


def _walk(root: yaml.Node) -> tuple[dict[int, Loc], ValidationProblem | None]:
    """The path of every node; and an alias or a value nested too deeply, found without expanding anything."""
    paths: dict[int, Loc] = {}
    stack: list[tuple[yaml.Node, Loc, yaml.Node]] = [(root, (), root)]
    while stack:
        node, loc, written = stack.pop()
        if id(node) in paths:  # composing an alias reuses its anchor's node
            return paths, ValidationProblem("", _field(loc), "YAML aliases are not allowed",
                                            "write the value out where `*` refers to it", written.start_mark.line + 1)
        paths[id(node)] = loc
        if len(loc) > MAX_DEPTH:
            return paths, ValidationProblem("", "", "nested too deeply", "a declaration is a few levels deep",
                                            node.start_mark.line + 1)
        children: list[tuple[yaml.Node, Loc, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*loc, key.value if isinstance(key, yaml.ScalarNode) else "?")
                children += [(key, sub, key), (value, sub, key)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*loc, str(i)), node) for i, item in enumerate(node.value)]
        stack += reversed(children)  # in document order: an anchor is met before its aliases
    return paths, None


def _read_text(path: Path, display: str) -> tuple[str | None, list[ValidationProblem]]:
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
        return path.read_text(encoding="utf-8"), []
    except UnicodeDecodeError:
        return None, [ValidationProblem(display, "", "not UTF-8 text")]
    except OSError as exc:  # no permission, I/O error
        return None, [ValidationProblem(display, "", f"cannot read: {exc.strerror}")]


def _syntax_problem(display: str, text: str, exc: yaml.YAMLError) -> ValidationProblem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = f"{exc.problem}" + (f" ({exc.context})" if exc.context else "")
        fix = "indent with spaces, not tabs" if "\\t" in message else None
        return ValidationProblem(display, "", f"not valid YAML: {message}", fix, mark.line + 1 if mark else None)
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        line = text.count("\n", 0, exc.position) + 1
        return ValidationProblem(display, "", f"not valid YAML: character #x{exc.character:04x} is not allowed "
                                 f"({exc.reason})", "remove it, or write it as an escape in double quotes", line)
    return ValidationProblem(display, "", f"not valid YAML: {exc}".replace("\n", " "))


def read_yaml(path: Path, display: str) -> tuple[Document | None, list[ValidationProblem]]:
    """Load one YAML document safely; problems name the file and, where YAML knows them, the line and field.

    A value YAML cannot read (an impossible date, `!!int abc`, an odd tag, a duplicate key) is a problem, and
    the document still comes back with the raw text in its place, so that validation reports the rest of it.
    """
    text, problems = _read_text(path, display)
    if text is None:
        return None, problems
    loader = _Loader(text)
    try:
        roots = []
        while loader.check_node():
            roots.append(loader.get_node())
        if len(roots) != 1:
            return None, [ValidationProblem(display, "", f"expected one YAML document, found {len(roots)}")]
        paths, bad = _walk(roots[0])
        if bad is not None:
            return None, [ValidationProblem(display, bad.field, bad.message, bad.fix, bad.line)]
        data = loader.construct_document(roots[0])
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(display, text, exc)]
    except RecursionError:  # only the pure-Python parser composes recursively
        return None, [ValidationProblem(display, "", "nested too deeply", "a declaration is a few levels deep")]
    finally:
        loader.dispose()
    refused = [ValidationProblem(display, _field(paths[id(node)]), message, fix, node.start_mark.line + 1)
               for node, message, fix in loader.refused]
    return Document(data, roots[0], frozenset(paths[id(node)] for node in loader.stood_in)), refused


def problem(message: str, fix: str | None = None) -> PydanticCustomError:
    """An error for a validator to raise: its message and fix reach the ValidationProblem unchanged."""
    return PydanticCustomError("moka", "{message}", {"message": message, "fix": fix})


def validate(model: type[M], data: Any, display: str, context: Mapping[str, Any] | None = None, *,
             doc: Document | None = None, at: Loc = ()) -> tuple[M | None, list[ValidationProblem]]:
    """Validate `data` against `model` (validators see `context`); every problem names the field.

    With `doc` (the file `data` comes from, found there at `at`), each problem gets its line, and a value YAML
    already refused is not reported again.
    """
    if not isinstance(data, dict):
        return None, [ValidationProblem(display, _field(at), f"expected a mapping at the top, got {type(data).__name__}",
                                        None, doc.line(at) if doc else None)]
    try:
        return model.model_validate(data, context=dict(context or {})), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"] if p != "[key]")  # a bad mapping key is reported at the key
            if doc is None or not doc.covers((*at, *loc)):
                problems.append(_problem(model, display, err, loc, at, doc))
        return None, problems


def read(model: type[M], path: Path, display: str,
         context: Mapping[str, Any] | None = None) -> tuple[M | None, Document | None, list[ValidationProblem]]:
    """Read and validate one file: the model (None on any problem), the document (None if YAML could not read
    it), and every problem."""
    doc, problems = read_yaml(path, display)
    if doc is None:
        return None, None, problems
    value, bad = validate(model, doc.data, display, context, doc=doc)
    problems += bad
    return (None if problems else value), doc, problems


def load(model: type[M], path: Path, display: str | None = None) -> M:
    """Read and validate one file, raising ManifestError with every problem."""
    value, _, problems = read(model, path, display or str(path))
    if value is None:
        raise ManifestError(problems)
    return value


def _field(loc: Sequence[str]) -> str:
    # A key that is empty or holds dots, spaces or newlines is quoted: the field stays one readable line.
    return ".".join(p if _PLAIN_KEY.fullmatch(p) else json.dumps(p) for p in loc)


def _problem(model: type[BaseModel], display: str, err: Any, loc: Loc, at: Loc,
             doc: Document | None) -> ValidationProblem:
    field, line = _field((*at, *loc)), doc.line((*at, *loc)) if doc else None
    if err["type"] == "extra_forbidden":
        known = _keys_at(model, list(loc[:-1]))
        near = difflib.get_close_matches(loc[-1], known, n=1)
        fix = f"did you mean `{near[0]}`?" if near else (f"allowed: {', '.join(sorted(known))}" if known else None)
        return ValidationProblem(display, field, "unknown key", fix, line)
    if err["type"] == "moka":
        return ValidationProblem(display, field, err["ctx"]["message"], err["ctx"]["fix"], line)
    if err["type"] == "missing":
        return ValidationProblem(display, field, "required field is missing", None, line)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_type" and not isinstance(err.get("input"), dict | list | None):
        return ValidationProblem(display, field, msg, "quote the value: YAML read it as a number, boolean or date", line)
    return ValidationProblem(display, field, msg, None, line)


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
