"""STOPGAP for the readiness rule, until ``builder/ready.py`` (trust helper) is on main.

INTEGRATOR: when ready.py lands, make ``sign.py`` and ``send.py`` import
``letter_states`` from ``.ready`` and delete this file (and ``sign._bundle_to_sign``
can ask ``ready.bundle_state``). Until then the import below already prefers
ready.py when it exists, so nothing else changes.

The minimal rule here: a letter is ready when its PDF exists, its SHA-256
equals the manifest's entry, and the inputs key it was built from equals its
current sources' key. (ready.py adds preflight and accepted findings.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

try:
    from .ready import letter_states  # noqa: F401  (the real rule, once it exists)
except ModuleNotFoundError as missing:
    if missing.name != f"{__package__}.ready":
        raise

    from .manifest import Manifest, sha256_file

    @dataclass
    class LetterState:
        recipient: str
        state: str
        reason: str = ""
        ready: bool = False
        accepted: list[str] = field(default_factory=list)

    def letter_states(prepared, manifest: Manifest) -> list[LetterState]:  # type: ignore[no-redef]
        states = [LetterState(ps[0].recipient or f"recipients[{i}]", "invalid",
                              f"invalid in {prepared.loaded.path.name} ({ps[0].message})")
                  for i, ps in sorted(prepared.loaded.rejected.items())]
        for source in prepared.sources:
            rid = source.recipient.id
            entry = manifest.letters.get(rid)
            pdf = prepared.layout.pdf(rid)
            if entry is None:
                states.append(LetterState(rid, "never built", "never built"))
            elif "failed" in entry:
                states.append(LetterState(rid, "failed", f"its last build failed: {entry['failed']}"))
            elif not pdf.exists():
                states.append(LetterState(rid, "changed", f"{pdf.name} is missing"))
            elif sha256_file(pdf) != entry.get("sha256"):
                states.append(LetterState(rid, "changed", f"{pdf.name} changed since it was built"))
            elif manifest.key(rid) != source.key:
                states.append(LetterState(rid, "stale", "older than its inputs"))
            else:
                states.append(LetterState(rid, "ready", "", True))
        return states
