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

from moka_images.errors import ManifestError, ValidationProblem

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str, ...]

MAX_YAML_BYTES = 256 * 1024
MAX_DEPTH = 20  # a declaration is a few levels deep: anything deeper is a mistake or an attack
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CORE = "tag:yaml.org,2002:"
# Plain data. Other tags (!!set, !!omap, !!binary, !!python/..., merge keys) have no place in a declaration.
_PLAIN_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map"))
_NODE_TAGS: dict[type[yaml.Node], str] = {yaml.SequenceNode: _CORE + "seq", yaml.MappingNode: _CORE + "map"}
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
    if isinstance(node, yaml.SequenceNode) and part.isascii() and part.isdigit() and int(part) < len(node.value):
        item = node.value[int(part)]
        return item, item
    return None


class _Refused(Exception):
    """The whole document is refused: an alias, or nesting past MAX_DEPTH."""

    def __init__(self, problem: ValidationProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Builder:
    """Plain data from a composed node tree, in one pass that never expands an alias. A value YAML cannot read
    is recorded, and its raw text stands in for it, so that the rest of the file is still read and validated."""

    def __init__(self, display: str, constructor: yaml.constructor.SafeConstructor) -> None:
        self.display, self.constructor = display, constructor
        self.seen: set[int] = set()
        self.problems: list[ValidationProblem] = []
        self.stood_in: list[Loc] = []  # paths of refused values

    def data(self, node: yaml.Node, loc: Loc, written: yaml.Node) -> Any:
        """The value of `node` at `loc`; `written` is where a problem with it is shown (a mapping value's key)."""
        if id(node) in self.seen:  # composing an alias reuses its anchor's node, which came first in the file
            raise _Refused(ValidationProblem(self.display, _field(loc), "YAML aliases are not allowed",
                                             "write the value out where `*` refers to it", _line(written)))
        self.seen.add(id(node))
        if len(loc) > MAX_DEPTH:
            raise _Refused(ValidationProblem(self.display, "", "nested too deeply",
                                             "a declaration is a few levels deep", _line(node)))
        fits = node.tag == _NODE_TAGS[type(node)] if type(node) in _NODE_TAGS else node.tag not in _NODE_TAGS.values()
        if node.tag not in _PLAIN_TAGS or not fits:
            return self._stand_in(node, loc, *_tag_problem(node))
        if isinstance(node, yaml.SequenceNode):
            return [self.data(item, (*loc, str(i)), item) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        try:
            return self.constructor.yaml_constructors[node.tag](self.constructor, node)
        # PyYAML lets a scalar that its tag cannot convert escape as a bare ValueError, KeyError or AttributeError.
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError, yaml.YAMLError) as exc:
            return self._stand_in(node, loc, *_value_problem(node, exc))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            sub = (*loc, key_node.value if isinstance(key_node, yaml.ScalarNode) else "?")
            key = self.data(key_node, sub, key_node)
            if key_node.tag not in _PLAIN_TAGS:
                continue  # refused: a merge key or an odd tag
            try:
                hash(key)
            except TypeError:  # `? [a, b]`: a list or mapping as a key
                self._refuse(key_node, sub, "a key must be a plain value", "write a name, not a list or mapping")
                continue
            if key in out:
                self._refuse(key_node, sub, f"duplicate key `{_short(key)}`", "keep one")
                continue
            out[key] = self.data(value_node, sub, key_node)
        return out

    def _refuse(self, node: yaml.Node, loc: Loc, message: str, fix: str | None) -> None:
        self.problems.append(ValidationProblem(self.display, _field(loc), message, fix, _line(node)))

    def _stand_in(self, node: yaml.Node, loc: Loc, message: str, fix: str | None) -> Any:
        self._refuse(node, loc, message, fix)
        self.stood_in.append(loc)
        return node.value if isinstance(node, yaml.ScalarNode) else None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _tag_problem(node: yaml.Node) -> tuple[str, str | None]:
    if node.tag == _CORE + "merge":
        return "merge keys (`<<`) are not allowed", "write the keys out"
    shown = "!!" + node.tag.removeprefix(_CORE) if node.tag.startswith(_CORE) else node.tag
    if node.tag in _PLAIN_TAGS:
        return f"the tag `{shown}` does not fit this value", "remove the tag"
    return f"the tag `{_short(shown)}` is not allowed", "write plain text, numbers, true/false, dates, lists, mappings"


def _value_problem(node: yaml.Node, exc: Exception) -> tuple[str, str | None]:
    kind = node.tag.removeprefix(_CORE)
    what = _KINDS.get(kind, kind)
    detail = f" ({exc})" if kind == "timestamp" and isinstance(exc, ValueError) else ""
    if kind == "int" and isinstance(exc, ValueError) and "digits" in str(exc):
        detail = " (too many digits)"
    fix = "write an existing date as YYYY-MM-DD" if kind == "timestamp" else f"write {what}"
    return f"`{_short(node.value)}` is not {what}{detail}", f"{fix}, or keep it as text: quote it, with no `!!` tag"


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
        lines = text.splitlines()
        at = lines[mark.line] if mark and mark.line < len(lines) else ""
        tabbed = "\t" in at[:len(at) - len(at.lstrip())] or " tab " in message
        fix = "indent with spaces, not tabs" if tabbed else None
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
    loader = _Parser(text)
    try:
        roots = []
        while loader.check_node():
            roots.append(loader.get_node())
        if len(roots) != 1:
            return None, [ValidationProblem(display, "", f"expected one YAML document, found {len(roots)}")]
        builder = _Builder(display, loader)
        data = builder.data(roots[0], (), roots[0])
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(display, text, exc)]
    except _Refused as exc:
        return None, [exc.problem]
    except RecursionError:  # only the pure-Python parser composes recursively
        return None, [ValidationProblem(display, "", "nested too deeply", "a declaration is a few levels deep")]
    finally:
        loader.dispose()
    return Document(data, roots[0], frozenset(builder.stood_in)), builder.problems


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
