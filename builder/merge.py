"""Merge stage: every letter of the batch -> one bundle to sign and print.

The bundle is all or nothing: merge refuses, naming the recipients, when any
letter is invalid, missing, failed or older than its sources. It is written to
a temporary file and renamed into place, so an interrupted merge leaves the
previous bundle as it was.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from .build import Layout, _lock, read_state, sources
from .compose import long_date, pdf_title
from .load import load

BUNDLE_NAME = "bundle.pdf"


class MergeRefused(Exception):
    """Some letters are not ready; the message names them and says why."""


@dataclass
class MergeReport:
    path: Path
    letters: int
    pages: int
    size: int
    inputs_size: int


def merge(recipients_yaml: str | Path, build_dir: str | Path = "build", out: str | Path | None = None) -> MergeReport:
    layout = Layout(Path(build_dir))
    out = Path(out) if out else layout.root / BUNDLE_NAME
    loaded = load(recipients_yaml)
    problems = [f"{ps[0].recipient}: invalid in {loaded.path.name} ({ps[0].message})"
                for ps in loaded.rejected.values()]
    layout.root.mkdir(parents=True, exist_ok=True)
    with _lock(layout):
        state = read_state(layout)
        letters = sources(loaded, layout)
        for source in letters:
            rid = source.recipient.id
            if not layout.pdf(rid).exists():
                problems.append(f"{rid}: no PDF (never built, or its build failed)")
            elif state.get(rid) != source.key:
                problems.append(f"{rid}: the PDF is older than its sources")
        if problems:
            raise MergeRefused("not merging; these letters are not ready:\n  " + "\n  ".join(problems)
                               + "\nRun `invoke build` and fix what it reports.")

        batch = loaded.batch
        writer = PdfWriter()  # never PdfWriter(out): it would clone the old bundle
        start, inputs_size = 0, 0
        for source in letters:
            pdf = layout.pdf(source.recipient.id)
            inputs_size += pdf.stat().st_size
            reader = PdfReader(pdf)
            writer.append(reader, outline_item=pdf_title(source.recipient).removeprefix("Letter to "),
                          import_outline=False)
            count = len(reader.pages)
            writer.set_page_label(start, start + count - 1, style="/D",
                                  prefix=f"{source.recipient.id} ", start=1)
            start += count
        writer.page_mode = "/UseOutlines"
        author = batch.letter.signatory.name or batch.letter.sender.name
        writer.add_metadata({
            "/Title": batch.letter.title or f"Letters of {long_date(batch.letter.date)}",
            "/Author": author,
            "/Subject": f"{len(letters)} letters of {long_date(batch.letter.date)}",
            "/Producer": "letterbatch",
        })
        writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                writer.write(handle)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return MergeReport(out, len(letters), start, out.stat().st_size, inputs_size)
