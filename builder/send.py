"""Send stage, the pipeline's last: each ready letter e-mailed to its recipient, exactly once.

Each ready letter whose recipient has an ``email`` goes as one message with
one attachment, byte for byte: its signed copy (``invoke sign``) when it has
one (a signed copy of an older letter holds the letter back), else the letter.
Subject and body come from ``letter.email`` (``string.Template`` placeholders,
never format()).

Exactly once rests on the send log, ``<build>/sent.json``, written atomically
and synced to disk at each step: "attempting" (with the Message-ID) before the
envelope is sent, "data" just before the message itself is handed over, and
"sent" once the server accepted it. So a run killed at any point leaves a log
that says, for every letter, either that the server cannot have it (it is sent
on the next run) or that it might: a letter whose message was handed over
without the server's answer being logged (killed, or the connection dropped,
right then) is "unknown", and is never sent again without a person deciding:
``--resend ID`` (which sends that letter alone) or ``--mark-sent ID``. A refused
address or a server error fails only that letter; the next run retries only what
failed.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import smtplib
import ssl
import string
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY, SMTPUTF8 as SMTPUTF8_POLICY
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from . import command
from .ready import sign_command
from .files import write_atomic

SECURITY = {"starttls": 587, "ssl": 465, "none": 25}
DEFAULT_SUBJECT, UNTITLED_SUBJECT = "$title", "Letter of $date"
DEFAULT_BODY = "Please find attached a letter from $sender."


class SendError(Exception):
    """Sending cannot start (settings, an unknown id): one line."""


@dataclass
class SmtpSettings:
    """Where mail goes: invoke's ``letterbatch.smtp`` config, and a password
    from the environment or a prompt (never a flag)."""

    host: str = "localhost"
    port: int = 0  # 0: the usual port for ``security``
    security: str = "starttls"  # starttls | ssl | none
    user: str = ""
    sender: str = ""  # the From address (config key ``from``); default: the letter's sender e-mail
    password: str | None = None
    timeout: float = 60.0

    def __post_init__(self):
        if self.security not in SECURITY:
            raise SendError(f"letterbatch.smtp.security must be one of {', '.join(SECURITY)}, "
                            f"not {self.security!r}")
        self.port = int(self.port or SECURITY[self.security])

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.security}{', as ' + self.user if self.user else ''})"


@dataclass
class Delivery:
    """One message to send: a letter, its address, what is attached."""

    recipient: str
    address: str
    pdf: Path
    signed: bool
    subject: str
    body: str
    filename: str
    letter_sha256: str
    sha256: str = ""  # the attached file's, when it was judged: another file there now is not sent
    # what of the e-mail is in a language the letter is not in ("subject and body in English")
    other_language: str = ""
    words: str = ""  # what the letter says (``build.words_of``): the same letter, built again


@dataclass
class Outcome:
    recipient: str
    status: str  # "sent", "would send", "failed", "unknown", "already sent", "not ready", "no address", "marked sent"
    detail: str = ""
    state: str | None = None  # a letter not ready (or sent, and stale since): its state by the readiness rule

    @property
    def ok(self) -> bool:
        return self.status in ("sent", "would send", "already sent", "marked sent")


# ---- the send log -----------------------------------------------------------

class SendLog:
    """``<build>/sent.json``: per letter, the last attempt (and earlier ones in
    ``history``): state, address, Message-ID, time, the attached PDF's SHA-256."""

    def __init__(self, path: Path, letters: dict[str, dict] | None = None):
        self.path, self.letters = path, letters or {}

    @classmethod
    def read(cls, path: Path) -> "SendLog":
        if not path.exists():
            return cls(path)
        try:
            if not path.is_file():  # a folder, or a named pipe whose reading would never end
                raise OSError("not a file")
            # utf-8-sig: a byte order mark an editor saved it with (Notepad) means nothing
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            letters = data.get("letters", {})
            if not isinstance(letters, dict):
                raise ValueError('"letters" is not a table of letters')
            for rid, entry in letters.items():
                problem = _entry_problem(entry)
                if problem:
                    raise ValueError(f"letter {rid!r}: {problem}")
            return cls(path, letters)
        except (OSError, ValueError, AttributeError, RecursionError) as exc:
            # never guess: a log that cannot be read could hide letters already sent (an
            # entry edited to a state the log never writes counted as never sent: mailed again)
            raise SendError(f"{path} cannot be read ({exc}); restore it, or move it away "
                            "only if no letter of this batch was sent") from None

    def record(self, rid: str, **entry) -> dict:
        """Start a new entry for ``rid``; the old one (if any) goes into its history."""
        old = self.letters.get(rid) or {}
        history = old.get("history", [])
        if old.get("state") not in (None, "failed", "attempting") or old.get("stage") == "data":
            # what may have reached the recipient stays on the record
            history = history + [{k: v for k, v in old.items() if k != "history"}]
        self.letters[rid] = {**entry, **({"history": history} if history else {})}
        self.save()
        return self.letters[rid]

    def update(self, rid: str, **changes) -> None:
        self.letters[rid].update(changes)
        self.save()

    def save(self) -> None:
        data = json.dumps({"letters": self.letters}, indent=2, ensure_ascii=False) + "\n"
        write_atomic(self.path, data.encode(), durable=True)

    def pending(self, rid: str) -> str | None:
        """What the log says about ``rid`` that stops it from being sent as new:
        "sent", "unknown", or None (never sent, or it surely failed)."""
        entry = self.letters.get(rid)
        if not entry:
            return None
        if entry["state"] in ("sent", "marked sent"):
            return "sent"
        if entry["state"] == "unknown" or (entry["state"] == "attempting" and entry.get("stage") == "data"):
            return "unknown"
        return None  # failed, or attempting but killed before the message was handed over


class MailedFromAnyFolder:
    """Every letter handed to a mail server by this user, from any build folder:
    ``$XDG_STATE_HOME/letterbatch/mailed.jsonl`` (``~/.local/state``), a line per
    letter (address, the letter's SHA-256, the build folder, when), written before
    the message is handed over. A build folder's own send log says what it sent;
    this says what was sent from elsewhere: the same batch built into a second
    folder (the batch file renamed, ``-b``, the ``letterbatch`` command run in
    another folder) has a log of its own, empty, and mailed everyone again."""

    def __init__(self) -> None:
        state = os.environ.get("XDG_STATE_HOME", "")
        if not os.path.isabs(state):  # unset, empty or relative: the XDG spec ignores it
            # (`XDG_STATE_HOME=state` was read from the folder a command ran in: each folder a
            # log of its own, and the same letters sent from another went to everyone again)
            state = str(Path.home() / ".local" / "state")
        self.path = Path(state) / "letterbatch" / "mailed.jsonl"
        self._entries: list[dict] | None = None  # read once, when first asked
        self._read_to = 0  # how much of the file was read: what is past it, another send added since
        self._since: list[dict] = []  # the entries added after the first reading (``claim``)
        self._logs: dict[str, SendLog | None] = {}  # other folders' send logs, as read (``fate_there``)
        self._index: dict[tuple, list[int]] | None = None  # entries by letter, made once (``_latest_first``)
        self.not_noted: OSError | None = None  # why a letter handed over could not be noted (``claim``)

    def find(self, address: str | None, letter_sha256: str, folder: Path, elsewhere_only: bool = False,
             words: str = "") -> dict | None:
        """The last time this letter went to ``address``, from any folder (``elsewhere_only``:
        from a folder other than ``folder``): asked only for a letter ``folder``'s own send log
        does not hold as sent, so an entry of ``folder`` itself means that log was lost (a build
        folder in /tmp, gone with a restart, built again) or deleted: it was not asked, and the
        letter went a second time. ``address`` None: to any address (`status`, which reads no
        batch: a letter's bytes are its one recipient's). The letter is the same by its bytes
        or by its ``words`` (``build.words_of``): built again by an updated letterbatch. A
        hand-over its own folder's send log says failed is none (``fate_there``)."""
        self.read()
        address = address if address is None else address.lower()
        here = str(folder.resolve())
        return next((entry for entry in self._latest_first(letter_sha256, words)
                     if address in (None, entry.get("address"))
                     and not (elsewhere_only and entry.get("folder") == here)
                     and self.fate_there(entry) != "failed"), None)

    def _latest_first(self, letter_sha256: str, words: str) -> list[dict]:
        """The entries of this letter (``same_letter``), the latest first, by an index made once:
        each letter of a send looked through every entry (10,000 letters, 10,000 entries)."""
        if self._index is None:
            self._index = {}
            for position, entry in enumerate(self._entries):
                for kind in ("letter_sha256", "words"):
                    if isinstance(entry.get(kind), str) and entry[kind]:
                        self._index.setdefault((kind, entry[kind]), []).append(position)
        found = set(self._index.get(("letter_sha256", letter_sha256), ()))
        found.update(self._index.get(("words", words), ()) if words else ())
        return [self._entries[position] for position in sorted(found, reverse=True)]

    def fate_there(self, entry: dict) -> str:
        """What the send log of the folder a hand-over was noted from says of it now:
        "failed" (the server refused the message after all, or the connection broke before
        its end, or a later try there was stopped before handing it over again: nobody has
        it, and it was held as already sent), "unknown" (that log cannot
        say; it was "already sent" here, and nobody was told to check the mailbox), else
        "sent", also when that folder or its log is gone or cannot be read: a hand-over counts
        as delivered unless its own folder's log says otherwise."""
        from .build import Layout

        folder = str(entry.get("folder"))
        if folder not in self._logs:
            try:
                self._logs[folder] = SendLog.read(Layout.of(folder).sent)
            except (SendError, OSError, ValueError):
                self._logs[folder] = None
        log = self._logs[folder]
        attempt = (log.letters.get(str(entry.get("id"))) or {}) if log is not None else {}
        if (attempt.get("letter_sha256") != entry.get("letter_sha256")
                or str(attempt.get("address", "")).lower() != entry.get("address")):
            return "sent"  # another letter by that id since (its own hand-over noted too), or none
        earlier = [old for old in attempt.get("history", []) if old.get("letter_sha256") == entry.get("letter_sha256")]
        if any(old.get("state") in ("sent", "marked sent") for old in earlier):
            return "sent"  # an earlier attempt went: a later one's failure takes nothing back
        pending = log.pending(str(entry.get("id")))
        if pending is None and any(old.get("state") == "unknown" or (old.get("state") == "attempting"
                                                                     and old.get("stage") == "data") for old in earlier):
            # an earlier attempt that may have arrived ("unknown", or killed as its message went),
            # then a --resend that failed: the first may be in the mailbox (it was mailed again)
            return "unknown"
        if pending is None:
            # refused, or a later try stopped before its message was handed over ("attempting",
            # the envelope): nobody has it (that was read as sent, and held here for good)
            return "failed"
        return pending  # "sent" or "unknown"

    def read(self) -> None:
        """Read the record, once: what is added to it after this, another send added."""
        if self._entries is None:
            try:
                text = self.path.read_bytes() if self.path.is_file() else b""
            except OSError:
                text = b""
            # read to the end of the last whole line: a line another send is writing now is
            # read whole just before a hand-over (``claim``); its first half was taken as read,
            # the rest was no line, and that letter went from both folders
            self._entries, self._read_to = _entries_of(text), text.rfind(b"\n") + 1

    def claim(self, address: str, letter_sha256: str, folder: Path, rid: str, words: str = "") -> dict | None:
        """Note this letter as handed over, just before it is, unless a send in another folder
        handed it over since this run read the record (two sends of the same batch from two
        folders at once both found nothing, and mailed everyone twice): that one's entry, and
        nothing noted. Under a lock, so of two at once one notes it and the other finds it."""
        import fcntl

        here = str(folder.resolve())
        line = json.dumps({"address": address.lower(), "letter_sha256": letter_sha256, "words": words,
                           "folder": here, "id": rid, "time": _now()}) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                # what was added since the last reading, kept: read from where it stopped, each
                # claim reads the file once in all, not once per letter (10,000 letters)
                size = os.fstat(handle).st_size
                added = os.pread(handle, max(size - self._read_to, 0), self._read_to)
                self._since += _entries_of(added[:added.rfind(b"\n") + 1])  # (a line being written: next time)
                self._read_to += added.rfind(b"\n") + 1
                meanwhile = next((entry for entry in reversed(self._since) if entry.get("address") == address.lower()
                                  and same_letter(entry, letter_sha256, words) and entry.get("folder") != here), None)
                if meanwhile is not None:
                    return meanwhile
                # a line a crash cut short ends here, not glued to the front of this one
                ends_cut = size and os.pread(handle, 1, size - 1) != b"\n"
                os.write(handle, (b"\n" if ends_cut else b"") + line.encode())
                os.fsync(handle)
            finally:
                os.close(handle)  # and with it the lock
        except OSError as exc:
            # the folder's own log, written first, still keeps this folder from mailing it twice;
            # another folder's send would not know it went, so ``send`` says so (``warn``)
            self.not_noted = self.not_noted or exc
        return None


def _noting_fix(error: OSError) -> str:
    """What makes the user's record of hand-overs writable again, by why it was not: a file
    where its folder should be ("File exists") was told to make that folder writable."""
    import errno

    if error.errno in (errno.EEXIST, errno.ENOTDIR) and error.filename:
        # the file in the way is the first part of the path that is no folder
        path = Path(os.fsdecode(error.filename))
        in_way = next((part for part in reversed([path, *path.parents]) if part.exists() and not part.is_dir()),
                      path)
        return f"{in_way} is a file where a folder should be: move it away, or set XDG_STATE_HOME to another folder"
    if error.errno == errno.EISDIR and error.filename:
        return f"{os.fsdecode(error.filename)} is a folder where the file should be: move it away"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space there, or set XDG_STATE_HOME to a folder on another disk"
    return "make that folder writable, or set XDG_STATE_HOME to a folder that is"


def same_letter(entry: dict, letter_sha256: str, words: str = "") -> bool:
    """Is the letter ``entry`` of the user's record says was handed over this one: the
    same bytes, or the same words (``build.words_of``; an entry written before words were
    recorded has none)?"""
    return entry.get("letter_sha256") == letter_sha256 or bool(words) and entry.get("words") == words


def _entries_of(text: bytes) -> list[dict]:
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: the folder's own log still holds
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


# What the log writes: each letter's last attempt is in one of these states, and the
# stage an attempt reached
LOG_STATES = ("attempting", "sent", "failed", "unknown", "marked sent")
LOG_STAGES = ("envelope", "data")


def _entry_problem(entry) -> str | None:
    """What makes ``entry`` not a letter's entry as the log writes it, or None."""
    if not isinstance(entry, dict):
        return "its entry is not a table"
    if entry.get("state") not in LOG_STATES:
        return f"state {entry.get('state')!r} is not one the log writes ({', '.join(LOG_STATES)})"
    if entry.get("stage", "envelope") not in LOG_STAGES:
        return f"stage {entry.get('stage')!r} is not one the log writes ({', '.join(LOG_STAGES)})"
    for field in ("address", "message_id", "time", "letter_sha256", "sha256", "words"):
        if field in entry and not isinstance(entry[field], str):
            return f"{field} {entry[field]!r} is not text"
    if not isinstance(entry.get("address"), str):
        return "it names no address"
    if not isinstance(entry.get("history", []), list):
        return "its history is not a list"
    return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def unknown_help(rid: str) -> str:
    """What to do about a letter whose fate is unknown. Without the word "unknown":
    send's table has it in its status column ("unknown  unknown: the ..." said it twice);
    status says "mail: unknown: " before it."""
    return ("the message may have reached the server, but the log cannot say; "
            f"check the mailbox, then {command(f'send --resend {rid} --yes')} or {command(f'send --mark-sent {rid}')}")


# ---- what to send -------------------------------------------------------------

@dataclass
class Plan:
    """Every letter of the batch, in YAML order: a Delivery to send, or the
    Outcome that says why it is not sent this time."""

    letters: list  # Delivery | Outcome
    log: SendLog
    root: Path  # the build folder
    sender: str  # the letter's sender, name and e-mail (``from_sender``): the default From
    mailed: "MailedFromAnyFolder"  # the user's record of hand-overs, as this plan read it

    @property
    def deliveries(self) -> list[Delivery]:
        return [item for item in self.letters if isinstance(item, Delivery)]


def plan(recipients_yaml: str | Path, build_dir: str | Path, *, resend: list[str] = ()) -> Plan:
    """What this run would send, and why every other letter is not sent. With
    ``resend``, the run is about those letters alone."""
    from .build import prepare
    from .compose import marking
    from .manifest import Manifest
    from .ready import letter_states, no_such_ids

    prepared = prepare(recipients_yaml, build_dir)
    layout, letter = prepared.layout, prepared.loaded.batch.letter
    manifest = Manifest.read(layout.root)
    log = SendLog.read(layout.sent)
    recipients = {s.recipient.id: s.recipient for s in prepared.sources}
    unknown_ids = no_such_ids(resend, recipients, [label for label, _, _ in prepared.rejected])
    if unknown_ids:
        raise SendError(f"--resend: {unknown_ids}")
    # a letter the log has under an id the batch no longer has (renamed; in a spreadsheet
    # without ids, a name corrected), or has for someone at another address now (the id
    # given to a new recipient): by its address, so renaming never mails anyone twice
    present = set(recipients) | {label for label, _, _ in prepared.rejected}  # invalid for now is not gone

    def elsewhere(old: str, address: str) -> bool:
        now = recipients.get(old)
        return old not in present or (now is not None and (now.email or "").lower() != address)

    gone = {entry.get("address", "").lower(): old for old, entry in log.letters.items()
            if log.pending(old) and entry.get("address") and elsewhere(old, entry["address"].lower())}
    # recipients from a spreadsheet: an address is added in its row, not in the YAML
    table = next((Path(name).name for name in prepared.loaded.inputs), None)
    mailed = MailedFromAnyFolder()
    letters = []
    for state in letter_states(prepared, manifest):
        rid = state.recipient
        if resend and rid not in resend:  # a run to send some letters again sends nothing else
            continue
        recipient = recipients.get(rid)
        earlier = gone.get((recipient.email or "").lower()) if recipient is not None else None
        held = _why_not(rid, state, recipient, log, manifest, layout, prepared.loaded.path.name,
                        rid in resend, earlier, frozenset(present), table)
        attached = held or _attachment(rid, layout, manifest)  # an Outcome, or (file, its SHA-256)
        if not isinstance(attached, Outcome) and rid not in resend:
            # also a letter this folder tried and failed to mail: it may have gone from another
            # folder since (the next run here mailed it a second time)
            attached = _mailed_elsewhere(rid, recipient, manifest, layout, mailed, log.letters.get(rid)) or attached
        batch = prepared.loaded.batch
        letters.append(attached if isinstance(attached, Outcome) else
                       _delivery(letter, recipients[rid], layout, manifest, *attached,
                                 marking=marking(batch, recipients[rid]),
                                 languages=batch.languages_of(recipients[rid])))
    mailed.read()  # now, if no letter asked: what is added later, another send added meanwhile
    return Plan(letters, log, layout.root, from_sender(letter.sender), mailed)


def from_sender(sender) -> str:
    """The default From: the letter's sender by name and address ("Dame Sara Thornton
    DBE QPM <iasc@...>"), quoted where the name needs it; the message encodes a name
    with accents (RFC 2047). The bare address told the recipient nothing of who wrote."""
    from email.headerregistry import Address

    if not sender.email:
        return ""
    return str(Address(display_name=sender.name or "", addr_spec=sender.email))


def _mailed_elsewhere(rid: str, recipient, manifest, layout, mailed: MailedFromAnyFolder,
                      tried: dict | None = None) -> Outcome | None:
    """"already sent" for a letter this folder never mailed that was handed to a server,
    to this address, from another build folder of the same letter. ``tried``: this folder's
    send log entry of a failed attempt: then only a hand-over from elsewhere counts (this
    folder's own is in that entry); whenever it was, as one while this folder's send was
    under way is older than its attempt."""
    if not recipient.email:
        return None
    entry = manifest.letters[rid]
    before = mailed.find(recipient.email, entry["sha256"], layout.root, elsewhere_only=bool(tried),
                         words=entry.get("words", ""))
    if before is None:
        return None
    which = _which_letter(before, entry["sha256"])
    if before.get("folder") == str(layout.root.resolve()):  # this folder's send log lost or deleted
        return Outcome(rid, "already sent", f"{which}, from this build folder, whose send log "
                                            f"({layout.sent.name}) no longer has it (deleted, or lost with the "
                                            f"folder), as '{before.get('id')}' on {before.get('time') or '?'} to "
                                            f"{recipient.email}; {command(f'send --resend {rid} --yes')} mails it again")
    if mailed.fate_there(before) == "unknown":  # it was "already sent" here: nobody checked the mailbox
        return Outcome(rid, "unknown", unknown_elsewhere(rid, before, which))
    return Outcome(rid, "already sent", f"{which}, from another build folder ({before.get('folder')}, "
                                        f"as '{before.get('id')}') on {before.get('time') or '?'} to {recipient.email}; "
                                        f"{command(f'send --resend {rid} --yes')} mails it again from here")


def unknown_elsewhere(rid: str, before: dict, which: str = "this very letter") -> str:
    """What to do about a letter handed to the server from another build folder whose send
    log cannot say if it arrived (``MailedFromAnyFolder.fate_there``)."""
    return (f"{which} was handed to the server from another build folder ({before.get('folder')}, as "
            f"'{before.get('id')}') on {before.get('time') or '?'} to {before.get('address')}, and that folder's "
            f"send log cannot say whether it arrived; check the mailbox, then settle it in that folder (`send "
            f"--mark-sent {before.get('id')}` or `send --resend {before.get('id')} --yes` there), or "
            f"{command(f'send --resend {rid} --yes')} mails it from here")


def _same_words(sent: dict, letter: dict) -> str:
    """", with the same words, ...", of a letter rebuilt since it was mailed whose words
    (``build.words_of``) are those mailed, as a letterbatch updated since builds them; else ""."""
    same = bool(sent.get("words")) and sent.get("words") == letter.get("words")
    return " with the same words (by another letterbatch or letterhead: the recipient has its text)" if same else ""


def _which_letter(before: dict, letter_sha256: str) -> str:
    """The letter a hand-over on the user's record was: this very file, or the same words
    built before (by a letterbatch updated since, whose letters' bytes are not the same)."""
    return ("this very letter" if before.get("letter_sha256") == letter_sha256 else
            "this letter (the same words, built before and since built again)")


def _address_now(entry: dict, given: str, resend: str) -> str:
    """What status and send add of a letter whose recipient's address the batch now gives
    otherwise than the one it was last mailed to: the --resend that mails it there, or, when
    that address had this very letter already (the address put back after a --resend to a
    corrected one), when: the --resend offered mailed them a second copy."""
    for earlier in reversed(entry.get("history") or []):
        if earlier.get("state") == "sent" and str(earlier.get("address", "")).lower() == given.lower() \
                and earlier.get("letter_sha256") == entry.get("letter_sha256"):
            return f"; the batch now gives {given}, which had this letter on {earlier.get('time', '?')}"
    return f"; the batch now gives {given}: {resend} mails it there, if the old address did not reach them"


def _why_not(rid, state, recipient, log: SendLog, manifest, layout, yaml_name: str, resending: bool,
             earlier: str | None = None, present: frozenset = frozenset(), table: str | None = None):
    """The Outcome that keeps a letter from being sent now, or None. ``earlier``: an id
    no longer in the batch (or not in ``present``'s at that address now) whose letter the
    log has at this recipient's address. ``table``: the spreadsheet the recipients are
    the rows of, by name."""
    entry = log.letters.get(rid, {})
    pending = log.pending(rid)
    # this id's letter went to another address, and this recipient's address had its letter under
    # another id: two rows of one name swapped in a spreadsheet without ids, so each id is now the
    # other person's. Each letter read as "rebuilt since" to be sent again: both got a second copy
    swapped = bool(entry) and recipient is not None and \
        str(entry.get("address", "")).lower() != (recipient.email or "").lower()
    if (not entry or swapped) and earlier and not resending:
        old = log.letters[earlier]
        status = "already sent" if log.pending(earlier) == "sent" else "unknown"
        why = ("now the id of a recipient at another address" if earlier in present
               else f"an id no longer in {yaml_name}: renamed?")
        changed = old.get("words") and old.get("words") != manifest.letters.get(rid, {}).get("words")
        return Outcome(rid, status, f"as '{earlier}' ({why}) "
                                    f"on {old.get('time', '?')} to {old.get('address', '?')}"
                                    + ("; the letter has changed since" if changed else "") + "; "
                                    f"{command(f'send --resend {rid} --yes')} sends it to them again")
    if pending == "sent" and not resending:
        note = f"on {entry.get('time', '?')} to {entry.get('address', '?')}"
        if manifest.letters.get(rid, {}).get("sha256") not in (None, entry.get("letter_sha256")):
            resend = f"{command(f'send --resend {rid} --yes')} sends the new one"
            if not state.ready:  # the resend would be refused: say what stands in its way first
                resend = f"it is {state.said()}; once it is ready, {resend}"
            elif isinstance(_attachment(rid, layout, manifest), Outcome):
                resend = f"sign it again with {sign_command(manifest)}, then {resend}"
            note += f"; the letter was rebuilt since{_same_words(entry, manifest.letters[rid])}: {resend}"
        elif recipient is not None and recipient.email and \
                recipient.email.lower() != str(entry.get("address", "")).lower():
            # an address corrected after the letter went (a typo, a bounce): held, as a letter is
            # mailed once unless a person says so, but said: it read as if the new address had it
            note += _address_now(entry, recipient.email, command(f"send --resend {rid} --yes"))
        # a stale letter mailed as it is keeps its state: the build hint leaves it out by name
        return Outcome(rid, "already sent", note, state=None if state.ready else state.state)
    if pending == "unknown" and not resending:
        return Outcome(rid, "unknown", unknown_help(rid))
    if not state.ready:
        return Outcome(rid, "not ready", state.said(), state.state)  # "stale: why", as merge and sign say
    if not recipient.email:
        return Outcome(rid, "no address", f"fill in recipient '{rid}''s e-mail address in {table} (its row, "
                                          "in the column for the field `email`)" if table
                       else f"add `email:` to recipient '{rid}' in {yaml_name}")
    return None


def _attachment(rid: str, layout, manifest) -> tuple[Path, str] | Outcome:
    """What a ready letter's message attaches, and that file's SHA-256 as judged
    now: its signed copy when it has one, else the letter (the readiness rule
    found it to be the file its build recorded)."""
    from .ready import signed_copy_note
    from .sign import signed_copy_sha256

    signed = layout.signed_pdf(rid)
    if not signed.exists():
        return layout.pdf(rid), manifest.letters[rid]["sha256"]
    # the signed copy sign made and recorded, as it was recorded (a file holding another
    # key's valid signature over a stamp added to the letter was mailed), and still intact
    note = signed_copy_note(layout, manifest, rid)
    digest = None if note else signed_copy_sha256(layout.pdf(rid), signed)
    if digest is None or digest != manifest.letters[rid]["signed"].get("sha256"):
        # never a silent fall-back to the unsigned letter
        return Outcome(rid, "not ready", (note or f"{signed.relative_to(layout.root)} is not the signed copy of the "
                                                  f"current letter: run {sign_command(manifest)} again")
                       + " (or remove it to send the letter unsigned)")
    return signed, digest


def _delivery(letter, recipient, layout, manifest, pdf: Path, sha256: str, marking: str = "",
              languages: tuple[str, ...] = ("en",)) -> Delivery:
    """What goes to ``recipient``, whose letter is in ``languages`` (first the one it
    opens in, ``language``), and in which of the e-mail's texts are not: the
    subject and body in that language when the YAML gives them by language, its
    $date too. A marked letter's subject begins with its marking
    ("OFFICIAL-SENSITIVE: ..."), as government e-mail is marked, unless the
    subject the YAML gives holds it already."""
    from .compose import long_date
    from .schema import LANGUAGES

    language, foreign = languages[0], {}

    def filled(template, default: str, part: str) -> str:
        if template is None:
            text, written_in = default, "en"
            if default == DEFAULT_SUBJECT:  # "$title": the title in the letter's language, given in it
                written_in = letter.title_in(language)[1]
        elif isinstance(template, str):  # written once: in the letter's language
            text, written_in = template, LANGUAGES[letter.language][0]
        else:  # by language: the recipient's, else the one there is
            written_in = language if language in template else next(iter(template))
            text = template[written_in]
        if written_in not in languages:  # a Welsh letter under an English e-mail: said, not silent
            foreign[part] = written_in
        return string.Template(text).safe_substitute({
            "name": recipient.name, "role": recipient.role or "", "title": (letter.title_in(written_in) or ("",))[0],
            "date": long_date(letter.date, written_in), "sender": letter.sender.name,
            "signatory": letter.signatory.name or letter.sender.name})

    rid = recipient.id
    subject = filled(letter.email.subject, DEFAULT_SUBJECT if letter.title else UNTITLED_SUBJECT, "subject")
    if marking and not _holds_marking(subject, marking):
        subject = f"{marking}: {subject}"
    return Delivery(rid, recipient.email, pdf, pdf == layout.signed_pdf(rid),
                    subject, filled(letter.email.body, DEFAULT_BODY, "body"),
                    f"{letter.date.isoformat()}-{rid}.pdf", manifest.letters[rid]["sha256"], sha256,
                    _in_another_language(foreign), manifest.letters[rid].get("words", ""))


def _holds_marking(subject: str, marking: str) -> bool:
    """Whether ``subject`` shows ``marking`` already: the marking's words themselves, in the
    capitals markings are written in (or as the batch typed it), not part of other words.
    Any text holding its letters did: a SECRET letter to "the Secretary of State", or an
    OFFICIAL one about an "unofficial" visit, went with no marking in its subject."""
    return any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", subject)
               for form in {marking, marking.upper()})


def _in_another_language(foreign: dict[str, str]) -> str:
    """"subject and body in English", of the texts of an e-mail written in a language
    its letter is not in."""
    names = {"en": "English", "cy": "Welsh"}
    by_language: dict[str, list[str]] = {}
    for part, language in foreign.items():
        by_language.setdefault(names.get(language, language), []).append(part)
    return "; ".join(f"{' and '.join(parts)} in {name}" for name, parts in by_language.items())


def message(delivery: Delivery, sender: str, message_id: str, data: bytes) -> EmailMessage:
    """The e-mail: a short text, and the PDF attached as it is."""
    mail = EmailMessage()
    name, address = parseaddr(sender)
    if "=?" in name:  # as the subject below: the sender's name arrived decoded, not as typed
        mail.set_raw("From", f"{Header(name, 'utf-8', header_name='From').encode()}\n <{address}>")
    else:
        mail["From"] = sender
    mail["To"] = delivery.address
    if "=?" in delivery.subject:
        # The header parser decodes any "=?charset?b?...?=" in the text it is given, so a
        # title holding one arrived as the text it encodes ("Bcc: ..."), not as typed:
        # such a subject goes as RFC 2047 encoded words of its own, stored unparsed.
        mail.set_raw("Subject", Header(delivery.subject, "utf-8", header_name="Subject").encode())
    else:
        mail["Subject"] = delivery.subject
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = message_id
    mail.set_content(delivery.body + "\n")
    mail.add_attachment(data, maintype="application", subtype="pdf", filename=delivery.filename)
    return mail


# ---- sending -----------------------------------------------------------------

class _Connection:
    """One SMTP connection, opened when needed and again after it dropped."""

    def __init__(self, settings: SmtpSettings):
        self.settings, self.smtp = settings, None
        # why the server is given up on for the rest of the run: it stopped answering before a
        # message (or after it) for two letters in a row, with no answer between (each letter after it waited
        # the whole timeout again, 50 letters 50 minutes; one slow over one address is waited for once)
        self.stopped_answering: str | None = None
        self.timeouts_in_a_row = 0
        self.unanswered_messages_in_a_row = 0

    def timed_out(self, exc: BaseException, rid: str, after_message: bool = False) -> None:
        """Count a letter the server said nothing to within the timeout: two in a row before
        their messages, or two after them (a server that takes each message and never answers
        it, a mail filter hung: every letter after it waited the timeout and was 'unknown', a
        mailbox to check for each), and it has stopped answering. One slow over an address and
        the next over its message are each waited for. (smtplib says a timeout as "Connection
        unexpectedly closed: timed out".)"""
        if not (isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)):
            return
        if after_message:
            self.unanswered_messages_in_a_row += 1
        else:
            self.timeouts_in_a_row += 1
        if max(self.timeouts_in_a_row, self.unanswered_messages_in_a_row) >= 2:
            s = self.settings
            self.stopped_answering = (f"not tried: {s.host}:{s.port} stopped answering (nothing within "
                                      f"{s.timeout:g} s for two letters in a row, the last {rid})")

    def answered(self) -> None:
        """The server answered a letter (took it, or refused it): it has not stopped answering."""
        self.timeouts_in_a_row = self.unanswered_messages_in_a_row = 0

    def open(self) -> smtplib.SMTP:
        if self.smtp is None:
            s = self.settings
            if s.security == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            try:
                smtp.ehlo_or_helo_if_needed()
                if s.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if s.user:
                    smtp.login(s.user, s.password or "")
            except BaseException:
                smtp.close()
                raise
            self.smtp = smtp
        return self.smtp

    def drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self.drop()


# What a login the server will not pass mail on for can do: the settings are given, and right
RELAY_FIX_WITH_LOGIN = "ask the mail server's administrator, or send through the server that login is for"


class _Refused(Exception):
    """The server answered with an error: the message was not accepted."""


def retry_hint(error: str, again: str = "") -> str:
    """What to do about a letter whose mail failed with ``error``: correct something first (an
    address the server refused for good, one with accents it cannot take, a setting), or
    just send again (a 4xx "try later", a dropped connection): it said "(a refused address:
    correct it first)" after every failure, a "try again later" too. ``again``: the words for
    sending it again (default: the send command that does)."""
    again = again or f"{command('send --yes')} tries it again"
    # a setting first: a relay refused names the address, which is not at fault
    if ": set letterbatch." in error:
        return f"{again} once that is set"
    if error.endswith(RELAY_FIX_WITH_LOGIN):
        return f"{again} once the server lets that login pass mail on"
    if re.search(r"^the server refused \S+@\S+: 5\d\d", error):
        return f"correct the address first (the server refused it for good), then {again}"
    if "(no SMTPUTF8)" in error:
        return f"give an address without accents, or send through a server that takes them; then {again}"
    # refused for good too: sent as it is, it is refused again
    if re.search(r"^the server refused the sender: 5\d\d", error):
        return f"correct the From address first (letterbatch.smtp.from, else letter.sender.email), then {again}"
    if re.search(r"^the server refused the message: 5\d\d", error):
        return f"change what the server's answer names first (it refused the message for good), then {again}"
    return again


def _relay_refused(code: int, text: bytes) -> bool:
    """Is an address refused because the server passes mail on to other domains only after a
    login ("554 5.7.1 <x>: Relay access denied", "550 5.7.1 Relaying denied")? Not a mailbox
    missing at a domain the server relays for (Postfix: "550 5.1.1 <x>: Recipient address
    rejected: User unknown in relay recipient table"), which the word "relay" made a login to
    set: an addressing status (5.1.x, RFC 3463), or a user unknown, is the address's fault."""
    said = text.decode("utf-8", "replace").strip().lower()
    return (code // 100 == 5 and "relay" in said and not re.match(r"5\.1\.\d", said)
            and "user unknown" not in said and "unknown user" not in said)


def _reply(code: int, text: bytes) -> str:
    return f"{code} {text.decode('utf-8', 'replace')}".strip()


def send(recipients_yaml: str | Path, build_dir: str | Path, settings: SmtpSettings, *,
         yes: bool = False, resend: list[str] = (), report=print, begin=None, warn=None) -> list[Outcome]:
    """Mail every ready letter not yet sent (or only ``resend``); without ``yes`` only
    say what would be sent. ``report(outcome)`` is called as each is decided;
    ``begin(ids)`` first, with every letter's id in order (to line up columns);
    ``warn(text)`` once, when the user's record of letters mailed cannot be written."""
    from .build import Layout, lock

    with lock(Layout.of(build_dir)) if yes else contextlib.nullcontext():  # no two sends (or a build) at once
        planned = plan(recipients_yaml, build_dir, resend=resend)
        sender = settings.sender or planned.sender
        if planned.deliveries and not parseaddr(sender)[1]:
            raise SendError("no From address: set letterbatch.smtp.from (INVOKE_LETTERBATCH_SMTP_FROM) "
                            "or letter.sender.email")
        if begin is not None:
            begin([item.recipient for item in planned.letters])
        outcomes = []
        connection = _Connection(settings)
        cannot_connect = None
        warned = False
        try:
            for item in planned.letters:
                if isinstance(item, Outcome):
                    outcome = item
                elif not yes:
                    warning = (f" (its e-mail's {item.other_language}, as its letter is not: give letter.email's "
                               "subject and body by language, {en: …, cy: …})") if item.other_language else ""
                    outcome = Outcome(item.recipient, "would send",
                                      f"{item.pdf.relative_to(planned.root)} ({'signed' if item.signed else 'not signed'}) "
                                      f"to {item.address}: {item.subject!r}{warning}")
                else:
                    cannot_connect = cannot_connect or connection.stopped_answering
                    if cannot_connect is None and connection.smtp is None:
                        try:
                            connection.open()
                        except (OSError, smtplib.SMTPException) as exc:
                            cannot_connect = _connect_error(settings, exc)
                    if cannot_connect is not None:
                        outcome = Outcome(item.recipient, "failed", f"{cannot_connect}; the next run retries it")
                    else:
                        outcome = _deliver(connection, planned.log, item, sender, item.recipient in resend,
                                           planned.mailed)
                        # said once, as it happens: it went on without a word, and the same letters
                        # built into another folder (a renamed batch, -b) were mailed to everyone again
                        not_noted, planned.mailed.not_noted = planned.mailed.not_noted, None
                        if not_noted is not None and warn is not None and not warned:
                            warned = True
                            warn(f"could not note the letters mailed in {planned.mailed.path} "
                                 f"({not_noted.strerror or not_noted}): a send from another build folder "
                                 "will not know they went (this folder's send log, sent.json, still keeps "
                                 f"them from going twice from here); {_noting_fix(not_noted)}")
                report(outcome)
                outcomes.append(outcome)
        except BaseException:
            # stopped (Ctrl-C, kill's SIGTERM) or failed in the middle of a letter: the server
            # may be busy with the command it was stopped in, and QUIT waited behind that
            # answer, up to the timeout (60 s), before the send stopped: just hang up
            connection.drop()
            raise
        finally:
            connection.close()
    return outcomes


def _connect_error(settings: SmtpSettings, exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the server refused the login of {settings.user!r}: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, ssl.SSLError):
        return f"no secure connection to {settings.host}:{settings.port}: {exc.reason or exc}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{settings.host}:{settings.port} refused the connection: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"{settings.host}:{settings.port} does not offer {'STARTTLS' if settings.security == 'starttls' else 'AUTH'}"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return f"cannot connect to {settings.host}:{settings.port}: {reason}"


def _deliver(connection: _Connection, log: SendLog, d: Delivery, sender: str, resending: bool,
             mailed: MailedFromAnyFolder) -> Outcome:
    """Send one letter, logging each step before it is taken."""
    from .manifest import read_as_judged

    data = read_as_judged(d.pdf, d.sha256)
    if data is None:  # changed since this run judged it (a long send): not what was checked
        return Outcome(d.recipient, "not ready",
                       f"changed: {d.pdf.relative_to(log.path.parent)} changed since it was judged ready")
    old = log.letters.get(d.recipient, {})
    same = (not resending and old.get("letter_sha256") == d.letter_sha256 and old.get("address") == d.address
            and old.get("message_id"))
    # a retry of a letter that surely failed keeps its Message-ID
    message_id = old["message_id"] if same else make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    mail = message(d, sender, message_id, data)
    # an address with accents (zoë@bücher.example) travels only by SMTPUTF8 (RFC 6531)
    international = not (d.address.isascii() and parseaddr(sender)[1].isascii())
    wire = mail.as_bytes(policy=SMTPUTF8_POLICY if international else SMTP_POLICY)
    log.record(d.recipient, state="attempting", stage="envelope", address=d.address, message_id=message_id,
               time=_now(), file=str(d.pdf.relative_to(log.path.parent)), signed=d.signed,
               sha256=d.sha256, letter_sha256=d.letter_sha256, words=d.words)
    smtp = connection.smtp
    try:
        if international and not smtp.has_extn("smtputf8"):
            raise _Refused(f"the server does not take addresses with accents or other non-ASCII characters "
                           f"(no SMTPUTF8), so it cannot mail {d.address}")
        code, text = smtp.mail(parseaddr(sender)[1], ["SMTPUTF8", "BODY=8BITMIME"] if international else [])
        if code == 530:  # 'authentication required' (RFC 4954), or TLS first (RFC 3207): a setting
            wants = ("letterbatch.smtp.security: starttls" if b"tls" in text.lower() else
                     "letterbatch.smtp.user (the password from LETTERBATCH_SMTP_PASSWORD or a prompt)")
            raise _Refused(f"the server takes mail only after a login or a secure connection ({_reply(code, text)}): "
                           f"set {wants}")
        if code != 250:
            raise _Refused(f"the server refused the sender: {_reply(code, text)}")
        code, text = smtp.rcpt(d.address)
        if code not in (250, 251) and _relay_refused(code, text):
            # "554 5.7.1 <x>: Relay access denied": the address is not at fault, the server passes
            # mail on to other domains only for a login it allows to (it was told to correct it)
            user = connection.settings.user
            raise _Refused(f"the server refused {d.address}: {_reply(code, text)}: it passes mail on only "
                           + (f"for a login allowed to, and {user!r} is not: {RELAY_FIX_WITH_LOGIN}" if user else
                              "after a login: set letterbatch.smtp.user (the password from "
                              "LETTERBATCH_SMTP_PASSWORD or a prompt)"))
        if code not in (250, 251):
            raise _Refused(f"the server refused {d.address}: {_reply(code, text)}")
        code, text = smtp.docmd("DATA")
        if code != 354:
            raise _Refused(f"the server refused the message: {_reply(code, text)}")
    except _Refused as refused:
        connection.answered()
        return _failed(connection, log, d, str(refused), reset=True)
    except (OSError, smtplib.SMTPException) as exc:
        connection.timed_out(exc, d.recipient)
        return _failed(connection, log, d, f"the connection failed ({_exc_text(exc)})")
    # from here on the server may get the message: log it before handing it over (in this
    # folder's log, and for every folder of this user)
    log.update(d.recipient, stage="data")
    meanwhile = mailed.claim(d.address, d.letter_sha256, log.path.parent, d.recipient, d.words)
    if meanwhile is not None:  # hang up before the end of the message: the server discards it
        connection.drop()
        log.update(d.recipient, state="failed", error="sent from another build folder meanwhile",
                   sent_from=str(meanwhile.get("folder")), sent_from_time=str(meanwhile.get("time")))
        return Outcome(d.recipient, "already sent", f"{_which_letter(meanwhile, d.letter_sha256)}, from another "
                                                    f"build folder ({meanwhile.get('folder')}, as '{meanwhile.get('id')}') while "
                                                    f"this send was under way, on {meanwhile.get('time')} to {d.address}; "
                                                    f"{command(f'send --resend {d.recipient} --yes')} mails it again from here")
    try:
        smtp.send(re.sub(rb"(?m)^\.", b"..", wire) + b".\r\n")
    except (OSError, smtplib.SMTPException) as exc:
        # not all of it was written, so the server has no end of message: not delivered
        return _failed(connection, log, d, f"the connection failed ({_exc_text(exc)})")
    try:
        code, text = smtp.getreply()
    except (OSError, smtplib.SMTPException) as exc:
        connection.drop()
        connection.timed_out(exc, d.recipient, after_message=True)
        log.update(d.recipient, state="unknown", error=f"no answer after the message ({_exc_text(exc)})")
        return Outcome(d.recipient, "unknown", unknown_help(d.recipient))
    connection.answered()
    if code != 250:
        return _failed(connection, log, d, f"the server refused the message: {_reply(code, text)}", reset=True)
    log.update(d.recipient, state="sent", time=_now(), server_reply=_reply(code, text))
    return Outcome(d.recipient, "sent", f"{d.pdf.name} ({'signed' if d.signed else 'not signed'}) "
                                        f"to {d.address}, {message_id}")


def _exc_text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _failed(connection: _Connection, log: SendLog, d: Delivery, why: str, reset: bool = False) -> Outcome:
    log.update(d.recipient, state="failed", error=why)
    if reset:
        try:
            connection.smtp.rset()
        except (OSError, smtplib.SMTPException):
            connection.drop()
    else:
        connection.drop()
    # as status says it: a run again alone sends an address refused for good to be refused again
    return Outcome(d.recipient, "failed", f"{why}; {retry_hint(why, 'the next run retries it')}")


def mark_sent(recipients_yaml: str | Path, build_dir: str | Path, rids: list[str]) -> list[Outcome]:
    """Record by hand that letters whose fate was unknown did arrive."""
    from .build import Layout, lock

    layout = Layout.of(build_dir)
    with lock(layout):
        log = SendLog.read(layout.sent)
        never_tried = [rid for rid in rids if rid not in log.letters]
        if never_tried:  # before any is marked: a typo in a list marked the ids before it
            raise SendError(_never_tried(recipients_yaml, build_dir, never_tried))
        # a letter whose message never reached the server (refused, killed before it was handed
        # over) cannot have arrived: marked, status said "mailed to ..." and nobody would send it
        failed = [rid for rid in rids if log.pending(rid) is None and not log.letters[rid].get("sent_from")]
        if failed:
            errors = [log.letters[rid].get("error", "stopped before its message was handed over") for rid in failed]
            why = errors[0] if len(failed) == 1 else "; ".join(f"{rid}: {error}" for rid, error in zip(failed, errors))
            raise SendError(f"--mark-sent {','.join(failed)}: the send log says the server never took "
                            f"{'its message' if len(failed) == 1 else 'their messages'} ({why}), so "
                            f"{'it' if len(failed) == 1 else 'they'} cannot have arrived; nothing was marked; "
                            + (retry_hint(errors[0]) if len(failed) == 1 else
                               f"{command('send --yes')} tries them again (a refused address: correct it first)"))
        return _mark_sent(log, rids)


def _never_tried(recipients_yaml, build_dir, rids: list[str]) -> str:
    """What is wrong with ids to mark sent that the send log has no attempt for: an id
    the batch has no recipient of (a typo: "did you mean"), as --resend and merge --accept
    say it, else that nothing was sent to it. An id no longer in the batch that the log
    has (renamed since) can still be marked."""
    from .build import prepare
    from .ready import no_such_ids

    prepared = prepare(recipients_yaml, build_dir)
    known = [s.recipient.id for s in prepared.sources] + [label for label, _, _ in prepared.rejected]
    unknown = no_such_ids(rids, known)
    if unknown:
        return f"--mark-sent: {unknown}; nothing was marked"
    return (f"--mark-sent {','.join(rids)}: the send log has no attempt to send {'it' if len(rids) == 1 else 'them'}; "
            "nothing was marked")


def _mark_sent(log: SendLog, rids: list[str]) -> list[Outcome]:
    outcomes = []
    for rid in rids:
        entry = log.letters[rid]
        if entry["state"] in ("sent", "marked sent"):
            outcomes.append(Outcome(rid, "already sent", f"on {entry.get('time', '?')} to {entry.get('address')}"))
            continue
        log.update(rid, state="marked sent", marked=_now())
        outcomes.append(Outcome(rid, "marked sent", f"{entry.get('message_id')} to {entry.get('address')}"))
    return outcomes


def sent_as_old_ids(recipients_yaml, build_dir, gone: list[str]) -> dict[str, str]:
    """For `invoke status`: which recipient of the batch has the address a letter logged
    under an id the batch no longer has went to (renamed; in a spreadsheet without ids, a
    name corrected), as `send` judges it: recipient id -> that old id. The batch is loaded
    for this only, when the log has such a letter."""
    from .build import Layout
    from .load import LoadError, load

    try:
        log = SendLog.read(Layout.of(Path(build_dir)).sent)
        by_address = {log.letters[old]["address"].lower(): old for old in gone
                      if log.pending(old) == "sent" and isinstance(log.letters[old].get("address"), str)}
        if not by_address:
            return {}
        recipients = load(recipients_yaml).batch.recipients
    except (SendError, LoadError, OSError, KeyError):
        return {}  # status says what it can; send judges again, and says why
    return {r.id: by_address[r.email.lower()] for r in recipients
            if r.email and r.email.lower() in by_address}


def mail_notes(layout, manifest, addresses=None) -> dict[str, tuple[str, bool]]:
    """For ``invoke status``: per letter, what the send log says (sent, to whom,
    rebuilt since it was sent, failed, unknown), and whether a person must act
    (all but a letter mailed as it is now)."""
    try:
        log = SendLog.read(layout.sent)
    except SendError as exc:
        return {"": (str(exc), True)}  # under the key no recipient has
    notes, now = {}, None
    for rid, entry in log.letters.items():
        state = entry.get("state")
        if state in ("sent", "marked sent"):
            # (a time taken out by hand is not needed to judge the letter: said as send says it)
            note, act = f"mailed to {entry.get('address')} on {entry.get('time', '?')}", False
            current = manifest.letters.get(rid, {}).get("sha256")
            if current and current != entry.get("letter_sha256"):
                same = _same_words(entry, manifest.letters[rid])
                # the same words made again (an update of letterbatch or of the letterhead): the
                # recipient has this letter's text, and nobody need act; status exited 1 for every
                # letter mailed before an update, as if each recipient had another letter
                resend = f"{command(f'send --resend {rid} --yes')} sends the new one"
                if same:
                    note += f" - rebuilt since{same}; {resend} if they should have it"
                else:
                    note, act = note + f" - REBUILT SINCE: the recipient has the old letter; {resend}", True
                if act and addresses is not None:  # (the batch read once, and only for such a letter)
                    now = addresses() if now is None else now
                    went = _sent_under_another_id(log, rid, now.get(rid), manifest.letters[rid])
                    if went:  # rows of one name swapped: as send says it, nothing to send
                        note, act = (f"mailed as '{went}' (the id this recipient had then) to "
                                     f"{log.letters[went].get('address')} on {log.letters[went].get('time', '?')}; "
                                     f"{command(f'send --resend {rid} --yes')} sends it to them again"), False
                        notes[rid] = (note, act)
                        continue
            if addresses is not None:
                # an address corrected since the letter went (a typo, a bounce): said, as send says
                # it; status said "mailed to" the old one alone (the batch is read only for this)
                now = addresses() if now is None else now
                given = now.get(rid)
                if given and given.lower() != str(entry.get("address", "")).lower():
                    note += _address_now(entry, given, command(f"send --resend {rid} --yes"))
        elif log.pending(rid) == "unknown":
            note, act = "mail: unknown: " + unknown_help(rid), True
        elif entry.get("sent_from"):  # not "mail failed ... tries it again": it went, from there
            note, act = (f"mailed to {entry.get('address')} from another build folder ({entry['sent_from']}) on "
                         f"{entry.get('sent_from_time')}, while this one was sending"), False
        else:
            # what to do, as for the others: status's count says "the line under each says what to do"
            error = entry.get("error", "interrupted before the message was sent")
            note, act = f"mail failed: {error}; {retry_hint(error)}", True
        notes[rid] = (note, act)
    return {**_mailed_from_elsewhere_notes(layout, manifest, log, addresses), **notes}


def _sent_under_another_id(log: SendLog, rid: str, address: str | None, letter: dict) -> str | None:
    """The id under which this very letter (by its words) went to ``address``, the one its
    recipient has now, when this id's own letter went elsewhere: two rows of the same name
    swapped in a spreadsheet without ids give each the other's id."""
    if not address or not letter.get("words") or \
            str(log.letters[rid].get("address", "")).lower() == address.lower():
        return None
    return next((old for old, entry in log.letters.items() if old != rid and log.pending(old) == "sent"
                 and str(entry.get("address", "")).lower() == address.lower()
                 and entry.get("words") == letter["words"]), None)


def _mailed_from_elsewhere_notes(layout, manifest, log: SendLog, addresses=None) -> dict[str, tuple[str, bool]]:
    """For ``invoke status``: the letters this folder's send log does not have that the
    user's record says went to a server, from another build folder (the batch file renamed,
    the project copied) or from this one (its send log deleted or lost): `send` holds them as
    already sent (``_mailed_elsewhere``), and status called them ready with no word of mail.
    Nothing for a person to do (no letter is mailed twice by itself), unless the folder it
    went from cannot say whether it arrived (``fate_there``). ``addresses()``: each
    recipient's address now, as send reads the record: a letter that went to the address
    its recipient had then goes to the one given since (status said "send holds it")."""
    mailed = MailedFromAnyFolder()
    notes, now = {}, None
    for rid, entry in manifest.letters.items():
        if rid in log.letters or "failed" in entry or not isinstance(entry.get("sha256"), str):
            continue
        words = entry.get("words", "")
        before = mailed.find(None, entry["sha256"], layout.root, words=words)
        if before is not None and addresses is not None:  # (the batch read once, and only for such a letter)
            now = addresses() if now is None else now
            # no address now: send mails it nowhere, and says so
            before = mailed.find(now[rid], entry["sha256"], layout.root, words=words) if now.get(rid) else None
        if before is None:
            continue
        here = before.get("folder") == str(layout.root.resolve())
        if not here and mailed.fate_there(before) == "unknown":
            notes[rid] = ("mail: unknown: " + unknown_elsewhere(rid, before, _which_letter(before, entry["sha256"])),
                          True)
            continue
        where = ("this build folder, whose send log (sent.json) no longer has it" if here
                 else f"another build folder ({before.get('folder')}, as '{before.get('id')}'), not from this one")
        built_before = "" if before.get("letter_sha256") == entry["sha256"] else " (the same words, built before)"
        notes[rid] = (f"mailed{built_before} to {before.get('address')} on {before.get('time') or '?'} from {where}: send holds "
                      f"it as already sent; {command(f'send --resend {rid} --yes')} mails it again"
                      + ("" if here else " from here"), False)
    return notes
