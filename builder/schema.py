"""The shape of recipients.yaml, as typed models (pydantic).

The models check each value on its own (types, required fields, unknown keys,
URL schemes, identifiers); ``load`` adds the checks that span the file
(citations, part names, duplicate ids) and the line numbers. The JSON Schema
that editors use is generated from these same models (``json_schema``).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Optional

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints,
                      WithJsonSchema)

from . import latex
from .markup import CITE_KEY

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


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
    return value


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s<>\\{}]+@[^@\s<>\\{}]+\.[^@\s<>\\{}]+", value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_one_line)]
Prose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_prose)]
Url = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_url)]
Email = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_email)]
# A recipient id names files (build/<id>.pdf) and TeX link targets, so it is
# kept to characters that are safe in both.
RECIPIENT_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
RecipientId = Annotated[str, StringConstraints(pattern=RECIPIENT_ID)]
PartName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
ReferenceKey = Annotated[str, StringConstraints(pattern="^" + CITE_KEY + "$")]
RelativePath = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


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
    year: Annotated[Line, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v),
                    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]})]
    title: Line
    url: Url


# One paragraph of the shared body: named parts, printed in order and joined
# by a space. A part set to null has no shared text: every recipient gives it.
BodyParagraph = Annotated[dict[PartName, Optional[Prose]], Field(min_length=1)]


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


class LetterEmail(Model):
    """The e-mail that carries each letter (``invoke send``). Placeholders:
    $name, $role, $title, $date, $sender, $signatory; $$ is a dollar sign."""

    subject: Optional[Annotated[Line, AfterValidator(_template)]] = Field(
        None, description="default: the letter's title (or 'Letter of <date>')")
    body: Optional[Annotated[Prose, AfterValidator(_template)]] = Field(
        None, description="default: 'Please find attached a letter from <sender>.'")


class Letter(Model):
    """What every letter shares."""

    date: dt.date
    title: Optional[Line] = Field(None, description="what the batch is about (bundle, PDF subject)")
    keywords: list[Line] = Field(default_factory=list, description="PDF keywords, for web copies")
    sender: Sender
    signatory: Signatory
    closing: Line = "Yours sincerely,"
    body: list[BodyParagraph] = Field(min_length=1)
    email: LetterEmail = Field(default_factory=LetterEmail, description="the e-mail that carries each letter")


class Recipient(Model):
    """One letter: only what differs from the shared letter."""

    id: RecipientId
    name: Line
    role: Optional[Line] = None
    address: list[Line] = Field(min_length=1)
    salutation: Line
    email: Optional[Email] = Field(None, description="where `invoke send` mails the letter")
    text: dict[PartName, Prose] = Field(
        default_factory=dict, description="this recipient's wording of body parts, by part name")
    omit: list[PartName] = Field(default_factory=list, description="body parts left out of this letter")


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


def json_schema() -> dict:
    """JSON Schema for recipients.yaml, for editors (completion, validation)."""
    schema = Batch.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "letterbatch recipients.yaml"
    return schema


def json_schema_text() -> str:
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
