"""The pipeline: load -> compose -> compile -> split, for every letter of a batch.

Only this module runs the stages in order. A letter is recompiled only when
what it depends on changed (its source, the letterhead, its images, the
builder, the TeX version): content hashes, kept in ``build/manifest.json``.
One bad letter never stops the others; the report says what failed and why.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import sys
import threading
import typing
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from . import compile as tex, cores, ready
from .files import clear_stale_temporaries, held_locks, write_atomic
from .manifest import Manifest, recorded_as_made, sha256_bytes

# compose (PyLaTeX), load (pydantic, PyYAML) and html are imported where a batch
# is loaded: `invoke status` on a batch unchanged since its build needs none of them
if typing.TYPE_CHECKING:
    from .load import Loaded, Problem
    from .schema import Recipient

LETTERHEAD = Path(__file__).resolve().parent / "letterhead"  # package data: ships with the wheel


@dataclass
class Layout:
    """Where a build puts things, all under one folder (``build/`` by default).

    Letters have a folder of their own (``letters/<id>.pdf``), apart from the
    bundle, the cover sheet and the manifest, so no recipient id can name a
    file that another output overwrites. Web copies go under ``web/``, named
    ``<date>-<id>.pdf``.
    """

    root: Path
    prefix: str = ""
    letters_folder: str = "letters"

    @classmethod
    def of(cls, build_dir: str | Path, medium: str = "print", date: dt.date | None = None) -> "Layout":
        if medium == "web":
            return cls(Path(build_dir) / "web", f"{date.isoformat()}-" if date else "", "")
        return cls(Path(build_dir))

    @property
    def tex(self) -> Path:
        return self.root / "tex"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def letters(self) -> Path:
        return self.root / self.letters_folder

    @property
    def written_by_build(self) -> tuple[Path, Path, Path]:
        """The folders a build writes files into (the record, letters, LaTeX): where one
        killed while it wrote leaves its temporary files (``clear_stale_temporaries``)."""
        return self.root, self.letters, self.tex

    def pdf(self, recipient_id: str) -> Path:
        return self.root / self.pdf_name(recipient_id)

    def pdf_name(self, recipient_id: str) -> str:
        """A letter's file as ``relative`` names it (10,000 of them: no Path arithmetic)."""
        return f"{self.letters_folder}/{self.prefix}{recipient_id}.pdf".lstrip("/")

    def earlier_web_copy(self, recipient_id: str, recorded_file) -> Path | None:
        """The web copy of ``recipient_id`` the record names (``<date>-<id>.pdf``, of the
        letter's date then, which may not be its date now), or None. Nothing else is taken
        by the name a record gives: a manifest edited by hand to name bundle-signed.pdf as
        a letter's file made the build delete it."""
        if self.letters_folder or not isinstance(recorded_file, str):  # print letters: letters/<id>.pdf only
            return None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}-" + re.escape(recipient_id) + r"\.pdf", recorded_file):
            return None
        return self.root / recorded_file

    @property
    def bundle(self) -> Path:
        return self.root / "bundle.pdf"

    @property
    def cover(self) -> Path:
        return self.root / "cover.pdf"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def digests(self) -> Path:
        """The digests of the letters' fonts and forms (``split.Digests``)."""
        return self.work / "bundle-digests.json"

    @property
    def signed(self) -> Path:
        return self.root / "signed"

    def signed_pdf(self, recipient_id: str) -> Path:
        return self.signed / f"{recipient_id}.pdf"

    @property
    def bundle_signed(self) -> Path:
        return self.root / "bundle-signed.pdf"

    @property
    def sent(self) -> Path:
        return self.root / "sent.json"

    def relative(self, path: Path) -> str:
        """How messages and the manifest name a file: relative to the build folder."""
        path = Path(path)
        if path.is_relative_to(self.root):
            return str(path.relative_to(self.root))
        # one given from another folder (merge --output ../x.pdf): where it really is
        path, root = Path(os.path.abspath(path)), Path(os.path.abspath(self.root))
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@dataclass
class Outcome:
    recipient: str
    status: str  # "built", "up to date", "failed", "invalid"
    pdf: Path | None = None
    message: str = ""
    seconds: float = 0.0
    # the letter's stored preflight (code, level, message), and the codes accepted
    findings: list[dict] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    pages: int = 0

    @property
    def errors(self) -> list[dict]:
        """Preflight errors nobody accepted: the letter is not ready."""
        return [f for f in self.findings if f.get("level") == "error" and f.get("code") not in self.accepted]


@dataclass
class Report:
    outcomes: list[Outcome]
    warnings: list[Problem]
    # recipients on the record no longer in the batch: their files deleted (``_forget_removed``)
    removed: list[str] = field(default_factory=list)
    kept_signed: list[Path] = field(default_factory=list)  # their signed copies, which a build cannot make again
    # web copies (copies to publish) of letters marked more than OFFICIAL: id -> marking
    marked: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "invalid")]

    @property
    def not_ready(self) -> list[Outcome]:
        """Letters built (or kept) whose preflight found errors nobody accepted."""
        return [o for o in self.outcomes if o.status in ("built", "up to date") and o.errors]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Source:
    """One letter, composed: what to compile and the hashes of all it depends on."""

    recipient: Recipient
    # the letter environment, for a document of many letters (``Prepared.block``):
    # None once the build is done with it (``Prepared.forget_text``)
    block: str | None
    inputs: dict[str, str]  # what the PDF depends on, by name; "key" hashes them all
    # what its LaTeX is composed from (``_shared_composition``, and the recipient): while it is
    # the one on the record, the LaTeX hashed there is this letter's, and it is not composed again
    composed_from: str = ""
    # what the letter says, as data (``words_of``): the same letter after a tool update has
    # other bytes but these words, which send looks for among the letters mailed from any folder
    words: str = ""

    @property
    def key(self) -> str:
        return self.inputs["key"]


@dataclass
class Prepared:
    """A loaded batch, composed in memory, with what compiling it needs."""

    loaded: Loaded
    layout: Layout
    sources: list[Source]
    assets: dict[str, Path]  # TeX file name (assets/logo.png) -> the image in the project
    env: dict[str, str]
    medium: str = "print"
    files: list[str] = field(default_factory=list)  # what it was read from, besides the YAML
    _by_id: dict[str, Source] = field(default_factory=dict, repr=False)

    fingerprint: str | None = None  # of every file it was made from (``Recorded``)
    # the files the letters' text comes from (the YAML, a spreadsheet), by name: their SHA-256
    text_files: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # "logo" -> its TeX file name, as letters name it

    def block(self, source: Source) -> str:
        """The letter environment of ``source``, for a document of many letters:
        composed when ``prepare`` took its hash from the record, or composed
        again when ``forget_text`` has dropped it. If its text is not the one
        hashed (a record edited by hand), the letter's hashes become its
        text's: the letter is built from, and recorded with, what it is."""
        from .compose import letter_block

        if source.block is None:
            block = letter_block(self.loaded.batch, source.recipient, assets=self.images, memo=self.loaded.memo)
            text = sha256_bytes(self._tex(source, block).encode())
            if text != source.inputs["source"]:
                source.inputs = _with_key({k: v for k, v in source.inputs.items() if k != "key"} | {"source": text})
            source.block = block
        return source.block

    def tex(self, source: Source) -> str:
        """The complete document of ``source``'s letter alone."""
        return self._tex(source, self.block(source))

    def _tex(self, source: Source, block: str) -> str:
        from .compose import letter_source

        return letter_source(self.loaded.batch, source.recipient, block, medium=self.medium, memo=self.loaded.memo)

    def forget_text(self) -> None:
        """Drop every letter's composed text, kept by its source and the batch's
        memo: once the letters are built, what else the command does (merge
        above all) needs only their hashes, and 10,000 letters hold 170 MB of
        text. ``block`` and ``tex`` make it again if it is asked for."""
        for source in self.sources:
            source.block = None
        for key in [key for key in self.loaded.memo if isinstance(key, tuple) and key[0] in ("block", "source")]:
            del self.loaded.memo[key]

    def source(self, recipient_id: str) -> Source | None:
        """The letter of ``recipient_id`` (looked up by id: a batch may hold 10,000)."""
        if len(self._by_id) != len(self.sources):
            self._by_id.update((s.recipient.id, s) for s in self.sources)
        return self._by_id.get(recipient_id)

    @property
    def batch_name(self) -> str:
        return self.loaded.path.name

    @property
    def text_from(self) -> str:
        """The files a letter's text comes from: the YAML, and a spreadsheet of recipients."""
        return ", ".join([self.batch_name, *(Path(name).name for name in self.loaded.inputs)])

    @property
    def rejected(self) -> list[tuple[str, str, str]]:
        """Each invalid recipient, in file order: its label, its first problem
        (where, by file name, and what), all of them."""
        return [(ps[0].recipient or f"recipients[{i}]", _first_problem(ps[0]), "\n".join(str(p) for p in ps))
                for i, ps in sorted(self.loaded.rejected.items())]

    @property
    def warnings(self) -> list:
        return self.loaded.warnings

    @property
    def common_inputs(self) -> dict[str, str]:
        """The inputs every letter shares: letterhead, images, builder and TeX versions, envelope."""
        return {k: v for k, v in (self.sources[0].inputs if self.sources else {}).items()
                if k not in ("source", "key")}

    def record(self) -> dict:
        """What ``Recorded`` needs to stand in for this batch while its files
        are unchanged, for the manifest."""
        return {
            "fingerprint": self.fingerprint, "medium": self.medium, "name": self.batch_name,
            "yaml": self.batch_file_from_build,
            "text_from": self.text_from, "text_files": self.text_files,
            "files": self.files, "common": self.common_inputs,
            "letters": [[s.recipient.id, s.inputs["source"], s.key, list(getattr(s.recipient, "accept", None) or [])]
                        for s in self.sources],
            "composed": {s.recipient.id: s.composed_from for s in self.sources},
            # each recipient's address, for status to tell one corrected since its letter was mailed
            "emails": {s.recipient.id: s.recipient.email for s in self.sources if s.recipient.email},
            "rejected": [list(r) for r in self.rejected],
            "warnings": [str(w) for w in self.warnings],
        }

    @property
    def batch_file_from_build(self) -> str:
        """The batch file, from the build folder: another batch's build is told apart
        (``tasks.other_batch_in``)."""
        return os.path.relpath(self.loaded.path.resolve(), self.layout.root.resolve())

    @property
    def asset_names(self) -> dict[str, str]:
        """"logo", "signature" -> the TeX file name."""
        return {Path(name).stem: name for name in self.assets}

    def write_assets(self) -> None:
        """Images go next to the .tex: pdflatex may only read below its folder."""
        for name, original in self.assets.items():
            write_atomic(self.layout.tex / name, original.read_bytes())

    def compile(self, name: str, source: str) -> tex.CompileResult:
        """Write ``build/tex/<name>.tex`` and compile it in ``build/work/<name>/``
        (the PDF stays there until the caller puts it in place)."""
        path = self.layout.tex / f"{name}.tex"
        write_atomic(path, source.encode())
        return self.compile_file(path, source, self.layout.work / name)

    def format_for(self, source: str, make: bool = True) -> Path | None:
        """The format of ``source``'s preamble (``compile.preloaded_format``),
        made first when there is none and ``make``; None if it has none."""
        return tex.preloaded_format(source, self.layout.work / "_preamble", self.env, make=make,
                                    made_from=_hash_files(letterhead_files()))

    def compile_file(self, path: Path, source: str, workdir: Path, line_owner=None, rerun: bool = True,
                     make_format: bool = True) -> tex.CompileResult:
        """Compile ``path`` (whose text is ``source``) in ``workdir``, from the
        format of its preamble (``compile.preloaded_format``): made first when
        there is none and ``make_format``, else used only if made already."""
        fmt = self.format_for(source, make_format)
        result = tex.compile_batch(path, workdir, self.env, line_owner, rerun=rerun, fmt=fmt)
        if fmt is not None and not result.ok and not result.interrupted:
            # the letter's own error or the format's: without the format, the
            # letter's error is reported as ever, and a format at fault goes
            result = tex.compile_batch(path, workdir, self.env, line_owner, rerun=rerun)
            if result.ok:
                tex.forget_format(fmt)
        return result

    def info(self, recipient: Recipient) -> dict[str, str]:
        """A letter's PDF metadata, dated with the letter."""
        from .compose import metadata, pdf_date, pdf_title

        stamp = pdf_date(self.loaded.batch.letter.date)
        batch = self.loaded.batch
        return {**metadata(batch, pdf_title(batch, recipient), batch.languages_of(recipient)), "Creator": "letterbatch",
                "CreationDate": stamp, "ModDate": stamp}


MEDIA = ("print", "web")


def prepare(recipients_yaml: str | Path, build_dir: str | Path, medium: str = "print") -> Prepared:
    """Load and compose every valid letter, and hash what each depends on.

    ``medium`` "print" (the default) makes the letters to print and sign;
    "web" makes copies to publish: visible links, PDF/A-2b metadata.
    """
    from . import compose as composer
    from .compose import letter_block, letter_source
    from .load import load

    if medium not in MEDIA:
        raise ValueError(f"medium must be one of {', '.join(MEDIA)}, not {medium!r}")
    yaml_bytes = _read(Path(recipients_yaml))  # before it is loaded: a later edit shows as a change
    loaded = load(recipients_yaml)  # LoadError: nothing can be built
    letter = loaded.batch.letter
    layout = Layout.of(build_dir, medium, letter.date)
    tex.check_searchable(Path(build_dir), "rename the folder (or the batch file it is named after), "
                                           "or build elsewhere with -b")
    tex.check_searchable(LETTERHEAD, "install letterbatch in a folder whose path has none")
    images = {"logo": letter.sender.logo, "signature": letter.signatory.image}
    assets = {f"assets/{role}{Path(rel).suffix.lower()}": loaded.root / rel
              for role, rel in images.items() if rel}
    names = {Path(name).stem: name for name in assets}
    # A house letterhead (letter.letterhead: house.cls) goes next to the .tex,
    # where pdflatex finds it (not on TEXINPUTS: no folder of the project is
    # searched), and is part of every letter's inputs.
    house = [loaded.root / letter.letterhead] if letter.letterhead else []
    common = {
        "letterhead": _hash_files(letterhead_files() + house),
        "images": _hash_files(sorted(assets.values())),
        # by content, not the version number: a change to how letters are cut or checked
        # rebuilds them, though their .tex stays the same
        "builder": _code(),
        "tex": tex.tex_version(),
        "cutter": _cutter(),
        # what the preflight checks depends on it (no window envelope: no window check)
        "envelope": str(getattr(letter, "envelope", None) or ""),
    }
    assets.update({Path(letter.letterhead).name: house[0]} if house else {})
    # as the YAML names them (a symbolic link is followed afresh each time)
    files = sorted({os.path.abspath(f) for f in [*loaded.inputs, *assets.values()]})
    fingerprint = _fingerprint(recipients_yaml, yaml_bytes, files, medium,
                               read={os.path.abspath(name): digest for name, digest in loaded.inputs.items()})
    # build, then merge, in one command: the second stage gets the first's
    # letters, composed once (load gives the same Loaded while its files are unchanged)
    key = (id(loaded), str(Path(build_dir).resolve()), medium, json.dumps(common, sort_keys=True),
           json.dumps({name: str(path) for name, path in assets.items()}), composer.compose)
    if _last_prepared.get("key") == key and _last_prepared["prepared"].loaded is loaded:
        return _last_prepared["prepared"]
    sources, memo = [], loaded.memo
    shared = _shared_composition(loaded.batch, medium, names)
    composed_before = _composed_before(layout) if shared is not None else {}
    shared_words = _shared_words(loaded.batch)
    for recipient in loaded.batch.recipients:
        composed_from = sha256_bytes(shared + recipient.model_dump_json().encode()) if shared is not None else ""
        block, source = None, composed_before.get((recipient.id, composed_from))
        if source is None:  # (else composed when it is compiled: ``Prepared.block``)
            block = letter_block(loaded.batch, recipient, assets=names, memo=memo)
            source = sha256_bytes(letter_source(loaded.batch, recipient, block, medium=medium, memo=memo).encode())
        sources.append(Source(recipient, block, _with_key({"source": source, **common}), composed_from,
                              words_of(shared_words, recipient)))
    env = tex.tex_environment([LETTERHEAD], epoch(letter.date))
    text_files = {Path(recipients_yaml).name: sha256_bytes(yaml_bytes),
                  **{Path(name).name: digest or "" for name, digest in loaded.inputs.items()}}
    prepared = Prepared(loaded, layout, sources, assets, env, medium, files, fingerprint=fingerprint,
                        text_files=text_files, images=names)
    _last_prepared.update(key=key, prepared=prepared)
    return prepared


_last_prepared: dict = {}


def _with_key(inputs: dict[str, str]) -> dict[str, str]:
    """A letter's inputs, with "key": the hash of them all."""
    return {**inputs, "key": sha256_bytes(json.dumps(inputs, sort_keys=True).encode())}


def _shared_words(batch) -> bytes:
    """The shared letter and its references as the batch gives them (``words_of``)."""
    return json.dumps(batch.model_dump(mode="json", exclude={"recipients"}, exclude_defaults=True),
                      sort_keys=True, ensure_ascii=False).encode()


def words_of(shared_words: bytes, recipient) -> str:
    """A hash of what a letter says: the values of the batch it is made of, as given (a
    field left at its default is left out, so a field a newer letterbatch adds changes
    nothing), without the findings accepted for it and its e-mail address, which print
    nowhere (the address is matched on its own), and its id, which names its PDF and prints
    nowhere either (an id tidied in a copy of the project mailed the same letter again; in one
    folder a renamed id is held by its address). Unlike its PDF's bytes, the same
    across builds by another letterbatch (a builder changed in an update, a newer TeX): a
    letter built again after an update and sent from a folder without the send log of
    the first was mailed a second time, as another letter."""
    own = recipient.model_dump_json(exclude_defaults=True, exclude={"accept", "email", "id"}).encode()
    return sha256_bytes(shared_words + b"\0" + own)


def _shared_composition(batch, medium: str, images: dict[str, str]) -> bytes | None:
    """What every letter's LaTeX is composed from besides its recipient: the
    shared letter and references, whether any letter of the batch is in Welsh
    (every document then loads Welsh), the medium, the images' names, and the
    code and libraries that compose it and the TeX whose characters it knows.
    None when ``compose`` is not the builder's own (a test's, which its name
    does not tell apart from another): every letter is then composed."""
    if _composer() != f"{__package__}.compose.compose":
        return None
    return json.dumps([batch.model_dump(mode="json", exclude={"recipients"}), batch.any_welsh, medium,
                       sorted(images.items()), _code(), _composer(), _libraries(), tex.tex_version()]).encode()


def _composed_before(layout: Layout) -> dict[tuple[str, str], str]:
    """The hash of each letter's LaTeX as the last build (or merge) of this
    folder recorded it, by (recipient id, what it was composed from): a letter
    composed from the same is the same LaTeX, so editing one recipient of
    10,000 composes one letter. The record is the manifest's, whose shape is
    checked as it is read (``Manifest.read``); a hash is taken only where the
    letter's own record was built from that LaTeX too (a letter never built,
    or a record edited by hand, is composed)."""
    manifest = Manifest.read(layout.root)
    record, letters = manifest.batch or {}, manifest.letters
    composed = record.get("composed") or {}
    return {(rid, composed[rid]): source for rid, source, *_ in record.get("letters", ())
            if rid in composed and ((letters.get(rid) or {}).get("inputs") or {}).get("source") == source}


def _first_problem(problem) -> str:
    """Where and what, for status and check: "recipients.yaml:84:9: field 'ps': must not
    be empty" (it said "must not be empty" and a line, and not which field)."""
    field = problem.field if problem.row is None or not problem.header else ""  # (a cell names its column)
    return f"{problem.place(Path(problem.file).name)}: " + (f"field {field!r}: " if field else "") + problem.message


@dataclass
class Recorded:
    """A batch as its last build recorded it (the manifest's "batch"), standing
    in for ``prepare`` while every file it was made from is byte for byte the
    same (``fingerprint``): its letters' inputs keys are then the current ones,
    so the readiness rule needs no loading or composing. Whatever needs the
    letters themselves (compiling, the cover sheet) calls ``prepare``."""

    layout: Layout
    medium: str
    batch_name: str
    sources: list
    rejected: list[tuple[str, str, str]]
    warnings: list[str]
    fingerprint: str = ""
    text_from: str = ""
    emails: dict | None = None  # each recipient's address, by id (from a build since they were kept)

    def __post_init__(self) -> None:
        self._by_id = {s.recipient.id: s for s in self.sources}

    def source(self, recipient_id: str):
        return self._by_id.get(recipient_id)


def recorded(recipients_yaml: str | Path, build_dir: str | Path, medium: str = "print") -> Recorded | None:
    """The batch as recorded, if its files are unchanged since; else None."""
    if medium != "print":  # web copies have HTML pages beside them, written from the batch
        return None
    layout = Layout.of(build_dir, medium)
    record = Manifest.read(layout.root).batch
    if not record or record.get("medium") != medium:
        return None
    try:
        yaml_bytes = _read(Path(recipients_yaml))
        if _fingerprint(recipients_yaml, yaml_bytes, list(record["files"]), medium) != record["fingerprint"]:
            return None
        common = dict(record["common"])
        sources = [SimpleNamespace(recipient=SimpleNamespace(id=rid, accept=accept), key=key,
                                   inputs={**common, "source": source, "key": key})
                   for rid, source, key, accept in record["letters"]]
        rejected = [tuple(r) for r in record["rejected"]]
        emails = record.get("emails")
        return Recorded(layout, medium, str(record["name"]), sources, rejected, list(record["warnings"]),
                        record["fingerprint"], str(record["text_from"]), emails if isinstance(emails, dict) else None)
    except (OSError, KeyError, TypeError, ValueError):
        return None


def addresses(recipients_yaml: str | Path, build_dir: str | Path) -> dict[str, str]:
    """Each recipient's e-mail address, by id: from the record while the batch is unchanged
    since its build (loading it costs status a third of a second), else from the batch."""
    found = recorded(recipients_yaml, build_dir)
    if found is not None and found.emails is not None:
        return found.emails
    return {s.recipient.id: s.recipient.email for s in prepare(recipients_yaml, build_dir).sources}


def _read(path: Path) -> bytes:
    try:  # a device (/dev/zero) or a named pipe is never read: load says what it is
        return path.read_bytes() if path.is_file() else b""
    except OSError:
        return b""  # load says what is wrong with it


def _fingerprint(recipients_yaml: str | Path, yaml_bytes: bytes, files: list[str], medium: str,
                 read: dict[str, str] | None = None) -> str:
    """A hash of everything a batch's letters are made from: the YAML (where it
    is, and its bytes), the other files it reads (a spreadsheet, images, a house
    letterhead), the letterhead class, this builder's code, the libraries it
    uses, the TeX version and the compose in use. OSError if a file is gone.
    ``read``: the SHA-256 of files already read (a spreadsheet, by ``load``),
    by name: their bytes as read, not as they are now (a file saved again
    meanwhile is then seen as changed, never taken as read)."""
    digest = hashlib.sha256()
    for part in (str(Path(recipients_yaml).resolve()), medium, _code(), _hash_files(letterhead_files()),
                 tex.tex_version(), _composer(), _libraries()):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(yaml_bytes).digest())
    for name in files:
        if (read or {}).get(name):
            digest.update(name.encode() + b"\0" + bytes.fromhex(read[name]))
            continue
        if not Path(name).is_file():  # gone, or a named pipe (reading it would never end)
            raise FileNotFoundError(name)
        digest.update(name.encode() + b"\0" + hashlib.sha256(Path(name).read_bytes()).digest())
    return digest.hexdigest()


@cache
def _code() -> str:
    """This builder's own code, by content."""
    return _hash_files(sorted(Path(__file__).resolve().parent.glob("*.py")))


@cache
def _cutter() -> str:
    """The version of pikepdf, which cuts each letter out of its batch and writes
    its file (with the qpdf its wheel carries): another may write other bytes from
    the same pages. Read from its files, without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("pikepdf")
    version = Path(spec.origin).with_name("_version.py") if spec and spec.origin else None
    return _hash_files([version]) if version and version.is_file() else "-"


# The libraries that turn the batch into letters: an upgrade (or another copy
# first on the path) may change a letter without changing a file of the batch.
LIBRARIES = ("pylatex", "markdown_it", "pydantic", "pydantic_core", "yaml", "openpyxl", "xlfmt", "pikepdf")


def _libraries() -> str:
    """Where each library is and which files it is (an upgrade writes new
    ones), without importing any of them."""
    import importlib.util

    found = []
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec and spec.origin else ""
        info = os.stat(origin) if origin else None
        found.append(f"{name}={origin}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}" if info else f"{name}=-")
    return ";".join(found)


def _composer() -> str:
    """The compose function in use (a test may put its own in place)."""
    module = sys.modules.get(f"{__package__}.compose")
    function = getattr(module, "compose", None)
    return f"{function.__module__}.{function.__qualname__}" if function else f"{__package__}.compose.compose"


def build(recipients_yaml: str | Path, build_dir: str | Path = "build", *, jobs: int | None = None,
          only: list[str] | None = None, force: bool = False, medium: str = "print",
          progress=None) -> Report:
    """Build every letter of ``recipients_yaml`` (or just ``only``) into ``build_dir``.

    A letter is compiled unless it is ready or only its preflight failed (the
    readiness rule, ``ready.letter_states``): a changed or missing PDF is
    rebuilt, a failed one tried again. Every letter's stored preflight comes
    back in the report, so errors are reported on every build, not once.
    ``progress(outcome, done, total)`` is called as each letter is finished.
    """
    quick = None if force else recorded(recipients_yaml, build_dir, medium)
    if quick is not None:
        report = _nothing_to_do(quick, only)
        if report is not None:
            return report
    prepared = prepare(recipients_yaml, build_dir, medium)
    loaded, layout = prepared.loaded, prepared.layout
    valid_ids = {r.id for r in loaded.batch.recipients}
    layout.root.mkdir(parents=True, exist_ok=True)
    with lock(layout), ExitStack() as recording:  # (``again`` below)
        manifest = Manifest.read(layout.root)
        for folder in layout.written_by_build:  # left by a build killed while it wrote
            clear_stale_temporaries(folder)
        outcomes = []
        invalid_ids = set()
        for index, problems in sorted(loaded.rejected.items()):
            label = problems[0].recipient or f"recipients[{index}]"
            outcomes.append(Outcome(label, "invalid", message="\n".join(str(p) for p in problems)))
            # an invalid recipient's letter of before stays, on the record: every task reads it
            # as invalid, not ready, and the entry back as it was makes it ready again with no
            # build. It was deleted, and bad input is to lose nothing: a failed rebuild never
            # deletes a good output (the letter an office may have posted). Its LaTeX goes
            # (unless another, valid recipient has the same id; `build --only` removes nothing)
            if label not in valid_ids:
                invalid_ids.add(label)
        if not only:
            _drop_invalid_tex(layout, invalid_ids)
        removed, kept_signed = ([], []) if only else _forget_removed(layout, manifest, valid_ids | invalid_ids)
        todo = prepared.sources
        if only:
            # an invalid recipient is known: its outcome says why it was not built
            unknown = ready.no_such_ids(only, [s.recipient.id for s in prepared.sources]
                                        + [label for label, _, _ in prepared.rejected])
            if unknown:
                raise ValueError(unknown)
            todo = [s for s in todo if s.recipient.id in only]
        prepared.write_assets()
        states = {s.recipient: s for s in ready.letter_states(prepared, manifest, only=[s.recipient.id for s in todo])}
        stale = []
        for source in todo:
            rid = source.recipient.id
            state = states[rid]
            if not force and state.state in (ready.READY, ready.PREFLIGHT):
                outcomes.append(Outcome(rid, "up to date", layout.pdf(rid), findings=state.findings,
                                        accepted=state.accepted, pages=manifest.letters[rid].get("pages", 0)))
            else:
                stale.append(source)
        compiler = _Compiler(prepared, manifest)
        workers = max(1, jobs or cores())
        finished, stopped, failure = 0, False, None

        def collect(found: list[Outcome]) -> None:
            nonlocal finished
            for outcome in found:
                outcome.accepted = sorted(ready.accepted_codes(prepared, manifest, outcome.recipient))
                outcomes.append(outcome)
                finished += 1
                if progress:
                    progress(outcome, finished, len(stale))

        # from the moment every run is done or being stopped until the record is written, a
        # Ctrl-C or SIGTERM is held, then stops the build (``again``): a second Ctrl-C while
        # the letters being cut were finished (or `timeout -s INT`, which signals the command
        # and its process group both) left them in place off the record, "stopped" without a
        # count, and every task called them changed by hand
        again: list[int] = []
        with ThreadPoolExecutor(workers) as pool:
            running, collected = [], set()
            try:
                # (submitted inside: a Ctrl-C as the first pdflatex started, before the try, stopped
                # the build with no word of what it had built)
                for group in _batches(stale, workers, prepared.medium):
                    running.append(pool.submit(compiler.run, group))
                # each letter's own .tex (to compile by hand), written while pdflatex runs:
                # a thousand small files take long enough to keep the workers waiting
                # by id: `source in stale` compared recipients field by field (pydantic), in a
                # loop over every letter, so it took 80 s of the build of 3000 letters
                compiled = {source.recipient.id for source in stale}
                for source in todo:
                    tex_file = layout.tex / f"{source.recipient.id}.tex"
                    if source.recipient.id in compiled or not tex_file.exists():
                        write_atomic(tex_file, prepared.tex(source).encode())
                for future in as_completed(running):
                    collected.add(future)
                    collect(future.result())
                again = recording.enter_context(_interrupts_held())
            except (KeyboardInterrupt, RuntimeError, OSError) as exc:
                again = recording.enter_context(_interrupts_held())
                # Stopped (Ctrl-C, or SIGTERM through the tasks), or one run failed outright (its
                # cutting process killed, or the disk full): no new pdflatex run starts, letters
                # being cut are finished, and what was built goes on the record below, so the
                # next build compiles only the rest and nothing reads as changed by hand (a
                # failed run raised here left the other runs' letters in place off the record:
                # a full disk left 59 of 100 new letters that every task called "changed").
                stopped = True
                failure = None if isinstance(exc, KeyboardInterrupt) else exc
                compiler.stopping.set()
                for future in running:
                    if future not in collected and not future.cancel():
                        with suppress(Exception):  # (a letter it placed is on the record)
                            collect(future.result())
        if isinstance(failure, OSError) and not any(o.status == "built" for o in outcomes):
            raise failure  # the disk full before any letter was put in place: the record as it was
        if prepared.medium == "web":  # each web copy has an HTML page beside it
            from .html import image_url, letter_page

            logo_file = prepared.assets.get(prepared.asset_names.get("logo", ""))
            logo = image_url(logo_file) if logo_file else None
            signature_file = prepared.assets.get(prepared.asset_names.get("signature", ""))
            signature = image_url(signature_file) if signature_file else None
            # the page of each copy this run built or found up to date: a failed one keeps the
            # page of its last good copy, and one a stopped build never compiled keeps its own
            # (its page was written with the new text beside the old PDF)
            made = {o.recipient for o in outcomes if o.status in ("built", "up to date")}
            for source in todo:
                rid = source.recipient.id
                if rid in made and rid in manifest.letters:
                    page = letter_page(loaded.batch, source.recipient, logo, signature).encode()
                    write_atomic(layout.pdf(rid).with_suffix(".html"), page)
                    # on the record with its PDF: a page changed since is not the page built
                    manifest.letters[rid]["page"] = {"sha256": sha256_bytes(page)}
        if prepared.medium == "print":
            manifest.batch = prepared.record()
        else:  # the batch file alone: a folder built only for the web was taken for any batch's
            manifest.batch = {"medium": prepared.medium, "yaml": prepared.batch_file_from_build}
        manifest.write()
        _sweep_batches(layout, manifest)
        if compiler.digests:  # for the merge: kept for the letters (and cover) the record vouches for
            from .split import Digests

            # what the store remembers it checked against the record as it read it, and the
            # letters cut now are on the record with these very digests (``_place``)
            vouched = manifest.vouched_digests()
            store = Digests(layout.digests, vouched)
            store.save({sha: objects for sha, objects in {**store.remembered, **compiler.digests}.items()
                        if sha in vouched})
    stopped = stopped or bool(again)  # held while the record was written: it stops the build now
    order = {r.id: i for i, r in enumerate(loaded.batch.recipients)}
    outcomes.sort(key=lambda o: (o.status != "invalid", order.get(o.recipient, -1)))
    marked = {}
    if prepared.medium == "web":
        from .publish import cleared_on_record, to_be_cleared

        made = {o.recipient for o in outcomes if o.status in ("built", "up to date")}
        # a copy up to date that a person cleared (on the record) is not one publish leaves out
        marked = {s.recipient.id: m for s in todo if s.recipient.id in made
                  and (m := to_be_cleared(loaded.batch, s.recipient))
                  and not cleared_on_record(manifest.letters.get(s.recipient.id, {}), m)}
    prepared.forget_text()  # the letters are made: the merge needs the room
    if stopped:  # by Ctrl-C, or by a run that failed outright (``failure``)
        built = sum(o.status == "built" for o in outcomes)
        left = len(stale) - sum(o.status in ("built", "failed") for o in outcomes)
        if failure is None:
            raise BuildStopped(built=built, left=left)
        if not built:
            raise failure  # pdflatex missing, or the disk full: as ever, "Nothing was built"
        raise BuildFailed(failure, built=built, left=left)
    return Report(outcomes, loaded.warnings, removed, kept_signed, marked)


@contextmanager
def _interrupts_held():
    """Hold Ctrl-C (SIGINT) and SIGTERM while the build records what it built: each one is
    noted in the list this yields, not raised. Off the main thread signals are not ours to
    take, and nothing is held."""
    import signal

    noted: list[int] = []
    before = {}
    try:
        with suppress(ValueError):
            for signum in (signal.SIGINT, signal.SIGTERM):
                before[signum] = signal.signal(signum, lambda signum, frame: noted.append(signum))
        yield noted
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


class BuildStopped(KeyboardInterrupt):
    """The build was stopped (Ctrl-C) after recording what it had built:
    ``built`` letters built and recorded, ``left`` still to build."""

    def __init__(self, built: int, left: int) -> None:
        super().__init__(f"{built} built, {left} left")
        self.built, self.left = built, left


class BuildFailed(RuntimeError):
    """A pdflatex run's letters could not be made (its cutting process killed) after the
    other runs' letters were recorded: ``built`` letters built and recorded, ``left`` not
    built. Its text is the failure's; ``failure`` is the error itself (an OSError: the disk
    filled as a run placed its letters)."""

    def __init__(self, failure: Exception, built: int, left: int) -> None:
        super().__init__(str(failure))
        self.built, self.left, self.failure = built, left, failure


def _forget_removed(layout: Layout, manifest: Manifest, in_batch: set[str]) -> tuple[list[str], list[Path]]:
    """Recipients the record knows that the batch no longer has (removed, or
    renamed) leave no letter that looks current: a print folder to post from
    or a web folder to publish holds this batch's letters only. Their letter,
    web page and .tex are deleted (a build makes them again if they come
    back) and they leave the manifest; a signed copy, which only ``sign``
    can make again, is kept and named. ``in_batch``: the ids the batch has, an invalid
    recipient's too (its letter stays: ``build``). Returns the ids and the signed copies kept."""
    gone = set(manifest.letters) - in_batch
    for rid in [rid for rid in gone if signed_only(manifest.letters[rid])]:
        if not layout.signed_pdf(rid).exists():  # the signed copy deleted too: nothing to remember
            manifest.letters.pop(rid)
    removed = sorted(rid for rid in gone if rid in manifest.letters and not signed_only(manifest.letters[rid]))
    kept_signed = []
    for rid in removed:
        entry = manifest.letters[rid]
        _drop_letter(layout, manifest, rid)
        recorded_file = entry.get("file") if isinstance(entry, dict) else None
        earlier = layout.earlier_web_copy(rid, recorded_file)
        if earlier is not None:
            _unlink_letter(earlier)  # a web copy named by an earlier date
        if layout.signed_pdf(rid).is_file():
            kept_signed.append(layout.signed_pdf(rid))
    _sweep_alone(layout, manifest, in_batch)
    return removed, kept_signed


def _sweep_alone(layout: Layout, manifest: Manifest, in_batch: set[str]) -> None:
    """A letter compiled alone (a web copy, or one whose batch failed) compiles in
    ``work/<id>/``: once its recipient has left the batch (removed, renamed),
    that folder goes, as its letter and .tex do; before, they stayed for ever. Only a
    folder named as a recipient id is (never ``_batch-``, ``_cover``, ``_preamble``),
    and none that a record still names (its "log")."""
    from .schema import RECIPIENT_ID

    if not layout.work.is_dir():
        return
    named = _logged_folders(manifest)
    for folder in layout.work.iterdir():
        if folder.name in in_batch or folder.name in named or not re.fullmatch(RECIPIENT_ID, folder.name):
            continue
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


def _forget_letter(manifest: Manifest, rid: str) -> None:
    """A letter off the record (its recipient invalid, or removed), but for what its
    signed copy was made from ("signed"): only ``sign`` makes that copy, which is kept,
    and a letter that comes back as the same bytes is still the letter it signs
    (``_place`` keeps the record, and ``ready.signed_copy_note`` judges it as ever)."""
    entry = manifest.letters.pop(rid, None)
    signed = entry.get("signed") if isinstance(entry, dict) else None
    if signed:
        manifest.letters[rid] = {"signed": signed}


def signed_only(entry: dict) -> bool:
    """A record that holds no letter, only its signed copy's (``_forget_letter``)."""
    return set(entry) == {"signed"}


def _first_letter_line(text: str) -> int:
    """The line of a document's LaTeX where its first letter begins (0: none)."""
    begin = text.find("\\begin{letter}")
    return text.count("\n", 0, begin) + 1 if begin >= 0 else 0


def _before_the_letters(error: tex.TexError, document: str, first_letter_line: int) -> bool:
    """Did ``error`` stop the document named ``document`` before its first letter began (at
    ``first_letter_line``): in its preamble, or in a class it loads? Then every letter
    fails with it."""
    if error.file == document:
        return 0 < error.line < first_letter_line
    # a package is read only in the preamble: one the class loads that fails as it loads
    # (fontspec under pdflatex) was halved down to every letter compiled alone
    return error.file.endswith((".cls", ".sty"))


def batch_name(ids: list[str]) -> str:
    """The name of one pdflatex run of the letters ``ids``: its first letter, its count and
    a digest of them all. By first id and count alone, a later run of other letters
    (london and south-wales after london and essex) compiled in the folder whose log the
    record still named for a letter of the earlier run (essex), which then named another
    run's log; a run of the same letters rebuilds every one of them, each record anew."""
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:8]
    return f"_batch-{ids[0]}-{len(ids)}-{digest}"


def _logged_folders(manifest: Manifest) -> set[str]:
    """The work folders a letter's record names as where its log is (``work/<name>/``)."""
    return {Path(entry["log"]).parent.name for entry in manifest.letters.values()
            if isinstance(entry.get("log"), str)}


def _sweep_batches(layout: Layout, manifest: Manifest) -> None:
    """Each pdflatex run of many letters compiles in ``work/<batch_name>/`` from
    ``tex/<batch_name>.tex``: a name no run of another set of letters uses. Those no
    letter's record names (its "log") are left from earlier builds, and go; so the
    build folder holds at most one run's log per letter, however often letters are
    edited. Only ``_batch-`` names under the build's
    own ``work/`` and ``tex/`` are touched: a failed letter's log (``work/<id>/``), the
    cover's and the letters themselves are not."""
    named = _logged_folders(manifest)
    for folder in layout.work.glob("_batch-*") if layout.work.is_dir() else ():
        if folder.name not in named and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
    for source in layout.tex.glob("_batch-*.tex") if layout.tex.is_dir() else ():
        if source.stem not in named:
            source.unlink(missing_ok=True)


def _drop_invalid_tex(layout: Layout, invalid_ids: set[str]) -> None:
    """The LaTeX of invalid recipients' letters gone (their letters stay): none to compile
    by hand, and tex/<id>.tex, where pdflatex looks first, could be read in place of a file
    of TeX's own (an id refused for that reason)."""
    from .schema import RECIPIENT_ID

    for rid in invalid_ids:
        if re.fullmatch(RECIPIENT_ID, rid):
            (layout.tex / f"{rid}.tex").unlink(missing_ok=True)


def _drop_letter(layout: Layout, manifest: Manifest, rid: str) -> None:
    """A letter off the record, its PDF (and HTML page) and its own LaTeX gone."""
    _forget_letter(manifest, rid)
    _unlink_letter(layout.pdf(rid))
    (layout.tex / f"{rid}.tex").unlink(missing_ok=True)


def _unlink_letter(pdf: Path) -> None:
    """A letter's PDF gone, and the HTML page beside it when it is a web copy."""
    pdf.unlink(missing_ok=True)
    pdf.with_suffix(".html").unlink(missing_ok=True)


def _nothing_to_do(batch: Recorded, only: list[str] | None) -> Report | None:
    """The report of a build with nothing to compile, from the record alone;
    None when some letter needs compiling (the caller then loads the batch)."""
    with lock(batch.layout):
        manifest = Manifest.read(batch.layout.root)
        seen = [entry.get("seen") for entry in manifest.letters.values()]
        ids = [s.recipient.id for s in batch.sources]
        if only:
            unknown = ready.no_such_ids(only, ids + [label for label, _, _ in batch.rejected])
            if unknown:
                raise ValueError(unknown)
        states = ready.letter_states(batch, manifest, only=only or ids)
        letters = [s for s in states if s.state != ready.INVALID]
        if any(s.state not in (ready.READY, ready.PREFLIGHT) for s in letters):
            return None
        # a letter of a recipient no longer in the batch to delete: the build that saw it go
        # was `--only`, which deletes nothing, and every build after found nothing to do and
        # left it there for good (an invalid recipient's letter stays: ``build``)
        present = set(ids) | {label for label, _, _ in batch.rejected}
        if not only and any(rid not in present and not signed_only(entry) for rid, entry in manifest.letters.items()):
            return None
        if not only:
            _drop_invalid_tex(batch.layout, {label for label, _, _ in batch.rejected} - set(ids))
        outcomes = [Outcome(label, "invalid", message=message) for label, _, message in batch.rejected]
        outcomes += [Outcome(s.recipient, "up to date", batch.layout.pdf(s.recipient), findings=s.findings,
                             accepted=s.accepted, pages=manifest.letters[s.recipient].get("pages", 0))
                     for s in letters]
        if [entry.get("seen") for entry in manifest.letters.values()] != seen:
            manifest.write()  # files read again: their stat on the record
        # a build killed while it wrote a letter its record still vouches for (`build -f`, the
        # same bytes again) leaves its temporary file: cleared here too, or it stayed for good
        for folder in batch.layout.written_by_build:
            clear_stale_temporaries(folder)
    return Report(outcomes, batch.warnings)


# At most this many letters go through one pdflatex run: enough to pay for
# pdflatex's start (~0.2 s) many times over, few enough to bisect quickly.
BATCH_SIZE = 250


def _batches(stale: list[Source], workers: int, medium: str) -> list[list[Source]]:
    """Stale letters in groups, one pdflatex run each, at least one per worker.
    Web copies carry per-document PDF/A metadata, so each is compiled alone."""
    if medium == "web":
        return [[source] for source in stale]
    if not stale:
        return []
    count = max(min(workers, len(stale)), math.ceil(len(stale) / BATCH_SIZE))
    size = math.ceil(len(stale) / count)
    return [stale[i:i + size] for i in range(0, len(stale), size)]


class _Compiler:
    """Compiles groups of letters: one pdflatex run per group, split per letter;
    a group that fails is halved until the letter at fault stands alone."""

    def __init__(self, prepared: Prepared, manifest: Manifest):
        self.prepared, self.manifest = prepared, manifest
        self.layout = prepared.layout
        # set when the build is stopped (Ctrl-C): no pdflatex run starts after it, and a run it
        # cut short is nobody's fault, so the letters it held keep their records as they were
        self.stopping = threading.Event()
        known = [entry["pages"] for entry in manifest.letters.values() if entry.get("pages")]
        # the usual length of this batch's letters; 2 before anything is known
        self.typical_pages = max(set(known), key=known.count) if known else 2
        # the digests of the fonts and forms of the letters cut, by file (``split.Digests``)
        self.digests: dict[str, dict[str, str]] = {}

    def run(self, sources: list[Source], hints: dict[str, int] | None = None,
            bisecting: bool = False) -> list[Outcome]:
        """Compile ``sources`` in one pdflatex run. "Page n of m" needs each
        letter's page count before it is known: ``hints`` gives it (from the last
        build, or a guess); letters whose count turns out different are compiled
        again, with the right count, rather than running the whole group twice."""
        # A letter alone goes through the same one-pass route as a batch (its
        # page count from the last build): a single edit costs one pdflatex
        # pass. Only a letter whose batch failed, or a web copy (PDF/A
        # metadata of its own), is compiled from its own .tex.
        if self.stopping.is_set():
            return []
        if len(sources) == 1 and (bisecting or self.prepared.medium == "web"):
            return self._alone(sources[0])
        retry = hints is not None  # the counts are the ones the last run found
        if hints is None:
            hints = {s.recipient.id: self.manifest.letters.get(s.recipient.id, {}).get("pages")
                     or self.typical_pages for s in sources}
        from .compose import batch_source

        name = batch_name([s.recipient.id for s in sources])
        text = batch_source([self.prepared.block(s) for s in sources], hints, self.prepared.loaded.batch)
        path = self.layout.tex / f"{name}.tex"
        write_atomic(path, text.encode())
        starts, at, line = [], 0, 1  # the line each letter starts on, found in one pass
        for s in sources:
            begin = text.index("\\begin{letter}{%s}" % s.recipient.id, at)
            line += text.count("\n", at, begin)
            at = begin
            starts.append((line, s.recipient.id))

        def owner(line: int) -> str | None:
            return next((rid for first, rid in reversed(starts) if first <= line), None)

        # from the format of the preamble if a merge has made it (its cover sheet is compiled
        # from it, on the other core while the letters are put together): not made here, where
        # making it would cost a cold build more than it saves (a batch loads the class once)
        result = self.prepared.compile_file(path, text, self.layout.work / name, owner, rerun=False,
                                            make_format=False)
        if result.interrupted or (not result.ok and self.stopping.is_set()):
            return []
        if not result.ok or set(result.letters) != {s.recipient.id for s in sources}:
            if len(sources) == 1:
                return self._alone(sources[0])  # its error at its own file and line
            if result.errors and _before_the_letters(result.errors[0], path.name, starts[0][0]):
                # the class (a house class that does not load) fails before any letter: each would
                # fail with it alone, and halving compiled every letter alone to learn so (120: 45 s)
                first = self._alone(sources[0])
                if first and first[0].status == "failed":
                    return first + [self._failed(s, first[0].message, result.log) for s in sources[1:]]
                return first + self.run(sources[1:], bisecting=True)
            half = len(sources) // 2
            return self.run(sources[:half], bisecting=True) + self.run(sources[half:], bisecting=True)
        placed = result.letters
        good = [s for s in sources if placed[s.recipient.id].pages == hints[s.recipient.id]]
        again = [s for s in sources if placed[s.recipient.id].pages != hints[s.recipient.id]]
        outcomes = self._place(good, result, result.seconds / len(sources))
        if again and retry:  # a count that moves with the count given: TeX's own reruns settle it
            for source in again:
                outcomes += self._alone(source)
        elif again:
            outcomes += self.run(again, {s.recipient.id: placed[s.recipient.id].pages for s in again})
        return outcomes

    def _alone(self, source: Source) -> list[Outcome]:
        """The letter compiled from its own .tex: its outcome, or none when the build was stopped."""
        rid = source.recipient.id
        if self.stopping.is_set():
            return []
        text = self.prepared.tex(source)
        result = self.prepared.compile(rid, text)
        if result.interrupted or (not result.ok and self.stopping.is_set()):
            return []
        if not result.ok:
            message, error = result.first_error, (result.errors or [None])[0]
            if error is not None and _before_the_letters(error, f"{rid}.tex", _first_letter_line(text)):
                # not at a line of the letter: "essex.tex:4: File ended while scanning use of
                # \renew@command" sent a person to look for a fault in line 4 of every letter
                house = self.prepared.loaded.batch.letter.letterhead or "letterbatch.cls"
                near = f" (near: {error.context.strip()})" if error.context.strip() else ""
                where = f"{error.file}:{error.line}: " if error.file.endswith(".sty") else ""  # what it loads
                message = (f"{message}; every letter fails with it" if error.file.endswith(".cls") else
                           f"the letterhead class ({house}), or what it loads, stops every letter before its "
                           f"text: {where}{error.message}{near}; fix the class")
            for name, original in self.prepared.assets.items():  # the user's image, by its own name
                shown = original.relative_to(self.prepared.loaded.root) if original.is_relative_to(
                    self.prepared.loaded.root) else None
                if shown is not None and str(shown) != name:  # (house.cls is copied as house.cls)
                    message = message.replace(name, f"{name} (from {shown})")
            return [self._failed(source, message, result.log, result.seconds)]
        return self._place([source], result, result.seconds)

    def _failed(self, source: Source, message: str, log: Path, seconds: float = 0.0) -> Outcome:
        """A letter that could not be compiled, on the record with why. The last good PDF stays
        where it is, but is marked failed: no task uses it until a build succeeds."""
        entry = self.manifest.letters.setdefault(source.recipient.id, {})
        entry.update({"failed": message, "failed_inputs": source.key, "log": self.layout.relative(log)})
        return Outcome(source.recipient.id, "failed", message=message, seconds=seconds)

    def _place(self, sources: list[Source], result: tex.CompileResult, seconds: float) -> list[Outcome]:
        """Cut each letter out of the compiled PDF into ``letters/<id>.pdf``,
        preflight it, and record it. Every letter, compiled alone or with
        others, goes the same way, so its bytes depend on its own text only."""
        from . import check, split as split_pdf  # pikepdf: loaded only when letters are placed
        from .compose import pdf_lang, recipient_label

        def page_problems():  # fonts and page sizes: once per compiled PDF, not once per letter
            return check.page_problems(result.pdf, result.layout.get("paper"))

        placed = result.letters
        written: dict[str, dict[str, str]] = {}  # what the cutting wrote, by each file's SHA-256, in cut order
        if self.prepared.medium == "web":  # compiled alone; pdfTeX's file keeps its PDF/A metadata
            pages = page_problems()
            self.layout.pdf(sources[0].recipient.id).parent.mkdir(parents=True, exist_ok=True)
            os.replace(result.pdf, self.layout.pdf(sources[0].recipient.id))
        else:
            cuts = [split_pdf.Cut(s.recipient.id, placed[s.recipient.id].start, placed[s.recipient.id].pages,
                                  self.layout.pdf(s.recipient.id), self.prepared.info(s.recipient),
                                  pdf_lang(self.prepared.loaded.batch, s.recipient)) for s in sources]
            if len(cuts) >= split_pdf.APART_FROM:
                cutting = split_pdf.Cutting(result.pdf, cuts)  # in a process of its own, while
                try:
                    pages = page_problems()  # this one reads the PDF too
                finally:  # no child left writing letters behind a failure
                    written = cutting.result()
            else:
                pages = page_problems()
                written = split_pdf.split(result.pdf, cuts)
            self.digests.update(written)
            # its letters are cut and preflighted: nothing reads the compiled PDF again (its
            # .log, which the record names, and .aux stay), so a build folder does not keep
            # a second copy of every letter
            result.pdf.unlink(missing_ok=True)
        # each letter's bytes as cut (split writes them, and lists their hashes, in cut order)
        built = dict(zip([s.recipient.id for s in sources], written)) if len(written) == len(sources) else {}
        outcomes = []
        for source in sources:
            rid, where = source.recipient.id, placed[source.recipient.id]
            pdf = self.layout.pdf(rid)
            findings = check.preflight(source.recipient, where, pages[where.start:where.start + where.pages],
                                       self.prepared.loaded.batch, self.prepared.loaded.columns.get(rid))
            was = self.manifest.letters.get(rid) or {}  # the letter's record before this build
            # a web copy named by another date (letter.date changed) is not left beside it to publish
            before = self.layout.earlier_web_copy(rid, was.get("file"))
            if before is not None and before != pdf:
                _unlink_letter(before)
            self.manifest.letters[rid] = {
                "recipient": recipient_label(source.recipient),
                "file": self.layout.relative(pdf), "pages": where.pages, "sha256": "",
                "inputs": source.inputs, "words": source.words, "log": self.layout.relative(result.log),
                "findings": [f.to_dict() for f in findings], "signature": where.signature,
                # the envelope window (PDF points from the top left; None: no window)
                "window": result.window,
            }
            entry = self.manifest.letters[rid]
            # written over since it was cut (another program, a sync), the file is found changed and
            # the next build makes it again
            entry["sha256"] = recorded_as_made(pdf, entry, built.get(rid))
            if entry["sha256"] in self.digests:  # its fonts' and forms' digests are its own (``split.Digests``)
                entry["objects"] = split_pdf.vouch(self.digests[entry["sha256"]])
            # what its signed copy was made from stays on the record: status tells an older one
            if was.get("signed"):
                entry["signed"] = was["signed"]
            # and a web copy's clearance for publication (publish --cleared), only for the same
            # bytes: the copy a person cleared (build -f, a new builder), not new words
            if was.get("cleared") and entry["sha256"] == was.get("sha256"):
                entry["cleared"] = was["cleared"]
            languages = len(self.prepared.loaded.batch.languages_of(source.recipient))
            if languages > 1:  # a bilingual letter is each language's letter in turn: check's "pages" knows it
                entry["languages"] = languages
            outcomes.append(Outcome(rid, "built", pdf, seconds=seconds,
                                    findings=self.manifest.letters[rid]["findings"], pages=where.pages))
        return outcomes


class FolderBusy(RuntimeError):
    """Another build, merge, sign, send or publish holds the build folder (``lock``)."""


@contextmanager
def lock(layout: Layout):
    """One task that writes in a build folder at a time; a second one is refused."""
    layout.root.mkdir(parents=True, exist_ok=True)
    try:
        handle = open(layout.root / ".lock", "w")
    except OSError as exc:  # the folder, by its name: messages named the hidden lock file (.lock)
        raise OSError(exc.errno, exc.strerror, str(layout.root)) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"another build, merge, sign, send or publish is running in {layout.root} (or the pdflatex of one "
                               "that was stopped is still finishing); wait for it to finish") from None
        held_locks.add(handle.fileno())  # and the programs it starts hold it too
        try:
            yield
        finally:
            held_locks.discard(handle.fileno())


def folder_busy(layout: Layout) -> bool:
    """Whether a build, merge or send holds ``layout``'s folder now (``lock``, or a pdflatex
    of one killed outright): what it has not recorded yet reads as stale or changed until it
    ends. Asked with a shared lock, released at once: a build starting in those microseconds
    is the only one it could turn away."""
    try:
        handle = os.open(layout.root / ".lock", os.O_RDONLY)
    except OSError:  # no build ever ran here
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks: nothing can be told
        return False
    finally:
        os.close(handle)
    return False


# What TeX reads from the letterhead folder: only these decide whether letters
# are stale (an editor's swap file or a backup copy does not).
TEX_READS = {".cls", ".sty", ".tex", ".def", ".cfg", ".fd", ".map", ".enc", ".pfb", ".tfm",
             ".pdf", ".png", ".jpg", ".jpeg"}


def letterhead_files() -> list[Path]:
    return sorted(p for p in LETTERHEAD.rglob("*") if p.is_file() and p.suffix.lower() in TEX_READS
                  and not p.name.startswith("."))


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def status(recipients_yaml: str | Path, build_dir: str | Path = "build",
           medium: str = "print") -> list[ready.LetterState]:
    """Every recipient's state, and why (``ready.letter_states``)."""
    return batch_status(recipients_yaml, build_dir, medium).letters


@dataclass
class BatchStatus:
    letters: list[ready.LetterState]
    manifest: Manifest  # the record they were judged by (the send log's notes read it too)
    bundle: ready.BundleState | None = None  # print letters only: web copies have no bundle
    signed_bundle: str | None = None  # what is wrong with the signed bundle (ready.signed_bundle_note)
    bundle_name: str = "bundle.pdf"  # the bundle on the record (merge --output), as messages name it
    stray_bundle: str | None = None  # a bundle.pdf the record does not vouch for (ready.stray_bundle_note)
    signed_letters: dict[str, str] = field(default_factory=dict)  # what is wrong with a letter's signed copy
    # web copies ready and marked more than OFFICIAL: id -> (its marking, a person's clearance
    # for it on the record, as publish reads it)
    clearances: dict[str, tuple[str, bool]] = field(default_factory=dict)


def batch_status(recipients_yaml: str | Path, build_dir: str | Path = "build",
                 medium: str = "print") -> BatchStatus:
    """Every recipient's state and, for print letters, the bundle's and its
    signed copy's, all by the one readiness rule and from one reading of the
    manifest."""
    prepared = recorded(recipients_yaml, build_dir, medium) or prepare(recipients_yaml, build_dir, medium)
    layout = prepared.layout
    manifest = Manifest.read(layout.root)
    letters = ready.letter_states(prepared, manifest)
    if medium != "print":
        from .publish import cleared_on_record, to_be_cleared

        recipients = {s.recipient.id: s.recipient for s in prepared.sources}
        marked = {s.recipient: to_be_cleared(prepared.loaded.batch, recipients[s.recipient])
                  for s in letters if s.ready and s.recipient in recipients}
        return BatchStatus(letters, manifest, clearances={
            rid: (mark, cleared_on_record(manifest.letters.get(rid, {}), mark)) for rid, mark in marked.items() if mark})
    signed = {} if not layout.signed.exists() else {  # nothing signed: no stat per letter
        s.recipient: ready.signed_copy_note(layout, manifest, s.recipient, s.state == ready.INVALID) for s in letters}
    if signed:
        # a letter added (or rebuilt) after the others were signed: send mails it unsigned,
        # saying "(not signed)" only as it goes, and status called it ready with no word
        have = sum(layout.signed_pdf(s.recipient).is_file() for s in letters)
        signs = ready.sign_command(manifest)
        for s in letters:
            if s.ready and not signed.get(s.recipient) and have and not layout.signed_pdf(s.recipient).exists():
                signed[s.recipient] = ready.SignedNote(
                    f"not signed, while {have} letter{' of this batch is' if have == 1 else 's of this batch are'}: "
                    f"{signs} signs it (send mails it unsigned)")
    return BatchStatus(letters, manifest, ready.bundle_state(prepared, manifest, letters),
                       ready.signed_bundle_note(layout, manifest), (manifest.bundle or {}).get("file", "bundle.pdf"),
                       ready.stray_bundle_note(layout, manifest),
                       {rid: note for rid, note in signed.items() if note})


def epoch(date: dt.date) -> int:
    """Noon UTC of the letter's date: the PDFs' creation time, so builds repeat."""
    return int(dt.datetime(date.year, date.month, date.day, 12, tzinfo=dt.timezone.utc).timestamp())
