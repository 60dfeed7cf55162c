"""What each recipient gets that the others do not: the personal part of a letter.

For the signatory's review: each letter's own fields, the shared parts it
leaves out, the parts only it has, and a word-by-word diff of the shared
parts it words differently ([-removed-] {+added+}).
"""
from __future__ import annotations

import difflib

from . import markup
from .schema import Batch, Recipient

CONTEXT = 4  # unchanged words kept either side of a change


def plain_text(source: str) -> str:
    """Markup source as a reviewer must see it: the words, and what else the letter
    prints or links, written as markup (``*emphasis*``, ``**strong**``,
    ``[label](url)``, a citation ``[^key]``; a character that is markup here
    escaped, as typed: ``\\*``). A link's target or emphasis changed showed as
    "the same as the shared text"."""
    paragraphs = [markup.source(paragraph) for paragraph in markup.parse(source)]
    # the diff's own marks, typed in the text, are set apart ([- and -] are escaped already)
    text = " ".join(" ".join(paragraphs).split())
    return text.replace("{+", "{\\+").replace("+}", "+\\}")


def word_diff(old: str, new: str) -> str:
    a, b = old.split(), new.split()
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            same = a[i1:i2]
            if len(same) > 2 * CONTEXT:
                head = same[:CONTEXT] if i1 > 0 else []
                tail = same[-CONTEXT:] if i2 < len(a) else []
                same = head + ["…"] + tail
            out += same
        else:
            if i2 > i1:
                out.append("[-" + " ".join(a[i1:i2]) + "-]")
            if j2 > j1:
                out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


def personal(batch: Batch, recipient: Recipient) -> list[str]:
    """Lines describing what is particular to ``recipient``'s letter."""
    languages = batch.languages_of(recipient)
    lines = [f"to: {recipient.name}" + (f", {recipient.role}" if recipient.role else ""),
             f"address: {' / '.join(recipient.address)}",
             f"salutation: {_shown(batch, recipient, recipient.salutation, languages)}"]
    lines += _parts(batch, recipient, languages)
    for paragraph in batch.letter.body:
        for name, shared in paragraph.items():
            for language in languages:
                tag = f" [{language}]" if len(languages) > 1 else ""
                shared_text = batch.shared_text(shared, language)
                if name in recipient.omit:
                    if language == languages[0]:
                        summary = " ".join(plain_text(shared_text).split()[:8]) + " …" if shared_text else ""
                        lines.append(f"omits {name}" + (f": {summary}" if summary else ""))
                elif name in recipient.text:
                    own = plain_text(batch.own_text(recipient, recipient.text[name], language) or "")
                    if shared is None:
                        lines.append(f"{name}{tag} (own): {own}")
                    elif own == plain_text(shared_text or ""):
                        lines.append(f"{name}{tag}: given, the same as the shared text")
                    else:
                        lines.append(f"{name}{tag} (reworded): {word_diff(plain_text(shared_text or ''), own)}")
    return lines


def _shown(batch: Batch, recipient: Recipient, value, languages) -> str:
    """A recipient's own text in each of the letter's languages."""
    texts = [batch.own_text(recipient, value, language) or "" for language in languages]
    if len(languages) == 1:
        return texts[0]
    return " | ".join(f"[{language}] {text}" for language, text in zip(languages, texts))


def _parts(batch: Batch, recipient: Recipient, languages) -> list[str]:
    """The letter parts this recipient sets or overrides (parts), and the
    closing the letter will print; email is shown, though never printed."""
    from .compose import closing

    lines = []
    if recipient.language:
        lines.append(f"language: {recipient.language}")
    if recipient.email:
        lines.append(f"email (not printed): {recipient.email}")
    for key in ("your_ref", "our_ref", "marking"):
        value = getattr(recipient, key)
        if value is not None:
            lines.append(f"{key}: {value}")
    for key in ("subject", "ps"):
        value = getattr(recipient, key)
        if value is not None:
            lines.append(f"{key}: " + " | ".join(
                (f"[{language}] " if len(languages) > 1 else "")
                + plain_text(batch.own_text(recipient, value, language) or "") for language in languages))
    for key in ("cc", "enclosures"):
        value = getattr(recipient, key)
        if value is not None:
            lines.append(f"{key}: {' / '.join(value) if value else '(none)'}")
    closings = " | ".join(closing(batch, recipient, language) for language in languages)
    lines.append(f"closing: {closings}" + ("" if recipient.closing is not None else " (default)"))
    return lines
