"""The pipeline: load -> compose -> compile, for every letter of a batch.

Only this module runs the stages in order. A letter is recompiled only when
what it depends on changed (its source, the letterhead, its images, the
builder, the TeX version): content hashes, kept in ``build/state.json``.
One bad letter never stops the others; the report says what failed and why.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, compile as tex
from .compose import compose
from .load import Loaded, Problem, load
from .schema import Recipient

LETTERHEAD = Path(__file__).resolve().parent.parent / "letterhead"


@dataclass
class Layout:
    """Where a build puts things (all under one folder, ``build/`` by default)."""

    root: Path

    @property
    def tex(self) -> Path:
        return self.root / "tex"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    def pdf(self, recipient_id: str) -> Path:
        return self.root / f"{recipient_id}.pdf"


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
    """One letter, composed: what to compile and the hash of all it depends on."""

    recipient: Recipient
    tex: str
    key: str


def sources(loaded: Loaded, layout: Layout) -> list[Source]:
    """Compose every valid letter (in memory) and hash its inputs."""
    batch = loaded.batch
    logo = _asset_name(loaded, batch.letter.sender.logo, "logo")
    common = hashlib.sha256()
    for part in (__version__, tex.tex_version()):
        common.update(part.encode() + b"\0")
    for path in sorted(LETTERHEAD.rglob("*")):
        if path.is_file():
            common.update(path.name.encode() + b"\0" + path.read_bytes())
    if logo:
        common.update((loaded.root / batch.letter.sender.logo).read_bytes())
    out = []
    for recipient in batch.recipients:
        source = compose(batch, recipient, logo=logo).dumps()
        key = common.copy()
        key.update(source.encode())
        out.append(Source(recipient, source, key.hexdigest()))
    return out


def build(recipients_yaml: str | Path, build_dir: str | Path = "build", *, jobs: int | None = None,
          only: list[str] | None = None, force: bool = False, progress=None) -> Report:
    """Build every letter of ``recipients_yaml`` (or just ``only``) into ``build_dir``."""
    layout = Layout(Path(build_dir))
    loaded = load(recipients_yaml)  # LoadError: nothing can be built
    layout.root.mkdir(parents=True, exist_ok=True)
    with _lock(layout):
        outcomes = [Outcome(ps[0].recipient or f"recipients[{i}]", "invalid",
                            message="\n".join(str(p) for p in ps))
                    for i, ps in sorted(loaded.rejected.items())]
        for outcome in outcomes:  # an invalid letter keeps no PDF that looks current
            if "/" not in outcome.recipient and not outcome.recipient.startswith("recipients["):
                if outcome.recipient not in {r.id for r in loaded.batch.recipients}:
                    layout.pdf(outcome.recipient).unlink(missing_ok=True)
        todo = sources(loaded, layout)
        if only:
            unknown = sorted(set(only) - {s.recipient.id for s in todo})
            if unknown:
                raise ValueError(f"no valid recipient with id: {', '.join(unknown)}")
            todo = [s for s in todo if s.recipient.id in only]
        state = read_state(layout)
        _copy_assets(loaded, layout)
        env = tex.tex_environment([LETTERHEAD], _epoch(loaded.batch.letter.date))
        stale = []
        for source in todo:
            rid = source.recipient.id
            pdf = layout.pdf(rid)
            _write_atomic(layout.tex / f"{rid}.tex", source.tex.encode())
            if not force and state.get(rid) == source.key and pdf.exists():
                outcomes.append(Outcome(rid, "up to date", pdf))
            else:
                stale.append(source)

        def run(source: Source) -> Outcome:
            rid = source.recipient.id
            result = tex.compile_letter(layout.tex / f"{rid}.tex", layout.work / rid, layout.pdf(rid), env)
            if result.ok:
                return Outcome(rid, "built", result.pdf, seconds=result.seconds, warnings=result.overfull)
            return Outcome(rid, "failed", message=result.first_error, seconds=result.seconds)

        workers = max(1, jobs or os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            for source, outcome in zip(stale, pool.map(run, stale)):
                outcomes.append(outcome)
                state.pop(source.recipient.id, None)
                if outcome.status == "built":
                    state[source.recipient.id] = source.key
                if progress:
                    progress(outcome)
        write_state(layout, state)
    order = {r.id: i for i, r in enumerate(loaded.batch.recipients)}
    outcomes.sort(key=lambda o: (o.status != "invalid", order.get(o.recipient, -1)))
    return Report(outcomes, loaded.warnings)


def read_state(layout: Layout) -> dict[str, str]:
    try:
        return json.loads(layout.state.read_text(encoding="utf-8"))["letters"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_state(layout: Layout, letters: dict[str, str]) -> None:
    data = {"letters": dict(sorted(letters.items()))}
    _write_atomic(layout.state, json.dumps(data, indent=2).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, then rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _lock(layout: Layout):
    """One build or merge at a time per build folder; a second one is refused."""
    handle = open(layout.root / ".lock", "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another build or merge is running in {layout.root}; "
                               "wait for it to finish") from None
        yield
    finally:
        handle.close()


def _asset_name(loaded: Loaded, relative: str | None, stem: str) -> str | None:
    return f"assets/{stem}{Path(relative).suffix.lower()}" if relative else None


def _copy_assets(loaded: Loaded, layout: Layout) -> None:
    """Images go next to the .tex: pdflatex may only read below its folder."""
    logo = loaded.batch.letter.sender.logo
    if logo:
        target = layout.tex / _asset_name(loaded, logo, "logo")
        _write_atomic(target, (loaded.root / logo).read_bytes())


def _epoch(date: dt.date) -> int:
    return int(dt.datetime(date.year, date.month, date.day, 12, tzinfo=dt.timezone.utc).timestamp())
