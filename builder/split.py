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
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pikepdf

from .files import locks_for_children, write_atomic


@dataclass
class Cut:
    """One letter to cut out: where it is, where it goes, what it is called."""

    name: str  # the letter id: its link targets are named "<kind>.<id>.<n>"
    start: int
    pages: int
    dest: Path
    info: dict[str, str]  # Title, Author, Subject, Keywords, CreationDate ...
    lang: str = "en-GB"  # the letter's language (/Lang)


def split(source: Path, cuts: list[Cut]) -> dict[str, dict[str, str]]:
    """Write each cut of ``source`` to its ``dest``, atomically. Returns, by
    the SHA-256 of each file written, the digests by value of the fonts and
    forms its pages use (``Deduplicator``'s ``remembered``): worked out here,
    where the letters of a batch share one copy of each font, the merge need
    not hash every letter's copy of them again.

    A letter's bytes depend on its own text only, not on the letters compiled
    with it: the class gives every font all its characters (so font objects
    are the same in any document), and here the names pdfTeX gave fonts and
    forms (numbered in the order the whole document first used them) are
    renamed in the order this letter uses them.
    """
    written: dict[str, dict[str, str]] = {}
    with pikepdf.open(source) as pdf:
        _compressed_as_saving_would(pdf)
        _annotations_without_type(pdf)
        dests = named_destinations(pdf)
        shared: dict[tuple[int, int], bytes] = {}  # digests of the batch's own objects
        for cut in cuts:
            out = pikepdf.new()
            names: Names = {}
            pages = append(out, names, pdf, dests, range(cut.start, cut.start + cut.pages),
                           keep=lambda name, cut=cut: f".{cut.name}." in name)
            set_pages(out, pages)
            memo = _copied_digests(out, pdf, range(cut.start, cut.start + cut.pages), shared)
            renamed: set = set()
            for page in pages:
                canonical_names(out, page, renamed)
            out.Root.Names = pikepdf.Dictionary(Dests=name_tree(out, names))
            out.Root.Lang = pikepdf.String(cut.lang)
            out.Root.ViewerPreferences = pikepdf.Dictionary(DisplayDocTitle=True)
            for key, value in cut.info.items():
                if value:
                    out.docinfo[f"/{key}"] = pikepdf.String(value)
            data = to_bytes(out, pdf.pdf_version)
            write_atomic(cut.dest, data)
            written[hashlib.sha256(data).hexdigest()] = {
                _where(index, kind, name): digest(out, value, memo).hex()
                for index, page in enumerate(pages) for kind, name, value in _stored_resources(page)}
    return written


def _annotations_without_type(pdf: pikepdf.Pdf) -> None:
    """Leave out each link's ``/Type /Annot``, which pdfTeX writes on every annotation: it
    is optional (ISO 32000-1, table 164), the page's /Annots says what they are, and a
    bundle holds 24 links a letter, whose /Type qpdf kept in memory until it saved: 5 KB a
    letter, 50 MB of a 10,000-letter merge (README, "Measured"). Done here, once for
    the batch, and not in the merge, which would spend 10 ms on 500 letters' links each time."""
    for page in pdf.pages:
        for annotation in page.obj.get("/Annots") or ():
            if annotation.get("/Type") == pikepdf.Name.Annot:
                del annotation["/Type"]


def _compressed_as_saving_would(pdf: pikepdf.Pdf) -> None:
    """Compress each stream of ``pdf`` stored without a filter (a class that
    sets \\pdfcompresslevel=0) as saving a letter would, before anything is
    copied or hashed: so a font's or form's digest worked out here is that of
    the object the letter's file holds, the one the merge would work out. A
    stream already filtered is saved as it is."""
    for obj in pdf.objects:
        if isinstance(obj, pikepdf.Stream) and "/Filter" not in obj:
            obj.write(zlib.compress(obj.read_raw_bytes()), filter=pikepdf.Name.FlateDecode)


def _copied_digests(out: pikepdf.Pdf, source: pikepdf.Pdf, pages: range,
                    shared: dict[tuple[int, int], bytes]) -> dict[tuple[int, int], bytes]:
    """A ``digest`` memo for ``out``: the digest of each font and image its
    copied ``pages`` use, worked out on ``source`` (with ``shared``, its memo)
    so that each is hashed once per batch, not once per letter. Only objects
    the cutting leaves as they were: fonts (not Type 3, whose glyphs are
    drawn with resources of their own) and images; forms are renamed."""
    memo: dict[tuple[int, int], bytes] = {}
    seen: set = set()

    def visit(obj: pikepdf.Object) -> None:
        if obj.objgen in seen:
            return
        seen.add(obj.objgen)
        for kind, _, value in _stored_resources(obj):
            subtype = value.get("/Subtype")
            if subtype == "/Form":
                visit(value)
            elif (kind == "/Font" and subtype != "/Type3") or (kind == "/XObject" and subtype == "/Image"):
                # copying again what was copied gives the copy made, not a new one (qpdf)
                memo[out.copy_foreign(value).objgen] = digest(source, value, shared)

    for index in pages:
        visit(source.pages[index].obj)
    return memo


# From this many letters on, a compiled PDF is cut in a process of its own:
# cutting is Python work that holds the interpreter's lock, so two batches cut
# in threads take turns on one core; two processes use two. Below it, starting
# Python and pikepdf (about 0.2 s) costs more than it saves.
APART_FROM = 40


def split_apart(source: Path, cuts: list[Cut]) -> dict[str, dict[str, str]]:
    """``split``, run in a child process (``python -m builder.split``): the
    same files, written the same way, and the same digests. An OSError in
    the child (a full disk) is raised here as the same OSError."""
    return Cutting(source, cuts).result()


class Cutting:
    """``split_apart`` started: the child cuts while the caller goes on (the
    build reads the batch PDF's page sizes and fonts meanwhile); ``result``
    waits for it."""

    def __init__(self, source: Path, cuts: list[Cut]) -> None:
        import json
        import subprocess
        import sys

        self.source = source
        # the request in a file beside the PDF, not on the child's input: a pipe
        # holds 64 KiB, and a longer request would wait for the child to read it
        self.request = source.with_name(f"{source.stem}.cuts.json")
        write_atomic(self.request, json.dumps({"source": str(source), "cuts": [
            {**vars(cut), "dest": str(cut.dest)} for cut in cuts]}).encode())
        # a session of its own: a Ctrl-C stops the build, not the cutting it started, so the
        # letters it writes are all recorded (cutting a batch takes a second or two; the
        # build's lock, passed on, keeps another build out until it is done)
        self.process = subprocess.Popen([sys.executable, "-m", __name__, str(self.request)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env={**os.environ, "PYTHONPATH": _import_root()},
                                        pass_fds=locks_for_children(), start_new_session=True)

    def result(self) -> dict[str, dict[str, str]]:
        import json

        out, err = self.process.communicate()
        self.request.unlink(missing_ok=True)
        if self.process.returncode == _OS_ERROR:
            error = json.loads(out)
            raise OSError(error["errno"], error["strerror"], error["filename"])
        if self.process.returncode < 0:  # killed: by the system when memory ran out, most often
            import signal

            by = next((s.name for s in signal.Signals if s == -self.process.returncode),
                      f"signal {-self.process.returncode}")
            # only SIGKILL is the system's when memory runs out: a crash (SIGSEGV) is not
            why = " (as the system does when memory runs out)" if by == "SIGKILL" else ""
            raise RuntimeError(f"cutting {self.source.name} into letters failed: the process cutting it was "
                               f"stopped by {by}{why}; its letters were not built")
        if self.process.returncode != 0:
            said = err.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"cutting {self.source.name} into letters failed: "
                               + (said[-1] if said else f"exit {self.process.returncode}"))
        return json.loads(out)


_OS_ERROR = 3


def _import_root() -> str:
    """The folder this package is imported from, first on the child's path,
    so the child runs this very code."""
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join([root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def _main() -> int:
    import json
    import sys

    request = json.loads(Path(sys.argv[1]).read_bytes())
    try:
        written = split(Path(request["source"]), [Cut(**{**cut, "dest": Path(cut["dest"])}) for cut in request["cuts"]])
    except OSError as exc:
        print(json.dumps({"errno": exc.errno, "strerror": exc.strerror or str(exc),
                          "filename": str(exc.filename) if exc.filename else None}))
        return _OS_ERROR
    print(json.dumps(written))
    return 0


# Resource kinds renamed, and the prefix of their new names.
_RENAMED = {"/Font": "F", "/XObject": "X"}
_USES = {"Tf": "/Font", "Do": "/XObject"}


def canonical_names(pdf: pikepdf.Pdf, obj: pikepdf.Object, done: set,
                    outer: pikepdf.Dictionary | None = None) -> None:
    """Rename the fonts and XObjects of a page (or form) ``obj`` /F1, /F2 ...,
    /X1 ... in the order its content uses them, and its forms' likewise;
    resources it never uses are dropped.

    ``outer``: the resources in effect where the form ``obj`` is drawn (its
    parent's, as they were). A form with no resources of its own, or without
    one its content names (PDF 1.1 allowed it; a PDF logo may hold one), is
    drawn by viewers with those; dropped from the parent as unused there, the
    form's text came out in whatever font of the page took that name. Such a
    form gets what it uses from ``outer``, as its own."""
    if obj.objgen in done:
        return
    done.add(obj.objgen)
    resources = obj.get("/Resources")
    if resources is None:
        if outer is None:
            return
        resources = outer
    # One pass, the hot loop of a build (about a hundred instructions a page):
    # renames, and keeps of each run of colour settings only what counts
    # (see ``_FILL``).
    out: list = []
    fill = stroke = None  # the last fill and stroke colour of the current run
    names: dict[str, dict[str, str]] = {kind: {} for kind in _RENAMED}
    for instruction in pikepdf.parse_content_stream(obj):
        operator = str(instruction.operator)
        if operator in _FILL:
            fill = instruction
            continue
        if operator in _STROKE:
            stroke = instruction
            continue
        if fill is not None or stroke is not None:
            out += [i for i in (fill, stroke) if i is not None]
            fill = stroke = None
        kind = _USES.get(operator)
        if kind:
            operands = instruction.operands
            if operands and isinstance(operands[0], pikepdf.Name):
                used = names[kind]
                old = str(operands[0])
                if old not in used:
                    used[old] = f"/{_RENAMED[kind]}{len(used) + 1}"
                instruction = pikepdf.ContentStreamInstruction([pikepdf.Name(used[old]), *list(operands)[1:]],
                                                               instruction.operator)
        out.append(instruction)
    out += [i for i in (fill, stroke) if i is not None]
    content = pikepdf.unparse_content_stream(out)
    if isinstance(obj, pikepdf.Stream):
        # compressed here as saving would (zlib's default level, as qpdf's):
        # the form is then, before saving, what the saved letter holds, and
        # its digest (``split``) what the merge works out from the file
        obj.write(zlib.compress(content), filter=pikepdf.Name.FlateDecode)
    else:
        obj.Contents = pdf.make_stream(content)
    original, inner = resources, None
    resources = pikepdf.Dictionary({key: resources[key] for key in resources.keys()})  # it may be shared
    for kind, used in names.items():
        table = original.get(kind)
        found = {new: table[old] for old, new in used.items() if old in table} if table is not None else {}
        if outer is not None and len(found) < len(used):  # named, not its own: from where it is drawn
            around = outer.get(kind)
            found.update({new: around[old] for old, new in used.items()
                          if new not in found and around is not None and old in around})
        if table is None and not found:
            continue
        resources[kind] = pikepdf.Dictionary(found)
        if kind == "/XObject":
            for new in used.values():
                xobject = resources[kind].get(new)
                if xobject is not None and xobject.get("/Subtype") == "/Form":
                    if inner is None:  # what its forms are drawn with: its own, then those where it is drawn
                        inner = original if outer is None or original is outer else _overlay(outer, original)
                    canonical_names(pdf, xobject, done, inner)
    obj.Resources = resources


def _overlay(outer: pikepdf.Dictionary, own: pikepdf.Dictionary) -> pikepdf.Dictionary:
    """Resources ``own`` with, of each kind, what only ``outer`` has."""
    merged = pikepdf.Dictionary({key: outer[key] for key in outer.keys()})
    for key in own.keys():
        mine, theirs = own[key], merged.get(key)
        if isinstance(mine, pikepdf.Dictionary) and isinstance(theirs, pikepdf.Dictionary):
            merged[key] = pikepdf.Dictionary({**{k: theirs[k] for k in theirs.keys()},
                                              **{k: mine[k] for k in mine.keys()}})
        else:
            merged[key] = mine
    return merged


# pdfTeX starts the first page of a document with one more "0 g 0 G" (colour
# set, nothing drawn) than later pages. In a run of colour settings with
# nothing drawn between, only the last fill and stroke colour count: keeping
# those, a page reads the same wherever it stood in its document.
_FILL, _STROKE = {"g", "rg", "k"}, {"G", "RG", "K"}


Dests = dict[tuple[int, int], list[tuple[str, pikepdf.Array]]]
Names = dict[str, pikepdf.Array]  # named destinations: name -> [page /XYZ ...], direct


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


def append(target: pikepdf.Pdf, names: Names, source: pikepdf.Pdf,
           dests: Dests, pages: range, keep=lambda name: True) -> list[pikepdf.Object]:
    """Copy ``pages`` of ``source`` into ``target``, with the named destinations
    (from ``dests``, filtered by ``keep``) that point at them, into ``names``
    (for ``name_tree``). Returns the copies, for ``set_pages`` to place."""
    copies = []
    for index in pages:
        page = source.pages[index].obj
        # copying a page alone leaves its page tree behind, as qpdf documents
        copy = target.copy_foreign(page)
        copies.append(copy)
        for name, where in dests.get(page.objgen, ()):
            if keep(name):
                names[name] = pikepdf.Array([copy, *where[1:]])  # in the tree's leaf (name_tree)
    return copies


# names in a leaf of the tree, and kids in a node above them: qpdf splits a node past 32
_NAME_TREE_FANOUT = 32


def name_tree(pdf: pikepdf.Pdf, names: Names) -> pikepdf.Object:
    """``names`` as a PDF name tree of ``pdf``: sorted (by their bytes in the file, as the
    standard orders them), up to 32 in a leaf and 32 leaves under a node. Made at once:
    inserted one at a time (``pikepdf.NameTree``), the 2500 names of 500 letters took 24 ms,
    made at once 6 ms (README, "Speed"); a leaf at a time, as the 50,000 names of 10,000
    letters held as PDF strings all at once raised the merge's peak memory by 8 MiB. Each
    destination is stored in its leaf, not as an object of its own (qpdf holds each object in
    memory until the bundle is saved: 20 MiB more at 10,000 letters)."""
    ordered = sorted(names, key=lambda name: bytes(pikepdf.String(name)))

    def node(key: str, items: list, first: str, last: str, root: bool) -> pikepdf.Object:
        limits = {} if root else {"/Limits": pikepdf.Array([pikepdf.String(first), pikepdf.String(last)])}
        return pdf.make_indirect(pikepdf.Dictionary({key: pikepdf.Array(items), **limits}))

    def leaf(chunk: list[str], root: bool = False) -> pikepdf.Object:
        return node("/Names", [x for name in chunk for x in (pikepdf.String(name), names[name])],
                    chunk[0] if chunk else "", chunk[-1] if chunk else "", root)

    if len(ordered) <= _NAME_TREE_FANOUT:  # the root holds them (as a new pikepdf.NameTree does)
        return leaf(ordered, root=True)
    # each level: (first name, last name, node) of its nodes, up to a root of at most 32 kids
    level = [(chunk[0], chunk[-1], leaf(chunk)) for chunk in _chunks(ordered)]
    while len(level) > _NAME_TREE_FANOUT:
        level = [(chunk[0][0], chunk[-1][1], node("/Kids", [kid for _, _, kid in chunk], chunk[0][0],
                                                  chunk[-1][1], root=False)) for chunk in _chunks(level)]
    return node("/Kids", [kid for _, _, kid in level], "", "", root=True)


def _chunks(items: list) -> list[list]:
    return [items[start:start + _NAME_TREE_FANOUT] for start in range(0, len(items), _NAME_TREE_FANOUT)]


class Deduplicator:
    """Appends letters to a bundle, storing once what is the same by value at
    every level: a font dictionary, and also a font program (stream) shared by
    font dictionaries that differ. Letters each carry their own copy of the
    fonts and the letterhead; a bundle keeps one.

    A letter's fonts and forms are compared (hashed by value) in the letter
    itself, before its pages are copied: one already in the bundle is not
    copied at all. The pages' own streams are then copied into the bundle, so
    the letter's file can be closed: a merge holds one letter at a time.
    """

    _PLACEHOLDER = "/LetterbatchStoredOnce"

    def __init__(self, pdf: pikepdf.Pdf, remembered: dict[str, dict[str, str]] | None = None) -> None:
        self.pdf = pdf
        self.seen: dict[bytes, pikepdf.Object] = {}  # digest -> the bundle's object
        self.canon: dict[tuple[int, int], pikepdf.Object] = {}  # bundle objgen -> canonical object
        self.memo: dict[tuple[int, int], bytes] = {}  # bundle objgen -> digest
        # the digests of each document's fonts and forms, by the SHA-256 of its
        # file: what an earlier merge worked out, and what this one did
        self.remembered = remembered or {}
        self.learned: dict[str, dict[str, str]] = {}
        # a link's web address or e-mail (its /URI action) by its text: the letterhead's and the
        # shared footnotes' are the same in every letter, stored once (the first link's action, made
        # indirect when a second link has it). qpdf holds about 2 KB of memory per object: 19 such
        # actions a letter were 140 MB of a 10,000-letter merge
        self.actions: dict[bytes, pikepdf.Object] = {}
        self._first_link: dict[bytes, pikepdf.Object] = {}  # the link whose action is still direct

    def append(self, names: Names, source: pikepdf.Pdf, dests: Dests, pages: range,
               file_sha256: str | None = None) -> tuple[list[pikepdf.Object], bool]:
        """Copy ``pages`` of ``source`` into the bundle, with the named
        destinations that point at them (into ``names``). Returns the copies,
        for ``set_pages`` to place, and True if the bundle still reads from
        ``source`` (it brought something new), so it must stay open until the
        bundle is saved. With ``file_sha256`` (the hash of
        the file ``source`` was opened from), the digests of its fonts and
        forms are taken from ``remembered`` instead of worked out again: a
        file with that hash has those objects."""
        known: list[pikepdf.Object] = []
        memo: dict[tuple[int, int], bytes] = {}
        remembered = self.remembered.get(file_sha256, {}) if file_sha256 else {}
        learned: dict[str, str] = {}
        for index in pages:
            for kind, entries in _resource_tables(source.pages[index].obj):
                for key in list(entries.keys()):
                    value = entries[key]
                    if isinstance(value, pikepdf.Object) and value.is_indirect:
                        where = _where(index, kind, key)
                        learned[where] = remembered.get(where) or digest(source, value, memo).hex()
                        found = self.seen.get(bytes.fromhex(learned[where]))
                        if found is not None:  # stands in for it while the page is copied
                            entries[key] = pikepdf.Name(f"{self._PLACEHOLDER}{len(known)}")
                            known.append(found)
        if file_sha256:
            self.learned[file_sha256] = learned
        copies = append(self.pdf, names, source, dests, pages)
        brought_new = False
        for page in copies:
            for _, entries in _resource_tables(page):
                for key in list(entries.keys()):
                    value = entries[key]
                    if isinstance(value, pikepdf.Name) and str(value).startswith(self._PLACEHOLDER):
                        entries[key] = known[int(str(value)[len(self._PLACEHOLDER):])]
                    elif isinstance(value, pikepdf.Object) and value.is_indirect:
                        entries[key] = self.canonical(value)
                        brought_new = True
            _own_streams(page)
            # the one /Border [0 0 0] every link of a letter shares (the class's): one for all letters
            for annotation in page.get("/Annots") or ():
                border = annotation.get("/Border")
                if border is not None and border.is_indirect:
                    annotation.Border = self.canonical(border)
                self._share_action(annotation)
        return copies, brought_new

    def _share_action(self, annotation: pikepdf.Object) -> None:
        """Give a link the bundle's one copy of its /URI action (an action may be
        shared, unlike the annotation, which belongs to its page). The text of a
        direct action is its value (what it refers to is the bundle's already); qpdf
        writes a dictionary's keys in order, so a URI action without /Next starts
        with /S /URI. An indirect action, or any other, is left as it is. (It costs
        time: a merge of 500 letters after one is edited takes 3% longer, README.)"""
        action = annotation.get("/A")
        if action is None:
            return
        text = action.unparse()
        if not text.startswith(b"<< /S /URI "):
            return
        shared = self.actions.get(text)
        if shared is None:  # the first link to it keeps its own, direct, until a second one comes
            self._first_link[text] = annotation
            self.actions[text] = action
            return
        if not shared.is_indirect:
            shared = self.actions[text] = self.pdf.make_indirect(shared)
            self._first_link.pop(text).A = shared
        annotation.A = shared

    def blank_page(self, width: float, height: float) -> pikepdf.Object:
        """A blank page of that size (as pikepdf's ``add_blank_page`` makes one), for ``set_pages``."""
        return self.pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Page, MediaBox=pikepdf.Array([0, 0, width, height]),
            Contents=self.pdf.make_stream(b""), Resources=pikepdf.Dictionary()))

    def canonical(self, obj: pikepdf.Object) -> pikepdf.Object:
        """The first object of the bundle with the same value as ``obj``
        (indirect); its own references are made canonical first."""
        if obj.objgen in self.canon:
            return self.canon[obj.objgen]
        self.canon[obj.objgen] = obj  # while we are inside it (cycles)
        self._children(obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj)
        found = self.seen.setdefault(digest(self.pdf, obj, self.memo), obj)
        self.canon[obj.objgen] = found
        return found

    def _children(self, container) -> None:
        # a direct array or dictionary with no reference in it (a font's
        # widths: hundreds of numbers) has nothing to make canonical
        if not _REF_RE.search(container.unparse()):
            return
        if isinstance(container, pikepdf.Dictionary):
            for key in list(container.keys()):
                if key == "/Parent":
                    continue
                child = container.get(key)
                if isinstance(child, pikepdf.Object) and child.is_indirect:
                    container[key] = self.canonical(child)
                elif isinstance(child, (pikepdf.Dictionary, pikepdf.Array)):
                    self._children(child)
        elif isinstance(container, pikepdf.Array):
            for index in range(len(container)):
                child = container[index]
                if isinstance(child, pikepdf.Object) and child.is_indirect:
                    container[index] = self.canonical(child)
                elif isinstance(child, (pikepdf.Dictionary, pikepdf.Array)):
                    self._children(child)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Digests:
    """What is known about each document's fonts and forms (their digests by
    value, ``Deduplicator``'s ``remembered``), kept in a file of the build's
    work folder by the SHA-256 of the document's file. The build keeps what
    cutting its letters worked out (``split``), once per batch; a merge keeps
    what it used. So a merge hashes the fonts of no letter the build made,
    and after one letter changed, of that letter only. Only a short cut: a
    file that is missing, unreadable, not of this shape or written by other
    code (the builder's own files, by content: another way of hashing would
    not match) is ignored, and the digests are worked out again.

    A digest taken on trust decides which object a page shows: one that is
    not the document's own (the file edited, or copied in from elsewhere)
    would put another letter's form or font on it, while the letter and its
    record are untouched. So a document's digests are used only when
    ``vouched`` (from the manifest, ``Manifest.vouched_digests``) holds
    their ``vouch`` for its hash: the record of what was checked says which
    digests are the file's, and this file alone cannot change a bundle."""

    def __init__(self, path: Path, vouched: dict[str, str]) -> None:
        import json

        from .build import _code

        self.path = path
        self.code = _code()
        self.remembered: dict[str, dict[str, str]] = {}
        self.learned: dict[str, dict[str, str]] = {}
        try:
            # a regular file only: a FIFO or a device would never end
            data = json.loads(path.read_bytes()) if path.is_file() else None
            documents = data.get("documents") if isinstance(data, dict) and data.get("code") == self.code else None
            if isinstance(documents, dict) and all(
                    isinstance(objects, dict) and all(isinstance(v, str) and _SHA256_HEX.fullmatch(v)
                                                      for v in objects.values()) for objects in documents.values()):
                self.remembered = {sha: objects for sha, objects in documents.items()
                                   if vouched.get(sha) == vouch(objects)}
        except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested too deep
            pass

    def save(self, documents: dict[str, dict[str, str]] | None = None) -> None:
        """Keep ``documents`` (by default ``learned``: what a merge used, the
        documents of the last bundle only)."""
        import json

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps({"code": self.code, "documents": self.learned if documents is None
                                                else documents}, sort_keys=True).encode())
        except OSError:
            pass  # the next merge works them out again


def vouch(objects: dict[str, str]) -> str:
    """What a document's record keeps of its fonts' and forms' digests
    (``split``'s, or what a merge used): their hash, by which ``Digests``
    knows them as the document's own."""
    import json

    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()


def set_pages(pdf: pikepdf.Pdf, pages: list[pikepdf.Object]) -> None:
    """Make ``pages`` (copied into ``pdf`` by ``Deduplicator``) its pages, in
    that order. Written once, not page by page: pikepdf's ``pdf.pages`` makes
    a list of every page for each length, index and append (66 us at 2000
    pages), so a merge that appended page by page was quadratic."""
    tree = pdf.Root.Pages
    for page in pages:
        page.Parent = tree
    tree.Kids = pikepdf.Array(pages)
    tree.Count = len(pages)


def _resource_tables(obj: pikepdf.Object):
    """The /Font and /XObject tables of a page's (or form's) resources, with
    their kind."""
    resources = obj.get("/Resources")
    if resources is None:
        return
    for kind in ("/Font", "/XObject"):
        entries = resources.get(kind)
        if isinstance(entries, pikepdf.Dictionary):
            yield kind, entries


def _stored_resources(obj: pikepdf.Object):
    """(kind, name, object) for each font and XObject of a page's (or
    form's) resources that is an object of its own (indirect)."""
    for kind, entries in _resource_tables(obj):
        for name, value in entries.items():
            if isinstance(value, pikepdf.Object) and value.is_indirect:
                yield kind, name, value


def _where(index: int, kind: str, name: str) -> str:
    """How a letter's file names a font or form on the record of its digests:
    by page and resource name ("0/Font/F1"), which saving it does not change
    (object numbers do)."""
    return f"{index}{kind}{name}"


def _own_streams(page: pikepdf.Object) -> None:
    """Give a copied page's content streams their bytes (as stored, still
    compressed), so the bundle no longer reads them from the letter's file."""
    contents = page.get("/Contents")
    streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents] if contents is not None else []
    for annotation in page.get("/Annots") or []:
        for appearance in (annotation.get("/AP") or {}).values():
            streams += [appearance] if isinstance(appearance, pikepdf.Stream) else list(appearance.values())
    for stream in streams:
        if isinstance(stream, pikepdf.Stream):
            stream.write(stream.read_raw_bytes(), filter=stream.get("/Filter"),
                         decode_parms=stream.get("/DecodeParms"))


def digest(pdf: pikepdf.Pdf, obj: pikepdf.Object, memo: dict[tuple[int, int], bytes]) -> bytes:
    """A hash of an object of ``pdf`` and everything it refers to, by value:
    the same in any file. qpdf writes each level (unparse); references in it
    are followed. ``memo``: digests by object, for this ``pdf``."""
    if obj.is_indirect:
        if obj.objgen in memo:
            return memo[obj.objgen]
        memo[obj.objgen] = b"(cycle)"
    # resolved=True: the object itself, not a reference to it
    text = (obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj).unparse(resolved=True)
    # object numbers differ from file to file: hash what they point at instead
    # (split: the text between references, then each reference's number and generation)
    pieces = _REF_RE.split(text)
    h = hashlib.sha256(b"@".join(pieces[0::3]))
    if isinstance(obj, pikepdf.Stream):
        h.update(obj.read_raw_bytes())
    for number, generation in zip(pieces[1::3], pieces[2::3]):
        h.update(digest(pdf, pdf.get_object(int(number), int(generation)), memo))
    result = h.digest()
    if obj.is_indirect:
        memo[obj.objgen] = result
    return result


_REF_RE = re.compile(rb"(\d+) (\d+) R\b")


def to_bytes(pdf: pikepdf.Pdf, version: str = "") -> bytes:
    """A letter as saved, with an /ID from its content, and without object streams: a
    merge opens every letter, and qpdf reads a file's object streams whole when it opens
    it (500 letters opened in 0.13 s with them, 0.02 s without). A letter is 3% larger
    for it (420 KB against 408), the bundle the same bytes (README, "Speed").
    ``version``: that of the PDF it was cut from, at least; a new PDF saved without
    object streams says 1.3, below what its pages use (a logo's transparency: 1.4)."""
    buffer = io.BytesIO()
    # straight into memory, where a write cannot fail for want of space: qpdf writes a
    # letter in some 5000 pieces, and each through ``_WriteErrorsKept`` cost a quarter of
    # the save (250 letters saved in 0.27 s against 0.36 s; README, "Speed")
    _save(pdf, buffer, object_streams=False, version=version)
    return buffer.getvalue()


def save(pdf: pikepdf.Pdf, handle: BinaryIO, object_streams: bool = True, version: str = "") -> None:
    """Save ``pdf`` into the open file ``handle``; ``object_streams``: its small objects
    compressed together (the bundle's page dictionaries and links), as a bundle is;
    ``version``: the least PDF version its header says.
    A write that fails (a full disk) raises its OSError once qpdf is done."""
    into = _WriteErrorsKept(handle)
    _save(pdf, into, object_streams, version)
    if into.error is None:
        handle.flush()
    if into.error is not None:
        raise into.error


def _save(pdf: pikepdf.Pdf, into, object_streams: bool, version: str) -> None:
    # deterministic_id: the /ID comes from the content, so builds repeat
    # streams already compressed are copied as they are (fonts: most of the bytes)
    mode = pikepdf.ObjectStreamMode.generate if object_streams else pikepdf.ObjectStreamMode.disable
    pdf.save(into, deterministic_id=True, object_stream_mode=mode, min_version=version,
             stream_decode_level=pikepdf.StreamDecodeLevel.none)


class _WriteErrorsKept:
    """``handle`` for qpdf to write into, keeping the first write's error to raise
    after the save. qpdf 12 ends the whole process (std::terminate) when a write
    fails while it works out a deterministic /ID, so it must never see one; the
    writes after it are dropped. (Not a plain file object: pikepdf would hand
    qpdf its descriptor to write to directly.)"""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        if self.error is None:
            try:
                self.handle.write(data)
            except OSError as exc:
                self.error = exc
        return len(data)

    def flush(self) -> None:
        pass  # by save, where an error can be raised

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()


if __name__ == "__main__":
    raise SystemExit(_main())
