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
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, compile as tex
from .compose import (batch_source, letter_block, letter_source, metadata, pdf_date, pdf_lang, pdf_title,
                      recipient_label)
from .files import write_atomic
from .load import Loaded, Problem, load
from .manifest import Manifest, sha256_bytes, sha256_file
from .schema import RECIPIENT_ID, Recipient

LETTERHEAD = Path(__file__).resolve().parent / "letterhead"  # package data: ships with the wheel


@dataclass
class Layout:
    """Where a build puts things (all under one folder, ``build/`` by default;
    web copies under ``build/web/``, named ``<date>-<id>.pdf``)."""

    root: Path
    prefix: str = ""

    @classmethod
    def of(cls, build_dir: str | Path, medium: str = "print", date: dt.date | None = None) -> "Layout":
        if medium == "web":
            return cls(Path(build_dir) / "web", f"{date.isoformat()}-" if date else "")
        return cls(Path(build_dir))

    @property
    def tex(self) -> Path:
        return self.root / "tex"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def pdf(self, recipient_id: str) -> Path:
        return self.root / f"{self.prefix}{recipient_id}.pdf"


@dataclass
class Outcome:
    recipient: str
    status: str  # "built", "up to date", "failed", "invalid"
    pdf: Path | None = None
    message: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Report:
    outcomes: list[Outcome]
    warnings: list[Problem]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "invalid")]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Source:
    """One letter, composed: what to compile and the hashes of all it depends on."""

    recipient: Recipient
    block: str  # the letter environment, for a document of many letters
    tex: str  # the complete document of this letter alone
    inputs: dict[str, str]  # what the PDF depends on, by name; "key" hashes them all

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

    @property
    def asset_names(self) -> dict[str, str]:
        """"logo", "signature" -> the TeX file name."""
        return {Path(name).stem: name for name in self.assets}

    def write_assets(self) -> None:
        """Images go next to the .tex: pdflatex may only read below its folder."""
        for name, original in self.assets.items():
            write_atomic(self.layout.tex / name, original.read_bytes())

    def compile(self, name: str, source: str, pdf: Path) -> tex.CompileResult:
        """Write ``build/tex/<name>.tex`` and compile it to ``pdf``."""
        write_atomic(self.layout.tex / f"{name}.tex", source.encode())
        return tex.compile_letter(self.layout.tex / f"{name}.tex", self.layout.work / name, pdf, self.env)

    def info(self, recipient: Recipient) -> dict[str, str]:
        """A letter's PDF metadata, dated with the letter."""
        stamp = pdf_date(self.loaded.batch.letter.date)
        return {**metadata(self.loaded.batch, pdf_title(recipient)), "Creator": "letterbatch",
                "CreationDate": stamp, "ModDate": stamp}


MEDIA = ("print", "web")


def prepare(recipients_yaml: str | Path, build_dir: str | Path, medium: str = "print") -> Prepared:
    """Load and compose every valid letter, and hash what each depends on.

    ``medium`` "print" (the default) makes the letters to print and sign;
    "web" makes copies to publish: visible links, PDF/A-2b metadata.
    """
    if medium not in MEDIA:
        raise ValueError(f"medium must be one of {', '.join(MEDIA)}, not {medium!r}")
    loaded = load(recipients_yaml)  # LoadError: nothing can be built
    letter = loaded.batch.letter
    layout = Layout.of(build_dir, medium, letter.date)
    images = {"logo": letter.sender.logo, "signature": letter.signatory.image}
    assets = {f"assets/{role}{Path(rel).suffix.lower()}": loaded.root / rel
              for role, rel in images.items() if rel}
    names = {Path(name).stem: name for name in assets}
    # A house letterhead (letter.letterhead: house.cls) goes next to the .tex,
    # where pdflatex finds it (not on TEXINPUTS: no folder of the project is
    # searched), and is part of every letter's inputs.
    house = [loaded.root / letter.letterhead] if letter.letterhead else []
    common = {
        "letterhead": _hash_files(sorted(p for p in LETTERHEAD.rglob("*") if p.is_file()) + house),
        "images": _hash_files(sorted(assets.values())),
        "builder": __version__,
        "tex": tex.tex_version(),
    }
    assets.update({Path(letter.letterhead).name: house[0]} if house else {})
    sources, memo = [], loaded.memo
    for recipient in loaded.batch.recipients:
        block = letter_block(loaded.batch, recipient, assets=names, memo=memo)
        text = letter_source(loaded.batch, recipient, block, medium=medium, memo=memo)
        inputs = {"source": sha256_bytes(text.encode()), **common}
        inputs["key"] = sha256_bytes(json.dumps(inputs, sort_keys=True).encode())
        sources.append(Source(recipient, block, text, inputs))
    env = tex.tex_environment([LETTERHEAD], epoch(letter.date))
    return Prepared(loaded, layout, sources, assets, env, medium)


def build(recipients_yaml: str | Path, build_dir: str | Path = "build", *, jobs: int | None = None,
          only: list[str] | None = None, force: bool = False, medium: str = "print",
          progress=None) -> Report:
    """Build every letter of ``recipients_yaml`` (or just ``only``) into ``build_dir``.

    ``progress(outcome, done, total)`` is called as each letter is finished.
    """
    prepared = prepare(recipients_yaml, build_dir, medium)
    loaded, layout = prepared.loaded, prepared.layout
    valid_ids = {r.id for r in loaded.batch.recipients}
    layout.root.mkdir(parents=True, exist_ok=True)
    with lock(layout):
        manifest = Manifest.read(layout.root)
        outcomes = []
        for index, problems in sorted(loaded.rejected.items()):
            label = problems[0].recipient or f"recipients[{index}]"
            outcomes.append(Outcome(label, "invalid", message="\n".join(str(p) for p in problems)))
            # an invalid letter keeps no PDF that looks current (unless another,
            # valid recipient has the same id)
            if label not in valid_ids and re.fullmatch(RECIPIENT_ID, label):
                manifest.letters.pop(label, None)
                layout.pdf(label).unlink(missing_ok=True)
        todo = prepared.sources
        if only:
            unknown = sorted(set(only) - valid_ids)
            if unknown:
                raise ValueError(f"no valid recipient with id: {', '.join(unknown)}")
            todo = [s for s in todo if s.recipient.id in only]
        prepared.write_assets()
        stale = []
        for source in todo:
            rid = source.recipient.id
            if not force and manifest.key(rid) == source.key and layout.pdf(rid).exists():
                outcomes.append(Outcome(rid, "up to date", layout.pdf(rid)))
            else:
                stale.append(source)
        compiler = _Compiler(prepared, manifest)
        workers = max(1, jobs or os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            running = [pool.submit(compiler.run, group) for group in _batches(stale, workers, prepared.medium)]
            # each letter's own .tex (to compile by hand), written while pdflatex runs:
            # a thousand small files take long enough to keep the workers waiting
            for source in todo:
                write_atomic(layout.tex / f"{source.recipient.id}.tex", source.tex.encode())
            finished = 0
            for future in as_completed(running):
                for outcome in future.result():
                    outcomes.append(outcome)
                    finished += 1
                    if progress:
                        progress(outcome, finished, len(stale))
        write_atomic(manifest.path, manifest.to_json())
    order = {r.id: i for i, r in enumerate(loaded.batch.recipients)}
    outcomes.sort(key=lambda o: (o.status != "invalid", order.get(o.recipient, -1)))
    return Report(outcomes, loaded.warnings)


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
        known = [entry["pages"] for entry in manifest.letters.values() if entry.get("pages")]
        # the usual length of this batch's letters; 2 before anything is known
        self.typical_pages = max(set(known), key=known.count) if known else 2

    def run(self, sources: list[Source], hints: dict[str, int] | None = None) -> list[Outcome]:
        """Compile ``sources`` in one pdflatex run. "Page n of m" needs each
        letter's page count before it is known: ``hints`` gives it (from the last
        build, or a guess); letters whose count turns out different are compiled
        again, with the right count, rather than running the whole group twice."""
        if len(sources) == 1:
            return [self._alone(sources[0])]
        if hints is None:
            hints = {s.recipient.id: self.manifest.letters.get(s.recipient.id, {}).get("pages")
                     or self.typical_pages for s in sources}
        name = f"_batch-{sources[0].recipient.id}-{len(sources)}"
        text = batch_source([s.block for s in sources], hints, self.prepared.loaded.batch)
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

        result = tex.compile_batch(path, self.layout.work / name, self.prepared.env, owner, rerun=False)
        if not result.ok or set(result.letters) != {s.recipient.id for s in sources}:
            half = len(sources) // 2
            return self.run(sources[:half]) + self.run(sources[half:])
        placed = result.letters
        good = [s for s in sources if placed[s.recipient.id].pages == hints[s.recipient.id]]
        again = [s for s in sources if s not in good]
        from . import split as split_pdf  # pikepdf: loaded only when a batch is cut
        split_pdf.split(result.pdf, [
            split_pdf.Cut(s.recipient.id, placed[s.recipient.id].start, placed[s.recipient.id].pages,
                          self.layout.pdf(s.recipient.id), self.prepared.info(s.recipient),
                          pdf_lang(self.prepared.loaded.batch, s.recipient)) for s in good])
        each = result.seconds / len(sources)
        batch = {"file": str(result.pdf.relative_to(self.layout.root)), "sha256": sha256_file(result.pdf)}
        outcomes = [self._record(s, result, placed[s.recipient.id], self.layout.pdf(s.recipient.id), each,
                                 batch={**batch, "start": placed[s.recipient.id].start})
                    for s in good]
        if again:
            outcomes += self.run(again, {s.recipient.id: placed[s.recipient.id].pages for s in again})
        return outcomes

    def _alone(self, source: Source) -> Outcome:
        rid = source.recipient.id
        result = self.prepared.compile(rid, source.tex, self.layout.pdf(rid))
        if not result.ok:
            self.manifest.letters[rid] = {"failed": result.first_error, "inputs": source.inputs,
                                          "log": str(result.log.relative_to(self.layout.root))}
            return Outcome(rid, "failed", message=result.first_error, seconds=result.seconds)
        return self._record(source, result, result.only, result.pdf, result.seconds)

    def _record(self, source: Source, result: tex.CompileResult, placed: tex.Placed, pdf: Path,
                seconds: float, batch: dict | None = None) -> Outcome:
        rid = source.recipient.id
        self.manifest.letters[rid] = {
            "recipient": recipient_label(source.recipient),
            "file": pdf.name, "pages": placed.pages, "sha256": sha256_file(pdf),
            "inputs": source.inputs, "log": str(result.log.relative_to(self.layout.root)),
            "overfull": placed.overfull, "signature": placed.signature, "window": result.window,
            "layout": result.layout,
        }
        if batch:  # the PDF it was cut from: merge takes pages from there (fonts shared)
            self.manifest.letters[rid]["batch"] = batch
        return Outcome(rid, "built", pdf, seconds=seconds, warnings=placed.overfull)


@contextmanager
def lock(layout: Layout):
    """One build or merge at a time per build folder; a second one is refused."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another build or merge is running in {layout.root}; "
                               "wait for it to finish") from None
        yield


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class LetterState:
    recipient: str
    state: str  # "up to date", "stale", "failed", "never built", "invalid"
    detail: str = ""


def status(recipients_yaml: str | Path, build_dir: str | Path = "build", medium: str = "print") -> list[LetterState]:
    """Every recipient's state, and why: which input changed, or the first error."""
    prepared = prepare(recipients_yaml, build_dir, medium)
    manifest = Manifest.read(prepared.layout.root)
    states = [LetterState(ps[0].recipient or f"recipients[{i}]", "invalid", str(ps[0]))
              for i, ps in sorted(prepared.loaded.rejected.items())]
    for source in prepared.sources:
        rid = source.recipient.id
        entry = manifest.letters.get(rid)
        pdf = prepared.layout.pdf(rid)
        if entry is None:
            states.append(LetterState(rid, "never built"))
        elif "failed" in entry:
            changed = entry.get("inputs", {}).get("key") != source.key
            states.append(LetterState(rid, "failed", entry["failed"]
                                      + (" (its inputs changed since)" if changed else "")))
        elif not pdf.exists() or sha256_file(pdf) != entry.get("sha256"):
            states.append(LetterState(rid, "stale", f"{pdf.name} is missing or changed since it was built"))
        elif entry.get("inputs", {}).get("key") != source.key:
            old = entry.get("inputs", {})
            changed = [name for name in INPUT_NAMES if old.get(name) != source.inputs.get(name)]
            states.append(LetterState(rid, "stale", "changed: " + ", ".join(INPUT_NAMES[n] for n in changed)))
        else:
            states.append(LetterState(rid, "up to date"))
    return states


INPUT_NAMES = {
    "source": "its text (recipients.yaml)",
    "letterhead": "the letterhead class",
    "images": "the logo or signature image",
    "builder": "the builder version",
    "tex": "the TeX version",
}


def epoch(date: dt.date) -> int:
    """Noon UTC of the letter's date: the PDFs' creation time, so builds repeat."""
    return int(dt.datetime(date.year, date.month, date.day, 12, tzinfo=dt.timezone.utc).timestamp())
