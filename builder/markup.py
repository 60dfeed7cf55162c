"""The text markup of letter bodies: a small, documented Markdown subset.

``parse`` turns source text into paragraphs of inline nodes; it knows nothing
of LaTeX (``compose`` renders the nodes). The subset, parsed by markdown-it-py:

* paragraphs, separated by a blank line;
* ``*emphasis*`` and ``**strong**`` (also with ``_``); a single ``*`` between two
  letters or digits is text (``2*3*4``), as ``_`` there is in CommonMark;
* links ``[label](https://…)`` and autolinks ``<https://…>``, ``<name@example.org>``;
* citations ``[^key]``: a footnote citing ``references.<key>``;
* a backslash before a character that is markup here (``\\ * _ [ ] <``) prints
  that character (``\\*``); before anything else it is a backslash (``C:\\Temp\\#1``).

Nothing else is markup: ``#``, ``>``, ``-``, backticks, HTML and entities
print as typed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Emphasis:
    children: tuple["Inline", ...]
    strong: bool = False


@dataclass(frozen=True)
class Link:
    url: str
    children: tuple["Inline", ...]


@dataclass(frozen=True)
class Cite:
    key: str


Inline = Union[Text, Emphasis, Link, Cite]
Paragraph = tuple[Inline, ...]

CITE_KEY = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_CITE_RE = re.compile(r"\[\^(" + CITE_KEY + r")\]")


class MarkupError(ValueError):
    """Text that the subset cannot express (e.g. a citation inside a link)."""


def _cite_rule(state: StateInline, silent: bool) -> bool:
    match = _CITE_RE.match(state.src, state.pos)
    if not match:
        return False
    if silent:
        # Only a link's label is scanned silently (markdown-it's parseLinkLabel), and it
        # gives up on a token that starts with '[' and is longer than the bracket: the link
        # was never made and `[see[^a]](https://…)` printed as typed, "](https://…)" and all.
        # Scanned as brackets, the label closes, the link is made and refused below.
        return False
    token = state.push("cite", "", 0)
    token.meta = {"key": match.group(1)}
    state.pos = match.end()
    return True


# What a backslash escapes: the characters that are markup in this subset. CommonMark
# escapes every ASCII punctuation character, and a backslash at the end of a line is a
# line break there, so `C:\Temp\#1` printed "C:\Temp#1": everything else prints as typed.
MARKUP_CHARACTERS = "\\*_[]<"


def _escape_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "\\" or state.pos + 1 >= state.posMax \
            or state.src[state.pos + 1] not in MARKUP_CHARACTERS:
        return False  # the backslash is text
    if not silent:
        token = state.push("text_special", "", 0)
        token.content, token.markup, token.info = state.src[state.pos + 1], state.src[state.pos:state.pos + 2], "escape"
    state.pos += 2
    return True


def _star_in_a_word_rule(state: StateInline, silent: bool) -> bool:
    """An asterisk between two letters or digits is text, as an underscore there is in
    CommonMark: "2*3*4" typed in a spreadsheet's cell printed "234", the 3 in italics.
    (``**`` in a word is still strong: ``a**b**c``.)"""
    pos = state.pos
    if state.src[pos] != "*" or pos == 0 or pos + 1 >= state.posMax \
            or not (state.src[pos - 1].isalnum() and state.src[pos + 1].isalnum()):
        return False
    if not silent:
        state.push("text", "", 0).content = "*"
    state.pos += 1
    return True


_md = MarkdownIt("zero").enable(["emphasis", "link", "autolink"])
_md.inline.ruler.before("emphasis", "star_in_a_word", _star_in_a_word_rule)
# an autolink shows its address as typed: markdown-it decodes it for display, so
# <https://example.org/a%20b> read "https://example.org/a b"
_md.normalizeLinkText = lambda url: url
_md.inline.ruler.before("link", "cite", _cite_rule)
_md.inline.ruler.before("cite", "escape", _escape_rule)


def parse(source: str) -> list[Paragraph]:
    """Paragraphs of inline nodes for ``source``."""
    if not isinstance(source, str):
        raise TypeError(f"markup source must be a string, not {type(source).__name__}")
    paragraphs: list[Paragraph] = []
    for token in _md.parse(source):
        if token.type == "inline":
            paragraphs.append(_inlines(iter(token.children or []), closing=None))
    return paragraphs


def _inlines(tokens, closing: str | None) -> Paragraph:
    nodes: list[Inline] = []
    for token in tokens:
        kind = token.type
        if kind == closing:
            break
        if kind == "text":
            nodes.append(Text(token.content))
        elif kind in ("softbreak", "hardbreak"):
            nodes.append(Text(" "))
        elif kind == "em_open":
            nodes.append(Emphasis(_inlines(tokens, "em_close")))
        elif kind == "strong_open":
            nodes.append(Emphasis(_inlines(tokens, "strong_close"), strong=True))
        elif kind == "link_open":
            children = _inlines(tokens, "link_close")
            if any(isinstance(node, Cite) for node in walk(children)):
                raise MarkupError("a citation [^key] cannot sit inside a link's label; "
                                  "put it after the link: [label](https://…)[^key]")
            nodes.append(Link(str(token.attrs["href"]), children))
        elif kind == "cite":
            nodes.append(Cite(token.meta["key"]))
        else:  # pragma: no cover - the enabled rules make no other tokens
            raise MarkupError(f"unexpected markup token {kind!r}")
    return tuple(nodes)


_MARKUP_RE = re.compile("([%s])" % re.escape(MARKUP_CHARACTERS))


def literal(text: str) -> str:
    """Markup source that prints ``text`` exactly: each character that is markup
    here is backslash-escaped."""
    return _MARKUP_RE.sub(r"\\\1", text)


def walk(nodes: Paragraph):
    """Every node in ``nodes``, depth first."""
    for node in nodes:
        yield node
        if isinstance(node, (Emphasis, Link)):
            yield from walk(node.children)


def plain(nodes: Paragraph) -> str:
    """The text a reader sees, without markup (for checks and diffs)."""
    return "".join(n.value for n in walk(nodes) if isinstance(n, Text))


def source(nodes: Paragraph) -> str:
    """The nodes written as markup again, normalised: ``*emphasis*``, ``**strong**``,
    ``[label](url)``, ``[^key]``, text ``literal`` (for a review that must see
    links and emphasis, not only words)."""
    out = []
    for node in nodes:
        if isinstance(node, Cite):
            out.append(f"[^{node.key}]")
        elif isinstance(node, Text):
            out.append(literal(node.value))
        elif isinstance(node, Emphasis):
            star = "**" if node.strong else "*"
            out.append(f"{star}{source(node.children)}{star}")
        elif isinstance(node, Link):
            out.append(f"[{source(node.children)}]({node.url})")
    return "".join(out)
