"""Publish: the web copies that are ready (``build --for web``: a tagged PDF and its HTML
page each), copied into the website's folder.

``web/`` is the build's folder: beside the copies it holds their LaTeX, logs, saved
preambles and record, and copies that are stale, changed or failed their preflight look
there like ready ones. What goes to the website is what the readiness rule passed (built
from the batch as it is, unchanged since, preflight passed or accepted), each file's bytes
checked against the record as they are copied; a letter marked more than OFFICIAL only once
a person has cleared it (``cleared``), which is put on the record with the copy it was given
for, so a later publish keeps it published and a rebuilt letter is cleared again. Nothing is
deleted there: a website's folder keeps
last month's letters, which have other dates in their names."""
from __future__ import annotations

import errno
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from . import command
from .files import clear_temporaries_of, write_atomic


@dataclass
class PublishReport:
    published: list[Path] = field(default_factory=list)  # files written (new, or changed since)
    current: list[str] = field(default_factory=list)  # ids whose copies there are these already
    refused: list[str] = field(default_factory=list)  # "id: state: reason", for copies not ready
    refused_fix: str = ""
    marked: dict[str, str] = field(default_factory=dict)  # id -> its marking: above OFFICIAL, not cleared
    cleared: dict[str, str] = field(default_factory=dict)  # id -> its marking: cleared by this command, now on the record
    failed: list[str] = field(default_factory=list)  # "id: file: why", copies that could not be written there
    # ids given to --cleared that it did not clear: id -> why (not ready, or nothing to clear)
    not_cleared: dict[str, str] = field(default_factory=dict)


CLEARED_BY_COMMAND = "publish --cleared"


def to_be_cleared(batch, recipient) -> str:
    """The marking that keeps a recipient's web copy off the website until a person clears
    it (more than OFFICIAL, or one the scheme does not name), or ""."""
    from .compose import classification, marking

    mark = marking(batch, recipient)
    return mark if mark and classification(mark) != 1 else ""


def cleared_on_record(entry: dict, mark: str) -> bool:
    """Does the web record's clearance (``publish --cleared``) hold for this copy, marked
    ``mark``? Only one given for that marking does (the record of a rebuilt copy has none)."""
    return (entry.get("cleared") or {}).get("marking") == mark


class PublishStopped(Exception):
    """A full or read-only disk stopped the publish part way (every copy after would fail
    too): ``error``, and ``report`` with what was published before it."""

    def __init__(self, report: "PublishReport", error: OSError):
        super().__init__(str(error))
        self.report, self.error = report, error


class PublishRefused(Exception):
    """A folder to publish into that cannot be one (inside the build folder), or a
    ``cleared`` id the batch does not have: one line, nothing published."""


def publish(recipients_yaml: str | Path, build_dir: str | Path, to: str | Path,
            cleared: list[str] | None = None) -> PublishReport:
    """Copy each ready web copy of the batch, and its page, into ``to``."""
    from .build import lock, prepare
    from .manifest import Manifest, sha256_bytes
    from .ready import PREFLIGHT, letter_states, no_such_ids

    prepared = prepare(recipients_yaml, build_dir, "web")
    layout, to = prepared.layout, Path(to)
    build_root = layout.root.parent.resolve()
    if to.resolve() == build_root or build_root in to.resolve().parents:
        # clean removes the build folder, and a build writes in it
        raise PublishRefused(f"{to} is inside the build folder {build_dir}: publish into a folder of the website's")
    # (it said "could not go on: Not a directory (afile)")
    existing = next(p for p in [to.absolute(), *to.absolute().parents] if p.exists() or p.is_symlink())
    if not existing.exists():  # a link to nothing (a site's disk not mounted): its folder is not made
        # (it said "could not go on: File exists (site)")
        raise PublishRefused(f"--to {to}: {existing} is a link to {existing.readlink()}, which is not there: give "
                             "the website's folder to publish into (mounted, if it is another disk); nothing was "
                             "published")
    if not existing.is_dir():
        raise PublishRefused(f"--to {to}: {existing} is a file, not a folder: give the website's folder to "
                             "publish into; nothing was published")
    recipients = {s.recipient.id: s.recipient for s in prepared.sources}
    unknown = no_such_ids(cleared or [], recipients, [label for label, _, _ in prepared.rejected])
    if unknown:  # a typo clears nobody, and is said
        raise PublishRefused(f"--cleared: {unknown}; nothing was published")
    report = PublishReport()
    # never built for the web here, nothing is ready to publish: no lock taken, as it made the
    # folder (-b build/nope, or -b build/october/web, whose web/.lock october's status
    # then named "(not ours)", and clean would not remove)
    built = (layout.root / "manifest.json").is_file()
    with lock(layout) if built else nullcontext():
        manifest = Manifest.read(layout.root)
        states = letter_states(prepared, manifest)
        report.refused = [s.line() for s in states if not s.ready]
        for_preflight = any(s.state == PREFLIGHT for s in states)
        to_copy = []
        for state in states:
            rid = state.recipient
            if not state.ready:
                if rid in (cleared or []):  # the copy a person saw is not the one a build will make
                    report.not_cleared[rid] = "its web copy is not ready (below): clear it once it is built"
                continue
            mark = to_be_cleared(prepared.loaded.batch, recipients[rid])
            if rid in (cleared or []) and not mark:
                report.not_cleared[rid] = "it is not marked more than OFFICIAL: it needs no clearance"
            if mark and not cleared_on_record(manifest.letters[rid], mark):
                if rid not in (cleared or []):
                    report.marked[rid] = mark
                    continue
                report.cleared[rid] = mark
            to_copy.append(rid)
        if report.cleared:
            # on the record before anything is copied, with the letter it was given for (a
            # rebuild drops it; a later publish of this letter keeps it published)
            for rid, mark in report.cleared.items():
                manifest.letters[rid]["cleared"] = {"marking": mark, "by": CLEARED_BY_COMMAND}
            manifest.write()
        for rid in to_copy:
            entry = manifest.letters[rid]
            pdf = layout.pdf(rid)
            page = entry.get("page")  # (none on the record: the readiness rule judged the PDF alone)
            copies = [(pdf, entry["sha256"])] + ([(pdf.with_suffix(".html"), page.get("sha256"))] if page else [])
            datas = []
            for source, recorded in copies:
                data = source.read_bytes()
                if sha256_bytes(data) != recorded:  # changed since it was judged
                    report.refused.append(f"{rid}: changed: {source.name} changed since it was built")
                    break
                datas.append((to / source.name, data))
            else:
                written = []
                try:
                    for target, data in datas:
                        # a publish killed outright (kill -9) while it wrote this copy left its
                        # temporary file (``.<date>-<id>.pdf.xxxxxxxx``, part of a PDF) in the
                        # website's folder, where no publish deleted it
                        clear_temporaries_of(target)
                        if write_atomic(target, data):
                            written.append(target)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):  # every copy after it would fail too
                        # with what went before it: it said "could not go on", and not that some had
                        report.published += written
                        raise PublishStopped(report, exc) from None
                    # a copy the website's folder does not take (a file there another user owns, a folder
                    # of its name): said, and the others published all the same (it stopped them all)
                    report.failed.append(f"{rid}: {target.name}: {exc.strerror or exc}")
                else:
                    if not written:
                        report.current.append(rid)
                report.published += written
    if report.refused:  # no --accept for web copies: the recipient's accept is read for both media
        # (accepting a finding, only where a preflight is what holds a copy back: it was said of an
        # edited copy too, which nothing accepts)
        report.refused_fix = (f"Run {command('build --for web')} and fix what it reports" + (
            " (or accept a preflight finding on purpose with the recipient's accept: in the YAML "
            "`accept: [CODE]`, in a spreadsheet an accept column)." if for_preflight else "."))
    return report
