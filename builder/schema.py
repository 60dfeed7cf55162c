"""The shape of recipients.yaml, as typed models (pydantic).

The models check each value on its own (types, required fields, unknown keys,
URL schemes, identifiers); ``load`` adds the checks that span the file
(citations, part names, duplicate ids) and the line numbers. The JSON Schema
that editors use is generated from these same models (``json_schema``).
"""
from __future__ import annotations

import datetime as dt
from functools import cached_property
import re
import unicodedata
from typing import Annotated, Callable, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator,
                      StringConstraints, WithJsonSchema)

from . import RECIPIENT_ID, latex  # RECIPIENT_ID: the ids a batch may give (see there)
from .markup import CITE_KEY
from .problems import quoted

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
ONE_LINE = r"^[^\x00-\x08\x0a-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0a-\x1f\x7f]*$"  # a tab is a space
PROSE = r"^[^\x00-\x08\x0b-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$"
_URL_CHAR = r'[^\s\x00-\x1f\x7f\\{}^"<>`|#]'  # RFC 3986, no '#'; non-ASCII is encoded in the link
URL = (r"^(?:[Hh][Tt][Tt][Pp][Ss]?://" + _URL_CHAR[:-2] + r"/#]|[Mm][Aa][Ii][Ll][Tt][Oo]:[^@\s]+@)"
       + _URL_CHAR + r"*(?:#" + _URL_CHAR + r"+)?$")
EMAIL = r"^[^@\s<>\\{}:\x00-\x1f\x7f]+@[^@\s<>\\{}\x00-\x1f\x7f]+\.[^@\s<>\\{}\x00-\x1f\x7f.]+$"
YEAR = r"^[0-9]{4}(?:[-/\u2013](?:[0-9]{2}|[0-9]{4}))?[a-z]?$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TEXT_TYPES = ["string", "number", "boolean"]


def _text_schema(pattern: str, max_length: int) -> dict:
    return {"type": TEXT_TYPES, "minLength": 1, "maxLength": max_length, "pattern": pattern}


def _one_line(value: str) -> str:
    control = _CONTROL.search(value)
    if control:  # a spreadsheet cell's (the YAML reader names them itself, at their line)
        raise ValueError(_control_message(control.group()))
    if "\n" in value:
        # (control characters are named above; what is left is the line break itself, typed in
        # a quoted YAML value or with Alt+Enter in a spreadsheet cell)
        raise ValueError("must be a single line of text but holds a line break: join its lines into one "
                         "(an address takes one line per item)")
    # a tab (pasted from a spreadsheet) is a space, as in any other value: it was refused
    return value.replace("\t", " ")


def _prose(value: str) -> str:
    control = _CONTROL.search(value)
    if control:
        raise ValueError(_control_message(control.group()))
    return value


def _control_message(char: str) -> str:
    return f"contains a control character (U+{ord(char):04X}) that cannot be printed; delete it"


def _url(value: str) -> str:
    if not re.match(r"(?i)(https?://[^/]|mailto:[^@]+@)", value):
        raise ValueError(f"{quoted(value)} is not an http(s):// or mailto: URL")
    if value.count("#") > 1:
        raise ValueError(f"{quoted(value)} has more than one '#'; a URL has at most one (write others as %23)")
    if value.endswith("#"):
        raise ValueError(f"{quoted(value)} ends in an empty '#' fragment, which PDF links drop; remove the '#'")
    bad = latex.URL_FORBIDDEN.search(value)
    if bad:
        char = bad.group()
        raise ValueError(
            f"{quoted(value)} contains {quoted(char)}, which a URL may not hold as it is; "
            f"write it percent-encoded ({'%' + format(ord(char), '02X') if ord(char) < 128 else 'encode it'})"
        )
    if not re.fullmatch(URL, value):  # the schema's pattern: nothing it refuses passes here
        raise ValueError(f"{quoted(value)} is not a URL (write it as https://example.org/page)")
    return value


def _email(value: str) -> str:
    if not re.fullmatch(EMAIL, value):
        if value[:7].lower() == "mailto:" and re.fullmatch(EMAIL, value[7:]):
            # a link copied from a web page or a spreadsheet's hyperlink: "mailto:x@y" was
            # taken as an address whose user is "mailto:x", and mailed nobody
            raise ValueError(f"{quoted(value)} is not an email address: it is a mailto: link; "
                             f"write the address alone, {value[7:]}")
        named = re.fullmatch(r"[^<>]*<([^<>]*)>\s*", value)
        if named and re.fullmatch(EMAIL, named.group(1)):
            # as Outlook copies an address, "Sue Name <sue@example.org>": deleting the space
            # (what the message below says) would not make it an address
            raise ValueError(f"{quoted(value)} is not an email address: it holds a name and the address in <>; "
                             f"write the address alone, {named.group(1)}")
        several = [part for part in re.split(r"[;,\s]+", value) if part]
        if len(several) > 1 and all(re.fullmatch(EMAIL, part) for part in several):
            # "a@b.example;d@e.example", as a mail program writes a list: refused with no
            # word of what to do. A letter goes to one address (the e-mail has no cc)
            raise ValueError(f"{quoted(value)} is not an email address: it holds {len(several)} addresses, and a "
                             f"letter is mailed to one address only; keep one, {several[0]}")
        space = re.search(r"\s", value)
        if space:  # most often a no-break space pasted from a web page or typed in a spreadsheet
            char = space.group()
            name = unicodedata.name(char, "space").lower() if char != " " else "space"
            raise ValueError(f"{quoted(value)} is not an email address: it holds a {name} (U+{ord(char):04X}) after "
                             f"{quoted(value[:space.start()])}, and an address has no spaces; delete it")
        raise ValueError(f"{quoted(value)} is not an email address")
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
# true or false, as YAML 1.2 writes them: the loader keeps every value as text,
# and yes/no/on/off stay text (pydantic alone would read "yes" as true).
_FLAGS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


def _flag(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip() in _FLAGS:
        return _FLAGS[value.strip()]
    raise ValueError(f"must be true or false (got {value!r})")


Flag = Annotated[bool, PlainValidator(_flag), WithJsonSchema({"type": "boolean"})]
# A letter's LaTeX is build/<batch>/tex/<id>.tex, where pdflatex looks first for what it
# reads: an id that names a file TeX reads while it compiles a letter would have it read
# the letter instead. The letterhead reads glyphtounicode.tex, and babel its languages'
# babel-<language>.tex (babel-british, babel-welsh); tests/test_schema.py checks these
# against what compiling English, Welsh and bilingual letters, printed and for the web, reads.
TEX_READS_BY_NAME = ("glyphtounicode",)
TEX_READS_BY_PREFIX = ("babel-",)


def read_by_tex(name: str) -> bool:
    """Whether TeX reads a file ``name``.tex while it compiles a letter."""
    return name in TEX_READS_BY_NAME or name.startswith(TEX_READS_BY_PREFIX)


def _not_read_by_tex(value: str) -> str:
    if read_by_tex(value):
        raise ValueError(f"{value!r} is the name of a file TeX reads while it compiles a letter "
                         f"({value}.tex): choose another id")
    return value


RecipientId = Annotated[str, StringConstraints(pattern=RECIPIENT_ID), AfterValidator(_not_read_by_tex),
                        WithJsonSchema({"anyOf": [{"type": "string", "pattern": RECIPIENT_ID,
                                                   "not": {"anyOf": [{"enum": list(TEX_READS_BY_NAME)},
                                                                     *({"pattern": f"^{prefix}"}
                                                                       for prefix in TEX_READS_BY_PREFIX)]}},
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


def _project_file(pattern: str, kinds: str, example: str, others: Callable[[str], None] | None = None):
    def check(value: str) -> str:
        if others and not re.fullmatch(pattern, value):
            others(value)
        if not re.fullmatch(pattern, value):
            raise ValueError(f"must be a {kinds} file inside the project folder, written relative to it, "
                             f"for example {example} (got {value!r})")
        return value
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LINE_MAX),
                     AfterValidator(check),
                     WithJsonSchema({"type": "string", "maxLength": LINE_MAX, "pattern": pattern})]


ImagePath = _project_file(IMAGE, "PDF, PNG or JPEG", "images/logo.png")
# Other files a spreadsheet program saves, and what to save instead
_OTHER_TABLES = {".ods": "a LibreOffice workbook", ".fods": "a LibreOffice workbook",
                 ".xls": "an Excel 97-2003 workbook", ".xlsm": "an Excel workbook with macros",
                 ".xlsb": "an Excel binary workbook", ".numbers": "a Numbers spreadsheet"}


def _other_table(value: str) -> None:
    suffix = ("." + value.rsplit(".", 1)[-1].lower()) if "." in value else ""
    if suffix in (".txt", ".tsv"):  # Excel's "Text (Tab delimited)" and "Unicode Text" are read as CSV
        raise ValueError(f"{value!r} is a text file ({suffix}); recipients are read from a .xlsx or .csv file: a "
                         "tab-separated text file saved by a spreadsheet is read as CSV, so rename it to .csv")
    if suffix in _OTHER_TABLES:
        raise ValueError(
            f"{value!r} is {_OTHER_TABLES[suffix]} ({suffix}); recipients are read from a .xlsx or .csv file: "
            "save the sheet as .xlsx (in LibreOffice: File > Save As, 'Excel 2007-365'; in Excel: 'Excel Workbook') "
            "or as CSV UTF-8, and give that file")


TablePath = _project_file(TABLE, ".xlsx or .csv", "contacts.xlsx", _other_table)
RelativePath = ImagePath  # (the name other modules know)
# A house letterhead: a LaTeX class in the project, loaded as \documentclass{<stem>}
CLASS_FILE = r"^(?!/)(?!(?:.*/)?\.\.(?:/|$))(?:[^\x00-\x1f\x7f/]*/)*[A-Za-z][A-Za-z0-9-]*\.cls$"
ClassPath = _project_file(CLASS_FILE, "LaTeX class (.cls, named with letters, digits and hyphens)",
                          "house.cls")


# ---- letter parts and languages (parts) --------------------------------------
# A letter's language: English, Welsh, or both (Welsh first, then English).
Language = Literal["en", "cy", "cy-en"]
TextLanguage = Literal["en", "cy"]
LANGUAGES: dict[str, tuple[str, ...]] = {"en": ("en",), "cy": ("cy",), "cy-en": ("cy", "en")}
# a language typed by name in a spreadsheet's Language column, and the code to write instead
LANGUAGE_NAMES = {"english": "en", "saesneg": "en", "welsh": "cy", "cymraeg": "cy",
                  "bilingual": "cy-en", "dwyieithog": "cy-en"}
def _local(check, max_length: int):
    """A text written once, or once per language (`intro: {en: ..., cy: ...}`),
    each text checked by ``check``; one plain message when it is neither."""
    def validate(value):
        if isinstance(value, str):
            return _text(value, check, max_length)
        if isinstance(value, dict) and value:
            unknown = [k for k in value if k not in ("en", "cy")]
            if unknown:
                raise ValueError(f"a text by language takes the keys en and cy (got {unknown[0]!r})")
            texts = {}
            for language, text in value.items():
                try:
                    texts[language] = _text(text, check, max_length)
                except ValueError as exc:
                    raise ValueError(f"{exc} (the text in {language!r})") from None
            return texts
        raise ValueError("must be text, or a mapping of texts by language such as {en: …, cy: …}")
    return validate


def _text(value, check, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(too_long(len(value), max_length))
    return check(value)


def too_long(length: int, max_length: int) -> str:
    """A text over its limit, with the fix: a line (a name, a reference's title) has no
    other field to run on into; a body part's text has more parts."""
    fix = "shorten it, or split it into more body parts" if max_length >= PROSE_MAX else "shorten it"
    return f"is too long: {length} characters; at most {max_length} ({fix})"


def _local_schema(line: bool) -> dict:
    text = _text_schema(ONE_LINE, LINE_MAX) if line else _text_schema(PROSE, PROSE_MAX)
    return {"anyOf": [text, {"type": "object", "minProperties": 1, "additionalProperties": False,
                             "properties": {"en": text, "cy": text}}]}


LocalProse = Annotated[Union[str, dict[str, str]], PlainValidator(_local(_prose, PROSE_MAX)),
                       WithJsonSchema(_local_schema(False))]
LocalLine = Annotated[Union[str, dict[str, str]], PlainValidator(_local(_one_line, LINE_MAX)),
                      WithJsonSchema(_local_schema(True))]
Envelope = Literal["DL", "C5", "C4", "none"]


def in_language(value, language: str, written_in: str) -> Optional[str]:
    """``value`` (text, or a mapping by language) in ``language``; None when
    it has none. A plain text is in ``written_in`` (the letter's language for
    shared texts, the recipient's for their own), or in any, with no letters in it."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get(language)
    # a text with no letters in it (a phone number, a date in figures) reads the same in every
    # language: a bilingual row of a spreadsheet had to give its phone number twice
    return value if written_in == language or not has_letters(value) else None


def has_letters(text: str) -> bool:
    """Whether ``text`` has a letter of any script in it: one without (a phone number, a date
    in figures) reads the same in every language (``in_language``)."""
    return any(ch.isalpha() for ch in text)


def first_given(value) -> str:
    """A text written once, as written, or given by language, its first language's:
    what stands in where a text is wanted in a language it was not given in."""
    return value if isinstance(value, str) else next(iter(value.values()))


# Preflight findings a person may accept on purpose (builder/check.py)
FindingCode = Literal["a4", "fonts", "overfull", "window", "address", "return_address", "closing"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sender(Model):
    """Who writes: printed in the letterhead of every letter."""

    name: Line
    role: LocalLine = Field(description="printed under the name in the letterhead; by language ({en: …, cy: …}) "
                                        "when letters are in Welsh and English, as the signatory's title")
    address: list[Line] = Field(min_length=1)
    phone: Optional[Line] = None
    email: Optional[Email] = None
    web: Optional[Url] = None
    logo: Optional[RelativePath] = Field(
        None, description="image file (PDF, PNG or JPEG), relative to recipients.yaml")


class Signatory(Model):
    """Who signs: printed under the closing."""

    name: Optional[Line] = None
    title: LocalLine = Field(description="printed in bold under the closing; by language ({en: …, cy: …}) "
                                         "when letters are in Welsh and English, as the other shared texts")
    show_name: Flag = Field(False, description="print the name above the title in the signature block "
                                               "(the name is the PDFs' author either way)")
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
BodyParagraph = Annotated[dict[PartName, Optional[LocalProse]], Field(min_length=1)]


# The placeholders a letter's e-mail may use ($name or ${name}), and where each
# comes from. string.Template only substitutes them; data is never formatted.
EMAIL_PLACEHOLDERS = {
    "name": "the recipient's name",
    "role": "the recipient's role",
    "title": "the letter's title",
    "date": "the letter's date, as printed",
    "sender": "the sender's name",
    "signatory": "the signatory's name",
}


def _template(value: str) -> str:
    from string import Template

    for match in Template.pattern.finditer(value):
        name = match.group("named") or match.group("braced")
        if match.group("invalid") is not None:
            raise ValueError("a '$' must start a placeholder such as $name; write $$ for a dollar sign")
        if name is not None and name not in EMAIL_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder ${name}; use one of "
                             + ", ".join(f"${key}" for key in EMAIL_PLACEHOLDERS) + " (or $$ for '$')")
    return value


# An e-mail's subject or body: a template (``_template``), written once or once
# per language ({en: ..., cy: ...}), as the letters' own texts are.
LocalTemplateLine = Annotated[Union[str, dict[str, str]],
                              PlainValidator(_local(lambda v: _template(_one_line(v)), LINE_MAX)),
                              WithJsonSchema(_local_schema(True))]
LocalTemplateProse = Annotated[Union[str, dict[str, str]],
                               PlainValidator(_local(lambda v: _template(_prose(v)), PROSE_MAX)),
                               WithJsonSchema(_local_schema(False))]


class LetterEmail(Model):
    """The e-mail that carries each letter (``invoke send``). Placeholders:
    $name, $role, $title, $date, $sender, $signatory; $$ is a dollar sign.
    Each text may be given per language ({en: ..., cy: ...}): a recipient gets
    the one in their letter's (first) language."""

    subject: Optional[LocalTemplateLine] = Field(
        None, description="default: the letter's title (or 'Letter of <date>')")
    body: Optional[LocalTemplateProse] = Field(
        None, description="default: 'Please find attached a letter from <sender>.'")


class Letter(Model):
    """What every letter shares."""

    date: Date
    title: Optional[LocalLine] = Field(None, description="what the batch is about (cover sheet, bundle and PDF "
                                                         "subject, web page heading, e-mail $title); by language "
                                                         "({en: …, cy: …}) when letters are in Welsh and English")
    keywords: list[Line] = Field(default_factory=list, description="PDF keywords, for web copies")
    sender: Sender
    signatory: Signatory
    closing: Optional[LocalLine] = Field(
        None, description="one closing for every letter; without it each letter follows the UK rule: "
                          "'Yours faithfully,' after a salutation without a name, else 'Yours sincerely,'")
    body: list[BodyParagraph] = Field(min_length=1)
    email: LetterEmail = Field(default_factory=LetterEmail, description="the e-mail that carries each letter")
    # ---- letter parts (parts) ----
    subject: Optional[LocalProse] = Field(None, description="subject line, bold, after the salutation")
    our_ref: Optional[Line] = Field(None, description="'Our ref:' beside the date")
    marking: Optional[Line] = Field(None, description="protective marking (e.g. OFFICIAL), centred at the "
                                                      "top and bottom of every page and on the cover")
    cc: list[Line] = Field(default_factory=list, description="'cc:' lines after the signature block")
    enclosures: list[Line] = Field(default_factory=list, description="'Enc:' lines after the signature and cc")
    ps: Optional[LocalProse] = Field(None, description="postscript (markup like a body part), after everything")
    language: Language = Field("en", description="en, cy (Welsh) or cy-en (bilingual, Welsh first); "
                                                  "plain shared texts are written in this language")
    envelope: Envelope = Field("DL", description="window envelope: where the address goes, the window the "
                                                 "preflight checks, the fold marks; none for no window")
    letterhead: Optional[ClassPath] = Field(
        None, description="a LaTeX class derived from letterbatch.cls (e.g. house.cls), relative to "
                          "recipients.yaml, used by every letter")
    font: Literal["serif", "sans"] = "sans"
    return_address: Union[Flag, Line] = Field(
        True, union_mode="left_to_right", description="the small return-address line in the window: true (from the sender), "
                          "false (none), or the text to print")
    fold_marks: Flag = Field(True, description="fold marks in the margin for the envelope")

    def title_in(self, language: str) -> tuple[str, str] | None:
        """``letter.title`` as shown in ``language``, and the language it is written in:
        given by language without that one (or written once), the one there is, as
        the signatory's title stands in. None without a title."""
        title = self.title
        if title is None:
            return None
        if isinstance(title, str):
            return title, LANGUAGES[self.language][0]
        written_in = language if language in title else next(iter(title))
        return title[written_in], written_in


class Recipient(Model):
    """One letter: only what differs from the shared letter."""

    id: RecipientId
    name: Line
    role: Optional[Line] = None
    address: list[Line] = Field(min_length=1)
    salutation: LocalLine
    text: dict[PartName, LocalProse] = Field(
        default_factory=dict, description="this recipient's wording of body parts, by part name")
    omit: list[PartName] = Field(default_factory=list, description="body parts left out of this letter")
    # ---- letter parts (parts): a recipient's own texts are in their language ----
    email: Optional[Email] = Field(None, description="where this letter is e-mailed; printed nowhere")
    language: Optional[Language] = Field(None, description="this letter's language (default: the letter's)")
    subject: Optional[LocalProse] = None
    our_ref: Optional[Line] = None
    your_ref: Optional[Line] = Field(None, description="'Your ref:' beside the date")
    marking: Optional[Line] = None
    closing: Optional[LocalLine] = None
    cc: Optional[list[Line]] = Field(None, description="replaces letter.cc for this letter")
    enclosures: Optional[list[Line]] = Field(None, description="replaces letter.enclosures for this letter")
    ps: Optional[LocalProse] = None
    accept: list[FindingCode] = Field(
        default_factory=list, description="preflight findings accepted on purpose for this letter "
                                          "(recorded in the manifest and printed on the cover sheet)")


class RecipientTable(Model):
    """``recipients: {from: contacts.xlsx}``: the recipients are the rows of a
    spreadsheet (builder/table.py reads it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: TablePath = Field(alias="from", description=".xlsx or .csv file, relative to recipients.yaml")
    sheet: Optional[Line] = Field(None, description="the workbook's sheet (default: the first)")
    columns: dict[Line, Optional[Line]] = Field(
        default_factory=dict, description="column header -> field (name, address 1, text.<part> ...); "
                                          "~: a column no letter uses, read without a warning")


class Batch(Model):
    """recipients.yaml: the shared letter, the references, the recipients."""

    letter: Letter
    references: dict[ReferenceKey, Reference] = Field(default_factory=dict)
    recipients: list[Recipient] = Field(min_length=1)

    def language_of(self, recipient: Recipient) -> str:
        """en, cy or cy-en: the recipient's own, else the letter's."""
        return recipient.language or self.letter.language

    def languages_of(self, recipient: Recipient) -> tuple[str, ...]:
        """The languages a letter is written in, in order (cy-en: Welsh first)."""
        return LANGUAGES[self.language_of(recipient)]

    @cached_property
    def any_welsh(self) -> bool:
        """Whether any letter is (also) in Welsh, so every document of the batch
        loads Welsh. Worked out once per batch (a batch is frozen), not once per
        letter: that made composing 10,000 letters quadratic."""
        return self.letter.language != "en" or any("cy" in self.languages_of(r) for r in self.recipients)

    def shared_text(self, value, language: str) -> Optional[str]:
        """A shared text in ``language`` (a plain text is in the letter's language)."""
        return in_language(value, language, self.letter.language)

    def own_text(self, recipient: Recipient, value, language: str) -> Optional[str]:
        """A recipient's own text in ``language`` (plain: in the recipient's language;
        a bilingual letter needs a mapping with both)."""
        return in_language(value, language, self.language_of(recipient))

    def paragraphs_for(self, recipient: Recipient, language: str | None = None) -> list[list[tuple[str, str]]]:
        """The body of one letter as paragraphs of (part name, source text), in
        ``language`` (default: the letter's first)."""
        language = language or self.languages_of(recipient)[0]
        paragraphs = []
        for paragraph in self.letter.body:
            parts = [
                (name, self.own_text(recipient, recipient.text[name], language) if name in recipient.text
                 else self.shared_text(shared, language))
                for name, shared in paragraph.items()
                if name not in recipient.omit
            ]
            parts = [(name, source) for name, source in parts if source is not None]
            if parts:
                paragraphs.append(parts)
        return paragraphs

    def untranslated(self, recipient: Recipient) -> list[tuple[tuple, str]]:
        """Texts this letter needs in a language they are not written in, as
        (field path, message); a shared text's path starts with "letter". A
        Welsh letter never silently prints an English part."""
        found = []
        names = {"cy": "Welsh", "en": "English"}
        wanted = self.languages_of(recipient)

        def fix(value, shared: bool) -> str:
            """The mapping to write: the languages the text has now, kept (a shared text's
            English is the English letters' text: a hint of {cy: …} alone dropped it), then
            those this letter needs."""
            written_in = self.letter.language if shared else self.language_of(recipient)
            has = list(value) if isinstance(value, dict) else list(LANGUAGES[written_in])
            keys = dict.fromkeys([*has, *(LANGUAGES[self.letter.language] if shared else ()), *wanted])
            return "{" + ", ".join(f"{language}: …" for language in keys) + "}"

        # each text once, with every language it lacks: a plain text in a bilingual letter was
        # two messages at one line ("has no Welsh text", then "has no English text")
        lacking: dict[tuple, tuple[str, object, bool, list[str]]] = {}
        for language in wanted:
            def need(value, shared: bool, path: tuple, label: str):
                text = (self.shared_text(value, language) if shared
                        else self.own_text(recipient, value, language))
                if value is not None and text is None:
                    where = ("letter",) + path if shared else path
                    lacking.setdefault(where, (label, value, shared, []))[3].append(language)
            for p, paragraph in enumerate(self.letter.body):
                for name, shared in paragraph.items():
                    if name in recipient.omit:
                        continue
                    if name in recipient.text:
                        need(recipient.text[name], False, ("text", name), f"text.{name}")
                    else:
                        need(shared, True, ("body", p, name), f"the shared part {name!r} (letter.body)")
            for part in ("subject", "ps", "closing"):
                own = getattr(recipient, part)
                if own is not None:
                    need(own, False, (part,), part)
                else:
                    need(getattr(self.letter, part), True, (part,), f"letter.{part}")
            need(recipient.salutation, False, ("salutation",), "salutation")
            need(self.letter.signatory.title, True, ("signatory", "title"), "letter.signatory.title")
            if isinstance(self.letter.title, dict):  # (written once, it is shown as written: a batch's name)
                need(self.letter.title, True, ("title",), "letter.title")
            need(self.letter.sender.role, True, ("sender", "role"), "letter.sender.role")
        # the shared texts lacking the same languages, with the same fix, in one message (at the
        # letter's language): a Welsh letter of the sample batch had twelve at one line
        grouped: dict[tuple, tuple[tuple, list[str]]] = {}
        for where, (label, value, shared, languages) in lacking.items():
            key = (shared, tuple(languages), fix(value, shared)) if shared else (where,)
            grouped.setdefault(key, (where, []))[1].append(label)
        for key, (where, labels) in grouped.items():
            languages = lacking[where][3]
            has = " or ".join(f"{names[language]} text ({language})" for language in languages)
            one = len(labels) == 1
            found.append((where, f"{labels[0] if one else _listed(labels)} {'has' if one else 'have'} no {has}, "
                                 f"and this letter is in {' and '.join(names[language] for language in languages)}: "
                                 f"write {'it' if one else 'each'} as {fix(lacking[where][1], lacking[where][2])}"))
        return found


def _listed(labels: list[str]) -> str:
    """Shared texts named together: the body's parts as one "the shared parts 'a', 'b'
    (letter.body)", then the others, "and" before the last."""
    parts = [re.fullmatch(r"the shared part '(.*)' \(letter\.body\)", label) for label in labels]
    body = [f"'{part.group(1)}'" for part in parts if part]
    named = ([f"the shared part{'s' if len(body) > 1 else ''} {', '.join(body)} (letter.body)"] if body else []) \
        + [label for label, part in zip(labels, parts) if not part]
    return ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]


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
