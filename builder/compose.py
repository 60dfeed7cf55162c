"""Compose stage: one recipient of a ``Batch`` -> the LaTeX source of their letter.

Each letter is a complete document on the letterhead class (``letterhead/``),
built with PyLaTeX. Data reaches the source only through ``latex.text`` and
``latex.href``; markup nodes from ``markup.parse`` become LaTeX commands here.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from pylatex import Command, Document, LongTable, NoEscape

from . import latex, markup
from .schema import Batch, Recipient

CLASS_NAME = "letterbatch"
MONTHS = ("January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December")


def long_date(date: dt.date) -> str:
    """'13 October 2020', whatever the machine's locale."""
    return f"{date.day} {MONTHS[date.month - 1]} {date.year}"


def pdf_title(recipient: Recipient) -> str:
    return f"Letter to {recipient.name}" + (f", {recipient.role}" if recipient.role else "")


# PDF/A-2b and the document language, for web copies (LaTeX's PDF management,
# texlive-latex-recommended). It must come before \documentclass.
WEB_METADATA = "\\DocumentMetadata{pdfstandard=A-2b, lang=en-GB}\n"


def letter_source(batch: Batch, recipient: Recipient, *, assets: dict[str, str] | None = None,
                  medium: str = "print") -> str:
    """The complete ``.tex`` of one letter, for print or for the web."""
    doc = compose(batch, recipient, assets=assets, medium=medium)
    return (WEB_METADATA if medium == "web" else "") + doc.dumps()


def compose(batch: Batch, recipient: Recipient, *, assets: dict[str, str] | None = None,
            medium: str = "print") -> Document:
    """The letter to ``recipient`` as a PyLaTeX document.

    ``assets`` maps "logo" and "signature" to file names as TeX will find them
    (the build copies the images next to the ``.tex``); without them the
    letterhead has no logo and the signature block leaves room for wet ink.
    """
    doc = _document(batch, assets or {}, {
        "id": NoEscape(recipient.id),  # schema: [a-z0-9-] only
        "toname": latex.text(recipient.name),
        "torole": latex.text(recipient.role or ""),
        "toaddress": latex.lines(recipient.address),
    }, title=pdf_title(recipient), medium=medium)
    doc.append(Command("opening", latex.text(recipient.salutation)))
    for paragraph in body(batch, recipient):
        doc.append(NoEscape("\n" + paragraph + "\n"))
    doc.append(Command("closing"))
    return doc


@dataclass(frozen=True)
class CoverRow:
    """One letter as the cover sheet lists it: where it sits in the bundle."""

    recipient: Recipient
    first_page: int
    last_page: int


def compose_cover(batch: Batch, rows: list[CoverRow], *, assets: dict[str, str] | None = None) -> Document:
    """The bundle's cover sheet: what is in it, and a line for the signatory's initials."""
    letter = batch.letter
    doc = _document(batch, assets or {}, {"id": NoEscape("cover")},
                    title=f"Letters for signature: {letter.title or long_date(letter.date)}")
    doc.append(Command("coversheet", "Letters for signature"))
    if letter.title:
        doc.append(NoEscape(r"\textbf{%s}\par\medskip" % latex.text(letter.title)))
    count = f"{len(rows)} letter{'s' if len(rows) != 1 else ''}"
    doc.append(NoEscape(latex.text(
        f"{count} dated {long_date(letter.date)}, for signature by "
        f"{letter.signatory.name or letter.signatory.title}. Please read each letter, sign it "
        f"where marked, and initial this sheet.") + "\\par\\medskip\n"))
    table = LongTable(NoEscape(
        r"@{}r >{\raggedright\arraybackslash}p{55mm} >{\raggedright\arraybackslash}p{72mm} r@{}"),
        row_height=1.2)
    header = [NoEscape(r"\textbf{%s}" % h) for h in ("No.", "Recipient", "Role", "Pages")]
    table.add_row(header)
    table.add_hline()
    table.end_table_header()
    for number, row in enumerate(rows, 1):
        pages = (f"{row.first_page}" if row.first_page == row.last_page
                 else f"{row.first_page}\u2013{row.last_page}")
        table.add_row([NoEscape(str(number)), latex.text(row.recipient.name),
                       latex.text(row.recipient.role or ""), latex.text(pages)])
    doc.append(table)
    doc.append(Command("initialline"))
    return doc


def _document(batch: Batch, assets: dict[str, str], values: dict[str, NoEscape], *, title: str,
              medium: str = "print") -> Document:
    """A document on the letterhead class with the batch's shared values set."""
    letter = batch.letter
    sender, signatory = letter.sender, letter.signatory
    doc = Document(documentclass=CLASS_NAME, document_options=[medium], fontenc=None, inputenc=None,
                   lmodern=False, textcomp=False, page_numbers=True)
    # PyLaTeX adds lastpage (texlive-latex-extra); the class counts pages itself.
    doc.packages.clear()
    shared = {
        "date": latex.text(long_date(letter.date)),
        "fromname": latex.text(sender.name),
        "fromrole": latex.text(sender.role),
        "fromaddress": latex.lines(sender.address),
        "fromphone": latex.text(sender.phone or ""),
        "fromemail": _email_link(sender.email) if sender.email else NoEscape(""),
        "fromweb": _web_link(sender.web) if sender.web else NoEscape(""),
        "fromlogo": NoEscape(assets.get("logo", "")),  # our own file name, not data
        "closing": latex.text(letter.closing),
        "signame": latex.text(signatory.name or ""),
        "sigtitle": latex.text(signatory.title),
        "sigimage": NoEscape(assets.get("signature", "")),
    }
    for key, value in {**shared, **values}.items():
        doc.preamble.append(Command("letterset", arguments=[NoEscape(key), value]))
    metadata = {
        "pdftitle": title,
        "pdfauthor": signatory.name or sender.name,
        "pdfsubject": letter.title or "",
        "pdfkeywords": ", ".join(letter.keywords),
        "pdfcreator": "letterbatch",
    }
    if medium == "web":
        # LaTeX's PDF management writes the Info dictionary and the XMP packet
        # from hyperref's keys. Two pairs of braces: it would split a value at
        # its commas into several XMP entries.
        doc.preamble.append(Command("hypersetup", NoEscape(",\n".join(
            f"{key}={{{{{latex.meta(value)}}}}}" for key, value in metadata.items()))))
    else:
        # Straight into the Info dictionary as UTF-16 hex strings: no TeX
        # expansion, so every character is kept as typed ("--" stays two hyphens).
        doc.preamble.append(NoEscape("\\pdfinfo{%s}" % " ".join(
            f"/{key.removeprefix('pdf').capitalize()} <{latex.pdf_hex(value)}>"
            for key, value in metadata.items() if value and key != "pdfcreator")))
        doc.preamble.append(NoEscape("\\hypersetup{pdfcreator={letterbatch}}"))
    if medium == "web":
        # The XMP packet's dates and instance id default to the clock; fix
        # them from the letter so the same inputs give the same bytes.
        stamp = f"D:{letter.date:%Y%m%d}120000Z"
        instance = uuid.uuid5(uuid.NAMESPACE_URL, f"letterbatch:{values['id']}:{letter.date}")
        for group, key in (("document", "pdfcreationdate"), ("document", "pdfmoddate"),
                           ("hyperref", "pdfmetadate"), ("hyperref", "pdfdate")):
            doc.preamble.append(NoEscape(rf"\AddToDocumentProperties[{group}]{{{key}}}{{{stamp}}}"))
        doc.preamble.append(NoEscape(rf"\hypersetup{{pdfinstanceid={{uuid:{instance}}}}}"))
    return doc


def body(batch: Batch, recipient: Recipient) -> list[str]:
    """The letter's paragraphs as LaTeX, footnotes in place."""
    out: list[str] = []
    for parts in batch.paragraphs_for(recipient):
        current: list[str] = []
        for _name, source in parts:
            paragraphs = markup.parse(source)
            if not paragraphs:
                continue
            current.append(_render(paragraphs[0], batch))
            for extra in paragraphs[1:]:  # a part may hold paragraph breaks
                out.append(" ".join(current))
                current = [_render(extra, batch)]
        if current:
            out.append(" ".join(current))
    return out


def _render(nodes: markup.Paragraph, batch: Batch) -> str:
    pieces = []
    for node in nodes:
        if isinstance(node, markup.Text):
            pieces.append(latex.text(node.value))
        elif isinstance(node, markup.Emphasis):
            command = "textbf" if node.strong else "emph"
            pieces.append(rf"\{command}{{{_render(node.children, batch)}}}")
        elif isinstance(node, markup.Link):
            pieces.append(latex.href(node.url, NoEscape(_render(node.children, batch))))
        elif isinstance(node, markup.Cite):
            pieces.append(_footnote(batch, node.key))
    return "".join(pieces)


def _footnote(batch: Batch, key: str) -> str:
    ref = batch.references[key]
    title = latex.href(ref.url, latex.text(ref.title))
    return rf"\footnote{{{latex.text(ref.author)} ({latex.text(ref.year)}) {title}}}"


def _email_link(address: str) -> NoEscape:
    return latex.href("mailto:" + address, latex.text(address))


def _web_link(url: str) -> NoEscape:
    shown = url.split("://", 1)[-1].rstrip("/")
    return latex.href(url, latex.text(shown))
