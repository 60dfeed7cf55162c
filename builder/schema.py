"""The shape of recipients.yaml, as typed models (pydantic).

The models check each value on its own (types, required fields, unknown keys,
URL schemes, identifiers); ``load`` adds the checks that span the file
(citations, part names, duplicate ids) and the line numbers. The JSON Schema
that editors use is generated from these same models (``json_schema``).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints,
                      WithJsonSchema)

from . import latex
from .markup import CITE_KEY

# Control characters never belong in a letter. One-line fields also refuse
# line breaks and tabs; body text (Prose) keeps them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Longest text each kind of field takes: far above any real letter, low enough
# that a pasted document or a runaway value is caught here, before TeX.
LINE_MAX = 300       # a name, role, address line, salutation, title ...
PROSE_MAX = 20_000   # one body part (about eight pages of text)
URL_MAX = 2_000
EMAIL_MAX = 254      # RFC 5321
NAME_MAX = 64        # ids, part names, reference keys

# The same rules as JSON Schema patterns (ECMA 262 and Python ``re`` alike), so
# an editor refuses what the build refuses. Text fields also accept a number or
# true/false: an editor's YAML 1.2 reads an unquoted 02035130477 as a number,
# while the build keeps every value as the text typed.
ONE_LINE = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
PROSE = r"^[^\x00-\x08\x0b-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$"
_URL_CHAR = r'[^\s\x00-\x1f\x7f\\{}^"<>`|#]'  # RFC 3986, no '#'; non-ASCII is encoded in the link
URL = (r"^(?:[Hh][Tt][Tt][Pp][Ss]?://" + _URL_CHAR[:-2] + r"/#]|[Mm][Aa][Ii][Ll][Tt][Oo]:[^@\s]+@)"
       + _URL_CHAR + r"*(?:#" + _URL_CHAR + r"+)?$")
EMAIL = r"^[^@\s<>\\{}\x00-\x1f\x7f]+@[^@\s<>\\{}\x00-\x1f\x7f]+\.[^@\s<>\\{}\x00-\x1f\x7f.]+$"
YEAR = r"^[0-9]{4}(?:[-/\u2013](?:[0-9]{2}|[0-9]{4}))?[a-z]?$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TEXT_TYPES = ["string", "number", "boolean"]


def _text_schema(pattern: str, max_length: int) -> dict:
    return {"type": TEXT_TYPES, "minLength": 1, "maxLength": max_length, "pattern": pattern}


def _one_line(value: str) -> str:
    if "\n" in value or "\t" in value or _CONTROL.search(value):
        raise ValueError("must be a single line of text (no line breaks or control characters)")
    return value


def _prose(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("contains a control character")
    return value


def _url(value: str) -> str:
    if not re.match(r"(?i)(https?://[^/]|mailto:[^@]+@)", value):
        raise ValueError(f"{value!r} is not an http(s):// or mailto: URL")
    if value.count("#") > 1:
        raise ValueError(f"{value!r} has more than one '#'; a URL has at most one (write others as %23)")
    if value.endswith("#"):
        raise ValueError(f"{value!r} ends in an empty '#' fragment, which PDF links drop; remove the '#'")
    bad = latex.URL_FORBIDDEN.search(value)
    if bad:
        char = bad.group()
        raise ValueError(
            f"{value!r} contains {char!r}, which a URL may not hold as it is; "
            f"write it percent-encoded ({'%' + format(ord(char), '02X') if ord(char) < 128 else 'encode it'})"
        )
    if not re.fullmatch(URL, value):  # the schema's pattern: nothing it refuses passes here
        raise ValueError(f"{value!r} is not a URL (write it as https://example.org/page)")
    return value


def _email(value: str) -> str:
    if not re.fullmatch(EMAIL, value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _year(value):
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(YEAR, text.strip()):
        shown = "nothing" if value is None else repr(value)
        raise ValueError(f"must be a year, for example 2019 (got {shown})")
    return text.strip()


def _date(value):
    """YYYY-MM-DD only: never a number read as a timestamp (86400 is not a day)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    shown = "nothing" if value is None else repr(value)
    if not isinstance(value, str) or not re.fullmatch(DATE, value.strip()):
        raise ValueError(f"must be a date written YYYY-MM-DD, for example 2020-10-13 (got {shown})")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"must be a date written YYYY-MM-DD, for example 2020-10-13 "
                         f"(got {shown}: there is no such day)") from None


Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LINE_MAX),
                 AfterValidator(_one_line), WithJsonSchema(_text_schema(ONE_LINE, LINE_MAX))]
Prose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PROSE_MAX),
                  AfterValidator(_prose), WithJsonSchema(_text_schema(PROSE, PROSE_MAX))]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=URL_MAX), AfterValidator(_url),
                WithJsonSchema({"type": "string", "maxLength": URL_MAX, "pattern": URL, "format": "iri"})]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX), AfterValidator(_email),
                  WithJsonSchema({"type": "string", "maxLength": EMAIL_MAX, "pattern": EMAIL, "format": "email"})]
Year = Annotated[str, BeforeValidator(_year),
                 WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1000, "maximum": 9999},
                                           {"type": "string", "pattern": YEAR}]})]
Date = Annotated[dt.date, BeforeValidator(_date),
                 WithJsonSchema({"type": "string", "pattern": DATE, "format": "date"})]
# A recipient id names files (build/<id>.pdf) and TeX link targets, so it is
# kept to characters that are safe in both.
RECIPIENT_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
RecipientId = Annotated[str, StringConstraints(pattern=RECIPIENT_ID),
                        WithJsonSchema({"anyOf": [{"type": "string", "pattern": RECIPIENT_ID},
                                                  {"type": "integer", "minimum": 0}]})]
PART_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
PartName = Annotated[str, StringConstraints(pattern=PART_NAME)]
REFERENCE_KEY = "^" + CITE_KEY.replace("*", "{0,63}") + "$"
ReferenceKey = Annotated[str, StringConstraints(pattern=REFERENCE_KEY)]
# A file of the project: relative, inside its folder (whether it exists is
# checked by ``load``, which knows the folder).
IMAGE = (r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))[^\x00-\x1f\x7f]*"
         r"\.(?:[Pp][Dd][Ff]|[Pp][Nn][Gg]|[Jj][Pp][Gg]|[Jj][Pp][Ee][Gg])$")
TABLE = r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))[^\x00-\x1f\x7f]*\.(?:[Xx][Ll][Ss][Xx]|[Cc][Ss][Vv])$"


def _project_file(pattern: str, kinds: str, example: str):
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"must be a {kinds} file inside the project folder, written relative to it, "
                             f"for example {example} (got {value!r})")
        return value
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LINE_MAX),
                     AfterValidator(check),
                     WithJsonSchema({"type": "string", "maxLength": LINE_MAX, "pattern": pattern})]


ImagePath = _project_file(IMAGE, "PDF, PNG or JPEG", "images/logo.png")
TablePath = _project_file(TABLE, ".xlsx or .csv", "contacts.xlsx")
RelativePath = ImagePath  # (the name other modules know)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sender(Model):
    """Who writes: printed in the letterhead of every letter."""

    name: Line
    role: Line
    address: list[Line] = Field(min_length=1)
    phone: Optional[Line] = None
    email: Optional[Email] = None
    web: Optional[Url] = None
    logo: Optional[RelativePath] = Field(
        None, description="image file (PDF, PNG or JPEG), relative to recipients.yaml")


class Signatory(Model):
    """Who signs: printed under the closing."""

    name: Optional[Line] = None
    title: Line
    image: Optional[RelativePath] = Field(
        None, description="signature image (PNG, JPEG or PDF), relative to recipients.yaml; "
                          "printed in every letter's signature block (leave out for wet ink)")


class Reference(Model):
    """A source cited with [^key]; printed as a footnote 'author (year) title'."""

    author: Line
    year: Year
    title: Line
    url: Url


# One paragraph of the shared body: named parts, printed in order and joined
# by a space. A part set to null has no shared text: every recipient gives it.
BodyParagraph = Annotated[dict[PartName, Optional[Prose]], Field(min_length=1)]


class Letter(Model):
    """What every letter shares."""

    date: Date
    title: Optional[Line] = Field(None, description="what the batch is about (bundle, PDF subject)")
    keywords: list[Line] = Field(default_factory=list, description="PDF keywords, for web copies")
    sender: Sender
    signatory: Signatory
    closing: Line = "Yours sincerely,"
    body: list[BodyParagraph] = Field(min_length=1)


class Recipient(Model):
    """One letter: only what differs from the shared letter."""

    id: RecipientId
    name: Line
    role: Optional[Line] = None
    address: list[Line] = Field(min_length=1)
    salutation: Line
    text: dict[PartName, Prose] = Field(
        default_factory=dict, description="this recipient's wording of body parts, by part name")
    omit: list[PartName] = Field(default_factory=list, description="body parts left out of this letter")


class RecipientTable(Model):
    """``recipients: {from: contacts.xlsx}``: the recipients are the rows of a
    spreadsheet (builder/table.py reads it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: TablePath = Field(alias="from", description=".xlsx or .csv file, relative to recipients.yaml")
    sheet: Optional[Line] = Field(None, description="the workbook's sheet (default: the first)")
    columns: dict[Line, Line] = Field(
        default_factory=dict, description="column header -> field (name, address 1, text.<part> ...)")


class Batch(Model):
    """recipients.yaml: the shared letter, the references, the recipients."""

    letter: Letter
    references: dict[ReferenceKey, Reference] = Field(default_factory=dict)
    recipients: list[Recipient] = Field(min_length=1)

    def paragraphs_for(self, recipient: Recipient) -> list[list[tuple[str, str]]]:
        """The body of one letter as paragraphs of (part name, source text)."""
        paragraphs = []
        for paragraph in self.letter.body:
            parts = [
                (name, recipient.text.get(name, shared))
                for name, shared in paragraph.items()
                if name not in recipient.omit
            ]
            parts = [(name, source) for name, source in parts if source is not None]
            if parts:
                paragraphs.append(parts)
        return paragraphs


SCHEMA_FILE = "recipients.schema.json"


class _EditorBatch(Batch):
    """Batch as the file may write it: recipients inline, or from a spreadsheet."""

    recipients: Union[Annotated[list[Recipient], Field(min_length=1)], RecipientTable]


def json_schema() -> dict:
    """JSON Schema for recipients.yaml, for editors (completion, validation)."""
    schema = _EditorBatch.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "letterbatch recipients.yaml"
    schema.pop("description", None)

    def closed(node):
        # a mapping of names (part names, reference keys) takes no other key
        if isinstance(node, dict):
            if "patternProperties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                closed(value)
        elif isinstance(node, list):
            for value in node:
                closed(value)
    closed(schema)
    return schema


def json_schema_text() -> str:
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
