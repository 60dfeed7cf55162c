"""Merge stage: every letter of the batch -> one bundle to sign and print.

The bundle is all or nothing: merge refuses, naming the recipients and why,
when any letter is not ready (``ready.letter_states``: invalid, never built,
failed, stale, changed since its build, or a preflight error nobody
accepted). It is written to a temporary file and renamed into place, so an
interrupted merge leaves the previous bundle as it was. Pages come from the
letter files themselves, so the bundle depends on its letters only.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from . import command
from .build import Layout, Prepared, lock, prepare, recorded
from .files import clear_temporaries_of, replacing
from .manifest import (Manifest, current_sha256, open_as_judged, recorded_as_made, sha256_bytes, sha256_stream,
                       still_as_opened)
from . import ready

if TYPE_CHECKING:
    from . import split as split_pdf  # pikepdf: imported where a bundle is written

# The cover sheet's and the marked blank pages' .tex and work folders (build/tex/_cover.tex,
# build/work/_cover/ ...) and the cover's page labels ("cover sheet 1"): no recipient id starts
# with "_" or holds a space, so a letter called cover (or blank-pages) keeps its own .tex,
# work folder and labels.
COVER_NAME = "_cover"
COVER_LABEL = "cover sheet"
BLANK_NAME = "_blank-pages"  # merge --duplex's blank pages that carry a marking


class MergeRefused(Exception):
    """Some letters are not ready; the message names them and says why."""


class OutputRefused(MergeRefused):
    """``--output`` names a file merge must not write: a bad value, like ``--jobs abc``."""


class NoSuchRecipient(MergeRefused):
    """``--accept`` names a recipient the batch does not have: a bad value, as
    ``--only`` naming one is."""


class BundleNotRecorded(OSError):
    """The bundle is in place, but the manifest that records it could not be
    written (a disk that filled just then): no task uses the bundle until a merge
    records it. The OSError of the manifest's write."""


class SharedPartFailed(MergeRefused):
    """The cover sheet (or the blank pages for duplex) did not compile: a fault of
    the batch's shared part, the letterhead, not of a letter. It stops merge as a
    problem in the shared part stops build."""


@dataclass
class MergeReport:
    path: Path
    letters: int
    pages: int
    size: int
    inputs_size: int
    cover_pages: int = 0
    blank_pages: int = 0
    accepted: dict[str, list[str]] | None = None  # findings accepted, by letter
    up_to_date: bool = False  # the bundle on disk was already this one: not written again


@dataclass
class _Part:
    """A document in the bundle, in order: the cover or a letter."""

    name: str  # page-label prefix
    title: str  # bookmark
    pdf: Path
    pages: int
    signature: tuple | None = None  # (page from 1, x, y bottom, y top) for a signature field


def merge(recipients_yaml: str | Path, build_dir: str | Path = "build", out: str | Path | None = None,
          *, cover: bool = True, duplex: bool = False, signature_fields: bool = False,
          accept: dict[str, list[str]] | None = None) -> MergeReport:
    """Merge the built letters of ``recipients_yaml`` into one bundle (``build/bundle.pdf``).

    ``cover`` puts a cover sheet first; ``duplex`` pads every document to an
    even page count so each starts on a front side; ``signature_fields`` adds an
    empty signature field over each letter's signature block. ``accept`` maps a
    recipient id to preflight finding codes a person accepts for this merge: it
    is recorded in the manifest and printed on the cover sheet.
    """
    options = {"cover": cover, "duplex": duplex, "signature_fields": signature_fields}
    _refuse_to_overwrite(Path(out) if out else None, Path(recipients_yaml), Path(build_dir))
    report = _recorded_current(recipients_yaml, build_dir, out, options, accept or {})
    if report is not None:
        return report
    prepared = prepare(recipients_yaml, build_dir)
    layout = prepared.layout
    out = Path(out) if out else layout.bundle
    # the files as they are, not as named: an image named through a link is refused by its own path too
    if out.resolve() in {Path(f).resolve() for f in prepared.files}:
        raise OutputRefused(f"--output {out}: that is a file the batch is made from; choose another file")
    with lock(layout):
        manifest = Manifest.read(layout.root)
        report, judged = _current(prepared, manifest, out, options, accept or {})
        if report is not None:
            return report
        # (not judged: not ready, and _ready_letters says why)
        letters, accepted, states = judged or _ready_letters(prepared, manifest, accept or {})
        notes = _accepted_notes(manifest, accepted)
        inputs_size = sum(p.pdf.stat().st_size for p in letters)
        hashes = [manifest.letters[p.name]["sha256"] for p in letters]
        from . import split as split_pdf  # pikepdf: loaded only when a bundle is written
        from .compose import PDF_LANG, bundle_languages

        lang = PDF_LANG[bundle_languages(prepared.loaded.batch)[0]]
        digests = split_pdf.Digests(layout.digests, manifest.vouched_digests())
        marked_blanks = _marked_blank_pages(prepared, letters) if duplex else {}
        # pdflatex compiles the cover sheet on the other core while the letters are put together
        with ThreadPoolExecutor(1) as background:
            cover_job = background.submit(_cover, prepared, letters, duplex, notes,
                                          (manifest.bundle or {}).get("cover")) if cover else None

            def cover_sheet() -> tuple[_Part, dict]:
                return cover_job.result()

            from pikepdf import PdfError

            # saved straight into a file beside the bundle, renamed into place only once
            # every letter is found unchanged since it was judged: never held in memory
            # (55 MB for 10,000 letters); the temporary file of a merge killed while it saved is deleted
            with replacing(out, clear_stale=True) as bundle_file:
                try:
                    pages, blanks = _concatenate(bundle_file, letters, duplex, _metadata(prepared),
                                                 [manifest.letters[p.name] for p in letters],
                                                 digests, signature_fields, cover_sheet if cover else None,
                                                 marked_blanks, lang=lang)
                except _ReadChanged as changed:  # not the file judged, or written while it was read
                    raise _changed_since_judged(layout, [changed.path]) from None
                except (OSError, PdfError):
                    # a letter deleted or cut short since it was judged cannot be read:
                    # said as any letter changed meanwhile, not as pikepdf's error
                    _unchanged_since_judged(layout, manifest, letters)
                    raise
                cover_part, cover_record = cover_job.result() if cover else (None, None)
                _unchanged_since_judged(layout, manifest, letters)
                size = bundle_file.seek(0, os.SEEK_END)
                bundle_file.seek(0)
                digest = sha256_stream(bundle_file)
        for rid, codes in accepted.items():  # on the record, with the file they were accepted for
            entry = manifest.letters[rid]
            entry["accepted"] = {**(entry.get("accepted") or {}),
                                 **{code: how for code, how in codes.items() if how == ready.ACCEPTED_BY_COMMAND}}
            if not entry["accepted"]:
                del entry["accepted"]
        # the digests this merge used are the files' own (read unchanged): vouched for on the
        # record (those it took from the record are already)
        for record, sha in [*((manifest.letters[p.name], sha) for p, sha in zip(letters, hashes)),
                            *([(cover_record, cover_record["sha256"])] if cover else [])]:
            if sha in digests.learned and digests.learned[sha] != digests.remembered.get(sha):
                record["objects"] = split_pdf.vouch(digests.learned[sha])
        cover_pages = cover_part.pages if cover else 0
        # sign's record of the signed bundle stays through every merge, to this file or another
        # (`merge --output other.pdf`, then `merge`): of these very bytes, its signed copy is
        # still current; of other bytes, it is the signed copy of an older bundle, for sign to
        # make again (dropped, status called it "not on the record" and exited 1, as for a
        # file nobody signed)
        signed = (manifest.bundle or {}).get("signed")
        manifest.bundle = {
            "file": layout.relative(out), "pages": pages, "sha256": digest,
            "letters": [p.name for p in letters],
            "inputs": {p.name: manifest.letters[p.name]["sha256"] for p in letters},
            "accepted": {rid: dict(codes) for rid, codes in accepted.items()},
            "options": options, "cover_pages": cover_pages, "blank_pages": blanks, "cover": cover_record,
            "made_with": ready.made_with(prepared),
            "key": _bundle_key(prepared, manifest, letters, accepted, options, out),
            **({"signed": signed} if signed else {}),
        }
        manifest.batch = prepared.record()
        try:
            manifest.write()
        except OSError as exc:
            raise BundleNotRecorded(exc.errno, exc.strerror, exc.filename) from exc
        digests.save()
    return MergeReport(out, len(letters), pages, size, inputs_size, cover_pages, blanks,
                       {rid: sorted(codes) for rid, codes in accepted.items()})


def _recorded_current(recipients_yaml, build_dir, out, options: dict,
                      accept: dict[str, list[str]]) -> MergeReport | None:
    """``_current``'s report for a batch unchanged since its build, which needs no
    loading; None if the batch changed or the bundle must be written. (A function of
    its own: the record it reads, 7 MB at 10,000 letters, is not held through the merge.)"""
    quick = recorded(recipients_yaml, build_dir)
    if quick is None:
        return None
    with lock(quick.layout):
        return _current(quick, Manifest.read(quick.layout.root), Path(out) if out else quick.layout.bundle,
                        options, accept)[0]


def _unchanged_since_judged(layout, manifest: Manifest, letters: list[_Part]) -> None:
    """MergeRefused if a letter was changed while merge ran (compiling the cover
    takes a while): the bundle would hold a file that was not judged ready. Read
    after the bundle was made, so a file changed while it was read is seen too
    (its stat is not the one on the record; the check costs a stat per letter)."""
    def changed(part: _Part) -> bool:
        entry = manifest.letters[part.name]
        try:
            return current_sha256(part.pdf, entry) != entry["sha256"]
        except OSError:
            return True

    moved = [p.pdf for p in letters if changed(p)]
    if moved:
        raise _changed_since_judged(layout, moved)


def _changed_since_judged(layout, paths: list[Path]) -> MergeRefused:
    return MergeRefused(f"not merging: {', '.join(layout.relative(p) for p in paths)} changed since it was "
                        f"judged ready; run {command('build')}, then merge again")


class _ReadChanged(Exception):
    """A document ``_concatenate`` read was not the one judged ready (``open_as_judged``),
    or was written while it was read."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def _refuse_to_overwrite(out: Path | None, recipients_yaml: Path, build_dir: Path) -> None:
    """``--output`` names a new PDF, not the batch's own files or what the build keeps."""
    if out is None:
        return
    target = out.resolve()
    if target.suffix.lower() != ".pdf":
        raise OutputRefused(f"--output {out}: the bundle is a PDF; give a file name ending in .pdf")
    if target == recipients_yaml.resolve():
        raise OutputRefused(f"--output {out}: that is the batch file, which the build keeps; choose another file")
    # this batch's build folder, and any other build folder the file is in (another batch's
    # signed copies, which no command can make again)
    builds = [Layout.of(build_dir).root.resolve(), *(p for p in target.parents if (p / "manifest.json").is_file())]
    for layout in map(Layout.of, builds):
        kept = {layout.cover.resolve(): "the cover sheet", layout.bundle_signed.resolve(): "the signed bundle"}
        if layout.root != builds[0]:  # another batch's bundle: its check then failed, its sign refused it
            kept[layout.bundle.resolve()] = "the bundle"
        folders = {layout.letters: "the letters", layout.signed: "the signed letters", layout.tex: "the LaTeX",
                   layout.work: "pdflatex's work", layout.root / "web": "the web copies"}
        what = kept.get(target) or next(
            (name for folder, name in folders.items() if target.is_relative_to(folder.resolve())), None)
        if what:
            whose = "" if layout.root == builds[0] else f" of the build in {layout.root}"
            raise OutputRefused(f"--output {out}: that is {what}{whose}, which the build keeps; choose another file")


def _current(prepared, manifest: Manifest, out: Path, options: dict,
             accept: dict[str, list[str]]) -> tuple[MergeReport | None, tuple | None]:
    """The report of a merge that would write the bundle already on disk
    (same letters, options, findings accepted and batch files, and the file is
    the one merge recorded), or None when the bundle must be written; and the
    letters judged ready on the way (``_ready_letters``), None if they are not."""
    recorded_bundle = manifest.bundle or {}
    try:
        judged = letters, accepted, states = _ready_letters(prepared, manifest, accept)
    except MergeRefused:
        return None, None  # merge says why, with the batch loaded
    if recorded_bundle.get("key") != _bundle_key(prepared, manifest, letters, accepted, options, out) \
            or not ready.bundle_state(prepared, manifest, states, path=out).ready:
        return None, judged
    # a finding accepted on this command line for a letter rebuilt since (to the same bytes):
    # the bundle is the same, but the acceptance must go on the letter's record for every task
    if any(how == ready.ACCEPTED_BY_COMMAND and (manifest.letters[rid].get("accepted") or {}).get(code) != how
           for rid, codes in accepted.items() for code, how in codes.items()):
        return None, judged
    # nothing to write, but the temporary file a merge killed while it saved left beside the
    # bundle (as large as the bundle) goes, as it does before a merge writes: it stayed
    # behind an up-to-date bundle for good
    clear_temporaries_of(out)
    return MergeReport(out, len(letters), recorded_bundle["pages"], out.stat().st_size,
                       sum(p.pdf.stat().st_size for p in letters), recorded_bundle.get("cover_pages", 0),
                       recorded_bundle.get("blank_pages", 0),
                       {rid: sorted(codes) for rid, codes in accepted.items()}, up_to_date=True), judged


def _bundle_key(prepared, manifest: Manifest, letters: list[_Part], accepted: dict,
                options: dict, out: Path) -> str:
    """Everything a bundle is made from: its letters (by content), the
    options, the findings accepted, and every file of the batch (the
    fingerprint: the YAML, images, letterhead, builder and TeX, so the cover
    sheet too). Equal keys and an unchanged file: merging again would write
    the same bundle."""
    return sha256_bytes(json.dumps({
        "letters": [[p.name, manifest.letters[p.name]["sha256"]] for p in letters], "options": options,
        "accepted": accepted, "file": prepared.layout.relative(out), "batch": prepared.fingerprint,
    }, sort_keys=True).encode())


def _concatenate(into: BinaryIO, letters: list[_Part], duplex: bool, info: dict[str, str],
                 records: list[dict], digests: split_pdf.Digests | None = None,
                 signature_fields: bool = False, first: Callable[[], tuple[_Part, dict]] | None = None,
                 marked_blanks: dict[str, tuple[Path, int]] | None = None,
                 lang: str = "en-GB") -> tuple[int, int]:
    """Save the bundle into ``into``; its page count, and the blank pages added. pikepdf
    (qpdf): a thousand letters in seconds, where pypdf takes many; identical
    fonts and images are kept once. ``records``: each letter's record, with the
    SHA-256 of the file judged ready, which is the file read (``open_as_judged``;
    _ReadChanged if it is not) and by which ``digests`` remembers its fonts.
    ``signature_fields``: an empty signature field over each letter's signature
    block. ``first``: the part that goes before the letters (the cover sheet) and
    its record, asked for once the letters are in, so it can be made meanwhile.
    ``marked_blanks``: for a part with a marking (by name), the file and page
    of a blank page that carries it, put behind it when its length is odd. ``lang``:
    the bundle's /Lang (``compose.bundle_languages``)."""
    import pikepdf

    from . import split as split_pdf

    bundle = pikepdf.new()
    names: split_pdf.Names = {}  # named destinations, into one name tree at the end
    dedupe = split_pdf.Deduplicator(bundle, digests.remembered if digests else None)
    blanks, opened = 0, {}  # the file of marked blank pages, opened once
    still_read = []  # (path, stat): the documents the bundle reads from when saved
    with contextlib.ExitStack() as kept:
        def add(part: _Part, record: dict) -> tuple[_Part, list]:
            nonlocal blanks
            judged = open_as_judged(part.pdf, record, pikepdf.open)
            if judged is None:
                raise _ReadChanged(part.pdf)
            pdf, stat = judged
            copies, reads_source = dedupe.append(names, pdf, split_pdf.named_destinations(pdf),
                                                 range(part.pages), record["sha256"])
            if reads_source:
                kept.enter_context(pdf)  # the bundle reads its new fonts from it when saved
                still_read.append((part.pdf, stat))
            else:
                pdf.close()
                if not still_as_opened(part.pdf, stat):
                    raise _ReadChanged(part.pdf)
            if duplex and len(copies) % 2:
                if part.name in (marked_blanks or {}):  # every page of a marked document is marked
                    path, index = marked_blanks[part.name]
                    if path not in opened:
                        opened[path] = kept.enter_context(pikepdf.open(path))
                    copies += dedupe.append(names, opened[path], {}, range(index, index + 1))[0]
                else:
                    box = copies[-1].MediaBox  # the letter's own paper, as its class set it
                    copies.append(dedupe.blank_page(float(box[2]) - float(box[0]),
                                                    float(box[3]) - float(box[1])))
                blanks += 1
            return part, copies

        documents = [add(part, record) for part, record in zip(letters, records, strict=True)]
        if first:
            documents.insert(0, add(*first()))
        pages, labels = [], []
        with bundle.open_outline() as outline:
            for part, copies in documents:
                outline.root.append(pikepdf.OutlineItem(part.title, pikepdf.Array([copies[0], pikepdf.Name.Fit])))
                labels += [len(pages), pikepdf.Dictionary(S=pikepdf.Name.D, P=pikepdf.String(f"{part.name} "), St=1)]
                pages += copies
        split_pdf.set_pages(bundle, pages)
        if signature_fields:
            _add_signature_fields(bundle, [(part, copies[part.signature[0] - 1])
                                           for part, copies in documents if part.signature])
        bundle.Root.Names = pikepdf.Dictionary(Dests=split_pdf.name_tree(bundle, names))
        bundle.Root.PageLabels = pikepdf.Dictionary(Nums=pikepdf.Array(labels))
        bundle.Root.PageMode = pikepdf.Name.UseOutlines
        bundle.Root.Lang = pikepdf.String(lang)
        for key, value in info.items():
            bundle.docinfo[key] = pikepdf.String(value)
        if digests:
            digests.learned = dedupe.learned
        split_pdf.save(bundle, into)
        for path, stat in still_read:
            if not still_as_opened(path, stat):
                raise _ReadChanged(path)
        return len(pages), blanks


def _ready_letters(prepared, manifest: Manifest, accept: dict[str, list[str]]
                   ) -> tuple[list[_Part], dict[str, dict[str, str]], list[ready.LetterState]]:
    """Every letter as a part of the bundle, the findings accepted for each
    (code -> who accepted it), and the letters' states; or MergeRefused naming
    those not ready, and why."""
    # a recipient saved invalid is one of the batch: its letter is refused below, as invalid
    # with what is wrong with it (it was "--accept names no recipient of this batch")
    unknown = ready.no_such_ids(sorted(set(accept) - {label for label, _, _ in prepared.rejected}),
                                [s.recipient.id for s in prepared.sources])
    if unknown:  # with the id meant, as for --only, --resend and --mark-sent
        raise NoSuchRecipient(f"--accept: {unknown}")
    states = ready.letter_states(prepared, manifest, accept)
    problems = [state.line() for state in states if not state.ready]
    if problems:
        # preflight errors may be accepted on purpose: the command that does it, for them
        raise MergeRefused("not merging; these letters are not ready:\n  " + "\n  ".join(problems)
                           + f"\n{ready.not_ready_fix(states, accept)}")
    parts, accepted = [], {}
    for source, state in zip(prepared.sources, [s for s in states if s.state != ready.INVALID]):
        rid = source.recipient.id
        entry = manifest.letters[rid]
        signature = tuple(entry["signature"]) if entry.get("signature") else None
        # the label it was built with: "name, role" (a ready letter's text is current)
        parts.append(_Part(rid, entry.get("recipient") or rid, prepared.layout.pdf(rid), entry["pages"], signature))
        used = {f["code"] for f in state.findings if f.get("level") == "error"}
        how = ready.accepted_codes(prepared, manifest, rid, accept)
        if used & set(how):
            accepted[rid] = {code: how[code] for code in sorted(used & set(how))}
    _tell_bookmarks_apart(parts)
    return parts, accepted, states


def _tell_bookmarks_apart(parts: list[_Part]) -> None:
    """A bookmark "name, role" that several letters share gets each one's id after it,
    as its files and page labels are named: a batch to "The Occupier", or to three
    Alex Smiths, had bookmarks no one could tell apart. (The recorded batch a merge
    reads holds no addresses, so the id, not the address, tells them apart.)"""
    counts = Counter(part.title for part in parts)
    for part in parts:
        if counts[part.title] > 1:
            part.title += f" ({part.name})"


def _accepted_notes(manifest: Manifest, accepted: dict[str, dict[str, str]]) -> list[str]:
    """The preflight findings a person accepted, as the cover sheet prints them."""
    notes = []
    for rid, codes in accepted.items():
        for finding in manifest.letters[rid].get("findings", []):
            if finding.get("code") in codes:
                how = codes[finding["code"]]
                # the record's token for the command line, said without the program: it read
                # "invoke merge --accept" on the cover of a bundle `letterbatch merge` made
                where = "merge --accept" if how == ready.ACCEPTED_BY_COMMAND else how
                notes.append(f"{rid}: {finding['code']} accepted ({where}): {finding['message']}")
    # each once: a URL too long for a line, cited three times, is three equal findings,
    # and the cover printed the same note three times over
    return list(dict.fromkeys(notes))


def _cover_document(prepared: Prepared, letters: list[_Part], duplex: bool, notes: list[str],
                    cover_pages: int) -> str:
    """The cover sheet's LaTeX, for a cover ``cover_pages`` long."""
    from .compose import CoverRow, compose_cover

    recipients = {s.recipient.id: s.recipient for s in prepared.sources}
    rows, start = [], cover_pages + (cover_pages % 2 if duplex else 0) + 1
    for letter in letters:
        rows.append(CoverRow(recipients[letter.name], start, start + letter.pages - 1))
        start += letter.pages + (letter.pages % 2 if duplex else 0)
    return compose_cover(prepared.loaded.batch, rows, pages=cover_pages, notes=notes,
                         assets={k: v for k, v in prepared.asset_names.items() if k == "logo"}).dumps()


def _cover(prepared: Prepared, letters: list[_Part], duplex: bool, notes: list[str],
           recorded_cover: dict | None) -> tuple[_Part, dict]:
    """Compile the cover sheet; its table gives each letter's pages in the bundle,
    which depend on how long the cover itself is, so compile until they agree.
    Preflight findings a person accepted (``notes``) are printed on it.

    The cover the last merge made (``recorded_cover``: its key and SHA-256) is
    used again when its source, metadata and letterhead are the same and the
    file is unchanged: one recipient's new wording leaves the cover as it was.
    Returns the cover and its record."""
    from . import split as split_pdf
    from .build import _code
    from .compose import PDF_LANG, bundle_languages

    cover = prepared.layout.cover
    info = {key.lstrip("/"): value for key, value in _metadata(prepared).items()}
    def key(document: str) -> str:
        return sha256_bytes(json.dumps([document, info, prepared.common_inputs, _code()]).encode())

    if recorded_cover and cover.is_file():
        pages = recorded_cover.get("pages", 0)
        document = _cover_document(prepared, letters, duplex, notes, pages)
        if recorded_cover.get("key") == key(document) \
                and current_sha256(cover, recorded_cover) == recorded_cover.get("sha256"):
            # the format of the letters' preamble is made here, on the other core, while the
            # letters are put together: made again if it was lost (work/ cleared, a project
            # moved), though the cover is not compiled
            prepared.format_for(document)
            return _Part(COVER_LABEL, "Cover sheet", cover, pages), recorded_cover
    prepared.write_assets()
    cover_pages = 1 + max(0, len(letters) + len(notes) - 16) // 40  # a first guess: the table's rows per page
    for _ in range(3):
        document = _cover_document(prepared, letters, duplex, notes, cover_pages)
        result = prepared.compile(COVER_NAME, document)
        if not result.ok:
            raise SharedPartFailed(f"the cover sheet did not compile: {result.first_error}")
        if result.only.pages == cover_pages:
            break
        cover_pages = result.only.pages
    made, = split_pdf.split(result.pdf, [split_pdf.Cut("cover", 0, result.only.pages, cover, info,
                                                      PDF_LANG[bundle_languages(prepared.loaded.batch)[0]])])
    record = {"key": key(document), "pages": result.only.pages}
    # a cover written over meanwhile is not this one: refused where the bundle reads it, as a letter is
    record["sha256"] = recorded_as_made(cover, record, made)
    return _Part(COVER_LABEL, "Cover sheet", cover, result.only.pages), record


def _marked_blank_pages(prepared: Prepared, letters: list[_Part]) -> dict[str, tuple[Path, int]]:
    """For two-sided printing: the blank page to put behind each marked part (the
    cover, a letter), by its name, as the file and page (from 0) of a blank page
    the letterhead class made with that marking (one page per marking)."""
    from .compose import bundle_marking, compose_blank_pages, marking

    batch = prepared.loaded.batch
    recipients = [prepared.source(p.name).recipient for p in letters]
    wanted = {COVER_LABEL: bundle_marking(batch, recipients),  # the cover's, as compose_cover prints it
              **{p.name: marking(batch, r) for p, r in zip(letters, recipients)}}
    markings = list(dict.fromkeys(m for m in wanted.values() if m))
    if not markings:
        return {}
    result = prepared.compile(BLANK_NAME, compose_blank_pages(batch, markings).dumps())
    if not result.ok:
        raise SharedPartFailed(f"the blank pages for duplex did not compile: {result.first_error}")
    return {name: (result.pdf, markings.index(m)) for name, m in wanted.items() if m}


def _metadata(prepared: Prepared) -> dict[str, str]:
    from .compose import bundle_subject, bundle_title, pdf_date

    letter = prepared.loaded.batch.letter
    stamp = pdf_date(letter.date)
    count = len(prepared.sources)
    return {
        "/Title": bundle_title(prepared.loaded.batch),
        "/Author": letter.signatory.name or letter.sender.name,
        "/Subject": bundle_subject(prepared.loaded.batch, count),
        "/Creator": "letterbatch",
        "/Producer": "letterbatch (pikepdf)",
        "/CreationDate": stamp,
        "/ModDate": stamp,
    }


def _add_signature_fields(bundle, fields) -> None:
    """An empty signature field over each letter's signature block, as pyHanko's
    ``append_signature_field`` makes one (a widget with an empty appearance, in
    the AcroForm, flagged as holding signatures), made while the bundle is put
    together: pyHanko reads the finished bundle again and walks the page tree
    and every field for each field it adds, 9.4 s for 1000 letters."""
    import pikepdf

    from .sign import field_name

    widgets = []
    for part, page in fields:
        _, x, bottom, top, width = part.signature  # measured by the letterhead class
        widget = bundle.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Sig,
            T=pikepdf.String(field_name(part.name)), F=132,  # print, locked
            P=page, Rect=pikepdf.Array([x, bottom, x + width, top]),
            AP=pikepdf.Dictionary(N=bundle.make_stream(b"", Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                                                     BBox=pikepdf.Array([0, 0, width, top - bottom]),
                                                     Resources=pikepdf.Dictionary()))))
        page.Annots = pikepdf.Array([*page.get("/Annots", []), widget])
        widgets.append(widget)
    bundle.Root.AcroForm = pikepdf.Dictionary(Fields=pikepdf.Array(widgets), SigFlags=1)  # signatures exist
