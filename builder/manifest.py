"""The build's record, ``build/manifest.json``: what each output is and what it came from.

For each letter: the recipient, the file, its pages and SHA-256, and the hashes
of the inputs it was built from (its source, the letterhead, the images, the
builder and TeX versions). For the bundle: the same, and its letters in order.
``build`` decides what to recompile from it, ``merge`` refuses stale letters
with it, and ``check`` verifies that the files still match it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

FILE_NAME = "manifest.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The kernel stamps a file's change time (ctime) from a coarse clock: two
# writes within one tick may leave the same ctime. A stat is only trusted for
# a file whose last change is older than this when it was read.
try:
    _TICK_NS = 2 * time.clock_getres(time.CLOCK_REALTIME_COARSE) * 1e9
except (AttributeError, OSError):
    _TICK_NS = 20e6
_TICK_NS = max(_TICK_NS, 10e6)


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


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


@dataclass
class Manifest:
    path: Path
    letters: dict[str, dict] = field(default_factory=dict)
    bundle: dict | None = None
    batch: dict | None = None  # the batch as its last build prepared it (``build.Recorded``)

    @classmethod
    def read(cls, root: Path) -> "Manifest":
        path = root / FILE_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            letters = {k: v for k, v in data.get("letters", {}).items() if isinstance(v, dict)}
            bundle = data.get("bundle") if isinstance(data.get("bundle"), dict) else None
            batch = data.get("batch") if isinstance(data.get("batch"), dict) else None
            return cls(path, letters, bundle, batch)
        except (OSError, ValueError, AttributeError):
            return cls(path)

    def to_json(self) -> bytes:
        data = {"letters": dict(sorted(self.letters.items())), "bundle": self.bundle, "batch": self.batch}
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()

    def key(self, recipient_id: str) -> str | None:
        """The inputs key a letter's current PDF was built from (None: no PDF)."""
        entry = self.letters.get(recipient_id, {})
        return None if "failed" in entry else entry.get("inputs", {}).get("key")
