"""Web copies as HTML: one recipient's letter as an accessible page.

UK government guidance prefers HTML to PDF for what is published, so each
web copy has a page beside it: the letterhead in a ``header``, the sender's
details in an ``address``, the letter in ``main``, its paragraphs as ``p``,
and its footnotes as an ordered list whose entries link back to their marks.
It is made from the same model as the PDF (the batch, ``markup.parse`` of
the body, ``compose`` for dates, titles and the joining of parts). Every value
from the batch goes through ``html.escape``; nothing from it becomes markup.
"""
from __future__ import annotations

import html
import re

from . import markup
from .compose import long_date, pdf_title
from .schema import Batch, Recipient

LANGUAGE = "en-GB"
_SAFE_URL = re.compile(r"(?i)^(https?://|mailto:)")

# Black on white and the browser's own link colours: contrast well above WCAG AA.
STYLE = """\
body { font-family: sans-serif; line-height: 1.5; max-width: 42em; margin: 2em auto; padding: 0 1em; }
header { display: flex; justify-content: space-between; gap: 2em; border-bottom: 1px solid #666; }
header address { font-style: normal; text-align: right; }
.sender-name { font-size: 1.4em; font-weight: bold; margin-bottom: 0; }
.date { text-align: right; }
.recipient { margin: 2em 0; }
.signatory { margin-top: 3em; }
.notes { border-top: 1px solid #666; margin-top: 2em; font-size: 0.9em; }
"""


def e(value: str) -> str:
    """Text as HTML: every character prints as itself."""
    return html.escape(value, quote=True)


def href(url: str) -> str:
    """A URL for an ``href`` attribute; the schema allows only http(s) and mailto."""
    if not _SAFE_URL.match(url):
        raise ValueError(f"unsafe URL {url!r}")
    return e(url)


def letter_page(batch: Batch, recipient: Recipient) -> str:
    """The complete HTML page of the letter to ``recipient``."""
    letter, sender, signatory = batch.letter, batch.letter.sender, batch.letter.signatory
    notes: list[str] = []  # each footnote's HTML, numbered from 1 as in the PDF
    body = "\n".join(f"<p>{_inline(nodes, batch, notes)}</p>" for nodes in paragraphs(batch, recipient))
    contact = [e(line) for line in sender.address]
    if sender.phone:
        contact.append(f"Tel: {e(sender.phone)}")
    if sender.email:
        contact.append(f'<a href="{href("mailto:" + sender.email)}">{e(sender.email)}</a>')
    if sender.web:
        shown = sender.web.split("://", 1)[-1].rstrip("/")
        contact.append(f'<a href="{href(sender.web)}">{e(shown)}</a>')
    to = [e(recipient.name)] + ([e(recipient.role)] if recipient.role else []) + [e(a) for a in recipient.address]
    title = letter.title or pdf_title(recipient)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{LANGUAGE}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(pdf_title(recipient))}</title>",
        f"<style>\n{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f'<div><p class="sender-name">{e(sender.name)}</p><p>{e(sender.role)}</p></div>',
        f"<address>{'<br>'.join(contact)}</address>",
        "</header>",
        "<main>",
        f"<h1>{e(title)}</h1>",
        f'<p class="date"><time datetime="{letter.date.isoformat()}">{e(long_date(letter.date))}</time></p>',
        f'<p class="recipient">{"<br>".join(to)}</p>',
        f"<p>{e(recipient.salutation)}</p>",
        body,
        f"<p>{e(letter.closing)}</p>",
        '<p class="signatory">' + (f"<strong>{e(signatory.name)}</strong><br>" if signatory.name else "")
        + f"{e(signatory.title)}</p>",
    ]
    if notes:
        parts += ['<section class="notes" aria-labelledby="notes">', '<h2 id="notes">Notes</h2>', "<ol>"]
        parts += [f'<li id="note-{n}">{text} <a href="#mark-{n}" aria-label="Back to text of note {n}">'
                  "Back to text</a></li>" for n, text in enumerate(notes, 1)]
        parts += ["</ol>", "</section>"]
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def paragraphs(batch: Batch, recipient: Recipient) -> list[markup.Paragraph]:
    """The body as paragraphs of markup nodes, joined as ``compose.body``
    joins them: a paragraph's parts run on with a space; a blank line inside
    a part starts a new paragraph."""
    out: list[markup.Paragraph] = []
    for parts in batch.paragraphs_for(recipient):
        current: list[markup.Inline] = []
        for _name, source in parts:
            parsed = markup.parse(source)
            if not parsed:
                continue
            current += ([markup.Text(" ")] if current else []) + list(parsed[0])
            for extra in parsed[1:]:
                out.append(tuple(current))
                current = list(extra)
        if current:
            out.append(tuple(current))
    return out


def _inline(nodes: markup.Paragraph, batch: Batch, notes: list[str]) -> str:
    pieces = []
    for node in nodes:
        if isinstance(node, markup.Text):
            pieces.append(e(node.value))
        elif isinstance(node, markup.Emphasis):
            tag = "strong" if node.strong else "em"
            pieces.append(f"<{tag}>{_inline(node.children, batch, notes)}</{tag}>")
        elif isinstance(node, markup.Link):
            pieces.append(f'<a href="{href(node.url)}">{_inline(node.children, batch, notes)}</a>')
        elif isinstance(node, markup.Cite):
            ref = batch.references[node.key]
            notes.append(f'{e(ref.author)} ({e(ref.year)}) <a href="{href(ref.url)}">{e(ref.title)}</a>')
            n = len(notes)
            pieces.append(f'<sup><a href="#note-{n}" id="mark-{n}" aria-label="Note {n}">{n}</a></sup>')
    return "".join(pieces)
