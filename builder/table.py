"""Recipients from a spreadsheet: each row of an .xlsx or .csv becomes one
recipient entry, the same mapping a recipient has in recipients.yaml.

``read`` knows only cells and headers; ``load`` validates the entries exactly
as it validates YAML ones, and reports each problem at its row and column.

* Headers name fields: ``id``, ``name``, ``role``, ``salutation``, any other
  recipient field by its name (``email``, ``your_ref`` ...), ``text.<part>``
  for a part's wording, ``omit`` for parts left out (separated by commas or
  line breaks). A list field is one cell with a line per item (``address``)
  or numbered columns (``address 1``, ``address 2`` ...); Town, Postcode ...
  columns are the address's last lines. ``columns:`` in the YAML maps other
  headers to these names. The header row is the first naming a field (a
  title may stand above it).
* An empty cell means the field is absent. Cells are read as the spreadsheet
  shows them (the cell's number format): 02035130477 stays 02035130477.
* Without an id, one is made from the name (``make_id``).
"""
from __future__ import annotations

import bisect
import csv
import decimal
import difflib
import io
import re
import typing
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

# Excel's built-in short date (format 14) and date and time (22, what typing
# "04/03/2026 15:30" gives) follow the computer's locale; these letters are British,
# so they read as a British office sees them, day first. So do Excel's "Long Date"
# and "Time" (the ribbon's choices, stored as [$-F800]dddd, mmmm dd, yyyy and
# [$-F400]h:mm:ss AM/PM: "the system's long date and time", whatever follows).
_LOCALE_FORMATS = {"mm-dd-yy": "dd/mm/yyyy", "m/d/yy h:mm": "dd/mm/yyyy hh:mm"}
_SYSTEM_FORMATS = {"[$-F800]": "dd mmmm yyyy", "[$-F400]": "hh:mm:ss"}


def _as_shown_here(code: str) -> str:
    return _LOCALE_FORMATS.get(code) or _SYSTEM_FORMATS.get(code[:8].upper(), code)


# A format tagged Welsh (Format Cells, Locale: Welsh, stored as [$-452], Windows' language
# id for Welsh, or [$-cy-GB]) shows months and days in Welsh in Excel ("20 Ionawr 2025");
# xlfmt writes English names whatever the tag, so they are put into Welsh (CLDR's names).
_WELSH_FORMAT = re.compile(r"\[\$[^\]]*-(?:[0-9a-f]*452|cy(?:-gb)?)\]", re.IGNORECASE)
_ENGLISH_MONTHS = ("January February March April May June July August September October November December")
_WELSH_NAMES = dict(zip(
    _ENGLISH_MONTHS.split()
    + "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
    + "Jan Feb Mar Apr Jun Jul Aug Sep Oct Nov Dec".split()
    + "Mon Tue Wed Thu Fri Sat Sun".split(),
    "Ionawr Chwefror Mawrth Ebrill Mai Mehefin Gorffennaf Awst Medi Hydref Tachwedd Rhagfyr".split()
    + ["Dydd Llun", "Dydd Mawrth", "Dydd Mercher", "Dydd Iau", "Dydd Gwener", "Dydd Sadwrn", "Dydd Sul"]
    + "Ion Chwef Maw Ebr Meh Gorff Awst Medi Hyd Tach Rhag".split()
    + "Llun Maw Mer Iau Gwen Sad Sul".split()))
_ENGLISH_NAME = re.compile(r"\b(?:" + "|".join(sorted(_WELSH_NAMES, key=len, reverse=True)) + r")\b")


# A tag that names a locale and no currency ([$-809], [$-en-GB]) prints nothing in Excel;
# xlfmt printed it as a dollar sign ("$01654 767626" for a phone number).
_LOCALE_ONLY = re.compile(r"\[\$-[0-9a-z-]+\]", re.IGNORECASE)


def _without_locale(code: str) -> tuple[str, bool]:
    """A number format without its locale-only tags, and whether it was tagged Welsh."""
    if "[$" not in code:
        return code, False
    return _LOCALE_ONLY.sub("", code), bool(_WELSH_FORMAT.search(code))


class LocalDate(str):
    """A date cell whose format writes month or day names and names no locale
    ("d mmmm yyyy"): Excel writes the names in the computer's language, so the
    letter's language decides. It reads as English; ``welsh`` is the same date
    in Welsh, for a Welsh letter (``in_language``)."""

    def __new__(cls, shown: str, welsh: str) -> "LocalDate":
        cell = super().__new__(cls, shown)
        cell.welsh = welsh
        return cell


def in_language(value, language: str):
    """``value`` as a letter in ``language`` (en or cy) prints it: a
    ``LocalDate`` in that language, anything else as it is."""
    if isinstance(value, LocalDate):
        return value.welsh if language == "cy" else str(value)
    return value


def _items(value: str, separators: str) -> list[str]:
    """A list field's items, one per line of its cell (``omit``: or comma). A date cell
    (``LocalDate``) keeps its Welsh in each item, so a Welsh letter prints its month and
    day names in Welsh there too: split as plain text, a date in an address or
    enclosures cell printed in English in a Welsh letter."""
    items = [item.strip() for item in re.split(separators, value) if item.strip()]
    if not isinstance(value, LocalDate):
        return items
    # the Welsh differs from the English only in its names, which hold no separator:
    # the same items, in the same order
    welsh = [item.strip() for item in re.split(separators, value.welsh) if item.strip()]
    return [LocalDate(english, cymraeg) if cymraeg != english else english
            for english, cymraeg in zip(items, welsh)]


def _in_welsh(shown: str) -> str:
    """``shown`` with English month and day names in Welsh (one pass: a Welsh name is
    never read again)."""
    return _ENGLISH_NAME.sub(lambda m: _WELSH_NAMES[m.group()], shown)


@dataclass(frozen=True)
class Cell:
    """Where a value came from: the spreadsheet row (as numbered there) and header."""

    row: int
    header: str | None


@dataclass
class TableProblem:
    message: str
    row: int | None = None
    header: str | None = None
    index: int | None = None  # the entry's position, for a problem with one row
    warning: bool = False
    why: str | None = None  # a refused cell's reason (Unusable.why): a column failing whole is told apart
    missing: str | None = None  # a required field no column gives, nor any header looks like


@dataclass
class Table:
    entries: list[dict] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # each entry's row number
    cells: list[dict[tuple, Cell]] = field(default_factory=list)  # field path -> cell
    problems: list[TableProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # field -> its (first) column's header
    header_row: int = 0
    columns: list[str | None] = field(default_factory=list)  # each column's header, when a field takes it
    refused: set[int] = field(default_factory=set)  # entries refused whole as read: no recipient's cells

    def cell(self, index: int, path: tuple) -> Cell:
        """The cell a field of entry ``index`` came from (or its row)."""
        cells = self.cells[index]
        for end in range(len(path), 0, -1):
            if path[:end] in cells:
                return cells[path[:end]]
        for end in range(len(path), 0, -1):  # no value there (left empty, or refused): its column
            header = self.headers.get(".".join(str(part) for part in path[:end]))
            if header:
                return Cell(self.rows[index], header)
        return Cell(self.rows[index], None)


NEVER_WORKED_OUT = ("holds a formula whose value was never worked out (the file was not saved by a "
                    "spreadsheet program)")


class Unusable(str):
    """A cell that shows something no letter should print: a spreadsheet
    error (#N/A, #REF! ...) or a formula whose value was never worked out.
    It reads as the cell shows it; a recipient field given one is refused."""

    def __new__(cls, shown: str, why: str) -> "Unusable":
        cell = super().__new__(cls, shown)
        cell.why = why
        return cell


class TableError(Exception):
    """The file cannot be used at all (not found, not UTF-8, no such sheet)."""

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.message, self.row = message, row


def read(path: Path, fields: dict[str, typing.Any], *, sheet: str | None = None,
         columns: dict[str, str] | None = None, data: bytes | None = None) -> Table:
    """The rows of ``path`` as recipient entries.

    ``fields`` maps each recipient field to its kind: "text", "list" or
    "parts" (text.<part>); ``columns`` maps the file's headers to field specs.
    ``data``: the file's bytes, read once by the caller, which hashes the same
    bytes it has read (a file saved meanwhile is not read again).
    """
    merged: list[str] = []
    hidden: list[int] = []
    hidden_columns: list[int] = []
    width: list[int] = []  # the header row's last column, once the entries have found it
    beyond: dict[int, int] = {}  # a column right of it with cells (from 0) -> its first row with one
    sheets: list[str] = []  # the sheet read, then the workbook's others
    headers: list[str] = []  # the header row's cells, once the entries have found it
    if path.suffix.lower() == ".xlsx":
        rows = _xlsx_rows(path, sheet, merged, hidden, width, sheets, data, beyond, hidden_columns)
    else:
        if sheet:
            raise TableError(f"'sheet: {sheet}' is for a workbook (.xlsx); a CSV file has one table")
        rows = _csv_rows(path, data, headers)
    table = _entries(rows, fields, columns or {}, width, text_file=path.suffix.lower() != ".xlsx", beyond=beyond,
                     found=headers)
    _refuse_whole_columns(table, path.name)
    _refuse_merged(table, merged)
    _say_hidden(table, hidden)
    _say_hidden_columns(table, hidden_columns)
    if sheet is None and len(sheets) > 1:  # a "Read me" sheet first, the contacts on the second
        # one cause, one message: it said "no column for 'name'", then for 'address', then for
        # 'salutation', and only the first named the sheets (a field whose header looks misspelt
        # keeps its own message: that sheet may be the right one)
        missing = [problem for problem in table.problems if problem.missing]
        if missing:
            names = [problem.missing for problem in missing]
            listed = repr(names[0]) if len(names) == 1 else \
                ", ".join(repr(name) for name in names[:-1]) + f" and {names[-1]!r}"
            headers_found = ", ".join(h for h in headers if h)
            missing[0].message = (f"no column for the required field{'s' * (len(names) > 1)} {listed}"
                                  + (f"; the headers are: {headers_found}" if headers_found else "")
                                  + f" (in the sheet {sheets[0]!r}, the first; the workbook's sheets are: "
                                    f"{', '.join(sheets)}: name the one with the contacts as 'sheet:' under "
                                    "recipients:)")
            said = {id(problem) for problem in missing[1:]}
            table.problems = [problem for problem in table.problems if id(problem) not in said]
    return table


# ---- reading cells ---------------------------------------------------------------

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW, _CELL, _VALUE, _INLINE, _TEXT, _RUN, _SHARED, _FORMULA, _MERGED, _COLUMNS = (
    _MAIN + tag for tag in ("row", "c", "v", "is", "t", "r", "si", "f", "mergeCell", "col"))
# What a damaged or hand-made file raises from zipfile, zlib, ElementTree (ParseError is a
# SyntaxError) and openpyxl's parts: each becomes one plain message, never a traceback.
_UNREADABLE = (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError, EOFError, SyntaxError, TypeError,
               AttributeError, IndexError, NotImplementedError)


def _xlsx_rows(path: Path, sheet: str | None, merged: list[str] | None = None, hidden: list[int] | None = None,
               width: list[int] | None = None, sheets: list[str] | None = None, data: bytes | None = None,
               beyond: dict[int, int] | None = None, hidden_columns: list[int] | None = None):
    """The rows of a workbook's sheet as (row number, cells shown as text).

    openpyxl reads the workbook's small parts (sheet names, the 1904 flag,
    each style's number format). The sheet, nearly all of a 10,000-row file,
    and the shared strings are streamed here with ElementTree as openpyxl's
    own read-only reader streams them, minus the cell and text objects it
    builds for each (which made a 10,000-row sheet take 4 s). Python's expat
    refuses entity bombs ("billion laughs") and never fetches external ones.
    """
    _refuse_an_ole_file(data[:8] if data is not None else _first_bytes(path, 8), ".xlsx")
    workbook = _Workbook(io.BytesIO(data) if data is not None else path)
    try:
        part = workbook.sheet_part(sheet)
        if sheets is not None:
            shown = workbook.shown_name(sheet)
            sheets += [shown] + [name for name in workbook.sheets if name != shown]
        try:
            with workbook.archive.open(part) as source:
                yield from _sheet_rows(source, workbook, merged, hidden, width, beyond, hidden_columns)
        except _UNREADABLE as exc:
            raise TableError(f"cannot read the sheet {workbook.shown_name(sheet)!r} of this workbook ({_plain(exc)}); "
                             "save it again from Excel or LibreOffice as .xlsx") from None
    finally:
        workbook.archive.close()


# An Office file of before 2007 (.xls), and what Excel saves a workbook with a password as: an
# encrypted package in the same container, which no reader opens without the password
_OLE_SIGNATURE = bytes.fromhex("D0CF11E0A1B11AE1")
_ZIP_SIGNATURE = b"PK\x03\x04"  # an .xlsx (or .ods) is a zip file


def _first_bytes(path: Path, count: int) -> bytes:
    try:
        with path.open("rb") as source:
            return source.read(count)
    except OSError:
        return b""  # the reader that follows says why


def _refuse_an_ole_file(head: bytes, suffix: str) -> None:
    """Said as what the file is, where zipfile said "File is not a zip file" (and the CSV
    reader "not UTF-8")."""
    if head.startswith(_OLE_SIGNATURE):
        raise TableError(
            "this file is an Excel workbook with a password (encrypted) or an old Excel 97-2003 workbook (.xls), "
            f"though its name ends in {suffix}; open it in Excel and save it as .xlsx (Excel Workbook) without "
            "a password (File > Info > Protect Workbook > Encrypt with Password: clear it)"
            + (", or as CSV UTF-8" if suffix == ".csv" else ""))


def _plain(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Workbook:
    """The parts of an .xlsx that a sheet's cells refer to, read by openpyxl."""

    def __init__(self, path: Path | typing.BinaryIO):
        import warnings

        from openpyxl.reader.excel import ExcelReader
        from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE, is_date_format
        from openpyxl.styles.stylesheet import apply_stylesheet
        from openpyxl.utils.datetime import MAC_EPOCH
        from openpyxl.xml.constants import SHARED_STRINGS
        from xlfmt import format_value

        reader = None
        try:
            with warnings.catch_warnings():  # "no default style" and the like: the cells still read
                warnings.simplefilter("ignore")
                reader = ExcelReader(path if hasattr(path, "read") else str(path), read_only=True, data_only=True)
                reader.read_manifest()
                reader.read_workbook()
                apply_stylesheet(reader.archive, reader.wb)
                self.sheets = {}  # worksheet name -> its part in the zip (chart sheets have no cells)
                self.hidden = set()  # sheets the office does not see (hidden, or "very hidden" by a macro)
                for entry, rel in reader.parser.find_sheets():
                    if rel.target in reader.valid_files and "chartsheet" not in rel.Type:
                        self.sheets[entry.name] = rel.target
                        if entry.state in ("hidden", "veryHidden"):
                            self.hidden.add(entry.name)
            book = reader.wb
            self.formats = []  # style index -> number format, as openpyxl's ReadOnlyCell.number_format
            self.welsh = set()  # style indexes whose format was tagged Welsh
            self.by_letter = set()  # date formats that name no locale: names in the letter's language
            for style in book._cell_styles:
                code = style.numFmtId
                shown = BUILTIN_FORMATS.get(code, "General") if code < BUILTIN_FORMATS_MAX_SIZE \
                    else book._number_formats[code - BUILTIN_FORMATS_MAX_SIZE]
                here = _as_shown_here(shown)
                code, welsh = _without_locale(here)
                if welsh:
                    self.welsh.add(len(self.formats))
                elif not _LOCALE_ONLY.search(here) and is_date_format(code):
                    self.by_letter.add(len(self.formats))
                self.formats.append(code)
            self.strings = []  # as openpyxl's read_strings, without building a Text object for each
            strings = reader.package.find(SHARED_STRINGS)
            if strings is not None:
                with reader.archive.open(strings.PartName[1:]) as source:
                    self.strings = _shared_strings(source)
        except _UNREADABLE as exc:
            if reader is not None:
                reader.archive.close()
            raise TableError(f"cannot read this workbook ({_plain(exc)}); save it from Excel or LibreOffice as .xlsx") \
                from None
        self.archive = reader.archive
        self.date1904 = book.epoch == MAC_EPOCH
        self.format_value = format_value

    def sheet_part(self, sheet: str | None) -> str:
        if not self.sheets:
            raise TableError("the workbook has no worksheet")
        if sheet is None:  # the first sheet the office sees (a hidden one holds lookups and the like)
            return self.sheets[self.shown_name(None)]
        if self.shown_name(sheet) not in self.sheets:
            raise TableError(f"the workbook has no sheet {sheet!r}; its sheets are: {', '.join(self.sheets)}")
        return self.sheets[self.shown_name(sheet)]

    def shown_name(self, sheet: str | None) -> str:
        if sheet is not None:
            # Excel's sheet names are one name in any case (it refuses a second "contacts" beside
            # "Contacts", and a formula's 'contacts'!A1 reads it): `sheet: contacts` was "no sheet"
            return next((name for name in self.sheets if name.casefold() == sheet.casefold()), sheet) \
                if sheet not in self.sheets else sheet
        return next((name for name in self.sheets if name not in self.hidden), next(iter(self.sheets)))

    def number(self, text: str, style: int) -> str:
        """A number cell as the spreadsheet shows it under the cell's number
        format. A date or time is a number too: the format shows it as one, as
        in Excel (so 60 is Excel's 29 February 1900 and [h]:mm shows 30:00)."""
        value = float(text) if "." in text or "E" in text or "e" in text else int(text)
        shown = self.formats[style] if style < len(self.formats) else "General"
        try:
            seen = _shown(value, shown) or str(self.format_value(value, shown, date1904=self.date1904))
        except (OverflowError, ValueError):  # a date after 9999, as openpyxl reads it: no letter prints it
            return Unusable("#VALUE!", "holds a date after the year 9999, which Excel shows as #VALUE!")
        except ArithmeticError:  # a number too long for the format (xlfmt's decimal rounding): in full
            return format(decimal.Decimal(text), "f")
        if seen.startswith("#") and seen.strip("#") == "":  # Excel's ######## for a negative date or time
            return Unusable(seen, f"shows {seen}: a negative number under a date or time format, which no "
                                  "calendar shows")
        return self._named(seen, style)

    def _named(self, seen: str, style: int) -> str:
        """``seen`` with its month and day names in the language the format
        names (Welsh), or in the letter's when it names none (``LocalDate``)."""
        if style in self.welsh:
            return _in_welsh(seen)
        if style in self.by_letter:
            welsh = _in_welsh(seen)
            return LocalDate(seen, welsh) if welsh != seen else seen
        return seen

    def date(self, value, style: int) -> str:
        """A cell written as an ISO 8601 date (t="d"), under its number format."""
        shown = self.formats[style] if style < len(self.formats) else "General"
        seen = str(self.format_value(value, shown, date1904=self.date1904))
        return self._named(seen, style)


def _sheet_rows(source, workbook: _Workbook, merged: list[str] | None = None, hidden: list[int] | None = None,
                header_width: list[int] | None = None, beyond: dict[int, int] | None = None,
                hidden_columns: list[int] | None = None):
    """Stream <sheetData>: each <row> once it is complete, then it is dropped
    (memory stays flat whatever the sheet's size). Rows may skip numbers and
    cells may skip columns (Excel leaves empty cells out); both are placed by
    their reference (r="D5"). The ranges of merged cells (<mergeCells>, after
    the rows) go into ``merged``, the numbers of hidden rows into ``hidden``, of hidden columns
    (<cols>, before the rows) into ``hidden_columns``. Cells right of
    the headers are left out: the reader of the rows puts the header row's width into
    ``header_width`` once it has found it (without one, the first non-empty row's); such a
    column with a cell goes into ``beyond`` (from 0), with its first row, to be warned of."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.datetime import from_ISO8601

    strings, number = workbook.strings, workbook.number
    columns: dict[str, int] = {}
    last, width = 0, None
    for _, element in iterparse(source):
        if element.tag != _ROW:
            if element.tag == _MERGED and merged is not None and element.get("ref"):
                merged.append(element.get("ref"))
            elif element.tag == _COLUMNS and hidden_columns is not None and element.get("hidden") in ("1", "true"):
                low, high = int(element.get("min", 0)), int(element.get("max", 0))
                hidden_columns.extend(range(max(low, 1), min(high, 16384) + 1))
            continue
        reference = element.get("r")
        row = _row_number(reference) if reference else last + 1
        values: list = []
        column = 0
        for cell in element:
            if cell.tag != _CELL:
                continue
            reference = cell.get("r")
            if reference:
                letters = reference.rstrip("0123456789")
                column = columns.get(letters) or columns.setdefault(letters, _column_index(letters))
            else:
                column += 1
            kind = cell.get("t", "n")
            if kind == "inlineStr":
                value = _inline_text(cell.find(_INLINE))
                value = _unescape(value) if value else value
            else:
                value = cell.findtext(_VALUE) or None
                if value is None:
                    # a formula whose text is "" (=IF(B2="","",B2)) was worked out: t="str", an empty
                    # <v>, as Excel and LibreOffice save it. Without t="str", a file no spreadsheet
                    # program has saved (a number is never empty)
                    if cell.find(_FORMULA) is not None and kind != "str":
                        value = Unusable("", NEVER_WORKED_OUT)
                elif kind == "e":
                    value = Unusable(value, f"shows the spreadsheet error {value}")
                elif kind == "n":
                    style = cell.get("s")
                    value = number(value, int(style) if style else 0)
                elif kind == "s":
                    value = strings[int(value)]
                elif kind == "b":
                    value = "TRUE" if int(value) else "FALSE"
                elif kind == "d":
                    style = cell.get("s")
                    value = workbook.date(from_ISO8601(value), int(style) if style else 0)
                # "str" (a formula's text) is shown as it is
            if width is not None and column > width:
                if beyond is not None and value is not None and str(value).strip():
                    beyond.setdefault(column - 1, row)
                continue
            if column > len(values):
                values.extend([None] * (column - len(values) - 1))
                values.append(value)
            else:
                values[column - 1] = value
        if hidden is not None and element.get("hidden") in ("1", "true"):
            hidden.append(row)
        element.clear()  # a read row keeps only its empty shell (a few bytes), far less than its entry
        if row <= last:  # openpyxl leaves such a row out without a word
            raise TableError(f"the sheet's rows are out of order (row {row} comes after row {last}); "
                             "save it again from Excel or LibreOffice as .xlsx")
        last = row
        if width is None and header_width:
            width = header_width[0]
        if width is None and header_width is None and any(v is not None and str(v).strip() for v in values):
            # the header row: a cell beyond its last header has no field (the
            # entries ignore it), and reading it would make every row that long
            width = max(i for i, v in enumerate(values, 1) if v is not None and str(v).strip())
        elif width is not None and len(values) > width:  # the row read before the width was known
            if beyond is not None:
                for position, value in enumerate(values[width:], width):
                    if value is not None and str(value).strip():
                        beyond.setdefault(position, row)
            del values[width:]
        yield row, values


def _row_number(reference: str) -> int:
    try:
        return int(reference)
    except ValueError:
        pass
    try:
        number = float(reference)  # "5.0", as some writers put it; openpyxl accepts it too
    except ValueError:
        number = 0.5
    if not number.is_integer():
        raise TableError(f"the sheet has a row numbered {reference!r}; save it again from Excel or "
                         "LibreOffice as .xlsx")
    return int(number)


def _column_index(letters: str) -> int:
    """A column's number from its letters: A is 1, XFD (Excel's last) 16384."""
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - 64 if "A" <= letter <= "Z" else 1 << 20
    if not 1 <= index <= 16384:
        raise TableError(f"the sheet has a cell in column {letters!r}, which is not a column of a workbook (A to "
                         "XFD); save it again from Excel or LibreOffice as .xlsx")
    return index


# A contact list of 10,000 rows holds well under 100,000 different texts; a
# workbook claiming millions (a few hundred KB compressed) would take GBs.
MAX_SHARED_STRINGS = 1_000_000

# Excel writes a character XML cannot hold (a carriage return) as _xHHHH_, and
# a text that happens to read "_x000D_" as _x005F_x000D_.
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _unescape(text: str) -> str:
    if "_x" in text:
        text = _ESCAPED.sub(lambda m: chr(int(m[1], 16)), text)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _shared_strings(source) -> list[str]:
    from xml.etree.ElementTree import iterparse

    strings = []
    for _, element in iterparse(source):
        if element.tag == _SHARED:
            strings.append(_unescape(_inline_text(element)))
            element.clear()
            if len(strings) > MAX_SHARED_STRINGS:
                raise TableError(f"the workbook holds more than {MAX_SHARED_STRINGS:,} different texts; "
                                 "copy the contacts into a new workbook and save that")
    return strings


def _inline_text(node) -> str | None:
    """An inline or shared string's text: its <t>, then each rich-text run's
    <t> (as openpyxl's Text.content; phonetic guides, <rPh>, are not part of it)."""
    if node is None:
        return None
    if len(node) == 1 and node[0].tag == _TEXT:  # plain text, as nearly every cell is
        return node[0].text or ""
    parts = []
    for child in node:
        if child.tag == _TEXT:
            parts.append(child.text or "")
        elif child.tag == _RUN:
            parts.append(child.findtext(_TEXT) or "")
    return "".join(parts)


def _shown(value, style: str) -> str | None:
    """The two commonest cases without the general formatter (10,000 rows of
    phone numbers): a whole number in General or padded with zeros ("00000")."""
    # up to 15 digits, all a spreadsheet keeps: in full, never 4.47701E+11 (Excel's General
    # switches to that past 11 digits, which a letter must not print for a phone number)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or abs(value) >= 1e15:
        return None
    # Text ("@"): a number typed before the cell was formatted Text, or pasted into it, stays a
    # number, which Excel shows as General would (xlfmt printed 4.47701E+11)
    if style in ("General", "@"):
        return str(int(value))
    if style and style.strip("0") == "" and value >= 0:
        return str(int(value)).zfill(len(style))
    return None


# What Excel (#N/A ...) and LibreOffice (Err:502 ...) write into a CSV file for a
# cell that shows an error: CSV has no error type, so the error arrives as text.
_CSV_ERROR = re.compile(r"#(?:NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A|GETTING_DATA|SPILL!|CALC!|FIELD!|"
                        r"BLOCKED!|CONNECT!|UNKNOWN!|BUSY!|PYTHON!)|Err:\d{3}")


def _csv_cell(value: str) -> str | None:
    if value == "":
        return None
    if "\r" in value:  # a line break inside a quoted cell, saved by Windows as CR LF: a line break
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if _CSV_ERROR.fullmatch(value.strip()):
        return Unusable(value.strip(), f"shows {value.strip()}, a spreadsheet error saved into the CSV file")
    return value


def _csv_rows(path: Path, data: bytes | None = None, headers: list[str] | None = None):
    """The rows of a CSV file as (row number, cells). ``headers``: the header row's cells, which
    the reader of the rows puts in once it has found them (to name a column in a message)."""
    raw = path.read_bytes() if data is None else data
    if raw.startswith(_ZIP_SIGNATURE):  # decoded as text, it was "not UTF-8 (byte 0xC7)"
        raise TableError("this file is a workbook (an Excel .xlsx, a zip file), not a CSV text file, though its "
                         "name ends in .csv; rename it to .xlsx, or save it from Excel as CSV UTF-8")
    _refuse_an_ole_file(raw[:8], ".csv")
    not_utf8 = None
    try:
        # Excel's "Unicode Text" is UTF-16 with its byte order mark: that says what it is
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # read as what it most likely is, one character a byte, only to find the spreadsheet's
        # row of the byte: a quoted cell above it holding line breaks takes more than one line
        not_utf8, text = exc, raw.decode("cp1252", errors="replace")
    if "\x00" in text:
        raise TableError("this file holds NUL bytes: it is not a CSV text file (save it as CSV UTF-8)")
    first, *rest = re.split(r"\r\n|\r|\n", text, maxsplit=1)  # "CSV (Macintosh)" ends lines in CR alone
    start, whole = 1, text
    hint = re.fullmatch(r"sep=(.)", first)  # Excel's own line naming the separator ("sep=;"): not a row
    if hint:
        delimiter, text, start = hint.group(1), rest[0] if rest else "", 2
    else:
        # the separator that makes the most columns of the header row: a ';'-separated file whose
        # header holds a comma ("Note, optional") is still ';'-separated (ties: ',' first). A title
        # typed above the headers ("Members list") has no separator: the first line with one decides
        delimiter = ","
        for line in re.split(r"\r\n|\r|\n", text, maxsplit=TITLE_ROWS + 1)[:TITLE_ROWS + 1]:
            try:
                columns = {d: len(next(csv.reader([line], delimiter=d), [])) for d in ",;\t"}
            except csv.Error:
                continue
            if max(columns.values()) > 1:
                delimiter = max(columns, key=columns.get)
                break
    if not_utf8 is not None:
        byte = raw[not_utf8.start]
        seen = bytes([byte]).decode("cp1252", errors="replace")
        row, line = _row_of_offset(whole, not_utf8.start, delimiter, start)
        where = f" (line {line} of the file)" if line != row else ""
        raise TableError(
            f"this CSV file is not UTF-8 (byte 0x{byte:02X}, {seen!r} in Windows-1252){where}: it was probably "
            "saved as Excel's \"CSV (Comma delimited)\". Save it as \"CSV UTF-8 (Comma delimited)\" (in "
            "LibreOffice: character set \"Unicode (UTF-8)\")", row)
    # strict: a quote left open (typed by hand, or cut off) ran on through the rows below it,
    # which became one cell of a letter that was still built, and the next recipient vanished
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number, lines_read = start - 1, 0
    try:
        for row in reader:
            number += 1
            yield number, [_csv_cell(value) for value in row]
            lines_read = reader.line_num
    except csv.Error as exc:
        raise _bad_quote(text, lines_read, delimiter, number + 1, start, headers or [], exc) from None


def _row_of_offset(text: str, offset: int, delimiter: str, start: int) -> tuple[int, int]:
    """The row (as the spreadsheet numbers it) and the line of the file holding ``text[offset]``.
    The row was the line: one of a row below an address cell with line breaks was a row too far."""
    lines = io.StringIO(text, newline="").readlines()
    line, reached = 0, 0
    for line, content in enumerate(lines, start=1):
        reached += len(content)
        if reached > offset:
            break
    # the rows start after Excel's "sep=;" line, when there is one (start 2)
    reader = csv.reader(io.StringIO("".join(lines[start - 1:]), newline=""), delimiter=delimiter)
    row = start - 1
    try:
        for _ in reader:
            row += 1
            if reader.line_num + start - 1 >= line:
                return row, line
    except csv.Error:
        pass
    return line, line  # a quote that never closes: the line is all there is to go by


def _bad_quote(text: str, lines_read: int, delimiter: str, row: int, start: int, headers: list[str],
               exc: csv.Error) -> TableError:
    """csv's strict error, said in the file's terms: the row and column where the quote that
    went wrong opened (csv names the place it noticed, rows later), and the fix."""
    lines = io.StringIO(text, newline="").readlines()
    record = "".join(lines[lines_read:])
    column, ran_on = _quoted_cell_gone_wrong(record, delimiter)
    if column is None:  # not a quote (csv's other errors): still one plain line
        return TableError(f"this CSV file cannot be read here ({exc}); save it again from the spreadsheet as "
                          "CSV UTF-8", row)
    header = headers[column] if column < len(headers) and headers[column] else None
    cell = f"column {_column_name(column + 1)}" + (f" ({header!r})" if header else "")
    line = lines_read + start  # a text editor's line, where a quoted cell above holds line breaks
    where = f" (line {line} of the file)" if line != row else ""
    if ran_on:
        return TableError(
            f"a double quote opens the cell in {cell}{where} and is never closed, so the text after it, the rows "
            "below too, would be read into that one cell; close the quote after the cell's text (a quote inside "
            "a cell is written twice: \"\")", row)
    return TableError(
        f"the cell in {cell}{where} has text after its closing double quote; close the quote after the "
        "cell's text, or write a quote inside the cell twice (\"\")", row)


def _quoted_cell_gone_wrong(record: str, delimiter: str) -> tuple[int | None, bool]:
    """The column (from 0) of the first quoted cell of ``record`` (a row's text, and all after
    it) that csv could not end, and whether its quote ran on (the text it closed on opens a
    later cell: ',"Dear Bob', or the file ended inside it) rather than being followed by text
    ('"Dear Ann" x')."""
    column, at, end = 0, 0, len(record)
    while at < end:
        if record[at] == '"':
            opened = at
            at += 1
            while True:
                at = record.find('"', at)
                if at < 0:
                    return column, True  # the file ended inside the quote
                if record.startswith('""', at):
                    at += 2  # a quote inside the cell, written twice
                    continue
                break
            after = record[at + 1:at + 2]
            if after not in (delimiter, "\r", "\n", ""):
                return column, record[at - 1] in (delimiter, "\n", "\r") and at - 1 > opened
            at += 1
        while at < end and record[at] not in (delimiter, "\r", "\n"):
            at += 1
        if at >= end or record[at] != delimiter:
            return None, False  # the row ended: its quotes were whole
        column, at = column + 1, at + 1
    return None, False


# ---- rows -> entries -----------------------------------------------------------------

# How far down a title ("Contacts, March 2026") and notes above the headers may reach
TITLE_ROWS = 10


def _header_first(rows, fields: dict[str, str], columns: dict[str, str]):
    """The rows from the header row on. The headers are the first row with a cell naming a
    field: an office's sheet often has a title and a blank row above them. Without one in the
    first rows, the first non-empty row (whose headers are then said to name no field)."""
    mapped = {key.strip().lower() for key in columns}
    above = []
    for number, values in rows:
        texts = [str(v).strip() for v in values if v is not None and str(v).strip()]
        if not texts:
            continue
        if any(text.lower() in mapped or _spec(text, fields) for text in texts):
            yield number, values  # the title above it is not read
            break
        above.append((number, values))
        if len(above) > TITLE_ROWS:
            break
    else:
        yield from above
        return
    if above and len(above) > TITLE_ROWS:
        yield from above
    yield from rows


def _entries(rows, fields: dict[str, str], columns: dict[str, str], width: list[int] | None = None,
             text_file: bool = False, beyond: dict[int, int] | None = None,
             found: list[str] | None = None) -> Table:
    """``text_file``: a CSV, where a row with more cells than the header row is a value
    holding the separator, unquoted (``_wider_than_the_headers``). ``beyond``: the columns
    right of the header row's last with cells, and the first row of each, which a sheet's
    reader leaves out of the rows (filled in by the time the rows are read). ``found``: the
    header row's cells are put in it, for the reader of the rows to name a column by."""
    table = Table()
    header_row, headers = None, []
    headless: dict[int, int] = {}  # a column with cells but no header -> its first row with one
    for number, values in _header_first(iter(rows), fields, columns):
        if header_row is None:
            if any(v is not None and str(v).strip() for v in values):
                header_row, headers = number, [str(v).strip() if v is not None else "" for v in values]
                specs = _specs(headers, fields, columns, table, number)
                table.header_row = number
                if found is not None:
                    found[:] = headers
                if width is not None:
                    width.append(max(i for i, v in enumerate(values, 1) if v is not None and str(v).strip()))
                table.columns = [header if spec else None for spec, header in zip(specs, headers)]
                for spec, header in zip(specs, headers):
                    if spec:
                        table.headers.setdefault(spec[0] if spec[1] != "part" else f"text.{spec[2]}", header)
            continue
        cells = [v.strip() if isinstance(v, str) and not isinstance(v, (Unusable, LocalDate)) else v for v in values]
        for position, value in enumerate(cells[:len(headers)]):
            if not headers[position] and value:
                headless.setdefault(position, number)
        past = [value for value in cells[len(headers):] if value or isinstance(value, Unusable)]
        if not any(_holds(value) for value, spec in zip(cells, specs) if spec) and not (past and text_file):
            # an empty row: nothing in a column a field takes. A lookup's #N/A filled down past the
            # data in a column no letter uses made each such row a recipient missing every field
            continue
        if _repeats_the_headers(cells, headers, specs):
            table.problems.append(TableProblem(
                "this row repeats the column headings (a second export pasted below the first?), so it is "
                "no recipient; delete it", number, None, len(table.entries)))
            table.refused.add(len(table.entries))
            table.entries.append({"id": f"row-{number}"})  # its cells are headings: no letter is made of them
            table.rows.append(number)
            table.cells.append({})
            continue
        entry: dict = {}
        where: dict[tuple, Cell] = {}
        numbered: dict[str, list] = {}
        if past and text_file:
            table.problems.append(_wider_than_the_headers(number, len(headers), past[0], len(table.entries)))
        for position, value in enumerate(cells):
            if position >= len(specs) or specs[position] is None or not (value or isinstance(value, Unusable)):
                continue
            spec, header = specs[position], headers[position]
            if isinstance(value, Unusable):
                table.problems.append(TableProblem(
                    f"the cell {value.why}; correct it in the spreadsheet or type the value instead",
                    number, header, len(table.entries), why=value.why))
                continue
            name = spec[0]
            if spec[1] == "item":
                numbered.setdefault(name, []).append((spec[2], value, header))
            elif spec[1] == "part":
                _put_text(entry.setdefault("text", {}), spec[2], spec[3], value, where, ("text", spec[2]),
                          Cell(number, header), table, len(table.entries))
            elif spec[1] == "list":
                entry[name] = _items(value, r"[\n,;]+" if name == "omit" else r"\r?\n")
                where[(name,)] = Cell(number, header)
            else:
                _put_text(entry, name, spec[2], value, where, (name,), Cell(number, header), table,
                          len(table.entries))
        for name, items in numbered.items():
            items.sort(key=lambda item: item[0])
            entry.setdefault(name, [])
            for n, value, header in items:
                if n >= ADDRESS_AFTER and _plain_line(value) in map(_plain_line, entry[name]):
                    continue  # a Postcode column kept for sorting, the postcode already in the address cell
                where[(name, len(entry[name]))] = Cell(number, header)
                entry[name].append(value)
            where.setdefault((name,), Cell(number, items[0][2]))
        table.entries.append(entry)
        table.rows.append(number)
        table.cells.append(where)
    if header_row is None:
        raise TableError("the file has no rows: the first row should hold the column headers")
    for position, row in sorted({**(beyond or {}), **headless}.items()):  # an address line typed under no header
        table.problems.append(TableProblem(
            f"column {_column_name(position + 1)} has no header, so its cells (row {row} first) are not read; "
            "give it a header (address 2, text.<part> ...) or delete them", header_row, warning=True))
    _derive_ids(table)
    return table


def _refuse_whole_columns(table: Table, name: str) -> None:
    """A column whose every row was refused for the same reason is a problem of the file, not of
    each recipient: one message for it (a program wrote the file with formulas and no spreadsheet
    ever worked them out; a column's formula gives #REF! in every row), which stops the build as
    a problem of the shared part does, where 1,500 rows said it twice each and a build deleted the
    letters built before (an invalid recipient loses its letter)."""
    rows = len(table.entries) - len(table.refused)
    if rows < 2:  # one row alone: its recipient's problem, as it always was
        return
    failing: dict[tuple[str, str], list[TableProblem]] = {}
    for problem in table.problems:
        if problem.why and problem.header and problem.index is not None:
            failing.setdefault((problem.why, problem.header), []).append(problem)
    whole: dict[str, list[str]] = {}  # reason -> the columns failing whole for it
    for (why, header), problems in failing.items():
        if len({problem.index for problem in problems}) == rows:
            whole.setdefault(why, []).append(header)
            said = {id(problem) for problem in problems}
            table.problems = [problem for problem in table.problems if id(problem) not in said]
    for why, headers in whole.items():
        named = (f"column {headers[0]!r}" if len(headers) == 1 else
                 "columns " + ", ".join(repr(h) for h in headers[:-1]) + f" and {headers[-1]!r}")
        if why == NEVER_WORKED_OUT:
            what = ("holds a formula whose value was never worked out: the file was written by a program and "
                    f"never saved by a spreadsheet program. Open {name} in Excel or LibreOffice and save it "
                    "(that works the formulas out), or have the program write the values instead of formulas")
        else:
            what = (f"{why}: correct the column in the spreadsheet (a formula filled "
                    "down it that goes wrong for every row?)")
        table.problems.append(TableProblem(
            f"every one of the {rows} rows of {named} {what}", table.header_row,
            headers[0] if len(headers) == 1 else None))


def _holds(value) -> bool:
    """Does a cell hold anything (an error cell holds its error)?"""
    return bool(value) or isinstance(value, Unusable)


def _repeats_the_headers(cells: list, headers: list[str], specs: list) -> bool:
    """Is this row the header row again (a second export pasted below the first)? Each cell a
    field takes that holds anything holds its column's header, and two do (one, in a file
    with one such column): a recipient named "Name" at "Address" is none."""
    taken = [(str(value), header) for value, header, spec in zip(cells, headers, specs) if spec and _holds(value)]
    return len(taken) >= min(2, sum(1 for spec in specs if spec)) > 0 and \
        all(_plain_line(value) == _plain_line(header) for value, header in taken)


def _wider_than_the_headers(row: int, headers: int, first: str, index: int) -> TableProblem:
    """A CSV row with a cell past the header row's last: a value holding the separator,
    saved unquoted (typed by hand, or by a program), whose parts moved every later cell
    one column on (the address in the salutation's column) while the last was read by no
    column; that letter is not built."""
    return TableProblem(
        f"this row has cells past the last column of the header row ({headers} columns), from {str(first)!r} "
        "on: a value holding the file's separator (a comma: 'Chair, Friends of the Library') must be in "
        "double quotes, as a spreadsheet saves it, or every later cell of the row is read in the wrong "
        "column; put that value in quotes", row, None, index)


def _column_name(number: int) -> str:
    """A column's letters, as the spreadsheet names it (1 is A, 28 is AB)."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _say_hidden(table: Table, hidden: list[int]) -> None:
    """Rows hidden in the sheet (filtered out, most often) are recipients too: said once,
    so a filtered list of 20 never becomes 500 letters unnoticed."""
    rows = sorted(set(hidden) & set(table.rows))
    if rows:
        shown = ", ".join(map(str, rows[:5])) + (f" ... ({len(rows)} in all)" if len(rows) > 5 else "")
        table.problems.append(TableProblem(
            f"row{'s' if len(rows) > 1 else ''} {shown} {'are' if len(rows) > 1 else 'is'} hidden in the sheet "
            "(filtered out?) and still get{0} a letter; to leave them out, delete the rows (or copy the rows "
            "you see into a new sheet)".format("" if len(rows) > 1 else "s"), rows[0], warning=True))


def _say_hidden_columns(table: Table, hidden: list[int]) -> None:
    """A hidden column a field takes (an old address line, a note hidden while the sheet was
    tidied) still goes into every letter, unseen by whoever checks the sheet: said once, as
    hidden rows are. One no field takes is not read anyway."""
    taken = [(column, table.columns[column - 1]) for column in sorted(set(hidden))
             if column <= len(table.columns) and table.columns[column - 1]]
    if taken:
        shown = ", ".join(f"{_column_name(column)} ({header!r})" for column, header in taken)
        table.problems.append(TableProblem(
            f"column{'s' if len(taken) > 1 else ''} {shown} {'are' if len(taken) > 1 else 'is'} hidden in the "
            "sheet and still read into the letters; unhide "
            + ("them to check their cells, or map each" if len(taken) > 1 else "it to check its cells, or map it")
            + " under columns: to ~ to leave it out", table.header_row, warning=True))


def _refuse_merged(table: Table, merged: list[str]) -> None:
    """Merged cells show one value across several cells, but only the first holds it: the
    others are empty to every reader. A merged header would leave the columns under it
    without a field, a merged cell in a row would give the next recipients nothing where
    the sheet shows them a value. Either is refused where it stands, never read silently."""
    if not merged:
        return
    from openpyxl.utils.cell import range_boundaries

    index_of = {row: index for index, row in enumerate(table.rows)}
    for ref in merged:
        try:
            first_col, first_row, last_col, last_row = range_boundaries(ref)
        except (ValueError, TypeError):
            continue
        first = f"{_column_name(first_col)}{first_row}"
        if first_row <= table.header_row <= last_row and first_col <= len(table.columns) \
                and table.columns[first_col - 1] and last_col > first_col:
            table.problems.append(TableProblem(
                f"the header {table.columns[first_col - 1]!r} is merged across {ref}, so the columns under it have "
                "no header and would not be read; unmerge it and give each column its own header "
                "(address 1, address 2 ...)", table.header_row, table.columns[first_col - 1]))
        start = bisect.bisect_left(table.rows, max(first_row, table.header_row + 1))
        for row in table.rows[start:bisect.bisect_right(table.rows, last_row)]:  # a range may reach row 1,048,576
            for column in range(first_col, min(last_col, len(table.columns)) + 1):
                if (row, column) != (first_row, first_col) and table.columns[column - 1]:
                    table.problems.append(TableProblem(
                        f"the cell is part of the merged cells {ref}, whose value stands in {first} only; "
                        "unmerge them and type the value in each cell", row, table.columns[column - 1],
                        index_of[row]))


def _put_text(target: dict, key: str, language: str | None, value: str, where: dict, path: tuple,
              cell: Cell, table: Table, index: int) -> None:
    """A text cell: plain (``salutation``) or in one language (``salutation.cy``,
    gathered into {en: ..., cy: ...} as in the YAML)."""
    if language is None:
        if isinstance(target.get(key), dict):
            return _both(table, path, plain=cell, by_language=where[path], languages=list(target[key]),
                         index=index)
        target[key] = value
        where[path] = cell
        return
    texts = target.setdefault(key, {})
    if not isinstance(texts, dict):
        plain, where[path] = where[path], cell  # the field's later errors (no Welsh text ...) are this one
        return _both(table, path, plain=plain, by_language=cell, languages=[language], index=index)
    texts[language] = value
    where[path + (language,)] = cell
    where.setdefault(path, cell)


def _both(table: Table, path: tuple, *, plain: Cell, by_language: Cell, languages: list, index: int) -> None:
    """One message, at the by-language column, for a text given both ways: a bilingual row of an
    office's `Salutation` and `Salutation CY` was told this, and then, at the other column, that it
    had no Welsh text, to be given in the very column it had filled."""
    field = ".".join(path)
    other = "cy" if languages == ["en"] else "en"
    named = {"en": "English", "cy": "Welsh"}[other]
    table.problems.append(TableProblem(
        f"{field} is given both as one text (column {plain.header!r}) and by language (column "
        f"{by_language.header!r}); leave one of the two cells empty, or, if {plain.header!r} holds the "
        f"{named} text, map it under columns: ({plain.header}: {field}.{other})",
        by_language.row, by_language.header, index))


# Columns an office keeps an address's last lines in ("Address 1, Address 2, Town, Postcode"):
# the address's lines too, in the order of their columns, after those numbered. Ignored
# with a warning, they left every letter without its town and postcode.
# (not "Region" or "District": an office's sales region is no address line)
ADDRESS_PARTS = {"town", "posttown", "city", "towncity", "county", "postcode", "postalcode", "zip", "zipcode",
                 "country", "street"}
ADDRESS_AFTER = 1_000_000


def _plain_line(line: str) -> str:
    return re.sub(r"\s+", "", line).lower()


def _specs(headers: list[str], fields: dict[str, str], columns: dict[str, str], table: Table, row: int):
    """What each column holds: (field, "value" | "list" | "item", n) or (text, "part", name)."""
    by_header = {k.strip().lower(): v for k, v in columns.items()}
    specs, unused, seen = [], [], {}
    for header in headers:
        if not header:
            specs.append(None)
            continue
        mapped = by_header.get(header.lower())
        if mapped is None and header.lower() in by_header:
            # `Phone: ~`: a column the office keeps for itself, not for the letters; it
            # warned on every build (and on every rebuild of watch), and could not be silenced
            specs.append(None)
            continue
        spec = _spec(mapped if mapped is not None else header, fields)
        if spec is None and mapped is None and re.sub(r"[\W_]+", "", header.lower()) in ADDRESS_PARTS \
                and fields.get("address", "").startswith("list"):
            spec = ("address", "item", ADDRESS_AFTER + len(specs))  # after 'address 1', 'address 2' ...
        if spec is None:
            if mapped is not None:
                table.problems.append(TableProblem(
                    f"columns: {header!r} maps to {mapped!r}, which is not a field; use one of: "
                    f"{', '.join(sorted(fields))}, '<list field> 1', text.<part>", row, header))
            else:
                unused.append(header)
            specs.append(None)
            continue
        key = spec[:1] + spec[2:]
        if key in seen:
            fix = (f"; for the lines of one {spec[0]}, name them '{spec[0]} 1', '{spec[0]} 2' ..."
                   if spec[1] == "list" else "; keep one, or map the other under columns: to another field")
            table.problems.append(TableProblem(
                f"two columns give the same field: {seen[key]!r} and {header!r}{fix}", row, header))
        seen[key] = header
        specs.append(spec)
    # a mapping whose header the file lacks (misspelt, or renamed in the sheet) would leave
    # its field to the shared text without a word
    found = {header.lower() for header in headers if header}
    for key, mapped in columns.items():
        if key.strip().lower() not in found and mapped is not None:  # ~: nothing is lost without it
            table.problems.append(TableProblem(
                f"columns: {key!r} names no column (its value is not used); the headers are: "
                f"{', '.join(h for h in headers if h)}", row, warning=True))
    for field_name, kind in fields.items():
        if kind.endswith("required") and field_name != "id" and not any(s and s[0] == field_name for s in specs):
            close = difflib.get_close_matches(field_name, [h.lower() for h in unused], n=1)
            hint = (f"; is it {close[0]!r}? rename that header or map it under columns:" if close
                    else f"; the headers are: {', '.join(h for h in headers if h)}")
            table.problems.append(TableProblem(f"no column for the required field {field_name!r}{hint}", row,
                                               missing=None if close else field_name))
    postal = [h for h in unused if _postal_looking(h)]
    if postal and any(spec and spec[0] == "address" for spec in specs):
        # the town and postcode taken, a first line under a header no field takes ("Address (home)",
        # "House Name/Number", "Locality") would build letters with half an address: refused, not
        # only warned of
        if len(postal) == 1:
            table.problems.append(TableProblem(
                f"the column {postal[0]!r} looks like part of the address, but no field takes it; name it "
                "'address 1', 'address 2' ... in the order of the lines, or map it under columns: (to ~ if it is no "
                "line of the address)", row, postal[0]))
        else:
            table.problems.append(TableProblem(
                f"the columns {', '.join(map(repr, postal))} look like parts of the address, but no field takes "
                "them; name them 'address 1', 'address 2' ... in the order of the lines, or map each under "
                "columns: (to ~ one that is no line of the address)", row))
        unused = [h for h in unused if h not in postal]
    if unused:
        names = ", ".join(repr(h) for h in unused)
        squeezed = {f.replace("_", ""): f for f in fields}  # "E-mail", "Your ref." -> email, your_ref
        meant = []
        for header in unused:
            close = difflib.get_close_matches(re.sub(r"[\W_]+", "", header.lower()), squeezed, n=1, cutoff=0.8)
            if close:
                meant.append(f"is {header!r} {squeezed[close[0]]!r}?")
        hint = f"{' '.join(meant)} rename the header, or " if meant else ""
        table.problems.append(TableProblem(
            f"column{'s' if len(unused) > 1 else ''} {names} not used (no field has that name; {hint}map it under "
            "columns: to use it, or to ~ to leave it out without this warning)", row, warning=True))
    return specs


# Headers that hold "address" but no postal line: an e-mail or web address, an IP address, the
# addressee; and a company's or a building's phone or e-mail
_NOT_POSTAL = re.compile(r"e-?mail|web|url|internet|\bip\b|addressee|phone|\btel\b|fax|mobile", re.IGNORECASE)
# Headers an office keeps a line of the address under, other than the address's last lines
# (ADDRESS_PARTS, taken as they are): as named, not taken, the letter lost that line. A sales
# "Region" or "District" is no line of it: mapped to ~, it is left out without a word
_POSTAL_WORDS = re.compile(r"\b(?:house|building|flat|apartment|premises|street|road|locality|village|district|"
                           r"region|town|city|county|post\s*code|company|organi[sz]ation)s?\b", re.IGNORECASE)


def _postal_looking(header: str) -> bool:
    """Does ``header`` look like a line of the postal address ("Address (home)", "Home
    address", "Postal address", "Street address", "Addr 1", "House Name/Number", "Locality",
    "Company")? Taken for none, beside a town and postcode that are, the letter went out with
    part of its address."""
    return ("addr" in re.sub(r"[\W_]+", "", header.lower()) or bool(_POSTAL_WORDS.search(header.replace("_", " ")))) \
        and not _NOT_POSTAL.search(header)


def _spec(text: str, fields: dict[str, str]):
    name = re.sub(r"[\s-]+", "_", text.strip().lower())
    language = None
    bilingual = re.fullmatch(r"(.+)\.(en|cy)", name)
    if bilingual and (bilingual.group(1) in fields or bilingual.group(1).startswith("text.")):
        name, language = bilingual.groups()  # salutation.cy, text.intro.cy: a text in that language
        text = text.strip()[:-3]
    if name.startswith("text.") and len(name) > 5:
        return ("text", "part", text.strip()[5:].strip(), language)
    kind = fields.get(name, "").split()[0] if name in fields else None
    if kind == "list" and language is None:
        return (name, "list")
    if kind == "text":
        return (name, "value", language)
    match = re.fullmatch(r"(.+?)(?:_?line)?_?(\d+)", name)  # address 1, address_2, Address Line 3
    if match and fields.get(match.group(1), "").startswith("list"):
        return (match.group(1), "item", int(match.group(2)))
    return None


# Latin letters that are not a letter plus an accent, so NFKD leaves them whole and the
# ASCII step dropped them: "Łucja Żak" was ucja-zak, "Øystein" ystein (and ß's capital, ẞ,
# as a name in capitals writes it: "GROẞ" was gro).
_LETTERS_WITHOUT_DECOMPOSITION = str.maketrans({
    "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "Ð": "D", "ð": "d",
    "Þ": "Th", "þ": "th", "ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe",
    "Ħ": "H", "ħ": "h", "Ŧ": "T", "ŧ": "t", "ı": "i", "Ŀ": "L", "ŀ": "l", "Ŋ": "N", "ŋ": "n"})


def make_id(name: str) -> str:
    """A recipient id from a name: letters without accents, lower case, other
    characters as hyphens, at most 64 ("Dr Siân O'Brien" -> "dr-sian-o-brien",
    "Łucja Żak" -> "lucja-zak")."""
    plain = unicodedata.normalize("NFKD", name.translate(_LETTERS_WITHOUT_DECOMPOSITION))
    plain = plain.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    return slug[:64].rstrip("-")


def _derive_ids(table: Table) -> None:
    """Ids for rows without one, from the name, in row order: the second
    "Jo Bloggs" is jo-bloggs-2. Ids given in the file are never taken."""
    from .schema import read_by_tex

    taken = {str(e["id"]) for e in table.entries if e.get("id")}
    for index, entry in enumerate(table.entries):
        if entry.get("id"):
            continue
        base = make_id(str(entry.get("name") or "")) or f"row-{table.rows[index]}"
        if read_by_tex(base):
            base = f"r-{base}"[:64].rstrip("-")  # a name TeX reads a file by (schema): never an id made here
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            suffix = f"-{n}"
            candidate = base[:64 - len(suffix)].rstrip("-") + suffix
        taken.add(candidate)
        entry["id"] = candidate
