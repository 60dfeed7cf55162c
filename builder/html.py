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

import base64
import html
import re
from pathlib import Path

from . import markup
from .compose import (PDF_LANG, closing, follows_mark, full_stop, long_date, marking, own_or_shared, pdf_title,
                      sender_roles, signatory_title, signature_alt)
from .latex import compose_marks, mailto
from .schema import Batch, Recipient

_SAFE_URL = re.compile(r"(?i)^(https?://|mailto:)")
# The words the letterhead class prints around the values, by language.
LABELS = {
    "en": {"ourref": "Our ref:", "yourref": "Your ref:", "cc": "cc:", "enc": "Enc:", "ps": "PS", "phone": "Tel:",
           "notes": "Notes", "note": "Note", "footnote": "Footnote", "back": "Back to text"},
    "cy": {"ourref": "Ein cyf:", "yourref": "Eich cyf:", "cc": "Copïau:", "enc": "Amg:", "ps": "ON", "phone": "Ffôn:",
           "notes": "Nodiadau", "note": "Nodyn", "footnote": "Nodyn", "back": "Yn ôl i’r testun"},
}

# Black on white and the browser's own link colours: contrast well above WCAG AA.
# On a phone the letterhead's two columns stand one above the other, and a
# long address breaks rather than running off the screen (WCAG 1.4.10, reflow).
# Side by side, a flex column is never narrower than its longest word unless
# told (min-width: 0; break-word does not count): a long e-mail or web address
# made the page scroll sideways just above the phone layout (577-649 px). So
# the sender's address may be narrower, and breaks where it must; so may the
# column of the sender's name (a name of one long word widened the page). The
# name's column takes the room the address leaves (the address up to half the
# width): shrunk alike, a long name squeezed the address at any width, its
# phone number and e-mail address broken mid-word ("office@exam / ple.org").
STYLE = """\
body { font-family: sans-serif; line-height: 1.5; max-width: 42em; margin: 2em auto; padding: 0 1em;
       overflow-wrap: break-word; }
.logo { display: block; height: 14mm; width: auto; max-width: 100%; margin-top: 1em; }
header { display: flex; justify-content: space-between; gap: 2em; border-bottom: 1px solid #666; }
header > div { flex: 1 1 0; min-width: 0; }
header address { font-style: normal; text-align: right; flex: 0 1 auto; max-width: 50%; min-width: 0; }
@media (max-width: 36em) { header { flex-direction: column; gap: 0; }
  header > div, header address { flex: none; max-width: none; } header address { text-align: left; } }
.sender-name { font-size: 1.4em; font-weight: bold; margin-bottom: 0; }
.marking { text-align: center; font-weight: bold; }
.date { text-align: right; }
.recipient { margin: 2em 0; }
.signatory { margin-top: 3em; }
.signature { display: block; height: 16mm; width: auto; max-width: 50%; margin-bottom: 0.5em; }
.notes { border-top: 1px solid #666; margin-top: 2em; font-size: 0.9em; }
section + section { border-top: 1px solid #666; margin-top: 3em; }
"""


def e(value: str) -> str:
    """Text as HTML: every character prints as itself, with a letter and a
    following combining accent joined as the PDF joins them (``compose_marks``:
    e + U+0301 is é there, so the page's é is too; anything else as typed)."""
    return html.escape(compose_marks(value), quote=True)


def href(url: str) -> str:
    """A URL for an ``href`` attribute; the schema allows only http(s) and mailto.
    As typed: an address, not text (the PDF links the address as typed too)."""
    if not _SAFE_URL.match(url):
        raise ValueError(f"unsafe URL {url!r}")
    return html.escape(url, quote=True)


# A browser shows these in an <img>; a PDF logo it does not, so the page has none.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def image_url(path: Path) -> str | None:
    """A PNG or JPEG as a ``data:`` URL, so the page is one file to publish;
    None for a PDF."""
    kind = IMAGE_TYPES.get(path.suffix.lower())
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}" if kind else None


def letter_page(batch: Batch, recipient: Recipient, logo: str | None = None, signature: str | None = None) -> str:
    """The complete HTML page of the letter to ``recipient``: the letterhead
    (``logo``: its image as ``image_url`` gives it, above the sender's name as
    on paper), then the letter in each of its languages (cy-en: Welsh, then
    English), ``signature`` (the signatory's image, as ``image_url`` gives it)
    in each signature block as on paper."""
    letter, sender = batch.letter, batch.letter.sender
    languages = batch.languages_of(recipient)
    contact = [e(line) for line in sender.address]
    if sender.phone:
        contact.append(f"{LABELS[languages[0]]['phone']} {e(sender.phone)}")
    if sender.email:
        contact.append(f'<a href="{href(mailto(sender.email))}">{e(sender.email)}</a>')
    if sender.web:
        shown = sender.web.split("://", 1)[-1].rstrip("/")
        contact.append(f'<a href="{href(sender.web)}">{e(shown)}</a>')
    # the logo says what the name below it says: decorative, so no alternative text
    image = f'<img class="logo" src="{logo}" alt="">' if logo else ""
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{PDF_LANG[languages[0]]}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(pdf_title(batch, recipient))}</title>",
        f"<style>\n{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f'<div>{image}<p class="sender-name">{e(sender.name)}</p>'
        f'<p>{"<br>".join(_roles(batch, languages))}</p></div>',
        f"<address>{'<br>'.join(contact)}</address>",
        "</header>",
        "<main>",
        _heading(batch, recipient, languages),
    ]
    for number, language in enumerate(languages):
        lang = f' lang="{PDF_LANG[language]}"' if number else ""
        parts += [f"<section{lang} aria-label=\"{e(pdf_title(batch, recipient, language))}\">"
                  if len(languages) > 1 else "<section>"]
        parts += _letter(batch, recipient, language, f"{language}-", opening=number == 0, signature=signature)
        parts += ["</section>"]
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _in_language(text: str, language: str, page_language: str) -> str:
    """HTML ``text`` in ``language``, marked as such where the page is in
    another (WCAG 3.1.2): a bilingual page is Welsh, its English words are not."""
    return text if language == page_language else f'<span lang="{PDF_LANG[language]}">{text}</span>'


def _roles(batch: Batch, languages: tuple[str, ...]) -> list[str]:
    """The sender's roles as the letterhead prints them (``sender_roles``), each
    marked with its language: a bilingual page's English role is English."""
    role, page_language = batch.letter.sender.role, languages[0]
    out = []
    for text in sender_roles(batch, languages):
        # the language it was given in (one given in none of them: the page's, as it stands in for it)
        language = next((each for each in languages if batch.shared_text(role, each) == text), page_language)
        out.append(_in_language(e(text), language, page_language))
    return out


def _heading(batch: Batch, recipient: Recipient, languages: tuple[str, ...]) -> str:
    """The page's ``<h1>``: ``letter.title`` in the page's languages, else the title
    "Llythyr at ... / Letter to ...", each language's part marked as such where it is
    not the page's (WCAG 3.1.2), the whole heading when it is all in one other (a title
    written once, in English, on a Welsh page)."""
    if batch.letter.title:
        parts = {}  # text -> its language: the first that gives it (the page's), as a title the same in
        for text, language in filter(None, (batch.letter.title_in(each) for each in languages)):
            parts.setdefault(text, language)  # both ("COVID-19") was marked English on a bilingual page
    else:
        parts = {pdf_title(batch, recipient, each): each for each in languages}
    only = set(parts.values())
    if len(only) == 1 and languages[0] not in only:
        return f'<h1 lang="{PDF_LANG[only.pop()]}">{" / ".join(map(e, parts))}</h1>'
    return "<h1>" + " / ".join(_in_language(e(text), language, languages[0]) for text, language in parts.items()) + "</h1>"


def _letter(batch: Batch, recipient: Recipient, language: str, ids: str, opening: bool = True,
            signature: str | None = None) -> list[str]:
    """One language's letter: the PDF's order, its words. ``opening``: it starts
    with the marking, references, date and recipient block; a bilingual
    letter's second half does not, as on paper (printed once, it starts at
    the salutation on a new page). ``signature``: the signature image's URL."""
    letter, signatory = batch.letter, batch.letter.signatory
    words = LABELS[language]
    notes: list[str] = []  # each footnote's HTML, numbered from 1 as in the PDF
    out = _opening(batch, recipient, language) if opening else []
    out.append(f"<p>{e(batch.own_text(recipient, recipient.salutation, language) or '')}</p>")
    subject = (batch.own_text(recipient, recipient.subject, language) if recipient.subject is not None
               else batch.shared_text(letter.subject, language))
    for nodes in markup.parse(subject or ""):
        out.append(f"<h2>{_inline(nodes, batch, notes, ids)}</h2>")
    out += [f"<p>{_inline(nodes, batch, notes, ids)}</p>" for nodes in paragraphs(batch, recipient, language)]
    out.append(f"<p>{e(closing(batch, recipient, language))}</p>")
    # as the printed block: the title in bold, the name (show_name) plain above it
    name = f"{e(signatory.name)}<br>" if signatory.name and signatory.show_name else ""
    # the signature says the letter is signed: an image with words, as the PDF's Figure
    if signature:
        name = f'<img class="signature" src="{signature}" alt="{e(signature_alt(batch, language))}">' + name
    out.append(f'<p class="signatory">{name}<strong>{e(signatory_title(batch, language))}</strong></p>')
    for label, lines in ((words["cc"], own_or_shared(recipient.cc, letter.cc)),
                         (words["enc"], own_or_shared(recipient.enclosures, letter.enclosures))):
        if lines:
            out.append(f"<p>{e(label)} {'<br>'.join(e(line) for line in lines)}</p>")
    ps = (batch.own_text(recipient, recipient.ps, language) if recipient.ps is not None
          else batch.shared_text(letter.ps, language))
    for number, nodes in enumerate(markup.parse(ps or "")):
        out.append(f"<p>{e(words['ps']) + ' ' if number == 0 else ''}{_inline(nodes, batch, notes, ids)}</p>")
    if notes:
        out += [f'<section class="notes" aria-labelledby="{ids}notes">',
                f'<h2 id="{ids}notes">{e(words["notes"])}</h2>', "<ol>"]
        out += [f'<li id="{ids}note-{n}">{text} <a href="#{ids}mark-{n}" '
                f'aria-label="{e(words["back"])} ({e(words["note"])} {n})">{e(words["back"])}</a></li>'
                for n, text in enumerate(notes, 1)]
        out += ["</ol>", "</section>"]
    return out


def _opening(batch: Batch, recipient: Recipient, language: str) -> list[str]:
    """What the letter prints above the salutation: the marking, the references
    and date, the recipient block."""
    letter, words = batch.letter, LABELS[language]
    out = []
    shown = marking(batch, recipient)
    if shown:
        out.append(f'<p class="marking">{e(shown)}</p>')
    refs = [(words["ourref"], own_or_shared(recipient.our_ref, letter.our_ref)), (words["yourref"], recipient.your_ref)]
    refs = [f"{e(label)} {e(value)}" for label, value in refs if value]
    date = f'<time datetime="{letter.date.isoformat()}">{e(long_date(letter.date, language))}</time>'
    out.append(f'<p class="date">{"<br>".join(refs + [date])}</p>')
    to = [e(recipient.name)] + ([e(recipient.role)] if recipient.role else []) + [e(a) for a in recipient.address]
    out.append(f'<p class="recipient">{"<br>".join(to)}</p>')
    return out


def paragraphs(batch: Batch, recipient: Recipient, language: str | None = None) -> list[markup.Paragraph]:
    """The body as paragraphs of markup nodes, joined as ``compose.body``
    joins them: a paragraph's parts run on with a space; a blank line inside
    a part starts a new paragraph."""
    out: list[markup.Paragraph] = []
    for parts in batch.paragraphs_for(recipient, language):
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


def _inline(nodes: markup.Paragraph, batch: Batch, notes: list[str], ids: str, after_mark: bool = False) -> str:
    """Markup as HTML, footnote marks numbered on from ``notes``; ``after_mark``
    as ``compose.follows_mark`` takes it, so marks are kept apart as on paper."""
    pieces = []
    for index, node in enumerate(nodes):
        after = follows_mark(nodes, index, after_mark)
        if isinstance(node, markup.Text):
            pieces.append(e(node.value))
        elif isinstance(node, markup.Emphasis):
            tag = "strong" if node.strong else "em"
            pieces.append(f"<{tag}>{_inline(node.children, batch, notes, ids, after)}</{tag}>")
        elif isinstance(node, markup.Link):
            pieces.append(f'<a href="{href(node.url)}">{_inline(node.children, batch, notes, ids)}</a>')
        elif isinstance(node, markup.Cite):
            ref = batch.references[node.key]
            notes.append(f'{e(ref.author)} ({e(str(ref.year))}) <a href="{href(ref.url)}">{e(ref.title)}</a>'
                         f'{full_stop(ref.title)}')
            n = len(notes)
            if after:
                pieces.append("<sup>,</sup>")  # two marks side by side read as one: 12
            # named as the PDF's link is ("Footnote n", its /Contents): "1" alone says not what it is
            word = LABELS[ids.removesuffix("-")]["footnote"]  # ids: the language and "-" (``_letter``)
            pieces.append(f'<sup><a href="#{ids}note-{n}" id="{ids}mark-{n}" aria-label="{e(word)} {n}">{n}</a></sup>')
    return "".join(pieces)
