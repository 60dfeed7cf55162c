"""Load stage: recipients.yaml -> a validated ``Batch``, or every problem at once.

Each problem names the file, line and column, the recipient and the field, and
says what was expected (mkdocs-style: collect everything, report once).
"""
from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
import yaml

from . import latex, markup
from .schema import RECIPIENT_ID, Batch, Letter, Recipient, Reference

# Where each value (and each mapping key) starts in the file, by data path.
Position = tuple[int, int]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    column: int | None
    recipient: str | None
    field: str
    message: str
    warning: bool = False
    index: int | None = None  # the recipient's position in the file, if any

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        who = f"recipient {self.recipient!r}, " if self.recipient else ""
        what = f"field {self.field!r}: " if self.field else ""
        kind = "warning" if self.warning else "error"
        return f"{where}: {kind}: {who}{what}{self.message}"


class LoadError(Exception):
    """recipients.yaml could not be used; ``problems`` says why, all at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Loaded:
    """A usable batch: ``batch.recipients`` holds the recipients that passed.

    ``rejected`` maps each recipient that did not pass (by its position in the
    file) to its problems; the others can still be built.
    """

    batch: Batch
    path: Path
    warnings: list[Problem] = field(default_factory=list)
    rejected: dict[int, list[Problem]] = field(default_factory=dict)
    # compose's memo for this batch: each letter's text is rendered once, however
    # many stages (build, check, merge) of one command ask for it
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def root(self) -> Path:
        """The project folder: paths in the YAML are relative to it."""
        return self.path.parent

    @property
    def problems(self) -> list[Problem]:
        return [p for ps in self.rejected.values() for p in ps] + self.warnings


def load(path: str | Path) -> Loaded:
    """Read and validate ``path``.

    Problems in the shared letter or references raise ``LoadError`` (every
    letter depends on them). A recipient with problems is left out of the
    batch and listed in ``Loaded.rejected``; ``LoadError`` only when none is left.

    A command that runs several stages (build, then check, then merge) loads
    the same file for each: the same text gives the same ``Loaded``, validated
    once.
    """
    path = Path(path)
    file = str(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError([Problem(file, None, None, None, "", f"cannot read the file: {exc}")]) from exc
    key = (file, str(path.resolve()), source)
    if _last_loaded.get("key") == key:
        return _last_loaded["loaded"]
    loaded = _load(path, file, source)
    _last_loaded.update(key=key, loaded=loaded)
    return loaded


_last_loaded: dict = {}


def _load(path: Path, file: str, source: str) -> Loaded:
    data, values, keys, problems = _parse_yaml(source, file)
    if problems:
        raise LoadError(problems)
    report = _Reporter(file, data, values, keys)
    if not isinstance(data, dict):
        report.error((), "the file must be a mapping with the keys letter, references, recipients")
        raise LoadError(report.problems)

    # Each piece is validated on its own, so a problem in one never hides the
    # problems of another: every problem in the file is reported in one run.
    for key in data:
        if key not in Batch.model_fields:
            report.pydantic({"type": "extra_forbidden", "loc": (key,), "msg": "", "input": None})
    letter = _validate(Letter, data.get("letter", _MISSING), ("letter",), report)
    raw_refs = data.get("references") or {}
    references: dict[str, Reference] = {}
    if not isinstance(raw_refs, dict):
        report.error(("references",), "must be a mapping of reference keys to references")
        raw_refs = {}
    for key, value in raw_refs.items():
        if not isinstance(key, str) or not re.fullmatch(markup.CITE_KEY, key):
            report.error(("references", key), _PATTERN_HINTS["^" + markup.CITE_KEY + "$"], at_key=True)
        reference = _validate(Reference, value, ("references", key), report)
        if reference is not None:
            references[str(key)] = reference
    raw = data.get("recipients", _MISSING)
    recipients: list[tuple[int, Recipient]] = []
    if raw is _MISSING:
        report.error(("recipients",), "required field is missing")
    elif not isinstance(raw, list) or not raw:
        report.error(("recipients",), "must be a list of at least one recipient")
    else:
        for index, item in enumerate(raw):
            recipient = _validate(Recipient, item, ("recipients", index), report)
            if recipient is not None:
                recipients.append((index, recipient))
    known_refs = {str(k) for k in raw_refs}
    _check_cross(letter, references, known_refs, recipients, path.parent, report)

    errors = [p for p in report.problems if not p.warning]
    rejected: dict[int, list[Problem]] = {}
    for problem in errors:
        if problem.index is not None:
            rejected.setdefault(problem.index, []).append(problem)
    survivors = [r for i, r in recipients if i not in rejected]
    if letter is None or any(p.index is None for p in errors) or not survivors:
        raise LoadError(errors)
    batch = Batch.model_construct(letter=letter, references=references, recipients=survivors)
    return Loaded(batch, path, [p for p in report.problems if p.warning], rejected)


_MISSING = object()


def _validate(model, value, path: tuple, report: "_Reporter"):
    """``model`` from ``value``, or None with each problem reported at ``path``."""
    if value is _MISSING:
        report.error(path, "required field is missing")
        return None
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            report.pydantic({**error, "loc": path + tuple(error["loc"])})
        return None


# ---- YAML with positions ---------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when PyYAML has it
    """Safe YAML, with dates left as text for the schema to check (PyYAML
    would raise a bare ValueError, with no line, for 2020-13-45)."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)


def _parse_yaml(source: str, file: str):
    values: dict[tuple, Position] = {}
    keys: dict[tuple, Position] = {}
    problems: list[Problem] = []
    loader = _Loader(source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, values, keys, [Problem(file, 1, 1, None, "", "the file is empty")]
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(filter(None, [exc.context, exc.problem])) or str(exc)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return None, values, keys, [Problem(file, line, col, None, "", f"YAML syntax error: {message}")]
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        return None, values, keys, [Problem(file, None, None, None, "", f"YAML error: {exc}")]
    finally:
        loader.dispose()

    def walk(node, path):
        values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    problems.append(Problem(
                        file, key_node.start_mark.line + 1, key_node.start_mark.column + 1, None,
                        _dotted(path + (key,)),
                        f"duplicate key (first given on line {seen[key]}); YAML would keep only the last"))
                seen[key] = key_node.start_mark.line + 1
                keys[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    walk(node, ())
    return data, values, keys, problems


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---- reporting ---------------------------------------------------------------

class _Reporter:
    def __init__(self, file, data, values, keys):
        self.file, self.data, self.values, self.keys = file, data, values, keys
        self.problems: list[Problem] = []

    def _add(self, path: tuple, message: str, *, warning=False, at_key=False):
        # The nearest position we know: the key itself, the value, or a parent.
        position = None
        if at_key:
            position = self.keys.get(path)
        probe = path
        while position is None and probe:
            position = self.values.get(probe) or self.keys.get(probe)
            probe = probe[:-1]
        position = position or self.values.get(())
        line, column = position if position else (None, None)
        recipient, index, field_path = None, None, path
        if len(path) >= 2 and path[0] == "recipients" and isinstance(path[1], int):
            index = path[1]
            recipient = self._recipient_name(index)
            field_path = path[2:]
        self.problems.append(Problem(self.file, line, column, recipient, _dotted(field_path),
                                     message, warning, index))

    def error(self, path: tuple, message: str, **kw):
        self._add(path, message, **kw)

    def warn(self, path: tuple, message: str, **kw):
        self._add(path, message, warning=True, **kw)

    def _recipient_name(self, index: int) -> str:
        try:
            rid = self.data["recipients"][index].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            rid = None
        return str(rid) if isinstance(rid, (str, int)) and rid != "" else f"recipients[{index}]"

    def pydantic(self, error: dict):
        loc = tuple(part for part in error["loc"] if part != "[key]")
        kind = error["type"]
        if kind == "missing":
            self.error(loc, "required field is missing")
        elif kind == "extra_forbidden":
            message = "unknown key"
            choices = _allowed_keys(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), choices, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
            elif choices:
                message += f"; expected one of: {', '.join(choices)}"
            self.error(loc, message, at_key=True)
        else:
            self.error(loc, _explain(error), at_key="[key]" in error["loc"])


def _explain(error: dict) -> str:
    """A pydantic error as a sentence that says what was expected and what came."""
    kind, got, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    shown = {list: "a list", dict: "a mapping", type(None): "nothing"}.get(type(got), repr(got))
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s) (got {len(got) if got else 0})"
    if kind in ("string_type", "str_type"):
        return f"must be text (got {shown})"
    if kind.startswith(("date_", "datetime_")):
        reason = error["msg"].split(",", 1)[-1].strip() if "," in error["msg"] else error["msg"]
        return f"must be a date written YYYY-MM-DD (got {shown}: {reason})"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        expected = {"list_type": "a list", "dict_type": "a mapping"}.get(kind, "a mapping of keys")
        return f"must be {expected} (got {shown})"
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(ctx.get("pattern"), error["msg"]) + f" (got {shown})"
    message = error["msg"].removeprefix("Value error, ")
    return message if kind == "value_error" else f"{message} (got {shown})"


_PATTERN_HINTS = {
    RECIPIENT_ID:
        "must be lower-case letters, digits and hyphens (it names the PDF file), at most 64",
    r"^[a-z0-9][a-z0-9_-]*$": "a part name is lower-case letters, digits, '-' and '_'",
    "^" + markup.CITE_KEY + "$": "a reference key is letters, digits, '.', '-' and '_'",
}


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names of the model found at ``loc`` (for 'did you mean')."""
    kind: typing.Any = Batch
    for part in loc:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
            info = kind.model_fields.get(part)
            if info is None:
                return []
            kind = info.annotation
        else:
            args = typing.get_args(kind)
            if not args:
                return []
            kind = args[-1]  # list[X] -> X, dict[K, V] -> V
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        return list(kind.model_fields)
    return []


def _unwrap(kind):
    while True:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
        elif origin is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        else:
            return kind


# ---- checks across the file ---------------------------------------------------

def _check_cross(letter: Letter | None, references: dict[str, Reference], known_refs: set[str],
                 recipients: list[tuple[int, Recipient]], root: Path, report: "_Reporter") -> None:
    """Checks that span the file: part names, citations, ids, files, characters.

    ``recipients`` pairs each recipient that passed its own checks with its
    position in the file; whatever failed its own checks is left out here.
    """
    cited: set[str] = set()
    parts: list[str] = []
    open_parts: list[str] = []
    if letter is not None:
        for p, paragraph in enumerate(letter.body):
            for name, source in paragraph.items():
                if name in parts:
                    report.error(("letter", "body", p, name),
                                 f"part name {name!r} is used twice in the body; names must be unique",
                                 at_key=True)
                parts.append(name)
                if source is None:
                    open_parts.append(name)
                else:
                    cited |= _check_markup(known_refs, source, ("letter", "body", p, name), report)
        if letter.sender.logo:
            _check_file(root, letter.sender.logo, ("letter", "sender", "logo"), report)
        if letter.signatory.image:
            _check_file(root, letter.signatory.image, ("letter", "signatory", "image"), report)
        _check_printable(letter, ("letter",), report)
    for key, reference in references.items():
        _check_printable(reference, ("references", key), report)

    seen_ids: dict[str, int] = {}
    for r, recipient in recipients:
        here = ("recipients", r)
        if recipient.id in seen_ids:
            report.error(here + ("id",),
                         f"duplicate id {recipient.id!r}: recipients[{seen_ids[recipient.id]}] has it too")
        seen_ids.setdefault(recipient.id, r)
        _check_printable(recipient, here, report)
        for name, source in recipient.text.items():
            cited |= _check_markup(known_refs, source, here + ("text", name), report)
        if letter is None:
            continue  # part names cannot be checked without the shared body
        for name in recipient.text:
            if name not in parts:
                report.error(here + ("text", name), _unknown_part(name, parts), at_key=True)
        for i, name in enumerate(recipient.omit):
            if name not in parts:
                report.error(here + ("omit", i), _unknown_part(name, parts))
            elif name in recipient.text:
                report.error(here + ("omit", i), f"part {name!r} is both omitted and given in text")
        for name in open_parts:
            if name not in recipient.text and name not in recipient.omit:
                report.error(here + ("text",),
                             f"part {name!r} has no shared text, so every recipient must give "
                             f"text.{name} (or list it under omit)")
        if all(name in recipient.omit for name in parts):
            report.error(here + ("omit",), "this letter would have no body text")

    for key in references:
        if key not in cited:
            report.warn(("references", key), f"reference {key!r} is never cited", at_key=True)


def _check_printable(model, path: tuple, report: "_Reporter") -> None:
    """Characters the fonts cannot show are an error here, before TeX runs."""
    def visit(value, where):
        if isinstance(value, str):
            bad = latex.unprintable(value)
            if bad:
                shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad)
                report.error(where, f"contains characters the letter's fonts cannot print: {shown}")
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, where + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, where + (index,))
    visit(model.model_dump(), path)


def _check_markup(known_refs: set[str], source: str, path: tuple, report: "_Reporter") -> set[str]:
    try:
        paragraphs = markup.parse(source)
    except markup.MarkupError as exc:
        report.error(path, str(exc))
        return set()
    cited = set()
    for paragraph in paragraphs:
        for node in markup.walk(paragraph):
            if isinstance(node, markup.Cite):
                if node.key in known_refs:
                    cited.add(node.key)
                else:
                    close = difflib.get_close_matches(node.key, sorted(known_refs), n=1)
                    hint = f"; did you mean [^{close[0]}]?" if close else (
                        f"; the references are: {', '.join(sorted(known_refs)) or '(none)'}")
                    report.error(path, f"cites [^{node.key}], but references has no {node.key!r}{hint}")
            elif isinstance(node, markup.Link):
                if not node.url.lower().startswith(("http://", "https://", "mailto:")):
                    report.error(path, f"link target {node.url!r} is not an http(s):// or mailto: URL")
    return cited


def _unknown_part(name: str, parts: list[str]) -> str:
    close = difflib.get_close_matches(name, parts, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"the parts are: {', '.join(parts)}"
    return f"the shared letter has no body part {name!r}; {hint}"


def _check_file(root: Path, relative: str, path: tuple, report: _Reporter) -> None:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        report.error(path, f"{relative!r} lies outside the project folder {str(root)!r}")
    elif not target.is_file():
        report.error(path, f"no such file: {relative!r} (paths are relative to {str(root)!r})")
    elif target.suffix.lower() not in (".pdf", ".png", ".jpg", ".jpeg"):
        report.error(path, f"{relative!r} is not a PDF, PNG or JPEG file")
