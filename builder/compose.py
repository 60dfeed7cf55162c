"""Compose stage: one recipient of a ``Batch`` -> the LaTeX source of their letter.

Each letter is a complete document on the letterhead class (``letterhead/``),
built with PyLaTeX. Data reaches the source only through ``latex.text`` and
``latex.href``; markup nodes from ``markup.parse`` become LaTeX commands here.
"""
from __future__ import annotations

import datetime as dt

from pylatex import Command, Document, NoEscape

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


def compose(batch: Batch, recipient: Recipient, *, logo: str | None = None) -> Document:
    """The letter to ``recipient`` as a PyLaTeX document.

    ``logo`` is the logo's file name as TeX will find it (the build copies the
    file next to the ``.tex``); None prints the letterhead without one.
    """
    letter = batch.letter
    sender, signatory = letter.sender, letter.signatory
    doc = Document(documentclass=CLASS_NAME, fontenc=None, inputenc=None,
                   lmodern=False, textcomp=False, page_numbers=True)
    # PyLaTeX adds lastpage (texlive-latex-extra); the class counts pages itself.
    doc.packages.clear()

    values = {
        "id": NoEscape(recipient.id),  # schema: [a-z0-9-] only
        "date": latex.text(long_date(letter.date)),
        "fromname": latex.text(sender.name),
        "fromrole": latex.text(sender.role),
        "fromaddress": latex.lines(sender.address),
        "fromphone": latex.text(sender.phone or ""),
        "fromemail": _email_link(sender.email) if sender.email else NoEscape(""),
        "fromweb": _web_link(sender.web) if sender.web else NoEscape(""),
        "fromlogo": NoEscape(logo or ""),
        "toname": latex.text(recipient.name),
        "torole": latex.text(recipient.role or ""),
        "toaddress": latex.lines(recipient.address),
        "closing": latex.text(letter.closing),
        "signame": latex.text(signatory.name or ""),
        "sigtitle": latex.text(signatory.title),
    }
    for key, value in values.items():
        doc.preamble.append(Command("letterset", arguments=[NoEscape(key), value]))
    metadata = {
        "pdftitle": pdf_title(recipient),
        "pdfauthor": signatory.name or sender.name,
        "pdfsubject": letter.title or "",
        "pdfcreator": "letterbatch",
    }
    doc.preamble.append(Command("hypersetup", NoEscape(",\n".join(
        f"{key}={{{latex.text(value)}}}" for key, value in metadata.items()))))

    doc.append(Command("opening", latex.text(recipient.salutation)))
    for paragraph in body(batch, recipient):
        doc.append(NoEscape("\n" + paragraph + "\n"))
    doc.append(Command("closing"))
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
