"""Page surgery with pikepdf (qpdf): cut a PDF of many letters into one PDF per
letter, and put letters together into one, keeping their links.

The build compiles letters in batches, one pdflatex run for many letters
(process start-up, not typesetting, is what costs), and cuts the result here;
``merge`` puts the letters together with ``append``. Named destinations (the
footnote link targets, named after each letter's id) travel with their pages.
"""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from .files import write_atomic


@dataclass
class Cut:
    """One letter to cut out: where it is, where it goes, what it is called."""

    name: str  # the letter id: its link targets are named "<kind>.<id>.<n>"
    start: int
    pages: int
    dest: Path
    info: dict[str, str]  # Title, Author, Subject, Keywords, CreationDate ...
    lang: str = "en-GB"  # the letter's language (/Lang)


def split(source: Path, cuts: list[Cut]) -> None:
    """Write each cut of ``source`` to its ``dest``, atomically."""
    with pikepdf.open(source) as pdf:
        dests = named_destinations(pdf)
        for cut in cuts:
            out = pikepdf.new()
            tree = pikepdf.NameTree.new(out)
            append(out, tree, pdf, dests, range(cut.start, cut.start + cut.pages),
                   keep=lambda name, cut=cut: f".{cut.name}." in name)
            out.Root.Names = pikepdf.Dictionary(Dests=tree.obj)
            out.Root.Lang = pikepdf.String(cut.lang)
            out.Root.ViewerPreferences = pikepdf.Dictionary(DisplayDocTitle=True)
            for key, value in cut.info.items():
                if value:
                    out.docinfo[f"/{key}"] = pikepdf.String(value)
            save(out, cut.dest)


Dests = dict[tuple[int, int], list[tuple[str, pikepdf.Array]]]


def named_destinations(pdf: pikepdf.Pdf) -> Dests:
    """The named destinations of ``pdf``, by the page they point at:
    page object -> [(name, [page, /XYZ, ...]), ...]."""
    names = pdf.Root.get("/Names")
    if names is None or "/Dests" not in names:
        return {}
    out: Dests = {}
    for name, value in pikepdf.NameTree(names.Dests).items():
        where = value.D if isinstance(value, pikepdf.Dictionary) else value
        out.setdefault(where[0].objgen, []).append((str(name), where))
    return out


def append(target: pikepdf.Pdf, tree: pikepdf.NameTree, source: pikepdf.Pdf,
           dests: Dests, pages: range, keep=lambda name: True) -> None:
    """Append ``pages`` of ``source`` to ``target``, with the named destinations
    (from ``dests``, filtered by ``keep``) that point at them, into ``tree``."""
    for index in pages:
        page = source.pages[index]
        target.pages.append(page)
        copy = target.pages[-1].obj
        for name, where in dests.get(page.objgen, ()):
            if keep(name):
                tree[name] = target.make_indirect(pikepdf.Array([copy, *where[1:]]))


class Deduplicator:
    """Fonts and images that are the same bytes are stored once: each letter
    of a batch carries the same font subsets, so a bundle would hold them
    hundreds of times."""

    def __init__(self, pdf: pikepdf.Pdf) -> None:
        self.pdf = pdf
        self.seen: dict[bytes, pikepdf.Object] = {}
        self.memo: dict[tuple[int, int], bytes] = {}

    def pages(self, pages) -> None:
        for page in pages:
            resources = page.obj.get("/Resources")
            if resources is None:
                continue
            for kind in ("/Font", "/XObject"):
                entries = resources.get(kind)
                if entries is None:
                    continue
                for key in list(entries.keys()):
                    digest = self.digest(entries[key])
                    entries[key] = self.seen.setdefault(digest, entries[key])

    def digest(self, obj: pikepdf.Object) -> bytes:
        """A hash of an object and everything it refers to, by value. qpdf
        writes each level (unparse); references in it are followed."""
        if obj.is_indirect:
            if obj.objgen in self.memo:
                return self.memo[obj.objgen]
            self.memo[obj.objgen] = b"(cycle)"
        # resolved=True: the object itself, not a reference to it
        text = (obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj).unparse(resolved=True)
        # object numbers differ from file to file: hash what they point at instead
        h = hashlib.sha256(_REF_RE.sub(b"@", text))
        if isinstance(obj, pikepdf.Stream):
            h.update(obj.read_raw_bytes())
        for number, generation in _REF_RE.findall(text):
            h.update(self.digest(self.pdf.get_object(int(number), int(generation))))
        digest = h.digest()
        if obj.is_indirect:
            self.memo[obj.objgen] = digest
        return digest


_REF_RE = re.compile(rb"(\d+) (\d+) R\b")


def save(pdf: pikepdf.Pdf, dest: Path) -> None:
    """Save ``pdf`` to ``dest`` atomically, with an /ID from its content."""
    write_atomic(dest, to_bytes(pdf))


def to_bytes(pdf: pikepdf.Pdf) -> bytes:
    buffer = io.BytesIO()
    # deterministic_id: the /ID comes from the content, so builds repeat
    pdf.save(buffer, deterministic_id=True, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    return buffer.getvalue()
