"""Compose stage: one recipient of a ``Batch`` -> the LaTeX source of their letter.

Each letter is a ``letter`` environment on the letterhead class
(``builder/letterhead/``), built with PyLaTeX: ``letter_source`` wraps one in a complete
document a user can compile alone; ``batch_source`` puts many in one document,
which the build compiles in a single pdflatex run and splits. Data reaches the
source only through ``latex.text``, ``latex.href`` and ``latex.meta``; markup
nodes from ``markup.parse`` become LaTeX commands here.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from pylatex import Command, Document, LongTable, NoEscape
from pylatex.base_classes import Environment

from . import latex, markup
from .schema import Batch, Recipient

CLASS_NAME = "letterbatch"
MONTHS = ("January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December")
# PDF/A-2b and the document language, for web copies (LaTeX's PDF management,
# texlive-latex-recommended). It must come before \documentclass.
WEB_METADATA = "\\DocumentMetadata{pdfstandard=A-2b, lang=en-GB}\n"


class Letter(Environment):
    """``\\begin{letter}{<id>}``: one letter, on pages of its own."""

    _latex_name = "letter"


def long_date(date: dt.date) -> str:
    """'13 October 2020', whatever the machine's locale."""
    return f"{date.day} {MONTHS[date.month - 1]} {date.year}"


def pdf_date(date: dt.date) -> str:
    """A PDF date at noon UTC of the letter's date (as the build's
    SOURCE_DATE_EPOCH), so every run writes the same bytes."""
    return f"D:{date:%Y%m%d}120000Z"


def recipient_label(recipient: Recipient) -> str:
    """'name, role': how the manifest and the bundle's bookmarks name a letter."""
    return recipient.name + (f", {recipient.role}" if recipient.role else "")


def pdf_title(recipient: Recipient) -> str:
    return f"Letter to {recipient_label(recipient)}"


def metadata(batch: Batch, title: str) -> dict[str, str]:
    """The PDF's document information: title, author, subject, keywords."""
    letter = batch.letter
    return {
        "Title": title,
        "Author": letter.signatory.name or letter.sender.name,
        "Subject": letter.title or "",
        "Keywords": ", ".join(letter.keywords),
    }


def letter_source(batch: Batch, recipient: Recipient, block: str, *, medium: str = "print",
                  memo: dict | None = None) -> str:
    """The complete ``.tex`` of one letter (``block``, from ``letter_block``),
    for print or for the web. ``memo``: as for ``letter_block``."""
    memo = {} if memo is None else memo
    key = ("source", recipient.id, medium, block)
    if key not in memo:
        doc = _document(batch, medium, metadata(batch, pdf_title(recipient)), recipient.id)
        doc.append(NoEscape(block))
        memo[key] = (WEB_METADATA if medium == "web" else "") + doc.dumps()
    return memo[key]


def batch_source(letters: list[str], page_hints: dict[str, int]) -> str:
    """One document holding many letters (each from ``letter_block``).

    ``page_hints`` gives the page counts known from an earlier build, so
    "Page n of m" is right on the first run and no second pass is needed.
    PDF metadata is set per letter when the build splits the result.
    """
    doc = Document(documentclass=CLASS_NAME, document_options=["print"], fontenc=None, inputenc=None,
                   lmodern=False, textcomp=False, page_numbers=True)
    doc.packages.clear()  # PyLaTeX adds lastpage (texlive-latex-extra); the class counts pages
    for rid, pages in sorted(page_hints.items()):
        doc.append(NoEscape(rf"\letterpagehint{{{rid}}}{{{int(pages)}}}"))
    for block in letters:
        doc.append(NoEscape(block))
    return doc.dumps()


def letter_block(batch: Batch, recipient: Recipient, *, assets: dict[str, str] | None = None,
                 memo: dict | None = None) -> str:
    """The ``letter`` environment of one recipient, as LaTeX.

    ``memo``: a dict kept with the batch (``Loaded.memo``), so the shared text
    is rendered once, not once per letter, and each letter once, however many
    stages ask for it. The key holds what the block depends on beyond the
    batch: the recipient, the image names, and the ``compose`` that makes it.
    """
    memo = {} if memo is None else memo
    key = ("block", recipient.id, tuple(sorted((assets or {}).items())), compose)
    if key not in memo:
        memo[key] = compose(batch, recipient, assets=assets, memo=memo).dumps()
    return memo[key]


def compose(batch: Batch, recipient: Recipient, *, assets: dict[str, str] | None = None,
            memo: dict | None = None) -> Letter:
    """The letter to ``recipient``: its values, opening, body and closing.

    ``assets`` maps "logo" and "signature" to file names as TeX will find them
    (the build copies the images next to the ``.tex``); without them the
    letterhead has no logo and the signature block leaves room for wet ink.
    """
    memo = {} if memo is None else memo
    letter = Letter(arguments=[NoEscape(recipient.id)])  # schema: [a-z0-9-] only
    _set_values(letter, batch, assets or {}, {
        "toname": latex.text(recipient.name),
        "torole": latex.text(recipient.role or ""),
        "toaddress": latex.lines(recipient.address),
    }, memo)
    letter.append(Command("opening", latex.text(recipient.salutation)))
    for paragraph in body(batch, recipient, memo):
        letter.append(NoEscape("\n" + paragraph + "\n"))
    letter.append(Command("closing"))
    return letter


@dataclass(frozen=True)
class CoverRow:
    """One letter as the cover sheet lists it: where it sits in the bundle."""

    recipient: Recipient
    first_page: int
    last_page: int


def compose_cover(batch: Batch, rows: list[CoverRow], *, assets: dict[str, str] | None = None,
                  pages: int = 1) -> Document:
    """The bundle's cover sheet: what is in it, and a line for the signatory's
    initials. ``pages``: its expected length (for "Page n of m")."""
    letter = batch.letter
    title = f"Letters for signature: {letter.title or long_date(letter.date)}"
    doc = _document(batch, "print", metadata(batch, title), "cover")
    doc.append(NoEscape(rf"\letterpagehint{{cover}}{{{int(pages)}}}"))
    cover = Letter(arguments=[NoEscape("cover")])
    _set_values(cover, batch, assets or {}, {})
    cover.append(Command("coversheet", "Letters for signature"))
    if letter.title:
        cover.append(NoEscape(r"\textbf{%s}\par\medskip" % latex.text(letter.title)))
    count = f"{len(rows)} letter{'s' if len(rows) != 1 else ''}"
    cover.append(NoEscape(latex.text(
        f"{count} dated {long_date(letter.date)}, for signature by "
        f"{letter.signatory.name or letter.signatory.title}. Please read each letter, sign it "
        f"where marked, and initial this sheet.") + "\\par\\medskip\n"))
    table = LongTable(NoEscape(
        r"@{}r >{\raggedright\arraybackslash}p{55mm} >{\raggedright\arraybackslash}p{72mm} r@{}"),
        row_height=1.2)
    table.add_row([NoEscape(r"\textbf{%s}" % h) for h in ("No.", "Recipient", "Role", "Pages")])
    table.add_hline()
    table.end_table_header()
    for number, row in enumerate(rows, 1):
        pages = (f"{row.first_page}" if row.first_page == row.last_page
                 else f"{row.first_page}\u2013{row.last_page}")
        table.add_row([NoEscape(str(number)), latex.text(row.recipient.name),
                       latex.text(row.recipient.role or ""), latex.text(pages)])
    cover.append(table)
    cover.append(Command("initialline"))
    doc.append(cover)
    return doc


def _document(batch: Batch, medium: str, info: dict[str, str], rid: str) -> Document:
    """A document on the letterhead class, with its PDF metadata."""
    doc = Document(documentclass=CLASS_NAME, document_options=[medium], fontenc=None, inputenc=None,
                   lmodern=False, textcomp=False, page_numbers=True)
    doc.packages.clear()  # PyLaTeX adds lastpage (texlive-latex-extra); the class counts pages
    if medium == "web":
        # LaTeX's PDF management writes the Info dictionary and the XMP packet
        # from hyperref's keys. Two pairs of braces: it would split a value at
        # its commas into several XMP entries.
        keys = {f"pdf{k.lower()}": v for k, v in info.items()} | {"pdfcreator": "letterbatch"}
        doc.preamble.append(Command("hypersetup", NoEscape(",\n".join(
            f"{key}={{{{{latex.meta(value)}}}}}" for key, value in keys.items()))))
        # The XMP packet's dates and instance id default to the clock; fix
        # them from the letter so the same inputs give the same bytes.
        letter = batch.letter
        stamp = pdf_date(letter.date)
        instance = uuid.uuid5(uuid.NAMESPACE_URL, f"letterbatch:{rid}:{letter.date}")
        for group, key in (("document", "pdfcreationdate"), ("document", "pdfmoddate"),
                           ("hyperref", "pdfmetadate"), ("hyperref", "pdfdate")):
            doc.preamble.append(NoEscape(rf"\AddToDocumentProperties[{group}]{{{key}}}{{{stamp}}}"))
        doc.preamble.append(NoEscape(rf"\hypersetup{{pdfinstanceid={{uuid:{instance}}}}}"))
    else:
        # Straight into the Info dictionary as UTF-16 hex strings: no TeX
        # expansion, so every character is kept as typed ("--" stays two hyphens).
        doc.preamble.append(NoEscape("\\pdfinfo{%s}" % " ".join(
            f"/{key} <{latex.pdf_hex(value)}>" for key, value in info.items() if value)))
        doc.preamble.append(NoEscape("\\hypersetup{pdfcreator={letterbatch}}"))
    return doc


def _set_values(letter: Letter, batch: Batch, assets: dict[str, str], values: dict[str, NoEscape],
                memo: dict | None = None) -> None:
    """\\letterset for every key: the batch's shared values, then ``values``."""
    memo = {} if memo is None else memo
    shared = ("shared values", tuple(sorted(assets.items())))
    if shared not in memo:
        memo[shared] = "%\n".join(
            _letterset(key, value) for key, value in _shared_values(batch, assets).items())
    letter.append(NoEscape(memo[shared]))
    for key, value in values.items():
        letter.append(NoEscape(_letterset(key, value)))


def _letterset(key: str, value: NoEscape) -> str:
    return Command("letterset", arguments=[NoEscape(key), value]).dumps()


def _shared_values(batch: Batch, assets: dict[str, str]) -> dict[str, NoEscape]:
    sender, signatory = batch.letter.sender, batch.letter.signatory
    return {
        "date": latex.text(long_date(batch.letter.date)),
        "fromname": latex.text(sender.name),
        "fromrole": latex.text(sender.role),
        "fromaddress": latex.lines(sender.address),
        "fromphone": latex.text(sender.phone or ""),
        "fromemail": _email_link(sender.email) if sender.email else NoEscape(""),
        "fromweb": _web_link(sender.web) if sender.web else NoEscape(""),
        "fromlogo": NoEscape(assets.get("logo", "")),  # our own file name, not data
        "closing": latex.text(batch.letter.closing),
        "signame": latex.text(signatory.name or ""),
        "sigtitle": latex.text(signatory.title),
        "sigimage": NoEscape(assets.get("signature", "")),
        "toname": NoEscape(""), "torole": NoEscape(""), "toaddress": NoEscape(""),
    }


def body(batch: Batch, recipient: Recipient, memo: dict | None = None) -> list[str]:
    """The letter's paragraphs as LaTeX, footnotes in place."""
    memo = {} if memo is None else memo
    out: list[str] = []
    for parts in batch.paragraphs_for(recipient):
        current: list[str] = []
        for _name, source in parts:
            key = ("part", source)
            if key not in memo:
                memo[key] = [_render(paragraph, batch) for paragraph in markup.parse(source)]
            rendered = memo[key]
            if not rendered:
                continue
            current.append(rendered[0])
            for extra in rendered[1:]:  # a part may hold paragraph breaks
                out.append(" ".join(current))
                current = [extra]
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
