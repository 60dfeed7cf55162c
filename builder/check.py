"""Preflight: is every letter ready for the printer and the envelope?

The build runs the preflight on each letter it compiles and stores the
findings with the letter in ``build/manifest.json``; every later task reports
them again (``ready``). Findings have a short, stable code, which is also how
a person accepts one (``invoke merge --accept essex:window``, or ``accept:``
under the recipient in the YAML):

- ``a4``: a page that is not A4 portrait; ``fonts``: a font not embedded, or
  a Type 3 (bitmap) font. Read once per compiled PDF, not once per letter.
- ``overfull``: a line that runs into the margin (from the TeX log).
- ``window``: something other than the address shows through the envelope
  window, or the address is not inside it; ``address``: an address line so
  long that it wraps.
- ``closing``: the closing stands alone at the top of a page.
- ``pages`` (a warning, from ``check``): longer than the batch's usual letter.

Positions come from the letterhead class itself (``\\pdfsavepos``, written to
the ``.aux``): exact, and no external tool that could be missing.
"""
from __future__ import annotations

import re
import statistics
import typing
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .manifest import Manifest
from .problems import quoted

if typing.TYPE_CHECKING:
    from .schema import Batch, Recipient

A4 = (595.276, 841.890)
TOLERANCE = 1.0  # points
CODES = ("a4", "fonts", "overfull", "window", "address", "return_address", "closing", "pages")
# The least type size a return address is read at: the class scales a long one down to
# the window's width, and one of 124 characters on a C4 window printed at 3.8 pt
LEAST_RETURN_ADDRESS_PT = 6.0
MM_PER_PT = 25.4 / 72.27  # TeX points


@dataclass
class Finding:
    code: str
    level: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"

    def to_dict(self) -> dict:
        return {"code": self.code, "level": self.level, "message": self.message}


# ---- from the PDF: once per compiled document --------------------------------

def page_problems(pdf: Path, paper: tuple[float, float] | None = None) -> list[list[Finding]]:
    """For each page of ``pdf``: not of the class's paper (``paper``, in PDF
    points; A4 portrait), fonts not embedded, Type 3 fonts. Each font object
    is judged once, however many pages use it."""
    import pikepdf  # loaded when letters are placed, not for `invoke check`

    paper = tuple(paper or A4)
    out, judged = [], {}
    with pikepdf.open(pdf) as document:
        for number, page in enumerate(document.pages, 1):
            found = []
            box = [float(v) for v in page.mediabox]
            width, height = box[2] - box[0], box[3] - box[1]
            if int(page.obj.get("/Rotate", 0)) % 180:
                width, height = height, width
            if abs(width - paper[0]) > TOLERANCE or abs(height - paper[1]) > TOLERANCE:
                found.append(Finding("a4", "error", f"page {{page}} is {width:.0f}x{height:.0f} pt, not A4 portrait"))
            for font in _fonts(page.obj.get("/Resources")):
                key = font.objgen if font.objgen != (0, 0) else id(font)
                if key not in judged:
                    name = str(font.get("/BaseFont", "(unnamed)"))
                    if font.get("/Subtype") == "/Type3":
                        judged[key] = f"Type 3 (bitmap) font {name}"
                    elif not _embedded(font):
                        judged[key] = f"font {name} is not embedded"
                    else:
                        judged[key] = None
                if judged[key]:
                    found.append(Finding("fonts", "error", "page {page}: " + judged[key].replace("{", "{{").replace("}", "}}")))
            out.append(found)
    return out


def pdf_problems(pdf: Path, paper: tuple[float, float] | None = None) -> list[str]:
    """The PDF checks of one file, as text: pages not A4 portrait, fonts not
    embedded, Type 3 (bitmap) fonts."""
    return list(dict.fromkeys(f.message.format(page=n) for n, found in enumerate(page_problems(pdf, paper), 1)
                              for f in found))


def _fonts(resources, seen=None) -> list:
    """The fonts a page uses, those inside its form XObjects included."""
    seen = set() if seen is None else seen
    found = []
    if resources is None:
        return found
    for font in (resources.get("/Font") or {}).values():
        if font.objgen not in seen or font.objgen == (0, 0):
            seen.add(font.objgen)
            found.append(font)
    for xobject in (resources.get("/XObject") or {}).values():
        if xobject.get("/Subtype") == "/Form" and xobject.objgen not in seen:
            seen.add(xobject.objgen)
            found += _fonts(xobject.get("/Resources"), seen)
    return found


def _embedded(font) -> bool:
    if font.get("/Subtype") == "/Type0":
        font = font.DescendantFonts[0]
    descriptor = font.get("/FontDescriptor") or {}
    return any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))


# ---- one letter ----------------------------------------------------------------

def preflight(recipient: Recipient, placed, pages: list[list[Finding]], batch: Batch,
              columns: dict[tuple, str] | None = None) -> list[Finding]:
    """The findings for one letter: ``placed`` is what the class measured
    (``compile.Placed``), ``pages`` the PDF findings of its pages; ``columns``:
    the spreadsheet column each field came from (``Loaded.columns``), if any."""
    findings = [Finding(f.code, f.level, f.message.format(page=n))
                for n, found in enumerate(pages, 1) for f in found]
    findings = list({(f.code, f.message): f for f in findings}.values())
    block = recipient_lines(recipient, columns)
    texts = letter_texts(recipient, batch, columns) if placed.overfull else []  # (most letters have none)
    findings += [Finding("overfull", "error", overfull(text, by, batch, block, texts)) for text, by in placed.overfull]
    findings += window(placed, block)  # (no window: the lines only)
    findings += return_address(placed, batch)
    findings += closing(placed)
    return findings


def overfull(text: str, by: float, batch: Batch, block: list[tuple[str, str]] = (),
             texts: list[tuple[str, str]] = ()) -> str:
    """A line that runs ``by`` TeX points into the margin, said with what it is and what to
    do: TeX found nothing to break it at. A reference's web address is the usual cause (a
    part of it with no / . or - in it), and then the reference is named by its key; a line
    of the recipient block (``recipient_lines``) by what it is; one of the letterhead's
    (``letterhead_lines``: on every letter) by its field under ``letter.sender``."""
    longest = max(text.split() or [""], key=len)

    def said(value: str = "", word: str = longest) -> str:
        """The line quoted, its word from ``value`` as typed there (TeX logs ŵ as w)."""
        return (f"overfull line: {_quoted(_as_typed(text, word, value), most=None)} runs "
                f"{by * MM_PER_PT:.1f} mm into the margin")

    if len(longest) <= 8:  # too short to tell which value it is from
        return f"{said()}: a word too long for its line, with nothing to break it at; shorten it or put a space in it"
    for what, value in block:
        if _holds(value, longest):
            return (f"{said(value)}: it is part of {what}, a word too long for a line; shorten it or put a space "
                    "in it")
    for what, field, value in letterhead_lines(batch):
        if _holds(value, longest):
            fix = ("give a shorter address (the site's home page), or accept the finding" if field == "web"
                   else "shorten it, or accept the finding" if field == "email"
                   else "shorten it or put a space in it")
            return (f"{said(value)}: it is part of {what} in the letterhead (letter.sender.{field}), too long for "
                    f"its column; {fix}")
    for key, reference in batch.references.items():
        if _holds(reference.url, longest):
            return (f"{said(reference.url)}: it is part of the web address of the reference {key!r} "
                    f"(references.{key}.url), with no / . or - to break it at; give a shorter address for the same "
                    "page, or accept the finding")
        for field in ("title", "author"):
            if _holds(getattr(reference, field), longest):
                return (f"{said(getattr(reference, field))}: it is a word of the {field} of the reference {key!r} "
                        f"(references.{key}.{field}), too long for a line; put a space or a hyphen in it")
    for field, value in texts:
        # TeX's line may begin with a label glued to the value's first word ("PS", "ON")
        skip = next((skip for skip in range(3) if _holds(value, longest[skip:])), None)
        if skip is not None:
            into = said(value, longest[skip:])
            # a web address typed in the text: "put a space in it" broke the link
            addresses = [match for match in _WEB_ADDRESS.finditer(value) if _holds(match.group(), longest)]
            if addresses and not any(value[:match.start()].endswith(("<", "](")) for match in addresses):
                # typed bare, it is a word to TeX: it breaks at its slashes and dots only as a link
                return (f"{into}: it is a web or e-mail address typed bare in {field}, which breaks nowhere; "
                        f"write it in angle brackets (<https://…>) so it breaks after a slash or dot, or link a "
                        f"few words to it ([the form](https://…))")
            if addresses:
                return (f"{into}: it is part of a web or e-mail address in {field}, with no / . or - to break it at; "
                        f"link a few words to it instead ([the form](https://…)), or accept the finding")
            return f"{into}: it is a word of {field}, too long for its line; shorten it or put a space in it"
    return f"{said()}: a word too long for its line, with nothing to break it at; shorten it or put a space in it"


def _holds(value: str, word: str) -> bool:
    """Whether ``word``, as TeX's log quotes an overfull line, is in ``value``: a letter
    LaTeX draws with its accent (ŵ, Ș) is logged as the bare letter, so it is looked for
    without accents too (an address line "Tŷ…" was named by nothing)."""
    return word in value or _bare(word) in _bare(value)


def _bare(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def _as_typed(text: str, word: str, value: str) -> str:
    """``text`` (an overfull line as TeX logs it) with ``word`` as ``value`` has it: a letter
    LaTeX draws with its accent is logged bare, and "Caerdyddŵ…" was quoted "Caerdyddw…"."""
    if not word or word in value:
        return text
    bare, starts = "", []  # the value without accents, and where each of its characters was typed
    for index, char in enumerate(value):
        kept = _bare(char)
        starts += [index] * len(kept)
        bare += kept
    at = bare.find(_bare(word))
    if at < 0:
        return text
    end = at + len(_bare(word))
    return text.replace(word, value[starts[at]:starts[end] if end < len(starts) else len(value)], 1)


# what prints as a web or e-mail address in a text: an autolink's, or a link whose label is one
_WEB_ADDRESS = re.compile(r"(?:https?://|mailto:|www\.)[^\s<>()\[\]]+|[^\s<>()\[\]]+@[^\s<>()\[\]]+")


def letter_texts(recipient: Recipient, batch: Batch, columns: dict[tuple, str] | None = None
                 ) -> list[tuple[str, str]]:
    """The texts a letter prints besides its recipient block, letterhead and references,
    each with its field, the recipient's own first (the field a person corrects; from a
    spreadsheet with its column): an overfull line a word of them made was named by nothing."""
    columns = columns or {}

    def each(field: str, value, key: tuple) -> list[tuple[str, str]]:
        if value is None:
            return []
        if isinstance(value, dict):  # by language
            return [item for language, text in value.items() for item in each(f"{field}.{language}", text, key)]
        if isinstance(value, (list, tuple)):
            return [item for n, text in enumerate(value) for item in each(f"{field}[{n}]", text, key)]
        header = columns.get(key)
        return [(f"{field} (the column {header!r})" if header else field, str(value))]
    texts = []
    for name in ("salutation", "subject", "closing", "cc", "enclosures", "ps", "your_ref", "our_ref"):
        texts += each(name, getattr(recipient, name), (name,))
    for part, value in recipient.text.items():
        texts += each(f"text.{part}", value, ("text", part))
    letter = batch.letter
    for name in ("subject", "closing", "cc", "enclosures", "ps", "our_ref"):
        texts += each(f"letter.{name}", getattr(letter, name), ())
    for n, paragraph in enumerate(letter.body):
        for part, value in paragraph.items():
            texts += each(f"letter.body[{n}].{part}", value, ())
    return texts


def letterhead_lines(batch: Batch) -> list[tuple[str, str, str]]:
    """The sender's values the letterhead prints, each with what it is and its field under
    ``letter.sender``: on every letter, so one too long for its column is on each (a web
    address is printed without its scheme, and breaks at no slash)."""
    sender = batch.letter.sender
    roles = sender.role.values() if isinstance(sender.role, dict) else [sender.role]
    lines = [("the sender's name", "name", sender.name)] + [("the sender's role", "role", role) for role in roles]
    lines += [(f"the sender's address line {n}", "address", line) for n, line in enumerate(sender.address, 1)]
    lines += [("the sender's phone number", "phone", sender.phone or ""),
              ("the sender's e-mail address", "email", sender.email or ""),
              ("the sender's web address", "web", sender.web or "")]
    return [line for line in lines if line[2]]


# Positions are whole sp and lengths rounded to 1/65536 pt: a line ending
# exactly at the window's edge may come out a hair beyond it.
_HAIR = 0.01  # TeX points


def _mm(value: float) -> str:
    return f"{value * MM_PER_PT:.0f}"


def recipient_lines(recipient: Recipient, columns: dict[tuple, str] | None = None) -> list[tuple[str, str]]:
    """The recipient block's lines as the class prints them, each with what
    it is (the field a person corrects): the name, the role, the address lines;
    from a spreadsheet, with the column a person corrects ("address line 1 (the
    column 'Street')"; "(line 2 of the column 'Address')" for a cell of several)."""
    columns = columns or {}

    def column(header: str | None, line: int | None = None) -> str:
        if header is None:
            return ""
        return f" (the column {header!r})" if line is None else f" (line {line} of the column {header!r})"
    lines = [(f"the name{column(columns.get(('name',)))}", recipient.name)]
    if recipient.role:
        lines.append((f"the role{column(columns.get(('role',)))}", recipient.role))
    headers = [columns.get(("address", n)) or columns.get(("address",)) for n in range(len(recipient.address))]
    for n, (header, line) in enumerate(zip(headers, recipient.address)):
        several = header is not None and headers.count(header) > 1
        lines.append((f"address line {n + 1}{column(header, headers[:n + 1].count(header) if several else None)}",
                       line))
    return lines


def _quoted(text: str, most: int | None = 60) -> str:
    """``text`` in quotes as it was typed (``problems.quoted``), cut to ``most`` characters,
    or whole (None)."""
    return quoted(text if most is None or len(text) <= most else text[:most - 1].rstrip() + "…")


def _wrapping(lines: list[tuple[str, str]], wide: list[tuple[int, float]], block: float) -> str:
    """Which lines wrap, how wide each is and what a line may be, in words."""
    said = []
    for number, width in wide:
        if 1 <= number <= len(lines):
            what, text = lines[number - 1]
            shown, room = _mm(width), _mm(block)
            if shown == room:
                shown, room = f"{width * MM_PER_PT:.1f}", f"{block * MM_PER_PT:.1f}"
            fix = "split it into two lines or shorten it" if what.startswith("address") else "shorten it"
            said.append(f"{what}, {_quoted(text)}, is {shown} mm wide where a line holds {room} mm: {fix}")
    return "; ".join(said)


def window(placed, lines: int | list[tuple[str, str]]) -> list[Finding]:
    """Only the address shows through the envelope window, all of it, and no
    line of it wraps. Everything is in TeX points from the page's top left.
    ``lines`` are the recipient block's lines (``recipient_lines``), or how
    many there are."""
    expected_lines = lines if isinstance(lines, int) else len(lines)
    marks, m = placed.marks, placed.measures
    # no window (letter.envelope: none): nothing shows through, but a line that wraps
    # still breaks the address in two (it went unreported)
    windowless = placed.window is not None and placed.window[3] <= 0
    needed = {"addrfirst", "addrlast"} | (set() if windowless else {"salutation", "head", "date", "dateend"})
    if windowless and not (m and needed <= set(marks)):
        return []
    if placed.window is None or not m or not needed <= set(marks):
        return [Finding("window", "error", "the letterhead recorded no envelope window or address "
                                           "position, so the window cannot be checked")]
    ascent, descent = m["ascent"], m["descent"]
    findings = []
    first, last = marks["addrfirst"], marks["addrlast"]
    printed_lines = round((last[2] - first[2]) / m["baselineskip"]) + 1
    named = "" if isinstance(lines, int) else _wrapping(lines, placed.wide, m.get("block", 0))
    if printed_lines > expected_lines and named:
        findings.append(Finding("address", "error", (
            f"a line of the recipient block is too long and wraps (the address takes {printed_lines} lines, "
            f"not {expected_lines}): {named}")))
    elif printed_lines > expected_lines:
        findings.append(Finding("address", "error", (
            f"an address line is too long and wraps: the address takes {printed_lines} lines, not "
            f"{expected_lines} (its widest line is {_mm(m['widest'])} mm); shorten it or split it into two lines")))
    if windowless:
        return findings
    left, top, width, height = placed.window
    right, bottom = left + width, top + height
    # A line wider than the block wraps inside it: then the widest line as
    # typed is wider than what is printed.
    printed = m["widest"] if printed_lines <= expected_lines else min(m["widest"], m["block"])
    box = (first[1], first[2] - ascent, first[1] + printed, last[2] + descent)
    if box[0] < left - _HAIR or box[1] < top - _HAIR or box[2] > right + _HAIR or box[3] > bottom + _HAIR:
        # what to do, not only where it is: how many lines fit below the first, or the width
        fit = int((bottom + _HAIR - descent - first[2]) // m["baselineskip"]) + 1
        over = printed_lines - fit
        fix = (f"; the window holds {fit} lines and the address takes {printed_lines}: leave out "
               f"{'a line' if over == 1 else f'{over} lines'} (the role, or the country for a UK address) "
               "or join short ones"
               if box[3] > bottom + _HAIR and box[1] >= top - _HAIR and fit > 0 else
               f"; its widest line is {_mm(printed)} mm: shorten it" if box[2] > right + _HAIR else "")
        findings.append(Finding("window", "error", (
            "the address is not inside the envelope window: it spans "
            f"{_mm(box[0])}-{_mm(box[2])} mm across and {_mm(box[1])}-{_mm(box[3])} mm down, "
            f"the window {_mm(left)}-{_mm(right)} mm and {_mm(top)}-{_mm(bottom)} mm{fix}")))
    salutation = marks["salutation"]
    if salutation[0] == 1 and salutation[2] - ascent < bottom and salutation[1] < right:
        findings.append(Finding("window", "error", (
            f"the salutation shows through the envelope window: it starts {_mm(salutation[2] - ascent)} mm "
            f"down, the window ends at {_mm(bottom)} mm")))
    if marks["head"][2] > top:
        findings.append(Finding("window", "error", (
            f"the letterhead reaches {_mm(marks['head'][2])} mm down, into the envelope window "
            f"(it starts at {_mm(top)} mm): make it shorter, with fewer lines under letter.sender "
            f"(address, phone, email, web), or a sender name and role that fit on one line each "
            f"(a bilingual letter prints the role in both languages)")))
    date, date_end = marks["date"], marks["dateend"]
    if date[1] < right and date_end[1] > left and date[2] + descent > top and date[2] - ascent < bottom:
        findings.append(Finding("window", "error", "the date shows through the envelope window"))
    return findings


def return_address(placed, batch: Batch) -> list[Finding]:
    """The return address, scaled down to the window's width, is still large enough to read."""
    size = placed.return_size
    if size is None or size >= LEAST_RETURN_ADDRESS_PT:
        return []
    wanted = batch.letter.return_address
    text = ", ".join(batch.letter.sender.address) if wanted is True else wanted
    # the class scales the line to the window's width: at the least size, about this many fit
    fit = f"about {int(len(text) * size / LEAST_RETURN_ADDRESS_PT)} fit"
    fix = (f"the sender's address (return_address: true, {len(text)} characters; {fit}) is too long for one "
           "line there: give a shorter text as letter.return_address" if wanted is True else
           f"shorten letter.return_address ({len(text)} characters; {fit})") + ", or set it to false for none"
    return [Finding("return_address", "error", f"the return address prints at {size:.1f} pt to fit the envelope "
                                               f"window's width (at least {LEAST_RETURN_ADDRESS_PT:g} pt reads): {fix}")]


def closing(placed) -> list[Finding]:
    """The closing never stands alone at the top of a page: its baseline is
    not the first baseline of a later page."""
    top = placed.marks.get("closing")
    first = placed.measures.get("firstbaseline")
    if top and first and top[0] > 1 and top[2] <= first + 0.5:
        return [Finding("closing", "error", f"the closing stands alone at the top of page {top[0]}, "
                                            "away from the letter it closes")]
    return []


# ---- the whole batch, for `invoke check` -----------------------------------------

@dataclass
class LetterCheck:
    name: str
    state: str
    reason: str
    findings: list[dict]
    accepted: list[str]
    pages: int = 0
    ready: bool = False
    kind: str = "letter"  # or "bundle" (a recipient may be called "bundle" too)

    @property
    def errors(self) -> list[dict]:
        return [] if self.ready else [{"code": self.state, "level": "error", "message": self.reason}]

    def line(self) -> str:
        from .ready import finding_text

        shown = [finding_text(f) + (" (accepted)" if f.get("code") in self.accepted else "")
                 for f in self.findings]
        head = f"{self.name}: {self.state}" + (f" ({self.pages} page{'s' * (self.pages != 1)})" if self.ready and self.pages else "")
        if not self.ready and self.state != "preflight" and self.reason:  # "never built" needs no more
            shown.insert(0, self.reason)
        return head + ("; " + "; ".join(shown) if shown else "")


def check(recipients_yaml: str | Path, build_dir: str | Path = "build", medium: str = "print",
          only: list[str] | None = None, accept: dict[str, list[str]] | None = None) -> list[LetterCheck]:
    """Every letter's readiness with its stored preflight (or just ``only``'s),
    and the bundle's: is it the file merge wrote, holding the letters as they are?
    ``accept``: findings the merge that follows accepts (``invoke check merge --accept``)."""
    from . import ready
    from .build import prepare, recorded

    prepared = recorded(recipients_yaml, build_dir, medium) or prepare(recipients_yaml, build_dir, medium)
    manifest = Manifest.read(prepared.layout.root)
    states = ready.letter_states(prepared, manifest, accept, only=only)
    unknown = ready.no_such_ids(only or [], [s.recipient.id for s in prepared.sources] +
                                [label for label, _, _ in prepared.rejected])
    if unknown:  # a typo in --only is not "0 letters checked: 0 ok"
        raise ValueError(unknown)
    if only is not None:  # the invalid come with every list of states: just those asked for
        states = [s for s in states if s.recipient in only]
    results, languages = [], {}
    for state in states:
        entry = manifest.letters.get(state.recipient, {})
        results.append(LetterCheck(state.recipient, state.state, state.reason, state.findings,
                                   state.accepted, entry.get("pages") or 0, state.ready))
        languages[state.recipient] = entry.get("languages") or 1
    # a bilingual letter prints each language in turn: its pages are judged a language at a time
    # (two pages of Welsh and English among one-page letters were "longer than the batch's typical 1")
    # and "typical" is the whole batch's, whatever --only asks about (`check -o long` alone was its
    # own typical, and so not long; with one short letter beside it, the typical was their mean)
    batch = [manifest.letters.get(source.recipient.id) or {} for source in prepared.sources]
    known = [entry["pages"] / (entry.get("languages") or 1) for entry in batch if entry.get("pages")]
    typical = statistics.median(known) if known else 0
    for result in results:
        each = languages[result.name]
        if typical and result.pages / each > typical:
            said = f" ({result.pages / each:g} a language)" if each > 1 else ""
            result.findings = result.findings + [{"code": "pages", "level": "warning", "message": (
                f"{result.pages} pages{said}, longer than the batch's typical {typical:g}")}]
    if only is None and medium == "print":
        bundle = ready.bundle_state(prepared, manifest, [s for s in states])
        # no bundle yet is no fault; a bundle that is not what it claims is
        results.append(LetterCheck("bundle", bundle.state, bundle.reason, [], [],
                                   (manifest.bundle or {}).get("pages", 0),
                                   bundle.ready or bundle.state == ready.NEVER_MERGED, kind="bundle"))
        stray = ready.stray_bundle_note(prepared.layout, manifest)
        if stray:
            # kind: a merge to bundle.pdf makes it the bundle on the record again
            results.append(LetterCheck("bundle", ready.CHANGED, stray, [], [], 0, False, kind="stray bundle"))
    return results
