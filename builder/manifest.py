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


@dataclass
class Manifest:
    path: Path
    letters: dict[str, dict] = field(default_factory=dict)
    bundle: dict | None = None

    @classmethod
    def read(cls, root: Path) -> "Manifest":
        path = root / FILE_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            letters = {k: v for k, v in data.get("letters", {}).items() if isinstance(v, dict)}
            bundle = data.get("bundle") if isinstance(data.get("bundle"), dict) else None
            return cls(path, letters, bundle)
        except (OSError, ValueError, AttributeError):
            return cls(path)

    def to_json(self) -> bytes:
        data = {"letters": dict(sorted(self.letters.items())), "bundle": self.bundle}
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()

    def key(self, recipient_id: str) -> str | None:
        """The inputs key a letter's current PDF was built from (None: no PDF)."""
        entry = self.letters.get(recipient_id, {})
        return None if "failed" in entry else entry.get("inputs", {}).get("key")
