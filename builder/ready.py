"""The one rule for "ready": what every task (build, status, check, merge, sign)
asks before it trusts a letter or a bundle.

A letter is ready when its PDF is byte for byte the file its build recorded
(SHA-256 = manifest), that build was from its current inputs (the inputs key),
and its preflight, stored with it at build time, found no error that a person
has not accepted. Anything else is not ready, with the reason in the same
words in every task.

A bundle is ready when its file is the one merge recorded and it holds the
current ready letters, in order, as they are now.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import command
from .manifest import Manifest, current_sha256, sha256_bytes

# The states, and what each means (the reason adds the particulars).
READY = "ready"
NEVER_BUILT = "never built"
FAILED = "failed"  # the last build failed; an older good PDF may still stand, unused
STALE = "stale"  # built from inputs that have changed since
CHANGED = "changed"  # the file is not the one that was built
PREFLIGHT = "preflight"  # built and current, but its preflight found errors
INVALID = "invalid"  # the recipient's entry in the YAML is not valid
NEVER_MERGED = "never merged"  # the bundle: merge has not made one

INPUT_NAMES = {
    "source": "its text ({text_from})",
    "letterhead": "the letterhead class",
    "images": "the logo or signature image",
    "builder": "the builder's code",
    "tex": "the TeX version",
    "cutter": "pikepdf, which writes the letters' files",
    "envelope": "the envelope setting (letter.envelope)",
}

ACCEPTED_BY_COMMAND = "invoke merge --accept"


def no_such_ids(wanted, known, invalid=()) -> str | None:
    """What is wrong with ids a person gave (``--only``) that name no recipient of the
    batch, or None: "no valid recipient with id: mr-tom-prise (did you mean
    'mr-tom-price'?)", so a typo is never a clean report about nothing. ``invalid``: the
    batch's recipients saved invalid, said as such: `send --resend two` for one was asked
    "did you mean 'one'?", another recipient's letter."""
    import difflib

    known = list(known)
    unknown = [rid for rid in dict.fromkeys(wanted) if rid not in known]
    if not unknown:
        return None
    broken = [rid for rid in unknown if rid in invalid]
    unknown = [rid for rid in unknown if rid not in invalid]
    candidates = known + list(invalid)  # a typo of one saved invalid is told it is that one
    # (an id typed in capitals, TALL, is meant as tall: difflib finds nothing alike in them)
    meant = [close[0] for rid in unknown
             for close in [difflib.get_close_matches(rid, candidates, n=1) or difflib.get_close_matches(
                 rid.lower(), candidates, n=1)] if close]
    hint = f" (did you mean {', '.join(repr(m) for m in meant)}?)" if meant else ""
    said = [f"no valid recipient with id: {', '.join(unknown)}{hint}"] if unknown else []
    if broken:
        said.append(f"{', '.join(broken)} {'is' if len(broken) == 1 else 'are'} not valid now: fix what "
                    f"{command('status')} says of {'it' if len(broken) == 1 else 'them'} first")
    return "; ".join(said)


def accept_command(letters, given: dict[str, list[str]] | None = None) -> str:
    """The merge that accepts these letters' preflight errors on purpose, to copy as it
    stands (`merge --accept tall:window,wide:address`): ``letters`` are pairs of a
    recipient id and its errors nobody accepted (finding dicts with a ``code``). ``given``:
    what the command's own --accept accepts, kept first: after `merge --accept tall:window`
    it said `merge --accept tall:address`, and that, copied, was refused for the window."""
    value = ",".join(dict.fromkeys([f"{rid}:{code}" for rid, codes in (given or {}).items() for code in codes]
                                   + [f"{rid}:{f.get('code')}" for rid, errors in letters for f in errors]))
    return command(f"merge --accept {value}")


def not_ready_fix(states, given: dict[str, list[str]] | None = None) -> str:
    """What to do about letters not ready, as merge and sign say it: build and fix, and,
    for preflight errors nobody accepted, the merge that accepts them on purpose (which
    puts the acceptance on the record: sign then takes the letter too). ``given``: what
    the command's own --accept accepted (``accept_command``)."""
    flagged = [(s.recipient, s.errors) for s in states if s.state == PREFLIGHT and s.errors]
    accept_them = (f" (or accept {'its' if len(flagged) == 1 else 'their'} preflight findings on purpose: "
                   f"{accept_command(flagged, given)})") if flagged else ""
    return f"Run {command('build')} and fix what it reports{accept_them}."


@dataclass
class LetterState:
    recipient: str
    state: str
    reason: str = ""
    accepted: list[str] = field(default_factory=list)  # finding codes a person accepted
    findings: list[dict] = field(default_factory=list)  # the stored preflight: code, level, message

    @property
    def ready(self) -> bool:
        return self.state == READY

    @property
    def errors(self) -> list[dict]:
        """Preflight errors nobody accepted."""
        return [f for f in self.findings if f.get("level") == "error" and f.get("code") not in self.accepted]

    def said(self) -> str:
        """The state and why ("stale: older than its inputs; ..."), in every task's words."""
        return self.state + (f": {self.reason}" if self.reason else "")

    def line(self) -> str:
        return f"{self.recipient}: {self.said()}"


def finding_text(finding: dict) -> str:
    return f"{finding.get('level', 'error')} [{finding.get('code', '?')}]: {finding.get('message', '')}"


def accepted_codes(prepared, manifest: Manifest, recipient_id: str,
                   accept: dict[str, list[str]] | None = None) -> dict[str, str]:
    """The findings a person accepted for a letter, and where: the YAML
    (``accept:`` under the recipient), the manifest (an earlier ``merge
    --accept`` on this very file), or ``accept`` (this command)."""
    out: dict[str, str] = {}
    source = prepared.source(recipient_id)
    if source is not None:
        for code in getattr(source.recipient, "accept", None) or []:
            out[code] = prepared.batch_name
    for code, how in (manifest.letters.get(recipient_id, {}).get("accepted") or {}).items():
        out.setdefault(code, how)
    for code in (accept or {}).get(recipient_id, []):
        out.setdefault(code, ACCEPTED_BY_COMMAND)
    return out


def missing(path: Path) -> str:
    """What a file that is not there, or is not a file, is."""
    return "is not a file" if path.exists() else "is missing"


def changed_text_files(prepared, manifest: Manifest) -> str:
    """The files a letter's text comes from (the YAML, its spreadsheet) that
    changed since the last build, by name: "schools.xlsx" when only the
    spreadsheet did. All of them when the record cannot say (none changed
    since: the letter is older than the last build)."""
    before = (manifest.batch or {}).get("text_files") or {}
    now = getattr(prepared, "text_files", None) or {}
    changed = [name for name, digest in now.items() if name in before and before[name] != digest]
    return ", ".join(changed) or prepared.text_from


def _kept_from_before(layout, manifest: Manifest, label: str, valid_ids: set[str]) -> str:
    """An invalid recipient's letter built before, which the build keeps (bad input loses
    nothing): said, so nobody takes the file in the folder for the letter of the entry now.
    Not of an entry whose id a valid recipient has (a duplicate): the letter is that one's."""
    entry = manifest.letters.get(label)
    if label in valid_ids or not isinstance(entry, dict) or "sha256" not in entry or not layout.pdf(label).is_file():
        return ""
    return f" ({layout.pdf_name(label)} is the letter of its entry as it was, kept: not ready)"


def letter_states(prepared, manifest: Manifest, accept: dict[str, list[str]] | None = None,
                  only: list[str] | None = None) -> list[LetterState]:
    """Every recipient of ``prepared`` (a ``build.Prepared``, or the batch as
    its build recorded it, ``build.Recorded``), in YAML order (invalid entries
    first), with its state and the reason."""
    layout = prepared.layout
    wanted = None if only is None else set(only)
    text_from = changed_text_files(prepared, manifest)
    valid_ids = {source.recipient.id for source in prepared.sources}
    states = [LetterState(label, INVALID, f"in {first}" + _kept_from_before(layout, manifest, label, valid_ids))
              for label, first, _ in prepared.rejected]  # (in its file: the YAML or a spreadsheet, where)
    for source in prepared.sources:
        rid = source.recipient.id
        if wanted is not None and rid not in wanted:
            continue
        entry = manifest.letters.get(rid)
        pdf = layout.pdf(rid)
        name = layout.pdf_name(rid)
        accepted = accepted_codes(prepared, manifest, rid, accept)
        state = LetterState(rid, READY, accepted=sorted(accepted))
        states.append(state)
        if entry is None or ("sha256" not in entry and "failed" not in entry):
            state.state = NEVER_BUILT
            continue
        state.findings = list(entry.get("findings") or [])
        if "failed" in entry:
            state.state = FAILED
            changed = entry.get("failed_inputs") != source.key
            state.reason = f"its last build failed: {entry['failed']}" + (
                " (its inputs changed since)" if changed else "")
            continue
        # a web copy is named by the letter's date: after a change of date the record's copy
        # is the one of the date then, stale (its text changed), not missing
        earlier = layout.earlier_web_copy(rid, entry.get("file"))
        renamed = earlier is not None and earlier != pdf
        if renamed:
            pdf, name = earlier, layout.relative(earlier)
        if not pdf.is_file():  # a folder or a named pipe there (reading one would never end) is not it
            state.state, state.reason = CHANGED, f"{name} {missing(pdf)}"
            continue
        if current_sha256(pdf, entry) != entry.get("sha256"):
            state.state, state.reason = CHANGED, f"{name} changed since it was built"
            continue
        page = entry.get("page")  # a web copy's HTML page, written with it
        if page is not None:
            html = pdf.with_suffix(".html")
            if not html.is_file():
                state.state, state.reason = CHANGED, f"{layout.relative(html)} {missing(html)}"
                continue
            if current_sha256(html, page) != page.get("sha256"):
                state.state, state.reason = CHANGED, f"{layout.relative(html)} changed since it was built"
                continue
        old = entry.get("inputs", {})
        if renamed or old.get("key") != source.key:
            changed = [INPUT_NAMES[n].format(text_from=text_from) for n in INPUT_NAMES
                       if old.get(n) != source.inputs.get(n)]
            state.state = STALE
            state.reason = "older than its inputs; changed: " + (", ".join(changed) or "its inputs")
            continue
        if state.errors:
            state.state = PREFLIGHT
            state.reason = "; ".join(f"{f['code']}: {f['message']}" for f in state.errors)
    return states


def signed_copy_note(layout, manifest: Manifest, recipient_id: str, invalid: bool = False) -> SignedNote | None:
    """What is wrong with a letter's signed copy (``invoke sign``), from the
    record, or None: none made, or the signed copy of the letter as it is.
    ``invalid``: the recipient's entry is (its letter of before kept, not ready)."""
    entry = manifest.letters.get(recipient_id) or {}
    signed = layout.signed_pdf(recipient_id)
    if "sha256" not in entry and signed.is_file():  # removed, or never built since: nothing to sign
        return SignedNote(f"{layout.relative(signed)} is the signed copy of a letter that is not built now")
    if invalid and signed.is_file():
        return SignedNote(f"{layout.relative(signed)} is the signed copy of a letter that is not ready: its "
                          "recipient's entry is invalid")
    return _signed_note(layout, signed, entry.get("signed"), "letter", entry.get("sha256"), "is not on the record",
                        manifest)


def signed_bundle_note(layout, manifest: Manifest) -> SignedNote | None:
    """What is wrong with the signed bundle (``invoke sign``), from the
    record, or None: none made, or the signed copy of the bundle as it is."""
    bundle = manifest.bundle or {}
    # merge writes a new record: a bundle merged since its signing has none
    return _signed_note(layout, layout.bundle_signed, bundle.get("signed"), "bundle", bundle.get("sha256"),
                        f"is not on the record as the signed copy of {bundle.get('file', 'bundle.pdf')} "
                        "as merged last", manifest)


# What the person fills in when the record names no key: a bare `invoke sign` only
# answers "give either --p12 FILE or --pkcs11-lib ...".
KEY_TO_FILL_IN = {"p12": "YOUR-KEY.p12"}


def sign_command(manifest: Manifest) -> str:
    """The ``sign`` command to suggest, with a key, so that it works as written: the
    key the last ``sign`` in this build folder was given (each signed copy's record
    keeps it, ``sign.key_record``, and when it was given), else ``--p12 YOUR-KEY.p12``
    to fill in. Not simply the first record's key: a bundle signed with one key and a
    letter signed since with another named the older key."""
    records = itertools.chain([(manifest.bundle or {}).get("signed")],
                              (entry.get("signed") for entry in manifest.letters.values()))
    keyed = [r for r in records if isinstance(r, dict) and isinstance(r.get("key"), dict) and r["key"]]
    # the latest given (a record from before "given" was kept counts as oldest)
    latest = max(keyed, key=lambda r: str(r.get("given", "")), default={"key": KEY_TO_FILL_IN})
    return command("sign" + key_flags(latest["key"]))


def key_flags(key: dict) -> str:
    """``sign``'s flags for a key record: {"p12": path} or {"pkcs11_lib", "token", "key"}."""
    import shlex

    # in sign's own order (the manifest keeps its keys sorted)
    return "".join(f" --{name.replace('_', '-')} {shlex.quote(str(key[name]))}"
                   for name in ("p12", "pkcs11_lib", "token", "key") if key.get(name))


class SignedNote(str):
    """What is wrong with a signed copy, in words; ``changed``: the file is not
    one ``sign`` made and recorded (edited, replaced, put there by hand), which
    needs a person, as a letter changed since its build does. A signed copy of
    an older letter only needs ``sign`` again."""

    changed: bool = False

    def __new__(cls, text: str, changed: bool = False) -> "SignedNote":
        note = super().__new__(cls, text)
        note.changed = changed
        return note


def _signed_note(layout, signed: Path, record: dict | None, made_from: str, now: str | None,
                 unrecorded: str, manifest: Manifest) -> SignedNote | None:
    """What is wrong with ``signed``, the signed copy of a ``made_from`` whose
    hash is ``now``, by the ``record`` sign kept; None when nothing is. The
    command that mends it (``sign_command``) is looked up in ``manifest`` only for
    a copy that needs it: status asks this of every letter. Only the file sign
    recorded is a signed copy: one that merely holds a valid signature (another
    key's, over a stamp added to the letter) is not."""
    if not signed.exists():
        return None
    name = layout.relative(signed)
    if not signed.is_file():
        return SignedNote(f"{name} is not a file: run {sign_command(manifest)}", changed=True)
    if not record or made_from not in record:  # none, or only the key of copies forgotten (sign._forget_signed)
        return SignedNote(f"{name} {unrecorded}: run {sign_command(manifest)}", changed=True)
    if record.get(made_from) != now:
        return SignedNote(f"{name} is the signed copy of an older {made_from}: run {sign_command(manifest)}")
    try:
        if current_sha256(signed, record) != record.get("sha256"):
            return SignedNote(f"{name} changed since it was signed: run {sign_command(manifest)}", changed=True)
    except OSError:
        return SignedNote(f"{name} cannot be read: run {sign_command(manifest)}", changed=True)
    return None


def stray_bundle_note(layout, manifest: Manifest) -> str | None:
    """After `merge --output other.pdf`, an earlier bundle.pdf is no longer on
    the record: nothing vouches for it, so it is not left looking like the
    bundle. What to say of it, or None."""
    recorded_file = layout.root / manifest.bundle["file"] if manifest.bundle else None
    if not layout.bundle.exists() or (recorded_file is not None
                                      and recorded_file.resolve() == layout.bundle.resolve()):
        return None
    wrote = f"merge last wrote {layout.relative(recorded_file)}" if recorded_file else "no merge on record"
    return (f"{layout.relative(layout.bundle)} is not on the record ({wrote}): run {command('merge')} "
            "to write it again, or delete it")


# what a web build keeps in web/ beside the copies
WEB_BUILD_FILES = {"manifest.json", ".lock", "tex", "work"}
# a web copy or its page, of any date (one of an earlier letter.date is stale, not a stray)
_WEB_COPY_RE = re.compile(r"\d{4}-\d{2}-\d{2}-([a-z0-9-]+)\.(?:pdf|html)")


def _is_web_copy_of(name: str, ids: set[str]) -> bool:
    found = _WEB_COPY_RE.fullmatch(name)
    return bool(found) and found.group(1) in ids


def strays(layout, manifest: Manifest, ids: list[str]) -> list[Path]:
    """Files in the letters' and signed copies' folders that are no letter of the batch nor
    on the record (a PDF copied into letters/ by hand): no task builds, merges, signs or
    sends them, and status named none of them, so they sat beside the letters to be posted.
    For a web layout, the files in web/ that are no web copy or page of the batch."""
    from .files import is_temporary

    ours = set(ids) | set(manifest.letters)
    if not layout.letters_folder:  # web copies: <date>-<id>.pdf and .html beside what builds them
        # (a page edited by hand and saved there was published with them, and clean deleted it)
        root = layout.root
        if not root.is_dir() or root.is_symlink():
            return []
        return sorted(entry for entry in root.iterdir() if entry.name not in WEB_BUILD_FILES
                      and not is_temporary(entry.name) and not _is_web_copy_of(entry.name, ours))
    found = []
    for folder in (layout.letters, layout.signed):
        if folder.is_dir() and not folder.is_symlink():
            found += sorted(entry for entry in folder.iterdir() if not is_temporary(entry.name)
                            and not (entry.suffix == ".pdf" and entry.stem in ours))
    return found


@dataclass
class BundleState:
    state: str  # "ready", "never merged", "changed", "stale"
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.state == READY


SHOWN_IDS = 10


def some_ids(ids: list[str]) -> str:
    """``ids`` comma-separated, the first ``SHOWN_IDS`` of a long list and how many more:
    every letter is listed on its own line already, and the bundle's one line naming 1500
    letters filled the screen (25 KB)."""
    if len(ids) <= SHOWN_IDS + 1:
        return ", ".join(ids)
    return ", ".join(ids[:SHOWN_IDS]) + f" and {len(ids) - SHOWN_IDS} more"


def bundle_state(prepared, manifest: Manifest, letters: list[LetterState] | None = None,
                 path=None) -> BundleState:
    """Is the bundle (``path``, by default the layout's) the one merge wrote,
    holding every current letter as it is now, and is every letter ready?"""
    layout = prepared.layout
    bundle = manifest.bundle
    if not bundle:
        # a bundle.pdf with no merge on the record (the record lost): not "no bundle" beside it
        none = "no merge on the record" if layout.bundle.exists() else "no bundle"
        letters = letter_states(prepared, manifest) if letters is None else letters
        not_ready = [s.recipient for s in letters if not s.ready]
        if not_ready:  # merge refuses them: it was suggested all the same, and refused
            return BundleState(NEVER_MERGED, f"{none}: {command('merge')} once every letter is ready (not "
                                             f"yet: {some_ids(not_ready)})")
        return BundleState(NEVER_MERGED, f"{none}: run {command('merge')}")
    path = path or layout.root / bundle["file"]
    name = layout.relative(path)
    if not path.is_file():
        return BundleState(CHANGED, f"{name} {missing(path)}")
    if current_sha256(path, bundle) != bundle.get("sha256"):
        return BundleState(CHANGED, f"{name} changed since it was merged")
    letters = letter_states(prepared, manifest) if letters is None else letters
    not_ready = [s for s in letters if not s.ready]
    if not_ready:
        # a letter new to the batch is not in the bundle: it is named apart
        held = set(bundle.get("letters") or [])
        inside = [s.recipient for s in not_ready if s.recipient in held]
        outside = [s.recipient for s in not_ready if s.recipient not in held]
        return BundleState(STALE, "; ".join(
            ([f"it holds letters that are not ready: {some_ids(inside)}"] if inside else [])
            + ([f"the batch has letters not in it and not ready: {some_ids(outside)}"] if outside else [])))
    wanted = [s.recipient for s in letters]
    merged = bundle.get("letters") or []
    if merged != wanted:
        # which way it differs: recipients put in another order read "its letters are not
        # the batch's letters now", as if letters had come or gone
        in_bundle, in_batch = set(merged), set(wanted)  # (sets: 10,000 letters each)
        added = [rid for rid in wanted if rid not in in_bundle]
        gone = [rid for rid in merged if rid not in in_batch]
        why = "; ".join(([f"letters new to the batch: {some_ids(added)}"] if added else [])
                        + ([f"letters no longer in the batch: {some_ids(gone)}"] if gone else [])) \
            or "the batch has its letters in another order now"
        return BundleState(STALE, f"{why}; run {command('merge')}")
    held = bundle.get("inputs", {})
    older = [rid for rid in wanted if held.get(rid) != manifest.letters[rid].get("sha256")]
    if older:
        return BundleState(STALE, "older than its letters (rebuilt since the merge): "
                           + some_ids(older) + f"; run {command('merge')}")
    # (a record from before "made_with" was kept says nothing either way)
    if (bundle.get("options") or {}).get("cover") and bundle.get("made_with") not in (None, made_with(prepared)):
        return BundleState(STALE, f"its cover sheet is older than the letterhead or the builder; run {command('merge')}")
    return BundleState(READY)


def made_with(prepared) -> str:
    """What the cover sheet is made with besides the letters and the batch's
    words: the inputs every letter shares (letterhead, images, builder, TeX),
    by content. A change there can leave every letter's bytes as they were
    (a cover-only macro of the class) and still change the cover."""
    shared = prepared.sources[0].inputs if prepared.sources else {}
    return sha256_bytes(json.dumps({k: v for k, v in shared.items() if k not in ("source", "key")},
                                   sort_keys=True).encode())
