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
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pylatex import Command, Document, NoEscape
from pylatex.base_classes import Environment

from . import latex, markup
from .schema import LANGUAGES, Batch, Recipient, first_given

CLASS_NAME = "letterbatch"
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July",
           "August", "September", "October", "November", "December"),
    # as babel's welsh.ldf names them
    "cy": ("Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf",
           "Awst", "Medi", "Hydref", "Tachwedd", "Rhagfyr"),
}
# Web copies: PDF/A-2b metadata, the document language, and a tagged PDF
# (structure tree, paragraphs, notes, artifacts) from LaTeX's tagging code:
# pdfmanagement-testphase (texlive-latex-recommended) and tagpdf
# (texlive-latex-extra). It must come before \documentclass.
WEB_METADATA = "\\DocumentMetadata{testphase=phase-II, pdfstandard=A-2b, lang=%s}\n"


class Letter(Environment):
    """``\\begin{letter}{<id>}``: one letter, on pages of its own."""

    _latex_name = "letter"


def long_date(date: dt.date, language: str = "en") -> str:
    """'13 October 2020' ('13 Hydref 2020' in Welsh), whatever the machine's locale."""
    return f"{date.day} {MONTHS[language][date.month - 1]} {date.year}"


# ---- parts: languages, closings, the class ------------------------------------

PDF_LANG = {"en": "en-GB", "cy": "cy"}
# The UK rule: a salutation that names nobody ("Dear Sir or Madam") is closed
# "Yours faithfully", a named one "Yours sincerely". In Welsh, "Yn gywir" and
# the formal "Yr eiddoch yn gywir" for the nameless (README, "Letters in Welsh").
CLOSINGS = {
    "en": {"named": "Yours sincerely,", "nameless": "Yours faithfully,"},
    "cy": {"named": "Yn gywir,", "nameless": "Yr eiddoch yn gywir,"},
}
# Whole phrases, never a bag of words: "Dear A," or "Dear May," names someone
# (the words "a" (Welsh "and") and "may" once made them nameless). A title pair
# is "Sir or Madam", "Sir/Madam", "Syr neu Fadam", "Syr a Madam"; Welsh nouns
# after "Annwyl" take the soft mutation (gyfaill, bawb, gwsmer).
_TITLE = r"(?:sirs?|madame?|syr|fadam)"
_NOBODY = (rf"{_TITLE}(?:(?:\s*/\s*|\s+(?:or|and|&|neu|a|ac)\s+){_TITLE})?",
           r"colleagues?", r"all", r"friends?", r"customers?", r"to\s+whom\s+it\s+may\s+concern",
           r"gyfaill", r"gyfeillion", r"[pb]awb", r"gydweithiwr", r"gydweithwyr", r"gwsmer",
           r"at\s+bwy\s+bynnag\s+y\s+gall\s+hyn\s+berthyn\s+iddo")
_NAMELESS = re.compile(rf"(?i)^\s*(?:(?:dear|annwyl)\s+)?(?:{'|'.join(_NOBODY)})\s*[,:!]?\s*$")


def is_nameless(salutation: str) -> bool:
    """Does the salutation name nobody ("Dear Sir or Madam", "Annwyl Syr/Fadam")?"""
    return bool(_NAMELESS.match(salutation))


def pdf_lang(batch: Batch, recipient: Recipient) -> str:
    """The PDF's /Lang: the letter's (first) language."""
    return PDF_LANG[batch.languages_of(recipient)[0]]


def closing(batch: Batch, recipient: Recipient, language: str | None = None) -> str:
    """The closing line: the recipient's, the letter's, or the UK rule's."""
    language = language or batch.languages_of(recipient)[0]
    if recipient.closing is not None:
        return batch.own_text(recipient, recipient.closing, language) or ""
    if batch.letter.closing is not None:
        return batch.shared_text(batch.letter.closing, language) or ""
    salutation = batch.own_text(recipient, recipient.salutation, language) or ""
    return CLOSINGS[language]["nameless" if is_nameless(salutation) else "named"]


def signatory_title(batch: Batch, language: str) -> str:
    """The signatory's title in ``language`` (given by language, or written once in
    the letter's), or "" when it has none in that language."""
    return batch.shared_text(batch.letter.signatory.title, language) or ""


# The signature image's text alternative (web copies: the PDF's Figure, the page's img).
SIGNATURE_WORDS = {"en": "Signature of {}", "cy": "Llofnod {}"}


def signature_alt(batch: Batch, language: str) -> str:
    """What the signature image shows, in ``language``: "Signature of <name>"
    ("Llofnod <name>" in Welsh; the title where the signatory has no name). It
    says the letter is signed, so it is a figure with this text, not decoration."""
    signatory = batch.letter.signatory
    return SIGNATURE_WORDS[language].format(signatory.name or signatory_title(batch, language)).strip()


def sender_roles(batch: Batch, languages: tuple[str, ...]) -> list[str]:
    """The sender's role in each of ``languages`` (given by language, or written
    once in the letter's), each once: a bilingual letter's letterhead, printed
    once, gives the Welsh and the English, Welsh first, as its pages are. A
    language it has none in is left out (a letter in that language is refused
    before it is composed: ``Batch.untranslated``); with none at all, the first given."""
    role = batch.letter.sender.role
    found = [text for text in (batch.shared_text(role, each) for each in languages) if text]
    return list(dict.fromkeys(found)) or [first_given(role)]


def class_name(batch: Batch) -> str:
    """The letterhead class: letterbatch, or the batch's own (house.cls -> house)."""
    return Path(batch.letter.letterhead).stem if batch.letter.letterhead else CLASS_NAME


def class_options(batch: Batch, medium: str) -> list[str]:
    """Class options from the batch: medium, typeface, envelope, fold marks, and
    Welsh (babel) when any letter is in Welsh. The same for every document of
    the batch, so a letter comes out the same alone or with others."""
    letter = batch.letter
    options = [medium, letter.font, "nowindow" if letter.envelope == "none" else letter.envelope]
    return options + ([] if letter.fold_marks else ["nofoldmarks"]) + (["welsh"] if batch.any_welsh else [])


def _document_of(batch: Batch | None, medium: str) -> Document:
    doc = Document(documentclass=class_name(batch) if batch else CLASS_NAME,
                   document_options=class_options(batch, medium) if batch else [medium],
                   fontenc=None, inputenc=None, lmodern=False, textcomp=False, page_numbers=True)
    doc.packages.clear()  # PyLaTeX adds lastpage (texlive-latex-extra); the class counts pages
    return doc


def pdf_date(date: dt.date) -> str:
    """A PDF date at noon UTC of the letter's date (as the build's
    SOURCE_DATE_EPOCH), so every run writes the same bytes."""
    return f"D:{date:%Y%m%d}120000Z"


def recipient_label(recipient: Recipient) -> str:
    """'name, role': how the manifest and the bundle's bookmarks name a letter."""
    return recipient.name + (f", {recipient.role}" if recipient.role else "")


# A letter's title (its PDF's Title, which readers show in the window's title
# bar, and its web page's <title>), by language.
TITLE_WORDS = {"en": "Letter to {}", "cy": "Llythyr at {}"}


def pdf_title(batch: Batch, recipient: Recipient, language: str | None = None) -> str:
    """'Letter to name, role' in the letter's language (Welsh: 'Llythyr at ...');
    a bilingual letter's in both, Welsh first, as its pages are (Welsh
    Language Standards: a Welsh letter's visible texts are Welsh).
    ``language``: one language's title alone."""
    label = recipient_label(recipient)
    languages = (language,) if language else batch.languages_of(recipient)
    return " / ".join(TITLE_WORDS[each].format(label) for each in languages)


def metadata(batch: Batch, title: str, languages: tuple[str, ...] | None = None) -> dict[str, str]:
    """The PDF's document information: title, author, subject (``letter.title`` in
    ``languages``, the document's: by default the letter's), keywords."""
    letter = batch.letter
    return {
        "Title": title,
        "Author": letter.signatory.name or letter.sender.name,
        "Subject": title_text(batch, languages or LANGUAGES[letter.language]),
        "Keywords": ", ".join(letter.keywords),
    }


def title_text(batch: Batch, languages: tuple[str, ...]) -> str:
    """``letter.title`` in each of ``languages`` ("Teitl / Title"), each text once; "" without one."""
    titles = [batch.letter.title_in(each) for each in languages]
    return " / ".join(dict.fromkeys(text for text, _ in filter(None, titles)))


def letter_source(batch: Batch, recipient: Recipient, block: str, *, medium: str = "print",
                  memo: dict | None = None) -> str:
    """The complete ``.tex`` of one letter (``block``, from ``letter_block``),
    for print or for the web. ``memo``: as for ``letter_block``."""
    memo = {} if memo is None else memo
    key = ("source", recipient.id, medium, block)
    if key not in memo:
        lang = pdf_lang(batch, recipient)
        doc = _document(batch, medium, metadata(batch, pdf_title(batch, recipient), batch.languages_of(recipient)),
                        recipient.id, lang)
        doc.append(NoEscape(block))
        memo[key] = (WEB_METADATA % lang if medium == "web" else "") + doc.dumps()
    return memo[key]


def batch_source(letters: list[str], page_hints: dict[str, int], batch: Batch | None = None) -> str:
    """One document holding many letters (each from ``letter_block``).

    ``page_hints`` gives the page counts known from an earlier build, so
    "Page n of m" is right on the first run and no second pass is needed.
    PDF metadata is set per letter when the build splits the result.
    ``batch`` gives the class and its options (letterhead, font, envelope).
    """
    doc = _document_of(batch, "print")
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
    """The letter to ``recipient``: its values, opening, body and closing,
    then cc, enclosures and postscript; a bilingual letter (cy-en) has all of
    it in Welsh, then (on a new page) in English.

    ``assets`` maps "logo" and "signature" to file names as TeX will find them
    (the build copies the images next to the ``.tex``); without them the
    letterhead has no logo and the signature block leaves room for wet ink.
    """
    memo = {} if memo is None else memo
    languages = batch.languages_of(recipient)
    first = languages[0]
    letter = Letter(arguments=[NoEscape(recipient.id)])  # schema: [a-z0-9-] only
    own = _recipient_values(batch, recipient)
    _set_values(letter, batch, assets or {}, {
        "toname": latex.text(recipient.name),
        "torole": latex.text(recipient.role or ""),
        "toaddress": latex.lines(recipient.address),
        "fromrole": latex.lines(sender_roles(batch, languages)),
        "language": NoEscape(batch.language_of(recipient)),  # en, cy or cy-en (schema)
        **own,
    }, memo)
    letter.append(NoEscape(rf"\lbuselanguage{{{first}}}"))
    for number, language in enumerate(languages):
        words = _language_values(batch, recipient, language, memo)
        if number:
            letter.append(NoEscape(rf"\lbnextlanguage{{{language}}}"))
        for key, value in words.items():
            letter.append(NoEscape(_letterset(key, value)))
        salutation = latex.text(batch.own_text(recipient, recipient.salutation, language) or "")
        letter.append(Command("opening" if number == 0 else "lbsalutation", salutation))
        for paragraph in body(batch, recipient, memo, language):
            letter.append(NoEscape("\n" + paragraph + "\n"))
        letter.append(Command("closing"))
        ps = (batch.own_text(recipient, recipient.ps, language) if recipient.ps is not None
              else batch.shared_text(batch.letter.ps, language))
        if ps:
            letter.append(Command("postscript", NoEscape("\\par ".join(_rendered(ps, batch, memo)))))
    return letter


def marking(batch: Batch, recipient: Recipient) -> str:
    """The letter's protective marking (the recipient's, else the batch's), or ""."""
    return own_or_shared(recipient.marking, batch.letter.marking) or ""


# The UK Government Security Classifications, lowest first, as a marking begins
# (a descriptor may follow: "OFFICIAL-SENSITIVE PERSONAL").
CLASSIFICATIONS = ("OFFICIAL", "OFFICIAL SENSITIVE", "SECRET", "TOP SECRET")


def classification(marking: str) -> int:
    """Where ``marking`` stands among ``CLASSIFICATIONS`` (1 for OFFICIAL ...),
    0 for a marking the scheme does not name."""
    words = " ".join(marking.upper().replace("-", " ").split())
    for rank in range(len(CLASSIFICATIONS), 0, -1):
        name = CLASSIFICATIONS[rank - 1]
        if words == name or words.startswith(name + " "):
            return rank
    return 0


def bundle_marking(batch: Batch, recipients: list[Recipient]) -> str:
    """The marking on the front of a bundle of these letters: the highest
    classification among the batch's marking and each letter's (a bundle that
    holds one OFFICIAL-SENSITIVE letter is OFFICIAL-SENSITIVE), and beside it
    every marking the scheme does not name (PERSONAL), which no rule puts
    below another; each once, in the order first met, joined by " / "."""
    found = list(dict.fromkeys(m for m in [batch.letter.marking or "", *(marking(batch, r) for r in recipients)]
                               if m))
    top = max((classification(m) for m in found), default=0)
    return " / ".join(m for m in found if classification(m) in (0, top))


def own_or_shared(own, shared):
    """A recipient's own value of a part, else the letter's (``[]`` is a value: none)."""
    return own if own is not None else shared


def _recipient_values(batch: Batch, recipient: Recipient) -> dict[str, NoEscape]:
    """The parts that are the same in every language of this letter."""
    letter = batch.letter
    return {
        "ourref": _reference(own_or_shared(recipient.our_ref, letter.our_ref) or ""),
        "yourref": _reference(recipient.your_ref or ""),
        "marking": latex.text(marking(batch, recipient)),
        "cc": latex.lines(own_or_shared(recipient.cc, letter.cc)),
        "enclosures": latex.lines(own_or_shared(recipient.enclosures, letter.enclosures)),
    }


def _reference(value: str) -> NoEscape:
    """A reference, which may break inside its column beside the address: a
    reference is one long word ("IASC/2025/…/ANNEX-C"), and one wider than the
    column ran off the paper. It breaks after a slash where one will do (no
    penalty), else between any two characters (``latex.breakable``)."""
    return latex.breakable(value, freely_after="/")


def _language_values(batch: Batch, recipient: Recipient, language: str, memo: dict) -> dict[str, NoEscape]:
    """The parts written in ``language``: the date, the subject, the closing and
    the signatory's title."""
    subject = (batch.own_text(recipient, recipient.subject, language) if recipient.subject is not None
               else batch.shared_text(batch.letter.subject, language))
    return {
        "date": latex.text(long_date(batch.letter.date, language)),
        "subject": NoEscape("\\par ".join(_rendered(subject, batch, memo))) if subject else NoEscape(""),
        "closing": latex.text(closing(batch, recipient, language)),
        "sigtitle": latex.text(signatory_title(batch, language)),
        # a PDF string in hex, which no TeX reads: the tagged Figure's /Alt
        **({"sigalt": NoEscape(latex.pdf_hex(signature_alt(batch, language)))}
           if batch.letter.signatory.image else {}),
    }


@dataclass(frozen=True)
class CoverRow:
    """One letter as the cover sheet lists it: where it sits in the bundle."""

    recipient: Recipient
    first_page: int
    last_page: int


COVER_WORDS = {
    "en": {"heading": "Letters for signature",
           "summary": "{count} dated {date}, for signature by {who}. Please read each letter, sign it "
                      "where marked, and initial this sheet.",
           "subject": "{count} of {date}",  # the bundle's PDF Subject
           "letters": ("letter", "letters"),
           "accepted": "Preflight findings accepted on the record:"},
    "cy": {"heading": "Llythyrau i\u2019w llofnodi",
           "summary": "{count} dyddiedig {date}, i\u2019w llofnodi gan {who}. Darllenwch bob llythyr, "
                      "llofnodwch ef lle y nodir, a rhowch eich llythrennau blaen ar y daflen hon.",
           "subject": "{count} dyddiedig {date}",
           "letters": ("llythyr", "llythyr"),
           "accepted": "Canfyddiadau\u2019r rhag-wiriad a dderbyniwyd ar y cofnod:"},
}


def bundle_languages(batch: Batch) -> tuple[str, ...]:
    """The bundle's languages, and its cover sheet's: the batch's (``letter.language``).
    A mixed batch (English, with Welsh letters in it, or the other way round) takes the
    batch's language too, not its letters': the bundle is the signatory's, and its cover
    sheet speaks to them in the batch's language; each letter in it keeps its own title
    (its bookmark) and its own /Lang, in its own language."""
    return LANGUAGES[batch.letter.language]


def bundle_title(batch: Batch) -> str:
    """The PDF Title of the bundle and of its cover sheet: "Letters for signature:
    <the letter's title, or its date>" in the batch's language ("Llythyrau i'w
    llofnodi: …" in Welsh); a bilingual batch's in both, Welsh first, as
    ``pdf_title`` gives a bilingual letter's."""
    letter = batch.letter
    return " / ".join(f"{COVER_WORDS[each]['heading']}: {title_text(batch, (each,)) or long_date(letter.date, each)}"
                      for each in bundle_languages(batch))


def bundle_subject(batch: Batch, count: int) -> str:
    """The PDF Subject of the bundle and its cover sheet: "<count> letters of <date>"
    in the batch's language, as ``bundle_title`` ("5 llythyr dyddiedig 13 Hydref 2020")."""
    def words(language: str) -> str:
        singular, plural = COVER_WORDS[language]["letters"]
        return COVER_WORDS[language]["subject"].format(count=f"{count} {singular if count == 1 else plural}",
                                                       date=long_date(batch.letter.date, language))
    return " / ".join(words(each) for each in bundle_languages(batch))


def compose_cover(batch: Batch, rows: list[CoverRow], *, assets: dict[str, str] | None = None,
                  pages: int = 1, notes: list[str] | None = None) -> Document:
    """The bundle's cover sheet, in the letter's (first) language: what is in
    it, and a line for the signatory's initials. ``pages``: its expected
    length (for "Page n of m"). The table's layout is the class's. ``notes``:
    preflight findings a person accepted, printed under the table."""
    letter = batch.letter
    language = bundle_languages(batch)[0]
    words = COVER_WORDS[language]
    date = long_date(letter.date, language)
    doc = _document(batch, "print", metadata(batch, bundle_title(batch), bundle_languages(batch)), "cover",
                    PDF_LANG[language])
    doc.append(NoEscape(rf"\letterpagehint{{cover}}{{{int(pages)}}}"))
    cover = Letter(arguments=[NoEscape("cover")])
    _set_values(cover, batch, assets or {}, {
        "date": latex.text(date), "language": NoEscape(language),
        "marking": latex.text(bundle_marking(batch, [row.recipient for row in rows]))})
    cover.append(NoEscape(rf"\lbuselanguage{{{language}}}"))
    cover.append(Command("coversheet", words["heading"]))
    if letter.title:  # in the cover's language
        cover.append(NoEscape(r"\textbf{%s}\par\medskip" % latex.text(title_text(batch, (language,)))))
    singular, plural = words["letters"]
    count = f"{len(rows)} {singular if len(rows) == 1 else plural}"
    role = signatory_title(batch, language) or first_given(letter.signatory.title)  # the cover's language's
    cover.append(NoEscape(latex.text(words["summary"].format(
        count=count, date=date, who=letter.signatory.name or role)) + "\\par\\medskip\n"))
    ranges = [f"{row.first_page}" if row.first_page == row.last_page else f"{row.first_page}\u2013{row.last_page}"
              for row in rows]
    # the widest number and range, for the columns' widths (digits are all one width)
    if not any(row.recipient.role for row in rows):
        cover.append(NoEscape(r"\coverwithoutroles"))
    cover.append(NoEscape(r"\begin{covertable}{%d}{%s}" % (len(rows), latex.text(max(ranges, key=len)))))
    # letters to one name and role (The Occupier, two Alex Smiths) told apart by their ids, as
    # their bookmarks are: seven rows read "Alex Smith"
    shared = Counter((row.recipient.name, row.recipient.role) for row in rows)
    for number, (row, pages) in enumerate(zip(rows, ranges), 1):
        name = row.recipient.name
        if shared[(name, row.recipient.role)] > 1:
            name += f" ({row.recipient.id})"
        cover.append(NoEscape(r"\coverrow{%d}{%s}{%s}{%s}" % (
            number, latex.breakable(name), latex.breakable(row.recipient.role or ""), latex.text(pages))))
    cover.append(NoEscape("\\end{covertable}"))
    if notes:
        # (the findings themselves are the tool's words, in English)
        cover.append(NoEscape(r"\par\medskip\textbf{%s}\par" % latex.text(words["accepted"])))
        for note in notes:
            cover.append(NoEscape(latex.text(note) + "\\par\n"))
    cover.append(Command("initialline"))
    doc.append(cover)
    return doc


def compose_blank_pages(batch: Batch, markings: list[str]) -> Document:
    """Pages blank but for a marking, one for each of ``markings`` in order (letter
    ids blank-1, blank-2, ...), for merge --duplex to put behind a marked letter or
    cover of odd length: the class draws the marking where it does on the letters."""
    doc = _document(batch, "print", metadata(batch, "Blank pages"), "blank")
    for number, marking in enumerate(markings, 1):
        page = Letter(arguments=[NoEscape(f"blank-{number}")])
        _set_values(page, batch, {}, {"marking": latex.text(marking)})
        page.append(Command("lbblankpage"))
        doc.append(page)
    return doc


def _document(batch: Batch, medium: str, info: dict[str, str], rid: str, lang: str = "en-GB") -> Document:
    """A document on the letterhead class, with its PDF metadata and language."""
    doc = _document_of(batch, medium)
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
    if lang != "en-GB":  # the class declares en-GB; lang is ours (PDF_LANG), not data
        doc.preamble.append(NoEscape(rf"\hypersetup{{pdflang={{{lang}}}}}"))
    return doc


def _set_values(letter: Letter, batch: Batch, assets: dict[str, str], values: dict[str, NoEscape],
                memo: dict | None = None) -> None:
    """\\letterset for every key: the batch's shared values, then ``values``."""
    memo = {} if memo is None else memo
    shared = ("shared values", tuple(sorted(assets.items())))
    if shared not in memo:
        memo[shared] = "%\n".join(
            _letterset(key, value) for key, value in _shared_values(batch, assets).items()) + "%\n" + \
            _url_definitions(batch)
    letter.append(NoEscape(memo[shared]))
    for key, value in values.items():
        letter.append(NoEscape(_letterset(key, value)))


def _letterset(key: str, value: NoEscape) -> str:
    """``\\letterset{key}{value}``: what PyLaTeX's Command writes for these two
    arguments (``value`` is LaTeX from ``latex``, ``key`` our own name), written
    directly: a letter sets a dozen values, and building a Command each time
    was a tenth of composing a batch."""
    return "\\letterset{%s}{%s}" % (key, value)


def _shared_values(batch: Batch, assets: dict[str, str]) -> dict[str, NoEscape]:
    sender, signatory = batch.letter.sender, batch.letter.signatory
    return {
        "date": latex.text(long_date(batch.letter.date)),
        "fromname": latex.text(sender.name),
        # the cover's (in the letter's language); each letter sets its own
        "fromrole": latex.lines(sender_roles(batch, LANGUAGES[batch.letter.language][:1])),
        "fromaddress": latex.lines(sender.address),
        "fromphone": latex.text(sender.phone or ""),
        "fromemail": _email_link(sender.email) if sender.email else NoEscape(""),
        "fromweb": _web_link(sender.web) if sender.web else NoEscape(""),
        "fromlogo": NoEscape(assets.get("logo", "")),  # our own file name, not data
        "signame": latex.text(signatory.name or "") if signatory.show_name else NoEscape(""),
        "sigtitle": NoEscape(""),  # in each language (_language_values)
        "sigimage": NoEscape(assets.get("signature", "")),
        "returnaddress": latex.text(_return_address(batch)),
        "toname": NoEscape(""), "torole": NoEscape(""), "toaddress": NoEscape(""),
        **{key: NoEscape("") for key in ("closing", "subject", "ourref", "yourref", "marking", "cc",
                                          "enclosures")},
        "language": NoEscape("en"),
    }


def _return_address(batch: Batch) -> str:
    """The small line in the window above the recipient: the sender's
    address on one line, the batch's own text, or nothing."""
    wanted = batch.letter.return_address
    if wanted is False or batch.letter.envelope == "none":
        return ""
    if wanted is True:
        return ", ".join(batch.letter.sender.address)
    return wanted


def _url_definitions(batch: Batch) -> str:
    """Each reference's URL, read verbatim by url.sty's \\urldef (never as
    TeX; validated to hold no brace, backslash or space), as \\lburl{key}
    prints it in a footnote with sensible line breaks."""
    return "".join(_url_definition(key, ref.url) for key, ref in batch.references.items()
                   if not latex.URL_FORBIDDEN.search(ref.url))


def _url_definition(key: str, url: str) -> str:
    """``\\lburl:key``: the URL as shown. url.sty reads its argument byte by byte, so
    a letter typed with an accent (example.org/café) came out as two wrong glyphs
    ("cafÃľ"): the ASCII runs go through \\urldef (verbatim, with url.sty's line
    breaks) and the rest is typeset as text, as the letter's other words are."""
    runs = re.split(r"([^\x00-\x7f]+)", _shown_url(url))
    definitions, shown = [], []
    for index, run in enumerate(runs):
        if index % 2:
            shown.append(latex.text(run))
        elif run:
            name = f"lburl:{key}:{index}"
            definitions.append(rf"\expandafter\urldef\csname {name}\endcsname\nolinkurl{{{run}}}%" + "\n")
            shown.append(rf"\csname {name}\endcsname")
    return "".join(definitions) + rf"\expandafter\def\csname lburl:{key}\endcsname{{{''.join(shown)}}}%" + "\n"


def _shown_url(url: str) -> str:
    """The URL as a reader types it: www.gov.uk/… without https://."""
    return re.sub(r"(?i)^(https?://|mailto:)", "", url).rstrip("/")


def body(batch: Batch, recipient: Recipient, memo: dict | None = None, language: str | None = None) -> list[str]:
    """The letter's paragraphs as LaTeX (in ``language``, default the letter's
    first), footnotes in place."""
    memo = {} if memo is None else memo
    out: list[str] = []
    for parts in batch.paragraphs_for(recipient, language):
        current: list[str] = []
        for _name, source in parts:
            rendered = _rendered(source, batch, memo)
            if not rendered:
                continue
            current.append(rendered[0])
            for extra in rendered[1:]:  # a part may hold paragraph breaks
                out.append(" ".join(current))
                current = [extra]
        if current:
            out.append(" ".join(current))
    return out


def _rendered(source: str, batch: Batch, memo: dict) -> list[str]:
    """Markup -> LaTeX paragraphs, once per text in a batch."""
    key = ("part", source)
    if key not in memo:
        memo[key] = [_render(paragraph, batch) for paragraph in markup.parse(source)]
    return memo[key]


def ends_in_mark(node: markup.Inline) -> bool:
    """Whether ``node`` ends in a footnote mark: a citation, or emphasis whose
    last node does (*claim[^a]*). A mark right after it would read as one
    number with it: "claim12". (A link's label holds no citation: markup
    refuses one.)"""
    if isinstance(node, markup.Emphasis):
        return follows_mark(node.children, len(node.children))
    return isinstance(node, markup.Cite)


def follows_mark(nodes: markup.Paragraph, index: int, after_mark: bool = False) -> bool:
    """Whether ``nodes[index]`` comes right after a footnote mark (``after_mark``:
    what comes before ``nodes``, an emphasis's children, ends in one). Empty
    text does not count: markdown-it leaves one where a delimiter was
    (**strong[^a]**[^b] has one between the emphasis and [^b])."""
    for node in reversed(nodes[:index]):
        if not (isinstance(node, markup.Text) and not node.value):
            return ends_in_mark(node)
    return after_mark


def _render(nodes: markup.Paragraph, batch: Batch, after_mark: bool = False) -> str:
    """Markup as LaTeX; ``after_mark`` as ``follows_mark`` takes it."""
    pieces = []
    for index, node in enumerate(nodes):
        after = follows_mark(nodes, index, after_mark)
        if isinstance(node, markup.Text):
            pieces.append(latex.text(node.value))
        elif isinstance(node, markup.Emphasis):
            command = "textbf" if node.strong else "emph"
            pieces.append(rf"\{command}{{{_render(node.children, batch, after)}}}")
        elif isinstance(node, markup.Link):
            if node.children and all(isinstance(child, markup.Text) for child in node.children):
                label = _address(node.children)
            else:
                label = NoEscape(_render(node.children, batch))
            pieces.append(latex.href(node.url, label))
        elif isinstance(node, markup.Cite):
            if after:
                pieces.append(r"\textsuperscript{,}")  # two marks side by side read as one: 12
            pieces.append(_footnote(batch, node.key))
    return "".join(pieces)


_ADDRESS_BREAK = re.compile(r"(?<=[/.@?&=#_-])(?=[^/])")  # never between the slashes of //


def _address(children: tuple) -> NoEscape:
    """A link's plain text (most often the address itself, as in <https://…>),
    which may break after a slash, @ and the like, or, failing those, after a
    dot or a hyphen (either reads as the end of a sentence or of a broken
    word): a long address typed in the body would otherwise run into the
    margin. The penalties are high, so an address that fits on a line moves
    to the next one whole. Words are not broken (no break between two
    letters), so ordinary link text prints as before."""
    value = "".join(child.value for child in children)
    if " " in value.strip():
        return latex.text(value)  # words: TeX breaks them at their spaces
    out = []
    for piece in _ADDRESS_BREAK.split(value):
        out.append(latex.text(piece))
        out.append(r"\penalty9000{}" if piece.endswith(("-", ".")) else r"\penalty5000{}")
    return NoEscape("".join(out[:-1]))


def full_stop(title: str) -> str:
    """The full stop after a reference's title, on paper and on the web alike
    (none after a title that ends in one, or in ? or !: no "Why?.")."""
    return "" if title.rstrip().endswith((".", "?", "!")) else "."


def _footnote(batch: Batch, key: str) -> str:
    """'author (year) title': the title linked; printed letters add the URL
    (\\lbsource in the class decides, from the medium)."""
    ref = batch.references[key]
    title = latex.href(ref.url, latex.text(ref.title))
    shown = latex.href(ref.url, NoEscape(rf"\csname lburl:{key}\endcsname"))
    stop = full_stop(ref.title)
    return (rf"\footnote{{{latex.text(ref.author)} ({latex.text(ref.year)}) "
            rf"\lbsource{{{title}}}{{{stop}}}{{{shown}}}}}")


def _email_link(address: str) -> NoEscape:
    return latex.href(latex.mailto(address), latex.text(address))


def _web_link(url: str) -> NoEscape:
    shown = url.split("://", 1)[-1].rstrip("/")
    return latex.href(url, latex.text(shown))
