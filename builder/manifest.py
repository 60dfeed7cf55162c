"""The build's record, ``build/manifest.json``: what each output is and what it came from.

For each letter: the recipient, the file, its pages and SHA-256, and the hashes
of the inputs it was built from (its source, the letterhead, the images, the
builder and TeX versions). For the bundle: the same, and its letters in order.
``build`` decides what to recompile from it, ``merge`` refuses stale letters
with it, and ``check`` verifies that the files still match it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

from . import RECIPIENT_ID

FILE_NAME = "manifest.json"
Opened = TypeVar("Opened")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_as_judged(path: Path, sha256: str) -> bytes | None:
    """The bytes of ``path`` if they are the ones judged ready (``sha256``), else None:
    a file changed while a long task ran (sign, send) is not what was checked."""
    data = path.read_bytes()
    return data if sha256_bytes(data) == sha256 else None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def sha256_stream(handle: BinaryIO) -> str:
    """The SHA-256 of what is left to read in ``handle``, read a megabyte at a time."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


# The kernel stamps a file's change time (ctime) from a coarse clock (one tick
# is 1 to 10 ms, by its HZ): two writes within one tick may leave the same
# ctime. A stat is only trusted for a file whose last change is older than
# this when it was read; twice the longest tick.
_TICK_NS = 20_000_000


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def open_as_judged(path: Path, entry: dict, opener: Callable[[Path | BinaryIO], Opened]
                   ) -> tuple[Opened, list[int] | None] | None:
    """``opener`` (``pikepdf.open``) of the file at ``path`` if it holds what was judged
    ready (``entry["sha256"]``), and the stat it had; else None. Whatever is renamed onto
    ``path`` meanwhile, what is opened is what was checked here (a letter swapped for another
    while merge read it, and put back before its end, was in the bundle).

    A file whose stat is ``entry["seen"]`` (its reading when it was judged,
    ``current_sha256``) is opened by its path, and has that stat still once it is open: a
    file renamed away from ``path`` or written has another change time, and that file had
    it all along, so it was the one opened; ``still_as_opened`` tells later whether it was
    written since. Any other file is read whole, checked, and opened as those bytes (stat
    None)."""
    seen = entry.get("seen") or {}
    before = _identity(os.stat(path))
    if seen.get("stat") == before and seen.get("sha256") == entry["sha256"]:
        opened = opener(path)
        if still_as_opened(path, before):
            return opened, before
        opened.close()
    data = read_as_judged(path, entry["sha256"])
    return (opener(io.BytesIO(data)), None) if data is not None else None


def still_as_opened(path: Path, opened: list[int] | None) -> bool:
    """Is the file ``open_as_judged`` opened still at ``path``, and unwritten since?"""
    try:
        return opened is None or _identity(os.stat(path)) == opened
    except OSError:
        return False


def current_sha256(path: Path, entry: dict) -> str:
    """The SHA-256 of the file at ``path`` as it is now.

    Reading every letter on every command would cost more than the rest of a
    no-change build, so ``entry["seen"]`` keeps the last reading: the file's
    device, inode, size, modification and change times, and its hash. A file
    whose stat is still that one has not been written since (its change time
    moves on every write and no program can set it back), so the hash stands;
    any other file is read again. ``entry["sha256"]``, the hash recorded at
    build time, is never touched here. Raises OSError if the file cannot be read.
    """
    seen = entry.get("seen") or {}
    if seen.get("stat") == _identity(os.stat(path)) and "sha256" in seen:
        return seen["sha256"]
    before, started = os.stat(path), time.time_ns()
    digest = sha256_file(path)
    # a change within one clock tick of this reading could keep the same
    # change time: such a file is read again next time
    if before.st_ctime_ns + _TICK_NS < started and _identity(os.stat(path)) == _identity(before):
        entry["seen"] = {"stat": _identity(before), "sha256": digest}
    else:
        entry.pop("seen", None)
    return digest


def recorded_as_made(path: Path, entry: dict, made: str | None) -> str:
    """The SHA-256 to record for a file a build or merge has just written: ``made``, that of
    the bytes it wrote and checked, when known, not the file read back (another program
    writing over it meanwhile was vouched for as built); the reading is kept in ``entry``
    all the same (``current_sha256``), so a file written over is found changed."""
    read = current_sha256(path, entry)
    return made or read


# The shape of what this builder writes: a type, [shape] for a list of it,
# (shape, ...) for a fixed-length list, {key: shape} for a mapping whose keys
# are optional, {str: shape} for any keys; None allows null.
_TEXT = {str: str}
_FINDING = {"code": str, "level": str, "message": str}
_SEEN = {"stat": [int], "sha256": str}
_LETTER = {"recipient": str, "file": str, "pages": int, "sha256": str, "inputs": _TEXT, "log": str,
           "findings": [_FINDING], "signature": (None, [(int, float)]), "window": (None, [(int, float)]),
           "accepted": _TEXT, "failed": str, "failed_inputs": str, "seen": object,
           # the hash of its fonts' and forms' digests kept for the merge (``split.vouch``)
           "objects": str,
           # what it says, as data (build.words_of): how send knows it after a tool update
           "words": str,
           # a web copy's HTML page (build --for web): its hash as written
           "page": {"sha256": str, "seen": object},
           # the languages of a bilingual letter (2), which prints each in turn: none, one
           "languages": int,
           # a web copy marked more than OFFICIAL that a person cleared for publication (publish)
           "cleared": {"marking": str, "by": str},
           # its signed copy (invoke sign): the letter it was made from, and its own hash
           # and the key sign was given (sign.key_record), for the sign command to suggest
           "signed": {"letter": str, "sha256": str, "seen": object, "key": {str: str}, "given": str}}
_BUNDLE = {"file": str, "pages": int, "sha256": str, "letters": [str], "inputs": _TEXT,
           "accepted": {str: _TEXT}, "options": {str: bool}, "cover_pages": int, "blank_pages": int,
           "cover": (None, {"key": str, "pages": int, "sha256": str, "seen": _SEEN, "objects": str}),
           "key": str, "seen": _SEEN,
           "made_with": str,  # ready.made_with: what the cover sheet was made with
           # its signed copy (invoke sign): the bundle it was made from, and its own hash
           "signed": {"bundle": str, "sha256": str, "seen": object, "key": {str: str}, "given": str}}
_BATCH = {"fingerprint": str, "medium": str, "name": str, "text_from": str, "text_files": _TEXT,
          "files": [str], "common": _TEXT,
          "letters": [[str, str, str, [str]]], "rejected": [[str]], "warnings": [str],
          # by recipient id: what its LaTeX was composed from (build._composed_before)
          "composed": {str: str},
          "yaml": str}  # the batch file, from the build folder (tasks.refuse_another_batch)


def _fits(value, shape) -> bool:
    """Is ``value`` (parsed JSON) of ``shape``?"""
    if shape is object:
        return True
    if shape is None:
        return value is None
    if isinstance(shape, tuple):  # any of these
        return any(_fits(value, option) for option in shape)
    if isinstance(shape, type):
        return isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    if isinstance(shape, list):
        if not isinstance(value, list):
            return False
        if len(shape) == 1:
            return all(_fits(item, shape[0]) for item in value)
        return len(value) == len(shape) and all(_fits(item, kind) for item, kind in zip(value, shape))
    if not isinstance(value, dict):
        return False
    if str in shape:
        return all(isinstance(k, str) and _fits(v, shape[str]) for k, v in value.items())
    return all(_fits(v, shape[k]) for k, v in value.items() if k in shape)


def _verdict(data) -> tuple[frozenset, tuple, bool, bool]:
    """Which parts of a parsed manifest are what this builder writes: the
    letters that fit, those of them whose "seen" does not, and whether the
    bundle and batch records fit. AttributeError: not a mapping at all."""
    # a letter's key names its files (letters/<id>.pdf, tex/<id>.tex): one no recipient
    # can have ("../x", edited in by hand) is not this builder's, and names no file
    fitting = frozenset(k for k, v in data.get("letters", {}).items()
                        if _fits(v, _LETTER) and re.fullmatch(RECIPIENT_ID, k))
    unseen = tuple(k for k in fitting if "seen" in data["letters"][k] and not _fits(data["letters"][k]["seen"], _SEEN))
    return fitting, unseen, _fits(data.get("bundle"), _BUNDLE), _fits(data.get("batch"), _BATCH)


_verdicts: dict[bytes, tuple] = {}  # the last manifest's verdict, by the SHA-256 of its bytes


@dataclass
class Manifest:
    path: Path
    letters: dict[str, dict] = field(default_factory=dict)
    bundle: dict | None = None
    batch: dict | None = None  # the batch as its last build prepared it (``build.Recorded``)
    # why a record file that is there could not be read at all (cut short, not JSON), else
    # None: said by status and build, which called its letters "never built" without a word
    unreadable: str | None = None

    @classmethod
    def read(cls, root: Path) -> "Manifest":
        """The record as the last build left it. A part that is not what this
        builder writes (a manifest edited by hand, or cut short) is left out:
        a letter without its record is built again, a bundle merged again."""
        path = root / FILE_NAME
        try:
            if not path.is_file():  # none yet; or a FIFO or a device, which would never end
                return cls(path, unreadable="not a file" if os.path.lexists(path) else None)
            text = path.read_bytes()
            data = json.loads(text)
            # checking the shape costs more than parsing (a build then merge reads it
            # five times): the verdict is kept for these exact bytes
            digest = hashlib.sha256(text).digest()
            verdict = _verdicts.get(digest)
            if verdict is None:
                verdict = _verdict(data)
                _verdicts.clear()
                _verdicts[digest] = verdict
            fitting, unseen, bundle_fits, batch_fits = verdict
            letters = {k: v for k, v in data.get("letters", {}).items() if k in fitting}
            for rid in unseen:
                letters[rid].pop("seen", None)  # only a cache: the file is read again
            return cls(path, letters, data.get("bundle") if bundle_fits else None,
                       data.get("batch") if batch_fits else None)
        except (OSError, ValueError, AttributeError, RecursionError) as exc:  # RecursionError: nested too deep
            why = ("not a table of letters" if isinstance(exc, AttributeError) else "nested too deep"
                   if isinstance(exc, RecursionError) else getattr(exc, "strerror", None) or str(exc))
            return cls(path, unreadable=why if os.path.lexists(path) else None)

    def write(self) -> None:
        """Write the record (atomically). What this builder writes is the shape it
        checks for: its verdict is kept for these bytes, so the command that wrote them
        does not check them again as it reads them back (a build then merge of 500
        letters read the record five times, and checked a new one twice, 28 ms each)."""
        from .files import write_atomic

        data = self.to_json()
        write_atomic(self.path, data)
        _verdicts.clear()
        _verdicts[hashlib.sha256(data).digest()] = (frozenset(self.letters), (), self.bundle is not None,
                                                   self.batch is not None)

    def to_json(self) -> bytes:
        """One line per letter: readable, and written by json's C encoder (an
        indented dump of 10,000 letters takes seconds)."""
        def line(value) -> str:
            return json.dumps(value, ensure_ascii=False, sort_keys=True)

        letters = ",\n".join(f"    {line(rid)}: {line(entry)}" for rid, entry in sorted(self.letters.items()))
        return ('{\n  "letters": {\n' + letters + ('\n' if letters else '') + '  },\n'
                f'  "bundle": {line(self.bundle)},\n  "batch": {line(self.batch)}\n}}\n').encode()

    def vouched_digests(self) -> dict[str, str]:
        """The fonts' and forms' digests kept for the merge (``split.Digests``)
        that this record vouches for: by the SHA-256 of each letter's (and the
        cover sheet's) file, the ``split.vouch`` of its digests."""
        records = [*self.letters.values(), (self.bundle or {}).get("cover") or {}]
        return {record["sha256"]: record["objects"] for record in records
                if isinstance(record.get("objects"), str) and isinstance(record.get("sha256"), str)}

    def key(self, recipient_id: str) -> str | None:
        """The inputs key a letter's current PDF was built from (None: no PDF)."""
        entry = self.letters.get(recipient_id, {})
        return None if "failed" in entry else entry.get("inputs", {}).get("key")
