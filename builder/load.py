"""Load stage: recipients.yaml -> a validated ``Batch``, or every problem at once.

The YAML is read by the rules in README "How the file is read": every value is
the text typed, the schema types each field, aliases and nesting are bounded,
and a syntax slip inside one recipient's entry sets only that recipient aside.
Recipients may also come from a spreadsheet (``table.py``). Each problem names
the file, line and column (or row and column header), the recipient and the
field, and says what to change (collect everything, report once).
"""
from __future__ import annotations

import contextlib
import difflib
import gc
import hashlib
import re
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
import yaml

from . import latex, markup
from . import table as table_module
from .problems import LoadError, Problem, quoted
from .schema import (LANGUAGE_NAMES, LANGUAGES, PART_NAME, RECIPIENT_ID, REFERENCE_KEY, Batch, Letter, Recipient, RecipientTable,
                     Reference, has_letters, too_long)



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
    # other files the batch was read from (a spreadsheet), by SHA-256: a
    # loaded batch is reused only while they are unchanged too
    inputs: dict[str, str | None] = field(default_factory=dict, repr=False, compare=False)
    # recipients from a spreadsheet: the column each field came from, by recipient id and
    # field path (("address", 2) for a line from its own column), for findings in its words
    columns: dict[str, dict[tuple, str]] = field(default_factory=dict, repr=False, compare=False)

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
    source = read_text(path)
    key = (file, str(path.resolve()), source)
    if _last_loaded.get("key") == key and all(
            _digest(Path(other)) == digest for other, digest in _last_loaded["loaded"].inputs.items()):
        return _last_loaded["loaded"]
    with _no_collector_pauses():
        loaded = _load(path, file, source)
    _last_loaded.update(key=key, loaded=loaded)
    return loaded


_last_loaded: dict = {}


@contextlib.contextmanager
def _no_collector_pauses():
    """Python's cycle collector off while a file loads. Loading makes hundreds
    of thousands of objects that all live on (10,000 rows), and the collector
    walked them again and again: 0.6 s of a 1.6 s load, measured, for a
    handful of cycles freed. Reference counting still frees everything else.
    Afterwards the new objects join the oldest generation (freeze, unfreeze:
    no walk), so the next young collection does not walk them all at once."""
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    gc.disable()
    try:
        yield
    finally:
        if not frozen:  # (a caller's own frozen objects stay frozen)
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _digest(path: Path) -> str | None:
    try:
        if not path.is_file():  # none, or a named pipe, whose reading would never end (load says what it is)
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _load(path: Path, file: str, source: str) -> Loaded:
    parsed, slips = _parse_isolating(source, file)
    if parsed.data is None:
        raise LoadError([Problem(file, 1, 1, None, "", "the file is empty")])
    data = parsed.data
    report = _Reporter(file, data, parsed.values, parsed.keys, parsed.null_words)
    for where, message, warning, at_key in parsed.problems:
        (report.warn if warning else report.error)(where, message, at_key=at_key)
    if not isinstance(data, dict):
        report.error((), "the file must be a mapping with the keys letter, references, recipients")
        raise LoadError(report.problems)
    # Each piece is validated on its own, so a problem in one never hides the
    # problems of another: every problem in the file is reported in one run.
    for key in data:
        if key not in Batch.model_fields:
            report.pydantic({"type": "extra_forbidden", "loc": (key,), "msg": "", "input": None})
    # `recipient:` is told as "did you mean 'recipients'?", not also as recipients missing
    misspelt = {_meant_key((key,)) for key in data if key not in Batch.model_fields}
    letter = (_validate(Letter, data.get("letter", _MISSING), ("letter",), report)
              if "letter" in data or ("letter",) not in misspelt else None)
    raw_refs = data.get("references") or {}
    references: dict[str, Reference] = {}
    if not isinstance(raw_refs, dict):
        report.error(("references",), "must be a mapping of reference keys to references")
        raw_refs = {}
    for key, value in raw_refs.items():
        if not isinstance(key, str) or not re.fullmatch(REFERENCE_KEY, key):
            report.error(("references", key), _PATTERN_HINTS[REFERENCE_KEY], at_key=True)
        reference = _validate(Reference, value, ("references", key), report)
        if reference is not None:
            references[str(key)] = reference
    raw = data.get("recipients", _MISSING)
    if isinstance(raw, dict):  # recipients: {from: contacts.xlsx}
        raw = _read_table(raw, path, report, _raw_language(data))
    recipients: list[tuple[int, Recipient]] = []
    unvalidated: list[tuple[int, str]] = []  # entries refused as they were read, by the id they give
    if raw is None and isinstance(data.get("recipients"), dict):
        pass  # the table could not be read: reported
    elif raw is _MISSING:
        if ("recipients",) not in misspelt:
            report.error(("recipients",), "required field is missing")
    elif not isinstance(raw, list) or not raw:
        report.error(("recipients",), "must be a list of at least one recipient")
    else:
        # a spreadsheet row refused whole as it was read (the headings again) is no recipient:
        # its one message is said, not each field it lacks
        refused = report.table[1].refused if report.table else set()
        for index, item in enumerate(raw):
            if index in slips:
                report.problems.append(slips[index])
                continue
            if index in refused:
                continue
            recipient = _validate(Recipient, item, ("recipients", index), report)
            if recipient is not None:
                recipients.append((index, recipient))
            elif isinstance(item, dict) and isinstance(item.get("id"), str):
                unvalidated.append((index, item["id"]))
    known_refs = {str(k) for k in raw_refs}
    if letter is not None and report.table is None:
        _check_emptied(letter, recipients, report)
    _check_cross(letter, references, known_refs, recipients, path.parent, report)
    # an entry refused for another field whose id another recipient has is told so too: it
    # was not, and its letter (the other's, of that id) was said to be its own, kept from before
    entries_of: dict[str, list[int]] = {}
    for index, rid in sorted([(i, r.id) for i, r in recipients] + unvalidated):
        entries_of.setdefault(rid, []).append(index)
    for index, rid in unvalidated:
        other = next((i for i in entries_of[rid] if i != index), None)
        if other is not None:
            report.error(("recipients", index, "id"), f"duplicate id {rid!r}: {report.where(other)} has it "
                         "too; give each recipient an id of its own")

    # One message per spreadsheet cell: a cell refused as it was read (#N/A ...)
    # is not also reported as the field it left missing.
    cells: set[tuple] = set()
    kept = []
    for problem in report.problems:
        cell = (problem.index, problem.row, problem.header)
        if not problem.warning and problem.header is not None:
            if cell in cells:
                continue
            cells.add(cell)
        kept.append(problem)
    report.problems = kept
    errors = [p for p in report.problems if not p.warning]
    rejected: dict[int, list[Problem]] = {}
    for problem in errors:
        if problem.index is not None:
            rejected.setdefault(problem.index, []).append(problem)
    survivors = [r for i, r in recipients if i not in rejected]
    if letter is None or any(p.index is None for p in errors) or not survivors:
        raise LoadError(errors)
    batch = Batch.model_construct(letter=letter, references=references, recipients=survivors)
    columns = {}
    if report.table is not None:
        cells = report.table[1].cells
        columns = {r.id: {where: cell.header for where, cell in cells[i].items() if cell.header}
                   for i, r in recipients if i not in rejected and i < len(cells)}
    return Loaded(batch, path, [p for p in report.problems if p.warning], rejected, inputs=report.inputs,
                  columns=columns)


_MISSING = object()


def _dates_in_language(target: dict, key, language: str) -> None:
    """Each date cell under ``target[key]`` as the letter prints it: in the
    language its column names (salutation.cy, text.intro.en), else in
    ``language`` (the letter's first)."""
    value = target[key]
    if isinstance(value, dict):
        for sub in list(value):
            _dates_in_language(value, sub, sub if sub in ("en", "cy") else language)
    elif isinstance(value, list):
        target[key] = [table_module.in_language(item, language) for item in value]
    else:
        target[key] = table_module.in_language(value, language)


def _dates_by_language(entry: dict, key, languages: tuple[str, ...], text: bool = False) -> None:
    """A date cell shown with month or day names (``4 March 2026``) in a text of a
    bilingual row (text.<part>, salutation, subject, ps, closing: ``text``) as each
    language prints it: one cell gave the Welsh alone, and the row was refused for a
    text "with no English text", though the cell held a date the builder writes in both."""
    value = entry[key]
    if key == "text" and not text and isinstance(value, dict):
        for part in list(value):
            _dates_by_language(value, part, languages, text=True)
    elif (text or key in ("salutation", "subject", "ps", "closing")) and \
            isinstance(value, table_module.LocalDate) and value.welsh != str(value):
        entry[key] = {language: table_module.in_language(value, language) for language in languages}


def _raw_language(data: dict) -> str:
    """The letter's language as the file writes it (checked elsewhere)."""
    letter = data.get("letter")
    language = letter.get("language") if isinstance(letter, dict) else None
    return language if isinstance(language, str) else "en"


def _read_table(raw: dict, path: Path, report: "_Reporter", letter_language: str = "en"):
    """The rows of ``recipients: {from: ...}`` as entries, or None (reported).
    A date cell whose format names no locale takes its month names from the
    row's letter (``letter_language``, or the row's language cell)."""
    source = _validate(RecipientTable, raw, ("recipients",), report)
    if source is None:
        return _MISSING if not raw else None
    table_path = path.parent / source.from_
    shown = str(table_path)
    report.columns = dict(source.columns)
    report.table = (shown, table_module.Table())
    report.inputs[str(table_path)] = None
    # inside the project folder, as a logo must be: a link there to another file
    # (contacts.csv -> /etc/passwd) was read, and its lines shown in the messages
    if not table_path.resolve().is_relative_to(path.parent.resolve()):
        report.error(("recipients", "from"), f"{source.from_!r} lies outside the project folder {str(path.parent)!r}")
        return None
    if not table_path.is_file():
        report.error(("recipients", "from"), _no_file(source.from_, table_path, path.parent))
        return None
    try:
        # read once: the hash on the record is of the bytes the letters are made from (a
        # file saved again while the build ran is stale at the next one, never taken as read)
        data = table_path.read_bytes()
        report.inputs[str(table_path)] = hashlib.sha256(data).hexdigest()
        table = table_module.read(table_path, _field_kinds(), sheet=source.sheet, columns=dict(source.columns),
                                  data=data)
    except table_module.TableError as exc:
        report.problems.append(Problem(shown, None, None, None, "", exc.message, row=exc.row))
        return None
    except OSError as exc:
        report.error(("recipients", "from"), f"cannot read {source.from_!r}: {exc.strerror}")
        return None
    report.table = (shown, table)
    for problem in table.problems:
        who = None if problem.index is None else str(table.entries[problem.index].get("id"))
        report.problems.append(Problem(shown, None, None, who, "", problem.message, problem.warning,
                                       problem.index, problem.row, problem.header))
    if any(not p.warning and p.index is None for p in table.problems):
        return None  # the columns are wrong: every row would say the same
    if not table.entries:  # said of the spreadsheet, not of the YAML's recipients:
        report.problems.append(Problem(shown, None, None, None, "", "the file has its headers but no rows "
                                       "below them: one row per letter", row=table.header_row or None))
        return None
    for index, entry in enumerate(table.entries):  # invisible characters, as in YAML
        language = entry.get("language") if isinstance(entry.get("language"), str) else letter_language
        languages = LANGUAGES.get(language.strip(), ("en",))
        first = languages[0]
        for key, value in list(entry.items()):
            if len(languages) > 1:
                _dates_by_language(entry, key, languages)
            _dates_in_language(entry, key, first)
            value = entry[key]
            items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) \
                else [(None, value)]
            for sub, text in list(items):
                if isinstance(text, str) and not text.isascii() and _INVISIBLE.search(text):
                    where = ("recipients", index, key) + (() if sub is None else (sub,))
                    report.warn(where, _invisible_message(text))
                    cleaned = _INVISIBLE.sub("", text)
                    if sub is None:
                        entry[key] = cleaned
                    else:
                        value[sub] = cleaned
    return table.entries


def _field_kinds() -> dict[str, str]:
    """Each recipient field for the spreadsheet reader: text, list or parts."""
    kinds = {}
    for name, info in Recipient.model_fields.items():
        kind = _unwrap(info.annotation)
        origin = typing.get_origin(kind)
        base = "list" if origin is list else "parts" if origin is dict else "text"
        kinds[name] = base + (" required" if info.is_required() else "")
    return kinds


def _validate(model, value, path: tuple, report: "_Reporter"):
    """``model`` from ``value``, or None with each problem reported at ``path``."""
    if value is _MISSING:
        report.error(path, "required field is missing")
        return None
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        # A field that takes one of several kinds (return_address: true/false or a line)
        # fails once per kind, each under a tag of pydantic's own: one field, one message.
        by_field: dict[tuple, list[dict]] = {}
        for error in exc.errors():
            loc = path + tuple(part for part in error["loc"] if not _UNION_TAG.match(str(part)))
            by_field.setdefault(loc, []).append({**error, "loc": loc})
        # a misspelt key (adress) leaves its field (address) missing too: one slip, said once,
        # by the unknown key's "did you mean 'address'?"
        misspelt = {_meant_key(loc) for loc, errors in by_field.items()
                    if any(e["type"] == "extra_forbidden" for e in errors)}
        under = _under_an_empty_key(value, path, by_field)
        for loc, errors in by_field.items():
            if loc in under.values():
                continue  # `text:` left empty: said by the keys meant under it
            if loc in under:
                meant = _meant_key(loc)
                report.error(loc, "unknown key; " + (f"did you mean {meant[-1]!r}? Or, " if meant else "")
                             + f"if it belongs under '{under[loc][-1]}:', indent it further than "
                               f"'{under[loc][-1]}:'", at_key=True)
            elif len(errors) == 1 or any(e["type"] in ("missing", "extra_forbidden") for e in errors):
                for error in errors:
                    if not (error["type"] == "missing" and _meant_key(error["loc"], missing=True) in misspelt):
                        report.pydantic(error)
            else:
                report.error(errors[0]["loc"], _either(errors), at_key="[key]" in errors[0]["loc"])
        return None


def _under_an_empty_key(value, path: tuple, by_field: dict) -> dict[tuple, tuple]:
    """Unknown keys written after a key left empty that takes a mapping, mapped to it:
    `text:` with its parts under it at its own indent read as an empty text and
    unknown keys of the entry, two messages, neither saying that the parts want
    indenting."""
    if not isinstance(value, dict):
        return {}
    order = {key: at for at, key in enumerate(value)}
    empty = [loc for loc, errors in by_field.items()
             if len(loc) == len(path) + 1 and loc[-1] in value and value[loc[-1]] is None
             and any(e["type"] in ("dict_type", "model_type", "model_attributes_type") for e in errors)]
    found = {}
    for loc, errors in by_field.items():
        if (len(loc) == len(path) + 1 and loc[-1] in order
                and any(e["type"] == "extra_forbidden" for e in errors)):
            above = [key for key in empty if order[key[-1]] < order[loc[-1]]]
            if above:
                found[loc] = max(above, key=lambda key: order[key[-1]])
    return found


def _meant_key(loc: tuple, missing: bool = False) -> tuple | None:
    """The field an unknown key at ``loc`` is a misspelling of (as "did you mean" says),
    or with ``missing``, the missing field at ``loc`` itself."""
    loc = tuple(part for part in loc if part != "[key]")
    if missing:
        return loc
    close = difflib.get_close_matches(str(loc[-1]), _allowed_keys(loc[:-1]), n=1)
    return loc[:-1] + (close[0],) if close else None


# pydantic's names for the kinds a union tries, as they appear in an error's location
# (names with a hyphen or brackets: never one of the batch's fields, such as date)
_UNION_TAG = re.compile(r"^(function-(plain|after|before|wrap)|constrained-str|lax-or-strict|json-or-python|"
                        r"tagged-union)(\[.*\])?$|^\w+\[.*\]$")


def _either(errors: list[dict]) -> str:
    """One sentence for a value that none of a field's kinds took: 'must be true or false,
    or must be text (got nothing)' (what came, in the words of the last kind: the plainest)."""
    said = [_explain(error) for error in errors]
    got = next((m for m in (re.search(r" \(got [^()]*\)$", s) for s in reversed(said)) if m), None)
    wants = list(dict.fromkeys(re.sub(r" \(got [^()]*\)$", "", s) for s in said))
    return ", or ".join(wants) + (got.group() if got else "")


# ---- reading the file ----------------------------------------------------------

# Files people pick by mistake, by their first bytes (a batch is YAML text)
_NOT_TEXT = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"%PDF-": "a PDF",
             b"GIF8": "a GIF image", b"PK\x03\x04": "a zip file (an .xlsx, .docx or .ods is one)",
             bytes.fromhex("D0CF11E0A1B11AE1"): "an Office file (an old .xls or .doc, or a workbook with a password)"}


def _kind_of(raw: bytes) -> str | None:
    return next((kind for signature, kind in _NOT_TEXT.items() if raw.startswith(signature)), None)


def not_text(path: Path) -> str | None:
    """What the file is when its first bytes say it is no text (a PNG, a PDF, a workbook), or None."""
    try:
        with open(path, "rb") as file:
            return _kind_of(file.read(8))
    except OSError:
        return None


def not_text_message(kind: str, what: str = "file") -> str:
    return (f"the {what} is {kind}, not text: give the batch's YAML file (.yaml), whose `recipients: from:` may "
            "name a spreadsheet")


def read_text(path: Path, what: str = "file") -> str:
    """The file as text (UTF-8, with or without a byte order mark), or a
    ``LoadError`` at the line and column of the first byte that is not."""
    file = str(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        # /dev/zero would fill the memory, a named pipe never end: never read
        raise LoadError([Problem(file, None, None, None, "", f"cannot read the {what}: it is not a file "
                                                             "(a device or a named pipe); give a YAML file")])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError([Problem(file, None, None, None, "", f"cannot read the {what}: {exc.strerror}")]) from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError([Problem(file, 1, 1, None, "", f"the {what} is saved as UTF-16; save the file as UTF-8")])
    kind = _kind_of(raw)
    if kind:  # `-r images/logo.png` said "not UTF-8 text: byte 0x89 ... save the file as UTF-8"
        raise LoadError([Problem(file, None, None, None, "", not_text_message(kind, what))])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw, exc.start)
        byte = raw[exc.start]
        guess = bytes([byte]).decode("cp1252", errors="replace")
        seen = f" (in Windows-1252, {guess!r})" if guess != "\ufffd" else ""
        raise LoadError([Problem(file, line, column, None, "",
                                 f"the {what} is not UTF-8 text: byte 0x{byte:02X} here{seen}. Excel and Notepad "
                                 "may save Windows-1252; save the file as UTF-8")]) from None
    bad = _CONTROL_CHARS.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        char = bad.group()
        if char == "\x00":
            message = (f"the {what} holds a NUL byte: it is not a text file, or was saved as UTF-16; "
                       "save the file as UTF-8")
        elif char in "\x85\u2028\u2029":
            message = (f"a {describe(char).split(',')[0]} (U+{ord(char):04X}), which YAML reads as a line "
                       "break; replace it with an ordinary line break or a space")
        else:
            message = (f"a control character (U+{ord(char):04X}) that cannot be printed; delete it "
                       "(it may have come in with text pasted from another program)")
        raise LoadError([Problem(file, line, column, None, "", message)])
    return text


# Controls other than tab and line breaks, and what YAML refuses or reads as a
# line break where an editor shows none (NEL, U+2028, U+2029): libyaml would
# name only a character offset, or count lines differently from the editor.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def _line_column(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    before = raw[line_start:offset].decode("utf-8", errors="replace")
    return raw.count(b"\n", 0, offset) + 1, len(before) + 1


# ---- a slip stays local ----------------------------------------------------------

def _parse_isolating(source: str, file: str) -> tuple[_Parsed, dict[int, Problem]]:
    """Parse ``source``; when a syntax error lies inside one entry of
    ``recipients:``, set that entry aside (reported against that recipient)
    and parse the rest again, so the other letters can still be built."""
    entries: list[tuple[int, int]] | None = None  # found only when needed
    lines = source.split("\n")
    slips: dict[int, Problem] = {}
    while True:
        try:
            return _parse_yaml("\n".join(lines)), slips
        except _Slip as slip:
            if entries is None:
                entries = _recipient_entries(source)
            hit = None if slip.shared else next(
                (i for i, (first, last) in enumerate(entries) if first <= slip.line < last), None)
            problem_args = (file, slip.line + 1, slip.column + 1)
            if hit is None or hit in slips:
                raise LoadError(list(slips.values()) + [
                    Problem(*problem_args, None, "", slip.message)]) from None
            first, last = entries[hit]
            label = _entry_id(source.split("\n")[first:last]) or f"recipients[{hit}]"
            slips[hit] = Problem(*problem_args, label, "", slip.message, index=hit)
            # Keep the line numbers: the entry becomes '- ~' and blank lines.
            dash = lines[entries[0][0]].index("-")  # the list's column: an entry set aside
            lines[first] = " " * dash + "- ~"        # for its indent is put back in line
            for i in range(first + 1, last):
                lines[i] = ""


def _recipient_entries(source: str) -> list[tuple[int, int]]:
    """The lines (first, end) of each entry of a block list under a top-level
    ``recipients:``, found by indentation (for when the YAML cannot be read)."""
    lines = source.split("\n")
    start = next((i for i, line in enumerate(lines) if re.match(r"recipients:\s*(#.*)?$", line)), None)
    if start is None:
        return []
    entries: list[list[int]] = []
    indent = keys_at = None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        here = len(line.expandtabs()) - len(line.expandtabs().lstrip(" "))
        item = re.match(r"\s*-(\s+|$)", line.expandtabs())
        if indent is None:
            if not item:
                return []
            indent = here
        # an item off the list's column, but left of the keys of the entry above it, can
        # belong to no entry: it is the next one, indented wrong (`   - id: bb`, a space too
        # many, was told as a slip of the recipient above, whose good letter was not built)
        misplaced = item and here != indent and here < keys_at
        if (here < indent and not misplaced) or (here == indent and not item):
            break
        if here == indent or misplaced:
            entries.append([i, i + 1])
            keys_at = item.end()
        entries[-1][1] = i + 1
    return [(first, end) for first, end in entries]


def _entry_id(lines: list[str]) -> str | None:
    for line in lines:
        match = re.match(r"\s*(?:-\s+)?id:\s*[\[\"']?([A-Za-z0-9_.-]+)", line)
        if match:
            return match.group(1)
    return None


# ---- YAML with positions ---------------------------------------------------
#
# The YAML is read from libyaml's event stream by ``_Builder`` rather than by
# PyYAML's constructor, for four reasons: every value stays the text typed
# (YAML 1.1 reads 02035130477 as an octal number, `no` as false and 86400 as a
# timestamp; only an empty value, ~ and null (Null, NULL) mean "nothing"), with the schema
# deciding what a field holds; aliases and nesting are counted as they are
# read, so a "billion laughs" file or 20,000 nested brackets fail at once with
# the line; merge keys (<<: *base) follow YAML's rule that explicit keys win;
# and each value's position is known without walking the data again.

MAX_DEPTH = 64            # nesting levels (a batch needs about eight)
MAX_ALIAS_NODES = 100_000  # values repeated through aliases, counted in full

_NULLS = ("", "~", "null", "Null", "NULL")
_PLAIN = ("", None)  # libyaml's style for an unquoted scalar
_TEXT_TAG = "tag:yaml.org,2002:str"  # !!str: YAML's own word for "this is text"


class _MergeKey:
    """The key ``<<``: the value's mapping(s) are merged into this one."""


class _Slip(Exception):
    """A YAML syntax problem: where (0-based line, column) and what, in plain words."""

    def __init__(self, line: int, column: int, message: str, *, shared: bool = False):
        super().__init__(message)
        self.line, self.column, self.message, self.shared = line, column, message, shared


@dataclass
class _Parsed:
    data: typing.Any
    values: dict
    keys: dict
    problems: list  # (path, message, warning, at_key)
    null_words: dict = field(default_factory=dict)  # path -> null, Null or NULL, as typed


@dataclass
class _Frame:
    container: typing.Any
    path: tuple
    anchor: str | None
    first: int  # index in _Builder.positions where this node's positions start
    is_map: bool = False
    key: typing.Any = None
    has_key: bool = False
    key_mark: typing.Any = None
    explicit: dict = field(default_factory=dict)
    merges: list = field(default_factory=list)
    flow: bool = False  # a [ ] list or a { } mapping, whose items a comma parts
    key_end: typing.Any = None  # where the key read last ends
    joined: bool = False  # a second id in a recipient's entry: another recipient without its '- '
    # a text a comma in { } split, as told so far: (items then, its key, the text, the problem's index)
    split: typing.Any = None


class _Builder:
    def __init__(self, source: str):
        self.lines = [line.rstrip("\r") for line in source.split("\n")]  # as libyaml counts them
        # (path, line, column, is_key, weak): weak positions come from a merge
        # and yield to the mapping's own keys
        self.positions: list[tuple] = []
        self.anchors: dict[str, tuple] = {}
        self.problems: list[tuple] = []
        self.null_words: dict[tuple, str] = {}  # path -> null, Null or NULL, as typed
        self.aliased = 0
        # plain text anchored and never repeated: (path, the anchor, the value), by anchor
        self.unused_anchors: dict[str, tuple] = {}
        # those an anchor of the same name defined later took over: no alias can repeat them now
        # (the second `&Co ...` replaced the first, which then lost its word unsaid)
        self.replaced_anchors: list[tuple] = []

    def build(self, source: str):
        parser = _CParser(source)
        stack: list[_Frame] = []
        root = result = object()
        positions = self.positions
        try:
            while True:
                event = parser.get_event()
                kind = type(event)
                if kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                    opens = False
                elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                    opens = True
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    frame = stack.pop()
                    if frame.flow and not frame.is_map:
                        self._check_split_brackets(frame)
                    if frame.merges:
                        self._merge(frame)
                    if frame.anchor is not None:
                        self._replace_anchor(frame.anchor)
                        self.anchors[frame.anchor] = (frame.container, frame.path, frame.first, len(positions))
                    continue
                elif kind is yaml.DocumentEndEvent:
                    # a second document (---) would be ignored silently
                    following = parser.peek_event()
                    if isinstance(following, yaml.DocumentStartEvent):
                        mark = following.start_mark
                        raise _Slip(mark.line, mark.column,
                                    "a second YAML document starts here ('---'); a batch file holds one",
                                    shared=True)
                    continue
                elif kind is yaml.StreamEndEvent:
                    break
                else:  # stream and document start
                    continue
                mark = event.start_mark
                top = stack[-1] if stack else None
                is_map = top is not None and top.is_map
                if is_map and not top.has_key:
                    top.key, top.key_mark, top.has_key = self._key(event, top.path), mark, True
                    top.key_end = event.end_mark
                    continue
                if is_map and top.flow and kind is yaml.ScalarEvent and self._no_colon(top, event):
                    self._split_mapping_item(top)
                    continue
                # a value: where it goes
                in_merge = is_map and top.key is _MergeKey
                if top is None:
                    path = ()
                elif is_map:
                    path = top.path if in_merge else top.path + (top.key,)
                else:
                    path = top.path + (len(top.container),)
                if kind is yaml.ScalarEvent:
                    value = self._scalar(event, path)
                elif kind is yaml.AliasEvent:
                    value = self._alias(event, path, weak=in_merge)
                else:
                    if len(stack) >= MAX_DEPTH:
                        raise _Slip(mark.line, mark.column,
                                    f"the data is nested more than {MAX_DEPTH} levels deep here (the limit); "
                                    "a batch needs about eight", shared=True)
                    value = {} if kind is yaml.MappingStartEvent else []
                    if not in_merge:
                        positions.append((path, mark.line + 1, mark.column + 1, False, False))
                    frame = _Frame(value, path, event.anchor, len(positions), is_map=type(value) is dict,
                                   flow=bool(event.flow_style))
                if top is None:
                    result = value
                elif is_map:
                    self._put(top, value, mark)
                else:
                    top.container.append(value)
                if opens:
                    stack.append(frame)
        except yaml.MarkedYAMLError as exc:
            raise _explain_syntax(exc, self.lines) from None
        except yaml.YAMLError as exc:  # (read_text refuses what libyaml's reader would)
            raise _Slip(0, 0, f"this is not a YAML text file ({exc})", shared=True) from None
        finally:
            parser.dispose()
        values = {}
        keys = {}
        for path, line, column, is_key, is_weak in self.positions:
            table = keys if is_key else values
            if is_weak:
                table.setdefault(path, (line, column))
            else:
                table[path] = (line, column)
        unused = sorted([*self.replaced_anchors, *self.unused_anchors.values()], key=lambda found: found[3])
        for path, anchor, value, _ in unused:
            # `name: &Co Partners` printed "Partners": '&' before a word starts a YAML anchor,
            # left out of the text, and one no *alias repeats can only have been typed as text
            self.problems.append((path, f"{quoted('&' + anchor)} is read as a YAML anchor and left out, so this "
                                  f"prints {quoted(value)}; if it is part of the text, put the whole value in quotes: "
                                  f"{_quoted('&' + anchor + ' ' + value)}", True, False))
        return _Parsed(None if result is root else result, values, keys, self.problems, self.null_words)

    def _key(self, event, parent: tuple):
        mark = event.start_mark
        if not isinstance(event, yaml.ScalarEvent):
            raise _Slip(mark.line, mark.column, "a key must be a word followed by ':' "
                        "(this key is a list, a mapping or an alias)")
        if event.style in _PLAIN and event.value == "<<":
            return _MergeKey
        return self._clean(event.value, parent, mark, key=True)

    def _put(self, frame: _Frame, value, mark) -> None:
        key = frame.key
        frame.has_key = False
        if key is _MergeKey:
            frame.merges.append((value, frame.key_mark))
            return
        path = frame.path + (key,)
        key_line = frame.key_mark.line + 1
        if key in frame.explicit and frame.joined:
            pass  # said once, at the second id: the keys after it are that recipient's own
        elif key in frame.explicit and key == "id" and frame.path[:1] == ("recipients",) and len(frame.path) == 2:
            # `    id: kate` without its '- ': every key of kate's entry was a duplicate, one
            # message each, none saying what was wrong
            frame.joined = True
            self.problems.append((path, f"duplicate key (first given on line {frame.explicit[key]}): a second "
                                  "recipient's keys have joined this entry; start that recipient with '- ' "
                                  f"(- id: {value})", False, True))
        elif key in frame.explicit:
            self.problems.append((path, f"duplicate key (first given on line {frame.explicit[key]}); "
                                  "YAML would keep only the last", False, True))
        frame.explicit[key] = key_line
        self.positions.append((path, key_line, frame.key_mark.column + 1, True, False))
        frame.container[key] = value

    def _merge(self, frame: _Frame) -> None:
        """<<: *base (or a list of aliases): keys not given here come from them,
        the first merged mapping first, as YAML defines."""
        sources = []
        for value, mark in frame.merges:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if not isinstance(item, dict):
                    raise _Slip(mark.line, mark.column, "'<<' merges a mapping: write '<<: *name' where "
                                "'&name' marks a mapping (or a list of such names)")
                sources.append(item)
        merged = {}
        for item in sources:
            for key, value in item.items():
                merged.setdefault(key, value)
        explicit = dict(frame.container)
        frame.container.clear()
        frame.container.update({k: v for k, v in merged.items() if k not in explicit})
        frame.container.update(explicit)

    def _alias(self, event, path: tuple, weak: bool):
        mark = event.start_mark
        if event.anchor not in self.anchors:
            raise _Slip(mark.line, mark.column,
                        f"*{event.anchor} refers to '&{event.anchor}', which is not defined above this line "
                        "(check the spelling; an anchor must come before its use)")
        value, anchor_path, first, last = self.anchors[event.anchor]
        self.unused_anchors.pop(event.anchor, None)
        self.aliased += max(1, last - first)
        if self.aliased > MAX_ALIAS_NODES:
            raise _Slip(mark.line, mark.column,
                        f"aliases (*name) here repeat more than {MAX_ALIAS_NODES:,} values (the limit); "
                        "a file that expands like this is not a batch of letters", shared=True)
        if not weak:
            self.positions.append((path, mark.line + 1, mark.column + 1, False, False))
        depth = len(anchor_path)
        for entry in self.positions[first:last]:
            self.positions.append((path + entry[0][depth:], entry[1], entry[2], entry[3], True))
        return value

    def _scalar(self, event, path: tuple):
        mark = event.start_mark
        self.positions.append((path, mark.line + 1, mark.column + 1, False, False))
        plain = event.style in _PLAIN
        if plain and event.value in _NULLS and not event.tag:
            value = None
            if event.value:  # a word, not an empty value or ~: maybe the word was meant (Ann Null)
                self.null_words[path] = event.value
        else:
            value = self._clean(event.value, path, mark)
        if plain and value:
            self._check_comment(event, path)
        if event.tag not in (None, _TEXT_TAG):
            self._check_tag(event, path)
        if event.anchor is not None:
            self._replace_anchor(event.anchor)
            self.anchors[event.anchor] = (value, path, len(self.positions), len(self.positions))
            if plain and isinstance(value, str):
                self.unused_anchors[event.anchor] = (path, event.anchor, value, len(self.positions))
        return value

    def _replace_anchor(self, anchor: str) -> None:
        """An anchor of this name is defined again: an alias after it repeats the new one."""
        replaced = self.unused_anchors.pop(anchor, None)
        if replaced is not None:
            self.replaced_anchors.append(replaced)

    def _check_tag(self, event, path: tuple) -> None:
        """'!' before a value starts a YAML tag, which nothing here reads: it was
        dropped without a word (`salutation: !Hola amigo,` printed "amigo,",
        `ps: !Important reply by Friday` "reply by Friday"). Say so, and how to keep it."""
        start, end = event.start_mark, event.end_mark
        if start.line == end.line and start.line < len(self.lines):
            typed = self.lines[start.line][start.column:end.column]
        else:
            typed = f"{event.tag} {event.value}"
        tag = typed.split(None, 1)[0]
        before = self.lines[start.line][:start.column] if start.line < len(self.lines) else ""
        key = re.fullmatch(r"\s*(?:-\s+)?([^\s:#{\[][^:{\[]*?):\s+", before)  # (not inside { } or [ ])
        fix = f"{key.group(1)}: {_quoted(typed)}" if key else _quoted(typed)
        self.problems.append((path, f"{tag!r} is read as a YAML tag and left out, so this would print "
                              f"{event.value!r}; to keep it, put the whole value in quotes: {fix}", False, False))

    def _clean(self, value: str, path, mark, key: bool = False) -> str:
        """The text, without the invisible characters (each one named in a warning)."""
        if value.isascii() or not _INVISIBLE.search(value):
            return value
        where = f" (line {mark.line + 1})" if key else ""
        self.problems.append((path, _invisible_message(value, where), True, key))
        return _INVISIBLE.sub("", value)

    def _no_colon(self, frame: _Frame, event) -> bool:
        """Is ``event`` the empty value YAML gives a key of a { } mapping typed without a ':'
        after it (``{highlight: A sentence, revised.}``: "revised." is such a key)?"""
        end = frame.key_end
        if event.value or event.style not in _PLAIN or event.tag or end is None or end.line >= len(self.lines):
            return False
        return not self.lines[end.line][end.column:].lstrip().startswith(":")

    def _split_mapping_item(self, frame: _Frame) -> None:
        """In { } a comma parts items, even in text: ``{highlight: A sentence, revised.}`` is
        the text "A sentence" and a key "revised." with no value, told as two schema errors
        (a part name; not a text) neither of which said to quote it. One error, at the key,
        with the value to write; the key is left out."""
        key, frame.has_key = frame.key, False
        path = frame.path + (key,)
        before = next(reversed(frame.container.items()), None) if frame.container else None
        if frame.split is not None and frame.split[0] == len(frame.container):
            # a second comma in the same text ({main: One, two, three.}): the one error grows to
            # name the whole text (two errors each named a text that was none, "One, three.")
            _, stray, text_key, text, index = frame.split
            frame.split = (len(frame.container), stray, text_key, text + ", " + str(key), index)
            first_path, _, *rest = self.problems[index]
            self.problems[index] = (first_path, self._split_message(*frame.split[1:4]), *rest)
            return
        self.positions.append((path, frame.key_mark.line + 1, frame.key_mark.column + 1, True, False))
        text = (before[0], before[1] + ", " + str(key)) if before is not None and isinstance(before[1], str) else None
        if text is not None:
            frame.split = (len(frame.container), str(key), *text, len(self.problems))
        self.problems.append((path, self._split_message(str(key), *(text or (None, None))), False, True))

    @staticmethod
    def _split_message(stray: str, text_key, text) -> str:
        fix = f": {text_key}: {_quoted(text)}" if text is not None else ""
        return (f"{quoted(stray)} has no ':' after it, so YAML read it as a key of its own: in {{ }} a comma parts "
                f"items, even inside a text; to keep a comma in a text, put the text in quotes{fix}")

    def _check_split_brackets(self, frame: _Frame) -> None:
        """In [ ] a comma parts items, even inside brackets: `[Form (A4, 2 pages), Map]` is
        three items, "Form (A4", "2 pages)" and "Map", printed as three lines. An item that
        opens a bracket the next one closes was most likely one item: say so, and how."""
        items = frame.container
        for index in range(len(items) - 1):
            first, second = items[index], items[index + 1]
            if (isinstance(first, str) and isinstance(second, str)
                    and first.count("(") > first.count(")") and second.count(")") > second.count("(")):
                self.problems.append((frame.path + (index,), (
                    f"{first!r} and {second!r} are two items: in [ ] a comma parts items, even inside "
                    f"brackets; to keep them one, put it in quotes: {_quoted(first + ', ' + second)}"),
                    True, False))

    def _check_comment(self, event, path: tuple) -> None:
        """' #' ends an unquoted value: what follows is a comment, not text. A
        comment set apart by two spaces and '# ' is one on purpose; anything
        else most likely was meant as text, so say what was dropped."""
        end = event.end_mark
        if end.line >= len(self.lines):
            return
        rest = self.lines[end.line][end.column:]
        if "#" not in rest:
            return
        match = re.match(r"(\s+)#(.*)", rest)
        if not match or (len(match.group(1)) > 1 and match.group(2)[:1] in ("", " ")):
            return
        dropped = "#" + match.group(2)
        line = self.lines[end.line]
        key, sep, _ = line.partition(": ")
        fix = f"{key.strip()}: {_quoted(event.value + match.group(1) + dropped)}" if sep else _quoted(
            event.value + match.group(1) + dropped)
        # the text as typed, in quotes: repr() showed a backslash doubled ('#C:\\Temp') and
        # swapped the quotes round an apostrophe, so what was quoted was not what was typed
        self.problems.append((path, f"the text '{dropped}' (line {end.line + 1}) was left out: after a space, "
                              f"'#' starts a YAML comment; to keep it, put the whole value in quotes: {fix}",
                              True, False))


# libyaml's parser when PyYAML has it (fast), else PyYAML's own: both give events.
_CParser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Characters that print as nothing: format characters (category Cf: zero-width
# space, joiners, direction marks, BOM, soft hyphen ...), the variation
# selectors and the Hangul fillers. Written out as ranges because scanning all
# of Unicode at import cost a quarter of a second on every command;
# tests/test_load.py checks the ranges against this Python's unicodedata.
INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x115F, 0x1160), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
_INVISIBLE = re.compile("[%s]" % "".join(
    re.escape(chr(first)) + ("-" + re.escape(chr(last)) if last > first else "")
    for first, last in INVISIBLE_RANGES))

_NAMES = {0x0085: "next-line character", 0x2028: "line separator", 0x2029: "paragraph separator",
          0x00AD: "soft hyphen", 0x200B: "zero-width space", 0x200C: "zero-width non-joiner",
          0x200D: "zero-width joiner", 0x200E: "left-to-right mark", 0x200F: "right-to-left mark",
          0x2060: "word joiner", 0xFEFF: "byte order mark (zero-width no-break space)",
          0x00A0: "no-break space", 0x0009: "tab", 0x0000: "NUL byte"}


def _invisible_message(value: str, where: str = "") -> str:
    found = _INVISIBLE.findall(value)
    names = ", ".join(dict.fromkeys(describe(c) for c in found))
    return (f"contains {'invisible characters' if len(set(found)) > 1 else 'an invisible character'}{where}: {names}; "
            "it prints as nothing and was left out")


def describe(char: str, quoted: bool = True) -> str:
    """A character in words, for messages: 'zero-width joiner, U+200D'; a
    visible one shown first, quoted (unless ``quoted`` is False)."""
    code = ord(char)
    name = _NAMES.get(code) or unicodedata.name(char, "").lower() or "control character"
    visible = quoted and char.isprintable() and not _INVISIBLE.match(char) and not char.isspace()
    shown = f"{char!r} " if visible else ""
    return f"{shown}{name}, U+{code:04X}".strip()


def _parse_yaml(source: str) -> _Parsed:
    """Data and positions; ``_Slip`` when the text is not YAML."""
    return _Builder(source).build(source)


def _open_bracket(text: str, column: int) -> int:
    """Where the innermost [ or { still open before ``column`` of this line starts
    (outside quotes); ``column`` itself when there is none on the line."""
    opened: list[int] = []
    quote = ""
    for at, char in enumerate(text[:column]):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            opened.append(at)
        elif char in "]}" and opened:
            opened.pop()
    return opened[-1] if opened else column


def _explain_syntax(exc: yaml.MarkedYAMLError, lines: list[str]) -> _Slip:
    """libyaml's complaint as plain words and the fix, at the line to change."""
    context, problem = exc.context or "", exc.problem or ""
    use_context = exc.context_mark is not None and not context.startswith("while parsing a block")
    mark = exc.context_mark if use_context else (exc.problem_mark or exc.context_mark)
    line, column = (mark.line, mark.column) if mark else (0, 0)
    text = lines[line] if line < len(lines) else ""
    if "maximum nesting depth" in problem:  # PyYAML 6.0.4's own limit, met before ours in flow style
        pmark = exc.problem_mark or mark
        return _Slip(pmark.line if pmark else line, pmark.column if pmark else column,
                     f"the data is nested more than {MAX_DEPTH} levels deep here (the limit); "
                     "a batch needs about eight", shared=True)
    runaway = _runaway_quote(lines, exc.problem_mark.line) if exc.problem_mark else None
    if runaway is not None:
        # a quote left open runs on to the next quote, which opens another value some
        # lines below: libyaml stumbles there ("indented differently" at a line that is
        # right, and against another recipient), but the quote to close is this one
        quote = lines[runaway.line][runaway.column]
        return _Slip(runaway.line, runaway.column,
                     f"the quote {quote} opened here is never closed (it runs on to line "
                     f"{exc.problem_mark.line + 1}); add the closing {quote} at the end of the value")
    cut = _quote_closed_early(lines, exc.problem_mark.line, exc.problem_mark.column) if exc.problem_mark else None
    if cut is not None:
        return cut
    if "mapping values are not allowed" in problem:
        pmark = exc.problem_mark
        row = lines[pmark.line] if pmark.line < len(lines) else ""
        key, sep, value = row.partition(": ")
        if sep and len(key) < pmark.column and not key.lstrip().startswith(("'", '"')):
            head = key.rstrip()
            return _Slip(pmark.line, pmark.column,
                         "this text contains ': ', which YAML reads as a new key; put the whole value "
                         f"in quotes: {head.strip()}: {_quoted(value.strip())}")
        above = next((n for n in range(pmark.line - 1, -1, -1)
                      if lines[n].strip() and not lines[n].lstrip().startswith("#")), None)
        item = re.fullmatch(r"(\s*)(- )?([\w-]+)(?: +([^:#\s][^:]*))?", lines[above].rstrip()) \
            if above is not None else None
        if item and len(row) - len(row.lstrip()) > len(item.group(1)):
            # `- id kate` or `letter` with keys under it: the colon is missing there, not an indent here
            dash, key, value = item.group(2) or "", item.group(3), item.group(4)
            return _Slip(above, len(item.group(1)) + len(dash),
                         f"YAML expects 'key: value' here: add the ':' after {key!r}: "
                         f"{dash}{key}:{' ' + value.strip() if value else ''}")
        return _Slip(pmark.line, len(row) - len(row.lstrip()), _INDENT_HINT + _indent_detail(lines, pmark.line))
    if context == "while scanning a quoted scalar":
        quote = text[column] if column < len(text) else '"'
        if "unknown escape" in problem or "expected escape" in problem:
            pmark = exc.problem_mark
            return _Slip(pmark.line, pmark.column,
                         "in double quotes a backslash starts an escape; write \\\\ for a backslash, "
                         "or use single quotes")
        return _Slip(line, column, f"the quote {quote} opened here is never closed; "
                     f"add the closing {quote} at the end of the value")
    if context == "while scanning a simple key" or "could not find expected ':'" in problem:
        return _Slip(line, column, "YAML expects 'key: value' here: add the ':' after the key; if the line "
                     "continues the text above, indent it like that text, or put the whole value in quotes")
    pmark = exc.problem_mark
    # libyaml names no character ("found character that cannot start any token"): read it
    # from the line, so a tab at the start of a line is told as a tab, not 'this character'
    found = (lines[pmark.line][pmark.column:pmark.column + 1]
             if pmark and pmark.line < len(lines) else "")
    if "'\\t'" in problem or "tab character" in problem or (
            "cannot start any token" in problem and found == "\t"):
        return _Slip(pmark.line, pmark.column, "a tab character: YAML indents with spaces only; "
                     "replace the tab with spaces")
    if context.startswith("while parsing a block") or "did not find expected key" in problem or (
            "expected <block end>" in problem):
        return _Slip(line, column, _INDENT_HINT + _indent_detail(lines, line))
    if context.startswith("while parsing a flow") or context.startswith("while scanning a flow"):
        bracket = text[column] if column < len(text) else "["
        if bracket not in "[{":
            # libyaml points at what it did not expect inside the brackets (the second
            # comma of "{cy: Annwyl Bo,, en: ...}"), which read "the , opened here":
            # the bracket still open before it is the one to name
            column = _open_bracket(text, column)
            bracket = text[column] if column < len(text) else "["
        closing = {"[": "]", "{": "}"}.get(bracket, "]")
        return _Slip(line, column, f"the {bracket} opened here is not closed where YAML expects it; "
                     f"close it with {closing}, and put items that contain ',', ':', '[' or '{{' in quotes")
    if context.startswith("while scanning a tag"):
        # `salutation: !Hola\amigo,`: a tag YAML cannot even read, told in libyaml's words with
        # no fix, where a tag it reads (`!Hola amigo,`) is told with the quoted value to write
        typed = text[column:].split(" #", 1)[0].strip()
        return _Slip(line, column, "a value that starts with '!' is read as a YAML tag; to keep the '!', put the "
                     f"whole value in quotes: {_quoted(typed)}")
    if context.startswith(("while scanning an alias", "while scanning an anchor")):
        return _Slip(line, column, "a value that starts with '*' or '&' is read as a YAML alias or anchor; "
                     "put the whole value in quotes")
    if "cannot start any token" in problem:
        pmark = exc.problem_mark or mark
        char = problem.split("'")[1] if "'" in problem else found or "this character"
        return _Slip(pmark.line, pmark.column, f"a value cannot start with {char!r} unless it is quoted; "
                     "put the whole value in quotes")
    words = " ".join(filter(None, [context, problem]))
    return _Slip(line, column, f"this is not valid YAML ({words}); check the quotes and the indentation "
                 "of this line")


# a line's start up to where a value opens: `  salutation: ` or `  - `
_OPENS_A_VALUE = re.compile(r"\s*(?:-\s+)*(?:[^\s#'\"][^#]*?:\s+)?$")


def _runaway_quote(lines: list[str], line: int):
    """Where a quoted value opens that began on a line above ``line`` and ends on it
    at the quote that opens a later value (a quote left open), or None. A value in
    quotes over two lines, closed right and followed by a slip, is not one."""
    opened = None
    try:  # PyYAML's own scanner: libyaml's gives no tokens' places; only for a file in error
        for token in yaml.scan("\n".join(lines[:line + 1]), Loader=yaml.SafeLoader):
            if (isinstance(token, yaml.ScalarToken) and token.style in ("'", '"')
                    and token.start_mark.line < line == token.end_mark.line
                    and _OPENS_A_VALUE.match(lines[line][:token.end_mark.column - 1])):
                opened = token.start_mark
    except yaml.YAMLError:
        pass
    return opened


def _quote_closed_early(lines: list[str], line: int, column: int) -> _Slip | None:
    """A quoted value whose closing quote comes before its end, text following it on
    the line where libyaml stumbles (``'Dear O'Brien,'``, ``"Dear "Ann","``): the
    quote inside it is to be written as the quotes' own rule says."""
    closed = None
    try:
        for token in yaml.scan("\n".join(lines[:line + 1]), Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken) and token.style in ("'", '"'):
                closed = token
    except yaml.YAMLError:
        pass
    if closed is None or not closed.start_mark.line == closed.end_mark.line == line:
        return None
    text = lines[line]
    after = text[closed.end_mark.column:]
    if closed.end_mark.column > column or not after or after[0] in " \t#,]}:":
        return None
    start = closed.start_mark.column
    quote = text[start]
    inside = text[start + 1:].rstrip()
    comment = re.search(r"\s#", inside)  # (a comment after the value stays one)
    if comment:
        inside = inside[:comment.start()].rstrip()
    inside = inside[:-1] if inside.endswith(quote) else inside
    if quote == "'":
        fix = "in single quotes an apostrophe is written twice"
        value = "'" + inside.replace("'", "''") + "'"
    else:
        fix = "in double quotes a quote inside the value is written \\\""
        value = '"' + inside.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _Slip(line, start, f"the value in quotes here ends at the {quote} in column {closed.end_mark.column}, "
                 f"so the text after it cannot follow; {fix}: {text[:start].strip()} {value}")


_INDENT_HINT = "this line is indented differently from the lines above it"


def _indent_detail(lines: list[str], line: int) -> str:
    """Which line above it should line up with, when one can be told."""
    row = lines[line] if line < len(lines) else ""
    indent = len(row) - len(row.lstrip(" "))
    for above in range(line - 1, -1, -1):
        prev = lines[above]
        if prev.strip() and not prev.lstrip().startswith("#"):
            prev_indent = len(prev) - len(prev.lstrip(" "))
            if prev.lstrip().startswith("- "):
                prev_indent += 2
            if prev_indent != indent:
                return (f" (line {above + 1} starts its key at column {prev_indent + 1}, this line at "
                        f"column {indent + 1}); line up the keys of one entry")
            return "; line up the keys of one entry, and indent a value under its key"
    return ""


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---- reporting ---------------------------------------------------------------

class _Reporter:
    def __init__(self, file, data, values, keys, null_words=None):
        self.file, self.data, self.values, self.keys = file, data, values, keys
        self.problems: list[Problem] = []
        self.table: tuple[str, table_module.Table] | None = None  # recipients from a spreadsheet
        self.inputs: dict[str, str | None] = {}  # files read besides the YAML, by digest
        self.columns: dict[str, str] = {}  # a spreadsheet's `columns:` (header -> field), as written
        self.entries: list = data.get("recipients") if isinstance(data, dict) else None
        self.null_words: dict[tuple, str] = null_words or {}  # where YAML read a word (Null) as nothing

    def _add(self, path: tuple, message: str, *, warning=False, at_key=False):
        word = self.null_words.get(path)
        if word and message.endswith("(got nothing)"):
            message = message[:-len("(got nothing)")] + (
                f"(got {word}, which YAML reads as nothing; for the word, write it in quotes: \"{word}\")")
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
            if self.table is not None:
                file, table = self.table
                cell = table.cell(index, field_path)
                self.problems.append(Problem(file, None, None, recipient, _dotted(field_path), message,
                                             warning, index, cell.row, cell.header))
                return
        self.problems.append(Problem(self.file, line, column, recipient, _dotted(field_path),
                                     message, warning, index))

    def error(self, path: tuple, message: str, **kw):
        self._add(path, message, **kw)

    def warn(self, path: tuple, message: str, **kw):
        self._add(path, message, warning=True, **kw)

    def where(self, index: int) -> str:
        """Where a person finds recipient ``index``: its spreadsheet row, or the line of
        its entry in the YAML (a list index means nothing to them)."""
        if self.table is not None:
            return f"the recipient on row {self.table[1].rows[index]}"
        position = self.values.get(("recipients", index))
        return f"the recipient on line {position[0]}" if position else f"recipients[{index}]"

    def _recipient_name(self, index: int) -> str:
        if self.table is not None:
            rid = self.table[1].entries[index].get("id")
            return str(rid) if rid else f"row {self.table[1].rows[index]}"
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
    shown = {list: "a list", dict: "a mapping", type(None): "nothing"}.get(type(got), quoted(got))
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_too_long":
        return too_long(len(got), ctx.get("max_length") or 0)
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s) (got {len(got) if got else 0})"
    if kind in ("string_type", "str_type"):
        return f"must be text (got {shown})"
    if kind in ("literal_error", "enum") and ctx.get("expected"):  # pydantic's "Input should be ..."
        code = LANGUAGE_NAMES.get(got.strip().lower()) if isinstance(got, str) else None
        if code and f"'{code}'" in ctx["expected"]:  # "Welsh" in a Language column: the code it means
            return f"must be {ctx['expected']} (got {shown}: write {code})"
        # the value in other capitals ("CY" in a Language column, `envelope: dl`): the one to write;
        # it was told only the values, with nothing to show which was meant
        same = [value for value in re.findall(r"'([^']*)'", ctx["expected"])
                if isinstance(got, str) and value.casefold() == got.strip().casefold()]
        if len(same) == 1:
            return f"must be {ctx['expected']} (got {shown}: write {same[0]})"
        return f"must be {ctx['expected']} (got {shown})"
    if kind.startswith(("date_", "datetime_")):
        reason = error["msg"].split(",", 1)[-1].strip() if "," in error["msg"] else error["msg"]
        return f"must be a date written YYYY-MM-DD (got {shown}: {reason})"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        expected = {"list_type": "a list", "dict_type": "a mapping"}.get(kind, "a mapping of keys")
        return f"must be {expected} (got {shown})"
    if kind == "string_pattern_mismatch":
        space = re.search(r"[^\S ]", got) if isinstance(got, str) else None  # one no editor shows as such
        named = (f"; it holds a {unicodedata.name(space.group(), 'space').lower()} (U+{ord(space.group()):04X}) "
                 f"after {quoted(got[:space.start()])}" if space else "")
        return _PATTERN_HINTS.get(ctx.get("pattern"), error["msg"]) + f" (got {shown}{named})"
    message = error["msg"].removeprefix("Value error, ")
    return message if kind == "value_error" else f"{message} (got {shown})"


_PATTERN_HINTS = {
    RECIPIENT_ID:
        "must be lower-case letters, digits and hyphens (it names the PDF file), at most 64",
    PART_NAME: "a part name is lower-case letters, digits, '-' and '_', at most 64",
    REFERENCE_KEY: "a reference key is letters, digits, '.', '-' and '_', at most 64",
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

def _language_shape(batch: Batch, recipient: Recipient) -> tuple:
    """All that ``Batch.untranslated`` looks at: the letter's languages, the
    parts left out, and which languages each of the recipient's own texts has."""
    def shape(value):
        if not isinstance(value, dict):  # (a text without letters is in every language: ``in_language``)
            return "none" if value is None else "plain" if has_letters(value) else "no letters"
        return tuple(sorted(language for language, text in value.items() if text is not None))
    return (batch.language_of(recipient), frozenset(recipient.omit),
            tuple(sorted((name, shape(value)) for name, value in recipient.text.items())),
            tuple(shape(getattr(recipient, part)) for part in ("subject", "ps", "closing", "salutation")))


def _check_emptied(letter: Letter, recipients: list[tuple[int, Recipient]], report: "_Reporter") -> None:
    """`ps: ~` on a recipient is no value of its own, so the letter's ps printed on it
    without a word, where the person meant "no PS". Said, with what to write instead."""
    for index, recipient in recipients:
        for part in ("subject", "our_ref", "marking", "closing", "cc", "enclosures", "ps"):
            if part not in recipient.model_fields_set or getattr(recipient, part) is not None or \
                    getattr(letter, part) in (None, []):
                continue
            fix = ("write [] for none" if part in ("cc", "enclosures") else
                   f"one letter cannot leave out the letter's {part}: move it from letter: to the recipients "
                   "that have it")
            report.warn(("recipients", index, part),
                        f"~ (nothing) gives this letter no {part} of its own, so it prints the letter's; {fix}",
                        at_key=True)


def _check_cross(letter: Letter | None, references: dict[str, Reference], known_refs: set[str],
                 recipients: list[tuple[int, Recipient]], root: Path, report: "_Reporter") -> None:
    """Checks that span the file: part names, citations, ids, files, characters.

    ``recipients`` pairs each recipient that passed its own checks with its
    position in the file; whatever failed its own checks is left out here.
    """
    cited: set[str] = set()
    parts: list[str] = []
    open_parts: list[str] = []
    mistyped: set[str] = set()  # parts named by a mapping of the spreadsheet's columns that the body lacks
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
        for part in ("subject", "ps"):  # markup like a body part
            cited |= _check_markup(known_refs, getattr(letter, part), ("letter", part), report)
        # `columns:` mapping a header to a part the body lacks: said once, at its line in
        # the YAML (every row would say it, and that the part it meant is missing)
        for header, field in report.columns.items():
            target = (field or "").split(".")  # ~: a column not used
            if target[0] == "text" and len(target) > 1 and target[1] not in parts:
                report.error(("recipients", "columns", header),
                             f"the column {header!r} is mapped to {field}, but {_unknown_part(target[1], parts)}")
                mistyped.add(target[1])
        if letter.letterhead:
            _check_letterhead(root, letter.letterhead, report)
        if letter.sender.logo:
            _check_file(root, letter.sender.logo, ("letter", "sender", "logo"), report)
        if letter.signatory.image:
            _check_file(root, letter.signatory.image, ("letter", "signatory", "image"), report)
        _check_printable(letter, ("letter",), report)
    for key, reference in references.items():
        _check_printable(reference, ("references", key), report)

    shared = Batch.model_construct(letter=letter, references={}, recipients=[])
    untranslated: dict[tuple, list] = {}  # recipients alike in languages find the same (10,000 rows: a few)
    seen_ids: dict[str, int] = {}
    for r, recipient in recipients:
        here = ("recipients", r)
        if recipient.id in seen_ids:
            report.error(here + ("id",),
                         f"duplicate id {recipient.id!r}: {report.where(seen_ids[recipient.id])} has it too; "
                         "give each recipient an id of its own")
        seen_ids.setdefault(recipient.id, r)
        _check_printable(recipient, here, report)
        for name, source in recipient.text.items():
            cited |= _check_markup(known_refs, source, here + ("text", name), report)
        for part in ("subject", "ps"):
            cited |= _check_markup(known_refs, getattr(recipient, part), here + (part,), report)
        if letter is None:
            continue  # part names cannot be checked without the shared body
        shape = _language_shape(shared, recipient)
        if shape not in untranslated:
            untranslated[shape] = shared.untranslated(recipient)
        for path, message in untranslated[shape]:
            if report.table is not None and path[0] != "letter":  # its own text, from a cell: the fix is columns
                field = ".".join(path)
                columns = " and ".join(f"{field}.{language}" for language in shared.languages_of(recipient))
                message = re.sub(r"write it as \{.*\}$", f"leave this cell empty and give it in the columns "
                                 f"{columns} (headers of yours mapped to them under columns:)", message)
            # a shared text without this letter's language: this letter's problem
            report.error(here + (path if path[0] != "letter" else ("language",)), message)
        for name in recipient.text:
            if name not in parts and name not in mistyped:
                report.error(here + ("text", name), _unknown_part(name, parts), at_key=True)
        for i, name in enumerate(recipient.omit):
            if name not in parts:
                report.error(here + ("omit", i), _unknown_part(name, parts))
            elif name in recipient.text:
                report.error(here + ("omit", i), f"part {name!r} is both omitted and given in text")
        for name in open_parts if not mistyped else ():  # a mapping's typo stops the build: said there
            if name not in recipient.text and name not in recipient.omit:
                report.error(here + ("text", name),  # in a spreadsheet: that part's column, if any
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
            if value.isascii():
                return  # every ASCII character prints (the models refused the controls)
            bad = latex.unprintable(value)
            if bad:
                shown = ", ".join(f"{c!r} ({describe(c, quoted=False)})" for c in bad)
                them = "it" if len(bad) == 1 else "them"
                report.error(where, f"contains characters the letter's fonts cannot print: {shown}; "
                                    f"delete or replace {them}")
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, where + (key,))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, where + (index,))
        elif isinstance(value, pydantic.BaseModel):
            for key, item in value.__dict__.items():
                visit(item, where + (key,))
    if model.model_dump_json().isascii():
        return  # the common case, found fast: every ASCII character prints
    visit(model, path)


# A line after a single line break that starts as a list's item (-, *, +, • or 1. and a space):
# markup has no lists, and the lines of a paragraph are joined
_LIST_ITEM_RE = re.compile(r"(?<!\n)\n[ \t]*([-*+\u2022][ \t]|\d{1,3}[.)][ \t])(?=[ \t]*\S)")


def _check_markup(known_refs: set[str], source, path: tuple, report: "_Reporter") -> set[str]:
    if source is None:
        return set()
    if isinstance(source, dict):  # a text per language
        return set().union(*(_check_markup(known_refs, text, path + (language,), report)
                             for language, text in source.items()))
    if "\n" in source:
        item = _LIST_ITEM_RE.search(source)
        if item:  # a list written as Markdown's prints as one paragraph: "- one - two"
            report.warn(path, f"a line starts {item.group(1).strip()!r} as a list's item would, but one line "
                              "break joins lines into one paragraph (\"- one - two\"); put a blank line before "
                              "each item to print it as a paragraph of its own")
    if "[" not in source and "<" not in source:
        return set()  # no citation, no link: nothing to check (and 10,000 rows load fast)
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
                # as for a reference's url: a PDF link keeps only the address up to a second
                # '#' and drops an empty one, so the printed link went elsewhere than the web page's
                elif node.url.count("#") > 1:
                    report.error(path, f"link target {node.url!r} has more than one '#'; a URL has at most "
                                       "one (write others as %23)")
                elif node.url.endswith("#"):
                    report.error(path, f"link target {node.url!r} ends in an empty '#' fragment, which PDF "
                                       "links drop; remove the '#'")
                # nothing to print: the link vanished from the letter, and the sentence round it read wrong
                if not markup.plain(node.children).strip():
                    report.error(path, f"the link to {node.url!r} has no words to show ([]({node.url})); write "
                                       f"them in the brackets ([the form]({node.url})), or <{node.url}> to show "
                                       "the address")
    return cited


def _unknown_part(name: str, parts: list[str]) -> str:
    close = difflib.get_close_matches(name, parts, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"the parts are: {', '.join(parts)}"
    return f"the shared letter has no body part {name!r}; {hint}"


# The classes TeX loads under a house letterhead. The house class is copied beside the
# letters' .tex, where TeX looks first, so one of these names would stand in for that
# class: article.cls made every letter fail with "Option clash for document class article".
CLASSES_UNDER_A_HOUSE_LETTERHEAD = {"letterbatch": "the base class",
                                    "article": "the class the base class loads"}


def _check_letterhead(root: Path, relative: str, report: _Reporter) -> None:
    """A house letterhead: a .cls file in the project folder, whose name TeX can
    take as a class name (it becomes \\documentclass{<stem>})."""
    path = ("letter", "letterhead")
    target = (root / relative).resolve()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*\.cls", Path(relative).name):
        report.error(path, f"{relative!r} must be a LaTeX class file named like house.cls "
                           "(letters, digits and hyphens, then .cls)")
    elif not target.is_relative_to(root.resolve()):
        report.error(path, f"{relative!r} lies outside the project folder {str(root)!r}")
    elif not target.is_file():
        report.error(path, _no_file(relative, target, root))
    elif (stem := Path(relative).stem) in CLASSES_UNDER_A_HOUSE_LETTERHEAD:
        report.error(path, f"a house letterhead needs a name of its own ({stem}.cls is "
                           f"{CLASSES_UNDER_A_HOUSE_LETTERHEAD[stem]}): rename it, for example house.cls")
    elif problem := _not_derived(target, relative):
        report.error(path, problem)


def _not_derived(target: Path, relative: str) -> str | None:
    """Why the house class at ``target`` does not build on letterbatch.cls with the
    batch's options, or None. The build passes the envelope, font, language and medium
    as class options: \\LoadClass{letterbatch} drops them, so a C5 batch had its address
    in the DL window, and its preflight checked that same window and passed."""
    code = "\n".join(re.sub(r"(?<!\\)%.*", "", line)
                      for line in target.read_text(encoding="utf-8", errors="replace").splitlines())
    if re.search(r"\\LoadClassWithOptions\s*\{\s*letterbatch\s*\}", code):
        return None
    # LaTeX's other idiom: each option handed on (\DeclareOption*{\PassOptionsToClass{\CurrentOption}
    # {letterbatch}}, \ProcessOptions), then \LoadClass{letterbatch}; a fixed option handed
    # on (\PassOptionsToClass{serif}{letterbatch}) drops the batch's all the same
    if re.search(r"\\PassOptionsToClass\s*\{\s*\\CurrentOption\s*\}\s*\{\s*letterbatch\s*\}", code):
        return None
    fix = "write \\LoadClassWithOptions{letterbatch}, as in README's \"A letterhead of one's own\""
    if re.search(r"\\LoadClass\s*(\[[^\]]*\])?\s*\{\s*letterbatch\s*\}", code):
        return (f"{relative!r} loads letterbatch with \\LoadClass, which leaves out the options the build "
                f"gives it (the envelope, the font, Welsh, web copies): {fix}")
    return f"{relative!r} does not load letterbatch.cls, so the letters have no letterhead to use: {fix}"


def _no_file(relative: str, target: Path, root: Path) -> str:
    """Why ``relative`` (``target``, not a regular file) cannot be read: a folder, a
    pipe or a device named like one was "no such file", when the user can see it there."""
    if target.exists():
        kind = "a folder" if target.is_dir() else "a pipe or a device"
        return f"{relative!r} is {kind}, not a file: give the file itself (paths are relative to {str(root)!r})"
    return f"no such file: {relative!r} (paths are relative to {str(root)!r})"


def _check_file(root: Path, relative: str, path: tuple, report: _Reporter) -> None:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        report.error(path, f"{relative!r} lies outside the project folder {str(root)!r}")
    elif not target.is_file():
        report.error(path, _no_file(relative, target, root))
    elif target.suffix.lower() not in (".pdf", ".png", ".jpg", ".jpeg"):
        report.error(path, f"{relative!r} is not a PDF, PNG or JPEG file")
    elif problem := (_pdf_image_problem if target.suffix.lower() == ".pdf" else _image_problem)(target, relative):
        report.error(path, problem)


def _pdf_image_problem(target: Path, relative: str) -> str | None:
    """A PDF logo or signature holding an image over Pillow's decompression-bomb
    limit on its first page (the page pdfTeX places), as ``_image_problem`` for a
    PNG: pdfTeX copies it as it is. Read with pikepdf (qpdf), no pixel decoded."""
    import pikepdf
    from PIL import Image

    if not _has_pdf_header(target):
        return f"{relative!r} is not a PDF file: {_what_image_it_is(target, 'PDF')}"
    try:
        with pikepdf.open(target) as pdf:
            if not len(pdf.pages):
                return None
            seen, todo, largest = set(), [pdf.pages[0].obj.get("/Resources")], (0, 0)
            while todo:  # the page's images, and those of the forms it draws (each form once)
                resources = todo.pop()
                xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
                for xobject in (xobjects.values() if isinstance(xobjects, pikepdf.Dictionary) else ()):
                    if not isinstance(xobject, pikepdf.Stream) or xobject.objgen in seen:
                        continue
                    seen.add(xobject.objgen)
                    if xobject.get("/Subtype") == "/Image":
                        size = (int(xobject.get("/Width", 0)), int(xobject.get("/Height", 0)))
                        largest = max(largest, size, key=lambda s: s[0] * s[1])
                    elif xobject.get("/Subtype") == "/Form":
                        todo.append(xobject.get("/Resources"))
    except (pikepdf.PdfError, OSError, ValueError, TypeError):
        return None  # unreadable: pdfTeX names it (compile)
    width, height = largest
    if width * height > Image.MAX_IMAGE_PIXELS:
        return (f"{relative!r} holds an image of {width} x {height} pixels ({width * height / 1e6:.0f} million), "
                f"more than the {Image.MAX_IMAGE_PIXELS / 1e6:.0f} million of Pillow's decompression-bomb limit: "
                "save a smaller copy (it prints 14 to 16 mm high: 1000 pixels a side are plenty)")
    return None


def _has_pdf_header(target: Path) -> bool:
    """Does the file start as a PDF does (its header within the first 1024 bytes, where a
    PDF reader looks for it)? Reads those bytes only: an image may be large."""
    with open(target, "rb") as handle:
        return b"%PDF-" in handle.read(1024)


def _what_image_it_is(target: Path, expected: str) -> str:
    """The fix for a logo or signature whose content is not the kind its name says
    (pdfTeX goes by the name: a JPEG named .png fails in every letter)."""
    from PIL import Image, UnidentifiedImageError

    if expected != "PDF" and _has_pdf_header(target):
        return f"it is a PDF file; name it {target.stem}.pdf"
    suffixes = {"PNG": ".png", "JPEG": ".jpg"}
    try:
        with Image.open(target, formats=[f for f in suffixes if f != expected]) as image:
            return f"it is a {image.format} file; name it {target.stem}{suffixes[image.format]}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return f"save the image as {expected} (its contents are not an image this build reads)"


# TeX's largest length, \maxdimen (16383.99998 pt), in PDF points (bp): no image may be wider
_MAX_BP = 16383.99998 * 72 / 72.27


def _image_problem(target: Path, relative: str) -> str | None:
    """What is wrong with the PNG or JPEG at ``target``, from its header alone (Pillow
    decodes no pixels to open it): more pixels than
    Pillow's decompression-bomb limit (a small file can hold a 30000 x 30000 logo,
    which pdfTeX copies into every letter and every viewer and printer then decodes:
    17 s a page in poppler for a grey one); or larger than TeX can measure at its resolution
    (pdfTeX reads PNG pHYs and JPEG densities; 72 dpi without)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    expected = "PNG" if target.suffix.lower() == ".png" else "JPEG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(target, formats=[expected]) as image:
                width, height = image.size
                dpi = image.info.get("dpi") or (72, 72)
    except Image.DecompressionBombError:  # Pillow refuses to open one over twice its limit
        width = height = None
    except UnidentifiedImageError:
        # not even the start of one (a text file, a JPEG named .png): said here, once, at its
        # line, rather than as libpng's "Not a PNG file" from every letter's compile
        return f"{relative!r} is not a {expected} file: {_what_image_it_is(target, expected)}"
    except (OSError, SyntaxError, ValueError):
        return None  # unreadable: pdfTeX names it, with libpng's or libjpeg's words (compile)
    fix = "save a smaller copy (it prints 14 to 16 mm high: 1000 pixels a side are plenty)"
    if width is None or width * height > Image.MAX_IMAGE_PIXELS:
        size = (f"{width} x {height} pixels ({width * height / 1e6:.0f} million)" if width else
                f"over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels")
        return (f"{relative!r} is {size}, more than the {Image.MAX_IMAGE_PIXELS / 1e6:.0f} million of "
                f"Pillow's decompression-bomb limit: {fix}")
    wide, high = (size / (float(d) if d and float(d) > 0 else 72) * 72 for size, d in zip((width, height), dpi))
    if max(wide, high) > _MAX_BP:
        return (f"{relative!r} is {max(wide, high) / 72 * 0.0254:.1f} m {'wide' if wide >= high else 'high'} "
                f"at its resolution, more than TeX can measure (5.7 m): {fix}")
    return None
