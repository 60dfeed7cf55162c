"""Merge stage: every letter of the batch -> one bundle to sign and print.

The bundle is all or nothing: merge refuses, naming the recipients, when any
letter is invalid, missing, failed or older than its sources. It is written to
a temporary file and renamed into place, so an interrupted merge leaves the
previous bundle as it was.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from .build import Prepared, lock, prepare
from .files import write_atomic
from .manifest import Manifest, sha256_bytes, sha256_file
from . import split as split_pdf
from .compose import CoverRow, compose_cover, long_date, pdf_date, recipient_label

BUNDLE_NAME = "bundle.pdf"
COVER_NAME = "_cover"  # not a valid recipient id, so it can never clash with one


class MergeRefused(Exception):
    """Some letters are not ready; the message names them and says why."""


@dataclass
class MergeReport:
    path: Path
    letters: int
    pages: int
    size: int
    inputs_size: int
    cover_pages: int = 0
    blank_pages: int = 0


@dataclass
class _Part:
    """A document in the bundle, in order: the cover or a letter."""

    name: str  # page-label prefix
    title: str  # bookmark
    pdf: Path
    pages: int
    signature: tuple | None = None  # (page from 1, x, y bottom, y top) for a signature field
    # where to take the pages from: the letter's own PDF, or (faster, fonts
    # shared) the batch PDF it was cut from, while that is unchanged
    source: Path | None = None
    start: int = 0


def merge(recipients_yaml: str | Path, build_dir: str | Path = "build", out: str | Path | None = None,
          *, cover: bool = True, duplex: bool = False, signature_fields: bool = False) -> MergeReport:
    """Merge the built letters of ``recipients_yaml`` into one bundle (``build/bundle.pdf``).

    ``cover`` puts a cover sheet first; ``duplex`` pads every document to an
    even page count so each starts on a front side; ``signature_fields`` adds an
    empty signature field over each letter's signature block.
    """
    prepared = prepare(recipients_yaml, build_dir)
    layout = prepared.layout
    out = Path(out) if out else layout.root / BUNDLE_NAME
    with lock(layout):
        manifest = Manifest.read(layout.root)
        letters = _ready_letters(prepared, manifest)
        parts = ([_cover(prepared, letters, duplex)] if cover else []) + letters
        data, starts, pages, blanks = _concatenate(parts, duplex, _metadata(prepared))
        if signature_fields:
            data = _add_signature_fields(data, [(p, s) for p, s in zip(parts, starts) if p.signature])
        write_atomic(out, data)
        manifest.bundle = {
            "file": str(out.relative_to(layout.root)) if out.is_relative_to(layout.root) else str(out),
            "pages": pages, "sha256": sha256_bytes(data),
            "letters": [p.name for p in letters],
            "inputs": {p.name: manifest.letters[p.name]["sha256"] for p in letters},
            "options": {"cover": cover, "duplex": duplex, "signature_fields": signature_fields},
        }
        write_atomic(manifest.path, manifest.to_json())
    return MergeReport(out, len(letters), pages, len(data),
                       sum(p.pdf.stat().st_size for p in letters),
                       parts[0].pages if cover else 0, blanks)


def _concatenate(parts: list[_Part], duplex: bool, info: dict[str, str]) -> tuple[bytes, list[int], int, int]:
    """The bundle's bytes, where each part starts, its page count, and the blank
    pages added. pikepdf (qpdf): a thousand letters in seconds, where pypdf
    takes many; identical fonts and images are kept once."""
    bundle = pikepdf.new()
    tree = pikepdf.NameTree.new(bundle)
    dedupe = split_pdf.Deduplicator(bundle)
    starts, blanks, labels = [], 0, []
    sources: dict[Path, tuple[pikepdf.Pdf, dict]] = {}
    with contextlib.ExitStack() as opened, bundle.open_outline() as outline:
        for part in parts:
            start = len(bundle.pages)
            starts.append(start)
            path = part.source or part.pdf
            if path not in sources:
                pdf = opened.enter_context(pikepdf.open(path))
                sources[path] = (pdf, split_pdf.named_destinations(pdf))
            pdf, dests = sources[path]
            split_pdf.append(bundle, tree, pdf, dests, range(part.start, part.start + part.pages),
                             keep=lambda name, part=part: part.source is None or f".{part.name}." in name)
            dedupe.pages(bundle.pages[start:])
            if duplex and (len(bundle.pages) - start) % 2:
                box = bundle.pages[-1].mediabox  # the letter's own paper, as its class set it
                bundle.add_blank_page(page_size=(float(box[2]) - float(box[0]), float(box[3]) - float(box[1])))
                blanks += 1
            outline.root.append(pikepdf.OutlineItem(part.title, start))
            labels += [start, pikepdf.Dictionary(S=pikepdf.Name.D, P=pikepdf.String(f"{part.name} "), St=1)]
    bundle.Root.Names = pikepdf.Dictionary(Dests=tree.obj)
    bundle.Root.PageLabels = pikepdf.Dictionary(Nums=pikepdf.Array(labels))
    bundle.Root.PageMode = pikepdf.Name.UseOutlines
    bundle.Root.Lang = pikepdf.String("en-GB")
    for key, value in info.items():
        bundle.docinfo[key] = pikepdf.String(value)
    return split_pdf.to_bytes(bundle), starts, len(bundle.pages), blanks


def _ready_letters(prepared: Prepared, manifest: Manifest) -> list[_Part]:
    """Every letter as a part of the bundle, or MergeRefused naming those not ready."""
    layout = prepared.layout
    problems = [f"{ps[0].recipient}: invalid in {prepared.loaded.path.name} ({ps[0].message})"
                for ps in prepared.loaded.rejected.values()]
    parts, seen_batches = [], {}
    for source in prepared.sources:
        rid = source.recipient.id
        entry = manifest.letters.get(rid, {})
        if not layout.pdf(rid).exists():
            problems.append(f"{rid}: no PDF (never built, or its build failed)")
        elif manifest.key(rid) != source.key or not entry.get("pages"):
            problems.append(f"{rid}: the PDF is older than its sources")
        else:
            pages = entry["pages"]
            signature = tuple(entry["signature"]) if entry.get("signature") else None
            title = recipient_label(source.recipient)
            part = _Part(rid, title, layout.pdf(rid), pages, signature)
            batch = entry.get("batch")
            if batch and _unchanged(layout.root / batch["file"], batch["sha256"], seen_batches):
                part.source, part.start = layout.root / batch["file"], batch["start"]
            elif sha256_file(part.pdf) != entry.get("sha256"):
                problems.append(f"{rid}: the PDF changed since it was built")
            parts.append(part)
    if problems:
        raise MergeRefused("not merging; these letters are not ready:\n  " + "\n  ".join(problems)
                           + "\nRun `invoke build` and fix what it reports.")
    return parts


def _unchanged(path: Path, sha256: str, seen: dict[Path, bool]) -> bool:
    if path not in seen:
        seen[path] = path.exists() and sha256_file(path) == sha256
    return seen[path]


def _cover(prepared: Prepared, letters: list[_Part], duplex: bool) -> _Part:
    """Compile the cover sheet; its table gives each letter's pages in the bundle,
    which depend on how long the cover itself is, so compile until they agree."""
    recipients = {s.recipient.id: s.recipient for s in prepared.sources}
    prepared.write_assets()
    cover_pages = 1 + max(0, len(letters) - 16) // 40  # a first guess: the table's rows per page
    for _ in range(3):
        rows, start = [], cover_pages + (cover_pages % 2 if duplex else 0) + 1
        for letter in letters:
            rows.append(CoverRow(recipients[letter.name], start, start + letter.pages - 1))
            start += letter.pages + (letter.pages % 2 if duplex else 0)
        document = compose_cover(prepared.loaded.batch, rows, pages=cover_pages,
                                 assets={k: v for k, v in prepared.asset_names.items() if k == "logo"})
        result = prepared.compile(COVER_NAME, document.dumps(), prepared.layout.root / f"{COVER_NAME}.pdf")
        if not result.ok:
            raise MergeRefused(f"the cover sheet did not compile: {result.first_error}")
        if result.only.pages == cover_pages:
            break
        cover_pages = result.only.pages
    return _Part("cover", "Cover sheet", result.pdf, result.only.pages)


def _metadata(prepared: Prepared) -> dict[str, str]:
    letter = prepared.loaded.batch.letter
    stamp = pdf_date(letter.date)
    count = len(prepared.sources)
    return {
        "/Title": f"Letters for signature: {letter.title or ''}".rstrip(": "),
        "/Author": letter.signatory.name or letter.sender.name,
        "/Subject": f"{count} letter{'s' if count != 1 else ''} of {long_date(letter.date)}",
        "/Creator": "letterbatch",
        "/Producer": "letterbatch (pikepdf)",
        "/CreationDate": stamp,
        "/ModDate": stamp,
    }


def _add_signature_fields(data: bytes, parts: list[tuple[_Part, int]]) -> bytes:
    """An empty signature field over each letter's signature block (pyHanko)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    for part, start in parts:
        page, x, bottom, top, width = part.signature  # measured by the letterhead class
        append_signature_field(writer, SigFieldSpec(
            sig_field_name=f"Signature-{part.name}", on_page=start + page - 1,
            box=(x, bottom, x + width, top)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
