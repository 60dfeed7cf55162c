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
    """Markup source as the words a reader sees (citations shown as [^key])."""
    words = []
    for paragraph in markup.parse(source):
        for node in paragraph:
            if isinstance(node, markup.Cite):
                words.append(f"[^{node.key}]")
            elif isinstance(node, markup.Text):
                words.append(node.value)
            else:
                words.append(markup.plain((node,)))
        words.append(" ")
    return " ".join("".join(words).split())


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
    lines = [f"to: {recipient.name}" + (f", {recipient.role}" if recipient.role else ""),
             f"address: {' / '.join(recipient.address)}",
             f"salutation: {recipient.salutation}"]
    for paragraph in batch.letter.body:
        for name, shared in paragraph.items():
            if name in recipient.omit:
                summary = " ".join(plain_text(shared).split()[:8]) + " …" if shared else ""
                lines.append(f"omits {name}" + (f": {summary}" if summary else ""))
            elif name in recipient.text:
                own = plain_text(recipient.text[name])
                if shared is None:
                    lines.append(f"{name} (own): {own}")
                else:
                    lines.append(f"{name} (reworded): {word_diff(plain_text(shared), own)}")
    return lines
