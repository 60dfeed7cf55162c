"""TeX-safe text: the only place where data becomes LaTeX source.

Everything from recipients.yaml passes through :func:`text` or :func:`href`
before it reaches a ``.tex`` file, so no value can run TeX code: every
character that means something to TeX (or forms a ligature in the T1 fonts)
is replaced by a command that prints that very character.

PyLaTeX's ``escape_latex`` is not enough here: it turns ``^`` into an accent,
leaves ``'`` ``"`` ``<`` ``>`` to become curly quotes and guillemets, and turns
newlines into ``\\newline``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
import urllib.parse
from functools import cache
from pathlib import Path

from pylatex import NoEscape

# Each character that TeX reads as markup, prints as another glyph in T1, or
# joins into a ligature, and the command that prints exactly it.
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "'": r"\textquotesingle{}",
    "`": r"\textasciigrave{}",
    '"': r"\textquotedbl{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "\u00a0": "~",
    # the thin spaces of typeset numbers and initials ("10 000", "J. R. R."),
    # as wide as TeX's \, (inputenc knows neither): U+2009 may break a line,
    # the narrow no-break space U+202F does not (text extracted reads a space)
    "\u2009": r"\hskip.16667em\relax{}",
    "\u202f": r"\nobreak\hskip.16667em\relax{}",
    # after \\ or a command with an optional argument, '[' would open one
    "[": "{[}",
    "]": "{]}",
}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _SPECIAL))
# (not the no-break space: it stays one, as ~; nor the thin spaces, as above)
_SPACE_RE = re.compile(r"[^\S\u00a0\u2009\u202f]+")
_ANY_SPACE_RE = re.compile(r"[^\S\u00a0]+")
# Characters outside ASCII, the Latin-1 letters and the common punctuation may
# be drawn as a letter plus an accent (Welsh ŵ, ŷ) or from a glyph whose name
# says nothing (¹ comes out as 1);
# \lbchar tags them with their Unicode value (PDF /ActualText), so text copied
# or extracted from the PDF is the text typed.
# (the ellipsis is three full stops in T1: tagged, it reads as the one character typed)
_BUILT_RE = re.compile("[^\x00-\x7f\xa0\xa3\xab\xbb\xc0-\xff\u2013\u2014\u2018\u2019\u201a\u201c\u201d\u201e\u2022\u20ac]")
# Pairs the T1 fonts join into one glyph (-- –- ,, ‘‘ ’’ !‘ ?‘): '{}' keeps them apart.
_LIGATURE_RE = re.compile("(?<=[-\u2013])(?=-)|(?<=,)(?=,)|(?<=\u2018)(?=\u2018)|(?<=\u2019)(?=\u2019)"
                          "|(?<=[!?])(?=\u2018)")


def text(value: str) -> NoEscape:
    """Escape one run of plain text: every character prints as itself.

    Runs of whitespace (including newlines) become one space, as in running
    text; a paragraph break is the caller's business.
    """
    value = _SPACE_RE.sub(" ", compose_marks(value))
    escaped = _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group()], value)
    pieces = drawn_in_pieces()
    escaped = _BUILT_RE.sub(lambda m: r"\%s{%04X}{%s}" % ("lbaccented" if m.group() in pieces else "lbchar",
                                                          ord(m.group()), m.group()), escaped)
    return NoEscape(_LIGATURE_RE.sub("{}", escaped))


def breakable(value: str, freely_after: str = "") -> NoEscape:
    """``text`` that may also break between any two characters of a word
    (``\\lbbreak``, a penalty far above a space's or a hyphen's): for a
    table's narrow column, where a word wider than the column (a long name, an
    e-mail address) would otherwise run over the next one. A character and
    the accents on it stay together. After a character of ``freely_after`` (a
    reference's "/") it breaks with no penalty (``\\allowbreak``)."""
    value = _SPACE_RE.sub(" ", compose_marks(value))
    clusters: list[str] = []
    for char in value:
        if clusters and unicodedata.category(char).startswith("M"):  # (invisible joiners: left out by load)
            clusters[-1] += char
        else:
            clusters.append(char)
    out = []
    for before, cluster in zip([" "] + clusters, clusters):
        if not before.isspace() and not cluster.isspace():
            out.append(r"\allowbreak{}" if before in freely_after else r"\lbbreak{}")
        out.append(_cluster_text(cluster))
    return NoEscape("".join(out))


@cache
def _cluster_text(cluster: str) -> str:
    """``text`` of one character and its accents, once each: a cover sheet's table of 500
    letters escaped its names and roles a character at a time, 30,000 times, on the thread
    that makes it while the letters are put together."""
    return text(cluster)


# PDF metadata (title, author ...) is not typeset but expanded to a string, by
# hyperref or by LaTeX's PDF management: each special character becomes a
# constant that expands to just that character (\lbsym in the class).
_META = {
    "\\": "backslash", "{": "left_brace", "}": "right_brace", "%": "percent", "#": "hash",
    "~": "tilde", "^": "circumflex", "_": "underscore", "$": "dollar", "&": "ampersand",
}
_META_RE = re.compile("|".join(re.escape(c) for c in _META))


def meta(value: str) -> NoEscape:
    """Escape text for a PDF metadata field (``\\hypersetup{pdftitle=...}``)."""
    value = _ANY_SPACE_RE.sub(" ", compose_marks(value)).strip()  # a thin space too: a string, not type
    return NoEscape(_META_RE.sub(lambda m: r"\lbsym{%s}" % _META[m.group()], value))


def pdf_hex(value: str) -> str:
    """A PDF text string in hex (UTF-16BE with its byte order mark)."""
    value = _SPACE_RE.sub(" ", compose_marks(value)).strip()
    return "FEFF" + value.encode("utf-16-be").hex().upper()


def lines(values: list[str]) -> NoEscape:
    """Escaped lines joined by ``\\\\`` (an address block). The ``{}`` stops
    ``\\\\`` from reading a line that starts with ``*`` as its star form."""
    return NoEscape(r"\\{}".join(text(v) for v in values))


# Characters RFC 3986 never allows unencoded in a URI, plus whitespace and
# controls: none can reach TeX, so a URL can never carry TeX code.
URL_FORBIDDEN = re.compile(r'[\s\x00-\x1f\x7f\\{}^"<>`|]')


def url(value: str) -> NoEscape:
    """A URL for the first argument of ``\\href``.

    The caller has validated it (``URL_FORBIDDEN`` matched nothing). ``%``
    and ``#`` are escaped because ``\\href`` may sit inside another command's
    argument (``\\footnote``), where hyperref cannot re-read them.
    """
    if URL_FORBIDDEN.search(value):
        raise ValueError(f"unsafe URL {value!r}")
    value = iri_to_uri(value)
    return NoEscape(value.replace("%", r"\%").replace("#", r"\#"))


# In a mailto: URL, RFC 6068 (2.) has percent-encoded the characters of an address that a
# URI may not hold, "%", and the gen-delims but "@" and ":": an address RFC 5322 allows
# (o'brien|x@…) stopped the build as an "unsafe URL", and one holding ? or # linked the
# address before it. (The schema refuses spaces, controls, backslashes, braces and <>.)
_MAILTO_ENCODED = re.compile(r'[%/?#\[\]"^`|]')


def mailto(address: str) -> str:
    """The mailto: URL that opens a message to ``address``, an e-mail address as typed."""
    return "mailto:" + _MAILTO_ENCODED.sub(lambda found: f"%{ord(found.group()):02X}", address)


def iri_to_uri(value: str) -> str:
    """The link target for a URL typed with non-ASCII characters (an IRI,
    RFC 3987 3.1): the host of an http(s) URL in IDNA ("xn--" labels), every
    other non-ASCII character percent-encoded as UTF-8. Readers open the same
    page whatever encoding they would have guessed; the text still prints as typed."""
    if value.isascii():
        return value
    scheme, sep, rest = value.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
        userinfo, at, hostport = rest[:end].rpartition("@")
        host, colon, port = hostport.partition(":")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                pass  # not a name IDNA takes: percent-encoded below
        value = f"{scheme}://{userinfo}{at}{host}{colon}{port}{rest[end:]}"
    return re.sub(r"[^\x00-\x7f]+", lambda m: urllib.parse.quote(m.group(), safe=""), value)


def href(target: str, label: NoEscape) -> NoEscape:
    """A link: ``label`` is LaTeX already escaped by this module."""
    return NoEscape(r"\href{%s}{%s}" % (url(target), label))


# The text encodings the letterhead uses (T1 text, TS1 symbols, OMS bullets):
# a character prints only if one of them declares it for UTF-8 input.
_ENCODINGS = ("t1", "ts1", "oms")
# and Welsh's w and y with a grave, an acute or a diaeresis, which the letterhead
# declares itself (T1 has the accents, not these letters): "ẃ" was refused in a Welsh name
WELSH_ACCENTS = "\u1e80\u1e81\u1e82\u1e83\u1e84\u1e85\u1ef2\u1ef3"


@cache
def printable() -> frozenset[str] | None:
    """Every character pdflatex can print in the letterhead's fonts, read from
    the installed LaTeX's own tables; None when TeX is not installed."""
    kpsewhich = shutil.which("kpsewhich")
    if kpsewhich is None:
        return None
    found = subprocess.run([kpsewhich, *(f"{e}enc.dfu" for e in _ENCODINGS)], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL).stdout.split()
    # and the ellipsis (Word and Excel put it in as "..." is typed): LaTeX's own
    # \textellipsis, in every encoding, declared in utf8enc.dfu, not in those three;
    # and the thin spaces, which ``text`` sets as TeX's own
    chars = {chr(c) for c in range(0x20, 0x7F)} | {"\n", "\t", "\u00a0", "\u2026", "\u2009", "\u202f"}
    chars |= set(WELSH_ACCENTS)
    for path in found:
        with open(path, encoding="latin-1") as handle:
            chars |= {chr(int(code, 16)) for code in
                      re.findall(r"\\DeclareUnicodeCharacter\{([0-9A-Fa-f]+)\}", handle.read())}
    return frozenset(chars)


@cache
def drawn_in_pieces() -> frozenset[str]:
    """The printable characters T1 has no glyph for, which LaTeX draws as a letter
    and an accent (ŵ is \\^W, Ș is \\textcommabelow S): declared in t1enc.dfu as a
    command on one letter that t1enc.def does not make one glyph of (its
    \\DeclareTextComposite), and the Welsh letters the class declares. Read from the
    installed LaTeX; empty when TeX is not installed (only how copied text reads
    depends on it)."""
    kpsewhich = shutil.which("kpsewhich")
    if kpsewhich is None:
        return frozenset()
    found = subprocess.run([kpsewhich, "t1enc.dfu", "t1enc.def"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL).stdout.split()
    if len(found) != 2:
        return frozenset()
    declared, encoding = (Path(path).read_text(encoding="latin-1") for path in found)
    glyphs = set(re.findall(r"\\DeclareTextComposite\{\\(\S+?)\}\{T1\}\{(\\?\w)\}", encoding))
    pieces = set(WELSH_ACCENTS)
    for code, definition in re.findall(r"\\DeclareUnicodeCharacter\{([0-9A-Fa-f]+)\}\{(.*)\}", declared):
        # an accent (\^W, \@tabacckludge'c: the acute in a form tabbing leaves alone) or a
        # command word (\H o, \c{c}, \textcommabelow S) on one letter; a symbol (\l) is a glyph
        accent = re.fullmatch(r"\\(?:@tabacckludge)?(?:([^A-Za-z@\s])\s*|([A-Za-z]+)(?:\s+|(?=[{\\])))"
                              r"\{?(\\?[A-Za-z])\}?", definition.strip())
        if accent and (accent[1] or accent[2], accent[3]) not in glyphs:
            pieces.add(chr(int(code, 16)))
    return frozenset(pieces)


def unprintable(value: str) -> list[str]:
    """The characters of ``value`` the fonts cannot show (in order, once each)."""
    known = printable()
    if known is None:
        return []
    return list(dict.fromkeys(c for c in compose_marks(value) if c not in known))


_COMBINING_RE = re.compile("[%s]" % re.escape(
    "".join(chr(c) for c in range(0x300, 0x10000) if unicodedata.combining(chr(c)))))


def compose_marks(value: str) -> str:
    """Join a letter and a following combining accent into one character where
    Unicode has one (e + U+0301 -> é), as the fonts print composed letters only.
    Unlike NFC, leaves every other character as typed (NFC would turn the ohm
    sign, which prints, into a Greek omega, which does not)."""
    if not _COMBINING_RE.search(value):
        return value
    out: list[str] = []
    for char in value:
        if out and unicodedata.combining(char):
            composed = unicodedata.normalize("NFC", out[-1] + char)
            if len(composed) == 1:
                out[-1] = composed
                continue
        out.append(char)
    return "".join(out)
