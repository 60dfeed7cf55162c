"""invoke send: each ready letter mailed exactly once, to a real SMTP server
(aiosmtpd on 127.0.0.1) that can refuse an address, drop the connection, or
hold a message while the sender is killed with SIGKILL."""
from __future__ import annotations

import asyncio
import datetime as dt
import email
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from builder.build import Layout, build
from builder.manifest import Manifest
from builder.sign import Key, _record_signed, field_name, key_record, open_signer, sign_bytes
from conftest import ROOT, copy_batch
from test_bundle import make_certificates

IDS = ["avon-and-somerset", "sussex", "london", "south-wales", "essex"]
FROM = "Office of the Commissioner <office@example.test>"


def address(rid: str) -> str:
    return f"{rid}@example.test"


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts. It can refuse addresses
    (550 or 451 at RCPT), drop the connection at RCPT or after receiving a message's
    data (before accepting it), and hold at RCPT or after accepting a message
    until released (a slow server)."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: set[str] = set()
        self.try_later: set[str] = set()
        self.no_relay: set[str] = set()  # "554 Relay access denied": an address of another domain, no login
        # Postfix's answer for an address of a domain it relays for that has no such user
        self.unknown_in_relay_table: set[str] = set()
        self.drop_at_rcpt: set[str] = set()  # once each
        self.drop_after_data: set[str] = set()  # once each
        self.refuse_data: set[str] = set()  # the message refused at its end (554), once each
        self.hold_at_rcpt: set[str] = set()
        self.hold_after_data: set[str] = set()
        self.holding = threading.Event()
        self.released = False

    async def _hold(self):
        self.holding.set()
        while not self.released:
            await asyncio.sleep(0.05)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.try_later:
            return "451 4.3.2 try again later"
        if address in self.unknown_in_relay_table:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in relay recipient table"
        if address in self.no_relay:
            return f"554 5.7.1 <{address}>: Relay access denied"
        if address in self.drop_at_rcpt:
            self.drop_at_rcpt.discard(address)
            server.transport.close()
            return "421 4.3.0 closing"
        if address in self.hold_at_rcpt:
            self.hold_at_rcpt.discard(address)
            await self._hold()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        (rcpt,) = envelope.rcpt_tos
        if rcpt in self.drop_after_data:
            self.drop_after_data.discard(rcpt)
            server.transport.close()
            return "421 4.3.0 closing"
        if rcpt in self.refuse_data:
            self.refuse_data.discard(rcpt)
            return "554 5.6.0 message content rejected"
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=default_policy)))
        if rcpt in self.hold_after_data:
            self.hold_after_data.discard(rcpt)
            await self._hold()
        return "250 2.0.0 queued"

    def count(self, rid: str) -> int:
        return sum(rcpts == [address(rid)] for rcpts, _ in self.messages)


def body_of(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # as received: CRLF lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield mailbox, controller.port
    mailbox.released = True
    controller.stop()


def smtp_env(port: int, **extra) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LETTERBATCH_", "INVOKE_LETTERBATCH_"))}
    return {**clean, "INVOKE_LETTERBATCH_SMTP_HOST": "127.0.0.1", "INVOKE_LETTERBATCH_SMTP_PORT": str(port),
            "INVOKE_LETTERBATCH_SMTP_SECURITY": "none", "INVOKE_LETTERBATCH_SMTP_FROM": FROM, **extra}


def send_command(source: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "send", "--recipients", str(source), "--build-dir", str(out), *args]


def suggested(source: Path, out: Path, words: str) -> str:
    """A command a message suggests: it names the batch as the test typed it."""
    return f"`invoke {words} -r {source} -b {out}`"


def run_send(source, out, port, *args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(send_command(source, out, *args), cwd=ROOT, env=smtp_env(port, **env),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def results(stdout: str) -> dict[str, tuple[str, str]]:
    """The per-letter lines of `invoke send`: id -> (status, detail)."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("  "):
            rid, status, *detail = re.split(r"\s{2,}", line.strip(), maxsplit=2)
            out[rid] = (status, detail[0] if detail else "")
    return out


def sent_log(out: Path) -> dict:
    return json.loads((out / "sent.json").read_text())["letters"]


@pytest.fixture
def batch(mail_batch, tmp_path):
    return copy_batch(mail_batch, tmp_path / "batch")


def test_a_dry_run_says_who_would_get_what_and_sends_nothing(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    # the longest id last: the lines printed before it line up with it all the same
    head, rest = source.read_text().split("  - id: sussex\n", 1)
    head, avon = head.split("  - id: avon-and-somerset\n", 1)
    source.write_text(f"{head}  - id: sussex\n{rest.rstrip()}\n\n  - id: avon-and-somerset\n{avon}")
    dry = run_send(source, out, port)
    assert dry.returncode == 0, dry.stderr
    assert f"dry run (nothing is sent; add --yes to send) via 127.0.0.1:{port} (none):" in dry.stdout
    for rid in IDS:
        assert f"{rid}.pdf (not signed) to {address(rid)}: 'Violence Reduction Units and modern slavery'" in dry.stdout
    lines = [line for line in dry.stdout.splitlines() if line.startswith("  ")]
    assert lines[-1].startswith("  avon-and-somerset  would send")
    assert {line.index("would send") for line in lines} == {len("  avon-and-somerset  ")}
    assert "5 would send" in dry.stdout
    assert mailbox.messages == [] and not (out / "sent.json").exists()


def test_the_letterbatch_command_reads_the_smtp_settings_in_invoke_yaml_beside_it(batch, smtp_server):
    """The README: SMTP settings go in invoke.yaml, and for the `letterbatch` command the
    project is the current folder. Its invoke.yaml was never read (invoke reads one only
    beside a tasks.py it loaded), so an office's settings were silently dropped: the dry
    run named localhost:587, and --yes would have mailed through whatever listened there."""
    source, out = batch
    mailbox, port = smtp_server
    (source.parent / "invoke.yaml").write_text(
        f"letterbatch:\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: none\n"
        f"    from: {FROM}\n", encoding="utf-8")
    env = {**smtp_env(port), "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("INVOKE_LETTERBATCH_")}
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()", "send", "-r", source.name,
                   "-b", out.name]
    dry = subprocess.run(letterbatch, cwd=source.parent, env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    assert f"dry run (nothing is sent; add --yes to send) via 127.0.0.1:{port} (none):" in dry.stdout, dry.stderr
    sent = subprocess.run([*letterbatch, "--yes"], cwd=source.parent, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sorted(rcpts[0] for rcpts, _ in mailbox.messages) == sorted(address(rid) for rid in IDS)


def signed_copy(out: Path, rid: str, tmp_path: Path) -> Path:
    """``signed/<rid>.pdf``: the letter signed with a throwaway key, as ``invoke sign`` makes it."""
    p12, _ = make_certificates(tmp_path)
    signed = out / "signed" / f"{rid}.pdf"
    signed.parent.mkdir(exist_ok=True)
    key = Key(p12=p12, password=b"secret")
    with open_signer(key) as signer:
        signed.write_bytes(sign_bytes(Layout.of(out).pdf(rid).read_bytes(), signer, field=field_name(rid)))
    # and on the record, as sign keeps it: a signed copy only the record vouches for is sent
    _record_signed(Layout.of(out), Manifest.read(out), key_record(key), [rid])
    return signed


def test_each_letter_mailed_once_with_its_pdf_byte_for_byte(batch, smtp_server, tmp_path):
    source, out = batch
    mailbox, port = smtp_server
    # london has a signed copy of its current letter; essex's "signed copy" is of another letter
    signed_copy(out, "london", tmp_path)
    (out / "signed" / "essex.pdf").write_bytes((out / "signed" / "london.pdf").read_bytes())

    first = run_send(source, out, port, "--yes")
    assert first.returncode == 1 and "4 sent, 1 not ready" in first.stderr
    # a file sign did not put there is no signed copy, valid signature or not; the command
    # suggested signs with the key the record names (sign kept it for london)
    assert results(first.stdout)["essex"] == ("not ready", (
        f"signed/essex.pdf is not on the record: run {suggested(source, out, 'sign --p12 ' + str(tmp_path / 'signer.p12'))} "
        "(or remove it to send the letter unsigned)"))
    (out / "signed" / "essex.pdf").unlink()
    then = run_send(source, out, port, "--yes")
    assert then.returncode == 0 and "4 already sent, 1 sent" in then.stdout
    log = sent_log(out)
    assert sorted(rcpts[0] for rcpts, _ in mailbox.messages) == sorted(address(rid) for rid in IDS)
    for rcpts, message in mailbox.messages:
        rid = rcpts[0].split("@")[0]
        expected = out / "signed" / "london.pdf" if rid == "london" else Layout.of(out).pdf(rid)
        attachments = list(message.iter_attachments())
        assert len(attachments) == 1 and attachments[0].get_content_type() == "application/pdf"
        assert attachments[0].get_filename() == f"2020-10-13-{rid}.pdf"
        data = attachments[0].get_content()
        assert data == expected.read_bytes(), rid
        assert message["To"] == address(rid) and message["From"] == FROM
        assert message["Subject"] == "Violence Reduction Units and modern slavery"
        assert body_of(message) == \
            "Please find attached a letter from Dame Sara Thornton DBE QPM.\n"
        entry = log[rid]
        assert entry["state"] == "sent" and entry["address"] == address(rid)
        assert entry["message_id"] == message["Message-ID"]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["signed"] == (rid == "london")
        assert dt.datetime.fromisoformat(entry["time"]).tzinfo is not None

    second = run_send(source, out, port, "--yes")
    assert second.returncode == 0, second.stderr
    assert len(mailbox.messages) == 5 and "5 already sent" in second.stdout

    again = run_send(source, out, port, "--yes", "--resend", "essex")
    assert again.returncode == 0 and results(again.stdout)["essex"][0] == "sent"
    assert mailbox.count("essex") == 2 and len(mailbox.messages) == 6
    assert sent_log(out)["essex"]["history"][0]["message_id"] == log["essex"]["message_id"]


def test_subject_and_body_from_the_yaml_print_exactly(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    text = source.read_text()
    source.write_text(text.replace("  title: ", "  email:\n    subject: \"For $name ($role): {name} %(x)s\"\n"
                                   "    body: \"Dear $name,\\n\\nthe letter of $date costs $$0. {0.__class__}\\n"
                                   "$title, from $sender, signed by $signatory\"\n"
                                   "  title: ", 1))
    done = run_send(source, out, port, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr  # letter.email is not in the letters: still ready
    subjects = {rcpts[0]: m["Subject"] for rcpts, m in mailbox.messages}
    assert subjects[address("london")] == "For Sophie Linden (Deputy Mayor for Policing and Crime in London): {name} %(x)s"
    body = {rcpts[0]: body_of(m) for rcpts, m in mailbox.messages}
    assert body[address("london")] == ("Dear Sophie Linden,\n\nthe letter of 13 October 2020 costs $0. {0.__class__}\n"
                                       "Violence Reduction Units and modern slavery, from Dame Sara Thornton DBE QPM, "
                                       "signed by Dame Sara Thornton DBE QPM\n")

    source.write_text(text.replace("  title: ", "  email: {subject: \"For $nmae\"}\n  title: ", 1))
    refused = run_send(source, out, port)
    assert refused.returncode == 2
    assert "field 'letter.email.subject': unknown placeholder $nmae; use one of $name, $role" in refused.stderr


def test_a_subject_that_looks_like_an_encoded_word_arrives_as_typed(batch, smtp_server):
    """Python's e-mail headers decode "=?utf-8?b?...?=" in the text they are given, so
    a title (or a name, from a spreadsheet) holding one arrived as the text it encodes
    ("Bcc: evil@example.org"), not as typed: such a subject is now sent encoded."""
    source, out = batch
    mailbox, port = smtp_server
    literal = "=?utf-8?b?QmNjOiBldmlsQGV4YW1wbGUub3Jn?="  # "Bcc: evil@example.org", encoded
    source.write_text(source.read_text().replace(
        "  title: ", f"  email: {{subject: 'For $name {literal} =?x?q?y?= a=?b'}}\n  title: ", 1))
    done = run_send(source, out, port, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    subjects = {rcpts[0]: str(m["Subject"]) for rcpts, m in mailbox.messages}
    assert subjects[address("london")] == f"For Sophie Linden {literal} =?x?q?y?= a=?b"
    assert all("Bcc" not in subject for subject in subjects.values())


def test_a_relay_refused_names_the_login_not_the_address(batch, smtp_server):
    """A server that passes mail on to other domains only after a login refuses each address
    ("554 5.7.1 <x>: Relay access denied"): the address is not at fault, and status told the
    user to correct it; the line names the setting to give, as a 530 does."""
    source, out = batch
    mailbox, port = smtp_server
    mailbox.no_relay.add(address("sussex"))
    first = run_send(source, out, port, "--yes")
    assert first.returncode == 1 and mailbox.count("sussex") == 0
    assert results(first.stdout)["sussex"][1].endswith(
        "Relay access denied: it passes mail on only after a login: set letterbatch.smtp.user (the password from "
        "LETTERBATCH_SMTP_PASSWORD or a prompt); the next run retries it once that is set"), first.stdout
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert "correct the address" not in status.stdout, status.stdout
    assert f"; {suggested(source, out, 'send --yes')} tries it again once that is set\n" in status.stdout, status.stdout


def test_an_unknown_user_of_a_domain_relayed_for_is_a_wrong_address_not_a_login(batch, smtp_server):
    """Postfix refuses a mailbox that does not exist at a domain it relays for with "550 5.1.1
    <x>: Recipient address rejected: User unknown in relay recipient table": the word "relay"
    made it a relay refused, and the user was told to set a login, not to correct the address."""
    source, out = batch
    mailbox, port = smtp_server
    mailbox.unknown_in_relay_table.add(address("sussex"))
    first = run_send(source, out, port, "--yes")
    assert first.returncode == 1 and mailbox.count("sussex") == 0
    said = results(first.stdout)["sussex"][1]
    assert "login" not in said and said.endswith(
        "User unknown in relay recipient table; correct the address first (the server refused it for good), "
        "then the next run retries it"), said


def test_a_failed_mail_s_advice_follows_what_the_server_refused():
    """A sender or a message refused for good (5xx) is refused again as it is: 'tries it again'
    alone sent the user round again."""
    from builder.send import retry_hint

    assert retry_hint("the server refused the sender: 553 5.7.1 not owned by user").startswith(
        "correct the From address first (letterbatch.smtp.from, else letter.sender.email), then ")
    assert retry_hint("the server refused the message: 552 5.3.4 message too big").startswith(
        "change what the server's answer names first (it refused the message for good), then ")
    assert retry_hint("the server refused the message: 451 4.3.0 try later").endswith("tries it again")
    assert retry_hint("the server refused a@b.example: 554 5.7.1 <a@b.example>: Relay access denied: it passes "
                      "mail on only for a login allowed to, and 'office' is not: ask the mail server's "
                      "administrator, or send through the server that login is for").endswith(
        "tries it again once the server lets that login pass mail on")


def test_a_refused_address_and_a_dropped_connection_stop_only_their_letter(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    mailbox.refuse.add(address("sussex"))
    mailbox.drop_at_rcpt.add(address("london"))  # mid-batch: the connection is gone
    mailbox.try_later.add(address("essex"))
    first = run_send(source, out, port, "--yes")
    assert first.returncode == 1 and "2 sent, 3 failed" in first.stderr
    lines = results(first.stdout)
    assert lines["sussex"] == ("failed", "the server refused sussex@example.test: 550 5.1.1 mailbox unavailable; "
                                         "correct the address first (the server refused it for good), then the next "
                                         "run retries it")
    assert lines["london"][0] == "failed" and lines["london"][1].startswith("the connection failed")
    assert lines["essex"] == ("failed", "the server refused essex@example.test: 451 4.3.2 try again later; "
                                        "the next run retries it")
    assert [mailbox.count(rid) for rid in IDS] == [1, 0, 0, 1, 0]
    assert {rid: e["state"] for rid, e in sent_log(out).items()} == {
        "avon-and-somerset": "sent", "sussex": "failed", "london": "failed", "south-wales": "sent", "essex": "failed"}
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert status.returncode == 1 and "Traceback" not in status.stderr  # a failed mail needs a person
    assert status.stdout.count("mail failed: ") == 3 and "550 5.1.1" in status.stdout, status.stdout
    # the count line says "the line under each says what to do": a failed mail's line says it too
    # by what failed: an address refused for good is corrected first; a "try later" (it was told
    # "a refused address: correct it first" too) and a dropped connection are simply sent again
    again = f"{suggested(source, out, 'send --yes')} tries it again"
    assert ("mail failed: the server refused sussex@example.test: 550 5.1.1 mailbox unavailable; correct the "
            f"address first (the server refused it for good), then {again}\n") in status.stdout, status.stdout
    assert f"mail failed: the server refused essex@example.test: 451 4.3.2 try again later; {again}\n" \
        in status.stdout, status.stdout
    assert status.stdout.count(f"; {again}\n") == 2, status.stdout  # london's dropped connection too

    # a refused letter never reached the server: marking it as arrived (a wrong id, a misread
    # mailbox) made status say "mailed to", and no send would ever mail it again
    wrongly = run_send(source, out, port, "--mark-sent", "avon-and-somerset,sussex")
    assert wrongly.returncode == 2 and wrongly.stderr.strip() == (
        "--mark-sent sussex: the send log says the server never took its message (the server refused "
        "sussex@example.test: 550 5.1.1 mailbox unavailable), so it cannot have arrived; nothing was marked; "
        f"correct the address first (the server refused it for good), then {again}"), wrongly.stderr
    assert sent_log(out)["sussex"]["state"] == "failed"

    mailbox.refuse.clear()
    mailbox.try_later.clear()
    # sending one letter again on purpose sends that one alone: the others may be held back
    one = run_send(source, out, port, "--yes", "--resend", "sussex")
    assert one.returncode == 0, one.stdout + one.stderr
    assert list(results(one.stdout)) == ["sussex"] and one.stdout.rstrip().endswith("1 sent")
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 0, 1, 0]
    second = run_send(source, out, port, "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 already sent, 2 sent" in second.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]


def test_a_connection_dropped_after_the_message_is_unknown_and_never_resent_by_itself(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    mailbox.drop_after_data.add(address("london"))
    first = run_send(source, out, port, "--yes")
    assert first.returncode == 1
    unknown = ("the message may have reached the server, but the log cannot say; check the mailbox, "
               f"then {suggested(source, out, 'send --resend london --yes')} or "
               f"{suggested(source, out, 'send --mark-sent london')}")
    # the status column says "unknown" once (the detail said it again: "unknown  unknown: the ...")
    assert results(first.stdout)["london"] == ("unknown", unknown), first.stdout
    assert "4 sent, 1 unknown" in first.stderr
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 1 and results(again.stdout)["london"] == ("unknown", unknown)
    assert mailbox.count("london") == 0
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert "mail: unknown: " + unknown in status.stdout and status.returncode == 1  # a person must look
    resent = run_send(source, out, port, "--yes", "--resend", "london")  # the mailbox had nothing
    assert resent.returncode == 0 and [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]


def test_killed_mid_send_no_recipient_gets_a_letter_twice(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server

    def send_and_kill(check_while_held=lambda: None):
        mailbox.holding.clear()
        mailbox.released = False
        proc = subprocess.Popen(send_command(source, out, "--yes"), cwd=ROOT, env=smtp_env(port),
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert mailbox.holding.wait(120), "the sender never reached the held message"
            check_while_held()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        mailbox.released = True

    # 1. killed while the server holds london's envelope: nothing of london was handed over
    def a_second_send_is_refused():
        second = run_send(source, out, port, "--yes")
        assert second.returncode == 2 and "is running" in second.stderr, second.stderr
        # nor a build, merge or clean on that folder meanwhile (clean would take the letters away)
        for task, flag in (("build", ["--force"]), ("merge", ["--duplex"]), ("clean", [])):
            other = subprocess.run([sys.executable, "-m", "invoke", task, *flag, "-r", str(source), "-b", str(out)],
                                   cwd=ROOT, capture_output=True, text=True)
            assert other.returncode == 2 and "another build, merge, sign, send or publish is running" in other.stderr, other.stderr
        assert Layout.of(out).pdf("essex").exists()

    mailbox.hold_at_rcpt.add(address("london"))
    send_and_kill(a_second_send_is_refused)
    london = sent_log(out)["london"]
    assert london["state"] == "attempting" and london["stage"] == "envelope"
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 0, 0, 0]

    # 2. killed after the server accepted south-wales's message, before the log said so
    mailbox.hold_after_data.add(address("south-wales"))
    send_and_kill()
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 0]  # london sent by this run
    (delivered,) = [m for rcpts, m in mailbox.messages if rcpts == [address("london")]]
    assert delivered["Message-ID"] == london["message_id"]  # the retry kept its Message-ID
    assert sent_log(out)["south-wales"]["stage"] == "data"

    final = run_send(source, out, port, "--yes")
    assert final.returncode == 1
    lines = results(final.stdout)
    assert lines["south-wales"][0] == "unknown" and lines["essex"][0] == "sent", final.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]  # nobody twice

    unknown_id = run_send(source, out, port, "--yes", "--resend", "south-wale")  # a typo sends nothing
    assert unknown_id.returncode == 2 and "--resend: no valid recipient with id: south-wale (did you mean 'south-wales'?)" in unknown_id.stderr
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]
    # a typo, or an id the batch does not have, is a bad value, named; nothing is marked
    # (it was "the send log has no attempt to send it", and ids before it were marked)
    typo = run_send(source, out, port, "--mark-sent", "essex,south-wale")
    assert typo.returncode == 2 and typo.stderr.strip() == (
        "--mark-sent: no valid recipient with id: south-wale (did you mean 'south-wales'?); nothing was marked")
    assert sent_log(out)["south-wales"]["state"] != "marked sent"
    nosuch = run_send(source, out, port, "--mark-sent", "nosuch")
    assert nosuch.returncode == 2 and "no valid recipient with id: nosuch;" in nosuch.stderr, nosuch.stderr
    marked = run_send(source, out, port, "--mark-sent", "south-wales")  # a person checked the mailbox
    assert marked.returncode == 0 and results(marked.stdout)["south-wales"][0] == "marked sent"
    last = run_send(source, out, port, "--yes")
    assert last.returncode == 0 and "5 already sent" in last.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]


def ctrl_c_at_the_envelope(source: Path, out: Path, smtp_server, rid: str) -> subprocess.CompletedProcess:
    """`send --yes`, stopped by Ctrl-C while the server holds ``rid``'s envelope (RCPT)."""
    mailbox, port = smtp_server
    mailbox.hold_at_rcpt.add(address(rid))
    proc = subprocess.Popen(send_command(source, out, "--yes"), cwd=ROOT, env=smtp_env(port),
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert mailbox.holding.wait(120), "the sender never reached the held envelope"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        mailbox.released = True
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_ctrl_c_while_the_server_is_slow_stops_at_once(batch, smtp_server):
    """Ctrl-C (or kill's SIGTERM) while the server takes its time over london's envelope
    stops the send then: it said QUIT on its way out and waited for the answer, up to the
    SMTP timeout (60 s), behind the server's answer to the command it was stopped in."""
    source, out = batch
    mailbox, port = smtp_server
    stopped = ctrl_c_at_the_envelope(source, out, smtp_server, "london")
    assert stopped.returncode == 130 and stopped.stderr.strip() == "stopped", stopped.stderr
    london = sent_log(out)["london"]
    assert london["state"] == "attempting" and london["stage"] == "envelope"  # sent by the next run
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 0, 0, 0]


def test_a_server_that_stops_answering_is_waited_for_once_not_once_a_letter(batch, smtp_server):
    """A server that stops answering at london's envelope: each letter after it connected
    again and waited the whole timeout (60 s) in its turn, 50 letters 50 minutes. After two
    letters in a row (one slow over one address is waited for once, as the test below has
    it), the others are not tried, and the next run mails each of them once."""
    source, out = batch
    mailbox, port = smtp_server
    mailbox.hold_at_rcpt.update(address(rid) for rid in IDS[2:])  # london and every letter after it
    first = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_TIMEOUT="1")
    mailbox.released = True
    lines = results(first.stdout)
    assert first.returncode == 1 and [lines[rid][0] for rid in IDS] == ["sent", "sent", "failed", "failed", "failed"]
    assert lines["london"][1].startswith("the connection failed (Connection unexpectedly closed: timed out)"), \
        lines["london"]
    assert lines["south-wales"][1].startswith("the connection failed"), lines["south-wales"]
    assert lines["essex"][1] == (f"not tried: 127.0.0.1:{port} stopped answering (nothing within 1 s for two "
                                 "letters in a row, the last south-wales); the next run retries it"), lines["essex"]
    mailbox.hold_at_rcpt.clear()
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]


def test_a_server_that_never_answers_a_message_is_waited_for_twice_not_once_a_letter(batch, smtp_server):
    """A server that takes each message and then says nothing (a mail filter hung): each
    letter waited the whole timeout in its turn and was 'unknown', 50 letters 50 minutes and a
    mailbox to check for each. After two in a row the others are not tried; the next run
    mails them, and the two are left to a person, as any letter whose fate is unknown."""
    source, out = batch
    mailbox, port = smtp_server
    mailbox.hold_after_data.update(address(rid) for rid in IDS[1:])  # sussex and every letter after it
    first = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_TIMEOUT="1")
    mailbox.released = True
    lines = results(first.stdout)
    assert first.returncode == 1 and [lines[rid][0] for rid in IDS] == ["sent", "unknown", "unknown", "failed",
                                                                         "failed"], first.stdout
    assert lines["essex"][1] == (f"not tried: 127.0.0.1:{port} stopped answering (nothing within 1 s for two "
                                 "letters in a row, the last london); the next run retries it"), lines["essex"]
    mailbox.hold_after_data.clear()
    again = run_send(source, out, port, "--yes")
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]  # (the held two were taken, as a filter may)
    assert [results(again.stdout)[rid][0].split(" on ")[0] for rid in IDS] == [
        "already sent", "unknown", "unknown", "sent", "sent"], again.stdout


def test_a_letter_rebuilt_after_it_was_sent_is_flagged_and_not_sent_again(batch, smtp_server):
    from builder.build import build

    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    mailed = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert mailed.stdout.count("mailed to ") == 5 and mailed.returncode == 0  # nothing for a person to do
    source.write_text(source.read_text().replace("Dear Sophie,", "Dear Ms Linden,"))
    # stale now, but mailed as it is: status said "run build", and then "send --resend" the
    # letter built (last month's, mailed again after the shared logo changed)
    stale = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                            "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert "stale or never built" not in stale.stdout and stale.stdout.rstrip().endswith(
        "stale, but mailed as it is: london: a build replaces it with another letter than the recipient has; "
        "build only to mail again on purpose"), stale.stdout
    assert build(source, out).ok
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    # and what to do about it, as send says it (status told a person something was wrong, not the fix)
    assert (f"REBUILT SINCE: the recipient has the old letter; "
            f"{suggested(source, out, 'send --resend london --yes')} sends the new one") in status.stdout
    assert status.stdout.count("REBUILT SINCE") == 1 and status.returncode == 1
    # the summary counts it ready: a line after it says why the command exits 1 (it said nothing)
    assert status.stdout.rstrip().endswith(
        "5 ready\n1 letter needs a person about its mail: the line under each says what to do"), status.stdout
    again = run_send(source, out, port, "--yes")
    assert (f"the letter was rebuilt since: {suggested(source, out, 'send --resend london --yes')} sends the new one"
            in again.stdout)
    assert len(mailbox.messages) == 5
    # an id renamed after sending (or, in a spreadsheet without ids, a name corrected) is
    # not a new recipient: the log has a letter at that address, so nobody is mailed twice
    source.write_text(source.read_text().replace("- id: london\n", "- id: mopac\n"))
    assert build(source, out).ok
    renamed = run_send(source, out, port, "--yes")
    assert renamed.returncode == 0, renamed.stdout + renamed.stderr
    (line,) = [line.split() for line in renamed.stdout.splitlines() if line.split()[:1] == ["mopac"]]
    assert line[1:6] == ["already", "sent", "as", "'london'", "(an"] and "renamed?)" in line
    assert suggested(source, out, "send --resend mopac --yes") in renamed.stdout and len(mailbox.messages) == 5
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                           "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert re.search(r"^  london +\(gone\) +no longer in the batch; mailed to london@example.test on ", seen.stdout,
                     re.M), seen.stdout
    # and status says of mopac what send says: its letter went out, as 'london'
    assert re.search(r"^  mopac +ready\n +sent as 'london' \(an id no longer in the batch: renamed\?\): mailed to "
                     r"london@example.test on .*; " + re.escape(suggested(source, out, "send --resend mopac --yes"))
                     + " sends it to them again$", seen.stdout, re.M), seen.stdout
    assert run_send(source, out, port, "--yes", "--resend", "mopac").returncode == 0
    assert mailbox.count("london") == 2 and len(mailbox.messages) == 6  # on purpose, once
    assert re.search(r"^  mopac +already sent on ", run_send(source, out, port).stdout, re.M)


def test_the_build_status_suggests_beside_a_stale_letter_mailed_as_it_is_leaves_it_alone(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    # london mailed as it is and stale since; a new recipient never built. "run build" built
    # london too, the letter status says to build only to mail again on purpose
    text = source.read_text().replace("Dear Sophie,", "Dear Ms Linden,")
    source.write_text(text.rstrip() + "\n\n  - id: kent\n    name: A Commissioner\n"
                      "    address: [Kent, ME14 1XQ]\n    salutation: Dear Commissioner,\n"
                      "    text:\n      highlight: A word for Kent.\n      request: *request-as-list\n")
    stale = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                            "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    said = (f"1 letter stale or never built: run {suggested(source, out, 'build -o kent')} to build it\n"
            "stale, but mailed as it is: london:")
    assert said in stale.stdout, stale.stdout
    # check and send's dry run say it as status does (they said "run build" of the whole batch)
    checked = subprocess.run([sys.executable, "-m", "invoke", "check", "--recipients", str(source),
                              "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert said in checked.stdout and checked.returncode == 1, checked.stdout
    dry = run_send(source, out, port)
    assert dry.returncode == 1 and said in dry.stderr, dry.stdout + dry.stderr
    assert results(dry.stdout)["london"][0].startswith("already sent on ") and len(mailbox.messages) == 5
    # a send log that cannot be read is said beside the build check suggests (it suggested building
    # every letter, the mailed ones too, and said nothing of the log)
    log = out / "sent.json"
    kept = log.read_bytes()
    log.write_text("{bad")
    unread = subprocess.run([sys.executable, "-m", "invoke", "check", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert f"{log} cannot be read (" in unread.stdout and "which letters were mailed is not known, and a build may " \
        "replace one with another letter than its recipient has" in unread.stdout, unread.stdout
    log.write_bytes(kept)


def test_a_rebuilt_letter_s_resend_is_suggested_after_what_stands_in_its_way(batch, smtp_server, tmp_path):
    """The command `send` suggests for a letter rebuilt since it was mailed works
    when copied: with a signed copy of the old letter, it says to sign first."""
    from builder.build import build

    source, out = batch
    mailbox, port = smtp_server
    signed_copy(out, "london", tmp_path)
    assert run_send(source, out, port, "--yes").returncode == 0
    source.write_text(source.read_text().replace("Dear Sophie,", "Dear Ms Linden,"))
    assert build(source, out).ok
    resend = suggested(source, out, "send --resend london --yes")
    dry = results(run_send(source, out, port).stdout)["london"][0]  # "already sent on ...; ..."
    assert dry.endswith(f"; the letter was rebuilt since: sign it again with {suggested(source, out, 'sign --p12 ' + str(tmp_path / 'signer.p12'))}, "
                           f"then {resend} sends the new one"), dry
    text = source.read_text()
    source.write_text(text.replace("Dear Ms Linden,", "Dear Sophie Linden,"))  # edited again, not rebuilt
    dry = results(run_send(source, out, port).stdout)["london"][0]
    assert "; the letter was rebuilt since: it is stale: older than its inputs" in dry, dry
    assert dry.endswith(f"; once it is ready, {resend} sends the new one"), dry
    source.write_text(text)
    signed_copy(out, "london", tmp_path)  # signed again: the resend now goes as suggested
    dry = results(run_send(source, out, port).stdout)["london"][0]
    assert dry.endswith(f"; the letter was rebuilt since: {resend} sends the new one"), dry
    assert run_send(source, out, port, "--yes", "--resend", "london").returncode == 0
    assert mailbox.count("london") == 2


def test_invoke_clean_keeps_the_send_log_so_nobody_is_mailed_twice(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0 and len(mailbox.messages) == 5
    cleaned = subprocess.run([sys.executable, "-m", "invoke", "clean", "--recipients", str(source),
                              "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert cleaned.returncode == 0 and "kept" in cleaned.stdout and "sent.json" in cleaned.stdout, cleaned.stdout
    assert [p.name for p in out.iterdir()] == ["sent.json"]
    from builder.build import build

    assert build(source, out).ok  # the same letters again
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0 and again.stdout.endswith("5 already sent\n") and len(mailbox.messages) == 5


def test_an_address_corrected_after_the_letter_went_is_said_and_resent_only_on_purpose(batch, smtp_server):
    # "already sent to essex@..." alone: the office corrected a wrong address and read it as
    # if the new one had the letter
    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0 and len(mailbox.messages) == 5
    source.write_text(source.read_text().replace("essex@example.test", "essex.pcc@example.test"))
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0 and len(mailbox.messages) == 5, again.stdout + again.stderr
    said = " ".join(results(again.stdout)["essex"]).strip()
    assert said.startswith("already sent on ") and said.endswith(
        f"to essex@example.test; the batch now gives essex.pcc@example.test: "
        f"{suggested(source, out, 'send --resend essex --yes')} mails it there, if the old address did not reach them")
    assert "now gives" not in " ".join(results(again.stdout)["london"])

    def status() -> str:
        done = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                               "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
        return done.stdout

    # status says it too (it said "mailed to essex@example.test" alone), once the build has
    # taken the new address in (its quick path reads the batch from the record) and before
    from builder.build import build

    for built in (False, True):
        if built:
            assert build(source, out).ok
        seen = status()
        assert re.search(r"mailed to essex@example\.test on \S+; the batch now gives essex\.pcc@example\.test: "
                         + re.escape(f"{suggested(source, out, 'send --resend essex --yes')} mails it there"),
                         seen), seen
        assert seen.count("now gives") == 1, seen
    assert run_send(source, out, port, "--resend", "essex", "--yes").returncode == 0
    assert [rcpts for rcpts, _ in mailbox.messages[5:]] == [["essex.pcc@example.test"]]
    assert "now gives" not in status()
    # the first address put back (the correction was wrong): it had this very letter, and the
    # --resend offered mailed it a second copy
    source.write_text(source.read_text().replace("essex.pcc@example.test", "essex@example.test"))
    seen, sent = status(), " ".join(results(run_send(source, out, port).stdout)["essex"])
    for said in (seen, sent):
        assert re.search(r"to essex\.pcc@example\.test( on \S+)?; the batch now gives essex@example\.test, "
                         r"which had this letter on \S+", said) and "--resend" not in said, said


def test_letters_not_ready_or_without_an_address_are_not_sent(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    text = source.read_text()
    source.write_text(text.replace("    email: essex@example.test\n", "")
                      .replace("Dear Sophie,", "Dear Ms Linden,"))  # london: stale
    done = run_send(source, out, port, "--yes")
    assert done.returncode == 1
    lines = results(done.stdout)
    assert lines["london"][0] == "not ready" and lines["london"][1].startswith("stale: older than its inputs")
    assert lines["essex"][0] == "no address" and lines["essex"][1].startswith("add `email:` to recipient 'essex'")
    # the command that makes the stale letter ready, as status and check name it
    assert re.search(r"\n1 letter stale or never built: run `invoke build -r \S+recipients\.yaml -b \S+` "
                     r"to build it\n$", done.stderr), done.stderr
    assert sorted(rcpts[0] for rcpts, _ in mailbox.messages) == [address(r) for r in ("avon-and-somerset", "south-wales", "sussex")]


def test_an_address_with_accents_goes_by_smtputf8_or_fails_alone(batch, smtp_server):
    """zoë@bücher.example is a valid address: a server without SMTPUTF8 cannot take it, so
    that letter fails in words (never a traceback) and the others are sent; one with it
    gets the letter, the address as typed."""
    source, out = batch
    source.write_text(source.read_text().replace("email: london@example.test", "email: zoë@bücher.example"))
    plain = Mailbox()
    controller = Controller(plain, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False)
    controller.start()
    try:
        done = run_send(source, out, controller.port, "--yes")
    finally:
        controller.stop()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"^  london +failed +the server does not take addresses with accents .*\(no SMTPUTF8\), so "
                     r"it cannot mail zoë@bücher.example; give an address without accents, or send through a server "
                     r"that takes them; then the next run retries it$", done.stdout, re.M), done.stdout
    assert sorted(rcpts[0] for rcpts, _ in plain.messages) == sorted(address(r) for r in IDS if r != "london")
    mailbox, port = smtp_server  # aiosmtpd's Controller offers SMTPUTF8
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    ((rcpts, mail),) = mailbox.messages
    assert rcpts == ["zoë@bücher.example"] and mail["To"] == "zoë@bücher.example"
    (attachment,) = mail.iter_attachments()
    assert attachment.get_content() == Layout.of(out).pdf("london").read_bytes()


def server_certificate(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A TLS context for 127.0.0.1 signed by a throwaway CA, and the CA's file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return context, folder / "ca.pem"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the ssl server: TLS from the start
def test_starttls_and_login_with_the_password_from_the_environment(batch, tmp_path):
    source, out = batch
    context, ca = server_certificate(tmp_path)
    mailbox = Mailbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"office", b"s3cret"), handled=False)

    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, auth_required=True, authenticator=authenticator)
    controller.start()
    try:
        env = {"INVOKE_LETTERBATCH_SMTP_SECURITY": "starttls", "INVOKE_LETTERBATCH_SMTP_USER": "office",
               "SSL_CERT_FILE": str(ca)}  # the client trusts the test CA, through OpenSSL's usual variable
        untrusted = run_send(source, out, controller.port, "--yes", LETTERBATCH_SMTP_PASSWORD="s3cret",
                             **{**env, "SSL_CERT_FILE": str(tmp_path / "server.pem")})
        assert untrusted.returncode == 1 and mailbox.messages == []
        assert all(detail.startswith(f"no secure connection to 127.0.0.1:{controller.port}: CERTIFICATE_VERIFY_FAILED")
                   for _, detail in results(untrusted.stdout).values()), untrusted.stdout
        # no STARTTLS, or no login, where the server wants one: said as the setting to give
        # (it was "the server refused the sender: 530 ...", which names no setting)
        plain = run_send(source, out, controller.port, "--yes", SSL_CERT_FILE=str(ca))
        assert results(plain.stdout)["essex"][1].startswith("the server takes mail only after a login or a secure "
                                                            "connection (530 "), plain.stdout
        assert results(plain.stdout)["essex"][1].endswith(
            "set letterbatch.smtp.security: starttls; the next run retries it once that is set"), plain.stdout
        anonymous = run_send(source, out, controller.port, "--yes", SSL_CERT_FILE=str(ca),
                             INVOKE_LETTERBATCH_SMTP_SECURITY="starttls")
        assert results(anonymous.stdout)["essex"][1].endswith(
            "set letterbatch.smtp.user (the password from LETTERBATCH_SMTP_PASSWORD or a prompt); "
            "the next run retries it once that is set"), anonymous.stdout
        assert mailbox.messages == []
        asked = run_send(source, out, controller.port, "--yes", **env)
        assert asked.returncode == 2 and asked.stderr.strip() == "set LETTERBATCH_SMTP_PASSWORD (no terminal to ask)"
        wrong = run_send(source, out, controller.port, "--yes", LETTERBATCH_SMTP_PASSWORD="guess", **env)
        assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
        assert all(status == "failed" and detail.startswith("the server refused the login of 'office': 535")
               for status, detail in results(wrong.stdout).values())
        assert mailbox.messages == []
        done = run_send(source, out, controller.port, "--yes", LETTERBATCH_SMTP_PASSWORD="s3cret", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]
    finally:
        controller.stop()
    # security: ssl, TLS from the first byte (port 465's way), certificate checked the same way
    implicit_box = Mailbox()
    implicit = Controller(implicit_box, hostname="127.0.0.1", port=free_port(), ssl_context=context,
                          auth_required=True, authenticator=authenticator,
                          auth_require_tls=False)  # aiosmtpd counts STARTTLS only; this link is TLS throughout
    implicit.start()
    try:
        env = {"INVOKE_LETTERBATCH_SMTP_SECURITY": "ssl", "INVOKE_LETTERBATCH_SMTP_USER": "office",
               "LETTERBATCH_SMTP_PASSWORD": "s3cret"}
        untrusted = run_send(source, out, implicit.port, "--yes", "--resend", "london", **env)
        assert untrusted.returncode == 1 and implicit_box.messages == [], untrusted.stdout
        assert "CERTIFICATE_VERIFY_FAILED" in results(untrusted.stdout)["london"][1]
        done = run_send(source, out, implicit.port, "--yes", "--resend", "london", SSL_CERT_FILE=str(ca), **env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [rcpts for rcpts, _ in implicit_box.messages] == [[address("london")]]
    finally:
        implicit.stop()
    help_text = subprocess.run([sys.executable, "-m", "invoke", "--help", "send"], cwd=ROOT,
                               capture_output=True, text=True).stdout
    assert "password" not in help_text.lower()


def test_the_same_letters_built_into_another_folder_are_not_mailed_again(batch, smtp_server, tmp_path):
    """The same batch built into a second folder (renamed, -b, the letterbatch command run
    elsewhere) has a send log of its own, empty: every recipient was mailed a second time.
    What was handed to a server from any folder of this user is kept beside the logs, so
    the second folder's send holds each letter as already sent, naming the first folder;
    --resend mails one again on purpose. Another letter (edited) goes as a new letter."""
    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5
    renamed = tmp_path / "elsewhere" / "october.yaml"
    renamed.parent.mkdir()
    renamed.write_text(source.read_text().replace("Dear Sophie,", "Dear Ms Linden,"))  # london's letter edited
    second = renamed.parent / "build"
    assert build(renamed, second).ok
    again = run_send(renamed, second, port, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    lines = results(again.stdout)
    for rid in IDS:
        if rid == "london":
            assert lines[rid][0] == "sent", lines[rid]
            continue
        said = lines[rid][0]  # "already sent" fills its column: one space before what follows
        when = said.split(" on ")[1].split(" to ")[0]
        assert said == (f"already sent this very letter, from another build folder ({out.resolve()}, as '{rid}') on "
                        f"{when} to {address(rid)}; "
                        f"{suggested(renamed, second, f'send --resend {rid} --yes')} mails it again from here"), said
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 2, 1, 1]
    assert run_send(renamed, second, port, "--yes", "--resend", "essex").returncode == 0
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 2, 1, 2]


def test_a_letter_that_failed_here_and_went_from_another_folder_since_is_not_mailed_again(batch, smtp_server, tmp_path):
    """A letter whose send failed in one folder (the server said try later), then mailed
    from a second folder of the same batch, went a second time with the first folder's next
    run: its failed attempt kept it from being looked up beside the logs. Held as already
    sent from the other folder; --resend mails it again on purpose."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    mailbox.try_later.add(address("sussex"))
    first = run_send(source, out, port, "--yes")
    assert first.returncode == 1 and results(first.stdout)["sussex"][0] == "failed", first.stdout
    mailbox.try_later.clear()
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns("sent.json"))
    other = run_send(copy / source.name, copy / out.name, port, "--yes")
    assert results(other.stdout)["sussex"][0] == "sent", other.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5
    again = run_send(source, out, port, "--yes")
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5, again.stdout  # sussex was mailed twice
    said = results(again.stdout)["sussex"][0]
    assert said.startswith(f"already sent this very letter, from another build folder ({(copy / out.name).resolve()}, "
                           "as 'sussex') on "), said
    # a letter that failed here and was never mailed elsewhere is still retried
    mailbox.try_later.add(address("essex"))
    assert run_send(source, out, port, "--yes", "--resend", "essex").returncode == 1
    mailbox.try_later.clear()
    assert results(run_send(source, out, port, "--yes").stdout)["essex"][0] == "sent"
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 2]


def test_two_sends_at_once_from_two_folders_of_the_same_letters_mail_nobody_twice(batch, smtp_server, tmp_path):
    """The same batch sent from two build folders at once: each read the user's record of
    hand-overs when it began, found nothing, and mailed everyone: each recipient got the
    letter twice. Whichever comes second to a letter finds the other's hand-over, just
    before its own, and hangs up before the end of the message."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy)
    mailbox.hold_at_rcpt.add(address(IDS[0]))  # the first send waits at its first letter...
    first = subprocess.Popen(send_command(source, out, "--yes"), cwd=ROOT, env=smtp_env(port),
                             start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert mailbox.holding.wait(120), "the first send never reached its first letter"
        second = run_send(copy / source.name, copy / out.name, port, "--yes")  # ...while the second sends all
        assert second.returncode == 0 and "5 sent" in second.stdout, second.stdout + second.stderr
        mailbox.released = True
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5, stdout
    said = results(stdout)["essex"][0]
    assert said.startswith(f"already sent this very letter, from another build folder ({(copy / out.name).resolve()}, "
                           "as 'essex') while this send was under way, on "), said
    assert "5 already sent" in stdout and first.returncode == 0, stdout + stderr
    again = run_send(source, out, port, "--yes")  # and so they stay
    assert again.returncode == 0 and "5 already sent" in again.stdout, again.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(source), "-b", str(out)],
                            cwd=ROOT, capture_output=True, text=True)  # as sent, not "mail failed"
    assert status.returncode == 0 and "mail failed" not in status.stdout, status.stdout + status.stderr
    assert f"mailed to {address('essex')} from another build folder ({(copy / out.name).resolve()}) on " in status.stdout


def test_a_build_folder_lost_with_its_send_log_and_built_again_mails_nobody_twice(batch, smtp_server):
    """A build folder in /tmp, gone with a restart (its send log with it), built again in the
    same place: the letters the user's record says went from that very folder were mailed a
    second time, as only other folders were looked for. Held as already sent, in words that
    say the folder's own log no longer has them; --resend mails one again on purpose."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    shutil.rmtree(out)  # the restart: the folder and its sent.json gone, the user's state kept
    assert build(source, out).ok
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5
    said = results(again.stdout)["essex"][0]
    assert said.startswith("already sent this very letter, from this build folder, whose send log (sent.json) "
                           "no longer has it (deleted, or lost with the folder), as 'essex' on "), said
    assert said.endswith(f"{suggested(source, out, 'send --resend essex --yes')} mails it again"), said
    assert run_send(source, out, port, "--yes", "--resend", "essex").returncode == 0
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 2]


def test_status_names_letters_mailed_from_another_folder_as_send_holds_them(batch, smtp_server, tmp_path):
    """A batch file renamed (or the project copied) builds into a folder with no send log:
    `send` holds each letter the user's record says went from the first folder as already
    sent, but `status` called them ready with no word of mail, exit 0, as if nobody had
    them. It names them as send does; so a folder whose own send log lost them."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    renamed = tmp_path / "elsewhere" / "oct.yaml"
    shutil.copytree(source.parent, renamed.parent, ignore=lambda folder, names: [n for n in names if
                                                                             Path(folder, n) == out])
    (renamed.parent / source.name).rename(renamed)
    second = renamed.parent / "oct-build"
    assert build(renamed, second).ok

    def status(source, out) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                               "--build-dir", str(out)], cwd=ROOT, env=smtp_env(port), capture_output=True,
                              text=True, timeout=60)

    seen = status(renamed, second)
    assert seen.returncode == 0 and "Traceback" not in seen.stderr, seen.stdout + seen.stderr
    for rid in IDS:
        assert re.search(rf"^  {rid} +ready\n +mailed to {re.escape(address(rid))} on \S+ from another build folder "
                         rf"\({re.escape(str(out.resolve()))}, as '{rid}'\), not from this one: send holds it as "
                         rf"already sent; {re.escape(suggested(renamed, second, f'send --resend {rid} --yes'))} mails "
                         "it again from here$", seen.stdout, re.M), seen.stdout
    # an address given since (printed nowhere: the same letter): send mails it there, and
    # status said "send holds it as already sent" of it, by the letter's bytes alone
    renamed.write_text(renamed.read_text().replace(address("essex"), "essex.new@example.test"))
    assert build(renamed, second).ok
    seen = status(renamed, second)
    assert re.search(r"^  essex +ready$", seen.stdout, re.M) and "mailed to essex@" not in seen.stdout, seen.stdout
    assert results(run_send(renamed, second, port).stdout)["essex"][0] == "would send"
    (out / "sent.json").unlink()  # the first folder's own log deleted: its letters went from it all the same
    seen = status(source, out)
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert re.search(r"^  essex +ready\n +mailed to .* from this build folder, whose send log \(sent.json\) no "
                     r"longer has it: send holds it as already sent; ", seen.stdout, re.M), seen.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5


def test_the_same_words_built_again_with_other_bytes_are_not_mailed_again_from_another_folder(
        batch, smtp_server, tmp_path):
    """Letters mailed from one folder, the project then copied without its send log and the
    letters built again by a letterhead that makes other bytes of the same words (as a
    letterbatch updated meanwhile does): the user's record matched letters by their bytes
    alone, and everyone was mailed a second time. Held by their words, in send and status;
    --resend mails one on purpose; a letter whose words changed goes as a new letter."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    house = "\\NeedsTeXFormat{LaTeX2e}\n\\ProvidesClass{house}\n\\LoadClassWithOptions{letterbatch}\n"
    (source.parent / "house.cls").write_text(house)
    source.write_text(source.read_text().replace("  body:\n", "  letterhead: house.cls\n  body:\n", 1))
    assert build(source, out).ok
    assert run_send(source, out, port, "--yes").returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns("sent.json"))
    # the same words, other bytes: a letterhead drawn another way
    (copy / "house.cls").write_text(house + "\\AtBeginDocument{\\pdfpageattr{/Rotate 0}}\n")
    (copy / source.name).write_text((copy / source.name).read_text().replace("Dear Sophie,", "Dear Ms Linden,"))
    second = copy / out.name
    assert build(copy / source.name, second).ok
    before, after = Manifest.read(out).letters, Manifest.read(second).letters
    assert all(before[rid]["sha256"] != after[rid]["sha256"] for rid in IDS)
    assert [before[rid]["words"] == after[rid]["words"] for rid in IDS] == [True, True, False, True, True]
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(copy / source.name), "-b", str(second)],
                          cwd=ROOT, env=smtp_env(port), capture_output=True, text=True, timeout=60)
    assert re.search(r"^  essex +ready\n +mailed \(the same words, built before\) to essex@example.test on \S+ from "
                     rf"another build folder \({re.escape(str(out.resolve()))}, as 'essex'\)", seen.stdout, re.M), seen.stdout
    assert "london" in seen.stdout and not re.search(r"^  london +ready\n +mailed", seen.stdout, re.M), seen.stdout
    again = run_send(copy / source.name, second, port, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    lines = results(again.stdout)
    assert lines["london"][0] == "sent", lines  # new words: a new letter
    for rid in set(IDS) - {"london"}:
        assert lines[rid][0].startswith("already sent this letter (the same words, built before and since built "
                                        f"again), from another build folder ({out.resolve()}, as '{rid}') on "), lines[rid]
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 2, 1, 1]
    assert run_send(copy / source.name, second, port, "--yes", "--resend", "essex").returncode == 0
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 2, 1, 2]
    # and in the first folder, built again so: status exited 1, "REBUILT SINCE: the recipient
    # has the old letter" for every letter, as if each recipient had another letter
    (source.parent / "house.cls").write_text((copy / "house.cls").read_text())
    assert build(source, out).ok
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(source), "-b", str(out)],
                          cwd=ROOT, env=smtp_env(port), capture_output=True, text=True, timeout=60)
    assert seen.returncode == 0 and "REBUILT SINCE" not in seen.stdout, seen.stdout
    same = ("rebuilt since with the same words (by another letterbatch or letterhead: the recipient has its text); "
            f"{suggested(source, out, 'send --resend essex --yes')} sends the new one")
    assert re.search(rf"^  essex +ready\n +mailed to essex@example.test on \S+ - {re.escape(same)} if they should "
                     "have it$", seen.stdout, re.M), seen.stdout
    dry = results(run_send(source, out, port).stdout)["essex"]
    assert dry[0].startswith("already sent on ") and dry[0].endswith(f"; the letter was {same.replace('); ', '): ')}"), dry
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 2, 1, 2]


def test_the_same_letter_under_a_tidied_id_in_another_folder_is_not_mailed_again(batch, smtp_server, tmp_path):
    """The project copied without its send log, and a recipient's id tidied in the copy
    (essex -> essex-pcc): the id names the PDF and prints nowhere, but it was part of the
    letter's words, and it changes the PDF's bytes (its named destinations), so the
    recipient was mailed the same letter a second time. In one folder a renamed id is held
    by its address; in another, by the words, which leave the id out."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns("sent.json"))
    (copy / source.name).write_text((copy / source.name).read_text().replace("- id: essex\n", "- id: essex-pcc\n"))
    second = copy / out.name
    assert build(copy / source.name, second).ok
    assert Manifest.read(second).letters["essex-pcc"]["words"] == Manifest.read(out).letters["essex"]["words"]
    said = results(run_send(copy / source.name, second, port, "--yes").stdout)
    assert said["essex-pcc"][0].startswith("already sent this letter (the same words, built before and since built "
                                           f"again), from another build folder ({out.resolve()}, as 'essex') on "), said
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5


def test_a_hand_over_whose_own_folder_says_it_failed_or_cannot_say_is_not_already_sent_elsewhere(
        batch, smtp_server, tmp_path):
    """The user's record notes a letter just before its message is handed over, so it holds
    attempts: one the server then refused (554 at the message's end), or whose answer never
    came ("unknown" in its folder's log), was "already sent" from a second folder of the
    same letters: the first nobody then had, the second nobody was told to check. That
    folder's send log decides: refused, it goes from here; unknown, it is unknown here too,
    in send and status, until a person settles it."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    mailbox.refuse_data.add(address("sussex"))
    mailbox.drop_after_data.add(address("essex"))
    first = results(run_send(source, out, port, "--yes").stdout)
    assert (first["sussex"][0], first["essex"][0]) == ("failed", "unknown"), first
    # and a --resend there the server refused: the first try may be in the mailbox all the same
    mailbox.refuse_data.add(address("essex"))
    assert results(run_send(source, out, port, "--yes", "--resend", "essex").stdout)["essex"][0] == "failed"
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns("sent.json"))
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(copy / source.name), "-b",
                           str(copy / out.name)], cwd=ROOT, env=smtp_env(port), capture_output=True, text=True,
                          timeout=60)
    assert seen.returncode == 1, seen.stdout
    assert re.search(r"^  essex +ready\n +mail: unknown: this very letter was handed to the server from another "
                     rf"build folder \({re.escape(str(out.resolve()))}, as 'essex'\) on \S+ to essex@example.test, "
                     r"and that folder's send log cannot say whether it arrived; check the mailbox", seen.stdout, re.M), seen.stdout
    assert re.search(r"^  sussex +ready$", seen.stdout, re.M), seen.stdout  # nobody has it: nothing said
    second = run_send(copy / source.name, copy / out.name, port, "--yes")
    said = results(second.stdout)
    assert said["sussex"][0] == "sent", said
    assert said["essex"][0] == "unknown" and said["essex"][1].startswith(
        "this very letter was handed to the server from another build folder"), said
    assert second.returncode == 1
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 0]
    # settled in the first folder: the letter did not arrive, and goes from there; the second
    # folder then holds it as already sent
    assert run_send(source, out, port, "--yes", "--resend", "essex").returncode == 0
    third = results(run_send(copy / source.name, copy / out.name, port, "--yes").stdout)
    assert third["essex"][0].startswith("already sent this very letter, from another build folder"), third
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]


def test_a_hand_over_refused_then_stopped_before_its_next_hand_over_is_not_already_sent_elsewhere(
        batch, smtp_server, tmp_path):
    """A letter the server refused at the message's end (noted on the user's record as handed
    over), then tried again in its folder and stopped (Ctrl-C) while the server took its time
    over the envelope: that folder's log says "attempting", which was read as sent, and a
    second folder of the same letters held it as already sent, though nobody had it."""
    import shutil

    source, out = batch
    mailbox, port = smtp_server
    mailbox.refuse_data.add(address("sussex"))
    assert results(run_send(source, out, port, "--yes").stdout)["sussex"][0] == "failed"
    ctrl_c_at_the_envelope(source, out, smtp_server, "sussex")
    assert (sent_log(out)["sussex"]["state"], sent_log(out)["sussex"]["stage"]) == ("attempting", "envelope")
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns("sent.json"))
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(copy / source.name), "-b",
                           str(copy / out.name)], cwd=ROOT, env=smtp_env(port), capture_output=True, text=True,
                          timeout=60)
    # nobody has it: no line of mail under it
    assert re.search(r"^  sussex +ready\n(?!  +mail)", seen.stdout, re.M), seen.stdout
    said = results(run_send(copy / source.name, copy / out.name, port, "--yes").stdout)
    assert said["sussex"][0] == "sent", said
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]


def test_a_line_of_the_users_record_cut_short_by_a_crash_keeps_the_next_one_whole(batch, smtp_server, tmp_path):
    """A send killed while it wrote its line to the user's record of hand-overs left half a
    line; the next send's line was glued onto it, unreadable, and that letter was mailed
    again from another folder. The next line starts on a line of its own."""
    import shutil

    from builder.send import MailedFromAnyFolder

    source, out = batch
    mailbox, port = smtp_server
    record = MailedFromAnyFolder().path
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(b'{"address": "someone@example.test", "letter_sha')  # the crash
    assert run_send(source, out, port, "--yes").returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy, ignore=shutil.ignore_patterns("sent.json"))
    again = run_send(copy / source.name, copy / out.name, port, "--yes")
    assert [results(again.stdout)[rid][0].split(",")[0] for rid in IDS] == ["already sent this very letter"] * 5, again.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5


def test_a_send_log_entry_without_its_time_is_never_said_as_none(batch, smtp_server):
    """A time taken out of sent.json by hand (it is not needed to judge a letter) printed
    as Python's None in status ("mailed to ... on None") and --mark-sent, "?" in send."""
    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    log = json.loads((out / "sent.json").read_text())
    del log["letters"]["london"]["time"]
    (out / "sent.json").write_text(json.dumps(log))
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                           "--build-dir", str(out)], cwd=ROOT, env=smtp_env(port), capture_output=True, text=True)
    marked = run_send(source, out, port, "--mark-sent", "london")
    dry = run_send(source, out, port)
    for said in (seen.stdout, marked.stdout, dry.stdout):
        assert "None" not in said and f"on ? to {address('london')}" in said.replace(
            f"mailed to {address('london')} on ?", f"on ? to {address('london')}"), said
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5


def test_a_send_log_saved_again_by_notepad_still_reads(batch, smtp_server):
    """sent.json opened and saved on a shared drive by an editor that writes a byte order
    mark and CRLF line ends (Notepad) means the same: send stopped ("Unexpected UTF-8 BOM
    (decode using utf-8-sig)"), and status exited 1, though every letter was on the log."""
    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    text = (out / "sent.json").read_text()
    (out / "sent.json").write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode())
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0 and "cannot be read" not in again.stdout + again.stderr, again.stdout + again.stderr
    assert [results(again.stdout)[rid][0].split(" on ")[0] for rid in IDS] == ["already sent"] * 5
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5


def test_a_line_of_the_users_record_being_written_as_it_is_read_is_read_whole_later(tmp_path, monkeypatch):
    """A send that read the user's record while another send (of the same letters, from
    another folder) was writing a line took the half it saw as read: the rest, read just
    before a hand-over, was not a line either, so that letter went from both folders."""
    from builder.send import MailedFromAnyFolder

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    record = MailedFromAnyFolder().path
    record.parent.mkdir(parents=True)
    line = json.dumps({"address": "a@example.test", "letter_sha256": "1" * 64, "words": "",
                       "folder": str(tmp_path / "other"), "id": "a", "time": "now"}).encode() + b"\n"
    record.write_bytes(line[:40])  # the other send is writing it
    mailed = MailedFromAnyFolder()
    mailed.read()
    record.write_bytes(line)  # ...and has written it
    meanwhile = mailed.claim("a@example.test", "1" * 64, tmp_path / "here", "a")
    assert meanwhile is not None and meanwhile["folder"] == str(tmp_path / "other")


def test_a_relative_xdg_state_home_is_not_a_log_per_folder(tmp_path, monkeypatch):
    """XDG_STATE_HOME=state (relative) was read from the folder a command ran in: a log of
    its own in each, so the same letters sent from another folder went again. A relative
    path is ignored, as the XDG spec says: the log is the home's, whatever the folder."""
    from builder.send import MailedFromAnyFolder

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", "state")
    found = set()
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        found.add(MailedFromAnyFolder().path)
    assert found == {tmp_path / "home" / ".local" / "state" / "letterbatch" / "mailed.jsonl"}
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "mine"))  # an absolute one is used
    assert MailedFromAnyFolder().path == tmp_path / "mine" / "letterbatch" / "mailed.jsonl"


def test_a_user_record_that_cannot_be_written_is_said_once(batch, smtp_server, tmp_path):
    """$XDG_STATE_HOME not writable (a read-only home, a file in the way): the letters still
    go, each once, and one warning line says the user's record of them could not be written,
    so another build folder of the same letters would mail them again. (It went on without a
    word, the guard against a second folder silently gone.)"""
    source, out = batch
    mailbox, port = smtp_server
    blocked = tmp_path / "state-is-a-file"
    blocked.write_text("not a folder")
    done = run_send(source, out, port, "--yes", XDG_STATE_HOME=str(blocked))
    assert done.returncode == 0, done.stderr
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5
    assert done.stderr == (f"warning: could not note the letters mailed in {blocked}/letterbatch/mailed.jsonl "
                           "(Not a directory): a send from another build folder will not know they went (this "
                           f"folder's send log, sent.json, still keeps them from going twice from here); {blocked} is "
                           "a file where a folder should be: move it away, or set XDG_STATE_HOME to another "
                           "folder\n"), done.stderr
    again = run_send(source, out, port, "--yes", XDG_STATE_HOME=str(blocked))  # nothing handed over: no word
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert [mailbox.count(rid) for rid in IDS] == [1] * 5


def test_a_timeout_or_host_that_cannot_work_is_one_line(batch, smtp_server):
    """INVOKE_LETTERBATCH_SMTP_TIMEOUT=0 or -5 was a traceback, 0.5 was refused as "not a
    whole number" (it is seconds), and an empty host was smtplib's "please run connect() first"."""
    source, out = batch
    mailbox, port = smtp_server
    for timeout in ("0", "-5", "7200"):
        done = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_TIMEOUT=timeout)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"the SMTP timeout is {float(timeout)!r}: give the seconds"), done.stderr
    done = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_HOST="")
    assert (done.returncode, done.stderr.strip()) == (
        2, "no mail server: set letterbatch.smtp.host (or INVOKE_LETTERBATCH_SMTP_HOST)")
    assert mailbox.messages == []
    done = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_TIMEOUT="0.5")
    assert done.returncode == 0 and [mailbox.count(rid) for rid in IDS] == [1] * 5, done.stdout + done.stderr


def test_a_send_log_that_cannot_be_read_stops_sending(batch, smtp_server):
    source, out = batch
    mailbox, port = smtp_server
    (out / "sent.json").write_text('{"letters": {"london": {"state": "se')  # cut off
    done = run_send(source, out, port, "--yes")
    assert done.returncode == 2 and mailbox.messages == []
    assert done.stderr.strip().startswith(f"{out / 'sent.json'} cannot be read")
    assert "only if no letter of this batch was sent" in done.stderr
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert f"{out / 'sent.json'} cannot be read" in status.stdout and status.returncode == 1
    # nor is a named pipe in its place waited on for ever
    (out / "sent.json").unlink()
    os.mkfifo(out / "sent.json")
    done = subprocess.run(send_command(source, out, "--yes"), cwd=ROOT, env=smtp_env(port), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"{out / 'sent.json'} cannot be read (not a file)")
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert f"{out / 'sent.json'} cannot be read" in status.stdout and status.returncode == 1
    assert mailbox.messages == []
    # a log edited by hand into entries it never writes: a traceback (KeyError, AttributeError),
    # or, for a state it does not know ("sent " with a space), the letter mailed a second time
    (out / "sent.json").unlink()
    good = {"state": "sent", "address": address("london"), "time": "2026-11-24T10:00:00+00:00"}
    for entry, problem in ((dict(good, state="sent "), "state 'sent ' is not one the log writes"),
                           ({k: v for k, v in good.items() if k != "state"}, "state None is not one the log writes"),
                           (dict(good, address=5), "address 5 is not text"), ("sent", "its entry is not a table"),
                           (dict(good, stage="done"), "stage 'done' is not one the log writes")):
        (out / "sent.json").write_text(json.dumps({"letters": {"london": entry}}))
        for command in (["send", "--yes"], ["send"], ["send", "--resend", "london", "--yes"]):
            done = run_send(source, out, port, *command[1:])
            assert done.returncode == 2 and "Traceback" not in done.stderr, (entry, command, done.stderr)
            assert done.stderr.startswith(f"{out / 'sent.json'} cannot be read (letter 'london': {problem}"), done.stderr
        status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                                 "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert status.returncode == 1 and "Traceback" not in status.stderr and problem in status.stdout, status.stdout
    assert mailbox.messages == []


ONE_READER = """\
recipients:
  - id: one
    name: Reader One
    address: [1 Road]
    salutation: Dear Reader,
    email: one@example.test
"""


def test_no_from_address_stops_before_anything_is_sent(tmp_path, smtp_server):
    from builder.build import build
    from conftest import MINIMAL_LETTER, write_yaml

    mailbox, port = smtp_server
    # the sender has no e-mail address, and the config names none
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + ONE_READER)
    out = tmp_path / "build"
    assert build(source, out).ok
    done = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_FROM="")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == ("no From address: set letterbatch.smtp.from (INVOKE_LETTERBATCH_SMTP_FROM) "
                                   "or letter.sender.email")
    assert mailbox.messages == [] and "sent" not in json.dumps(sent_log(out) if (out / "sent.json").exists() else {})
    sent = run_send(source, out, port, "--yes")  # a From in the config: sent
    assert sent.returncode == 0 and mailbox.count("one") == 1
    (_, message), = mailbox.messages  # no letter.title and no letter.email: the defaults
    assert message["Subject"] == "Letter of 4 March 2021"
    assert body_of(message) == "Please find attached a letter from Ann Sender.\n"


def test_the_default_from_is_the_sender_s_name_and_address(tmp_path, smtp_server):
    """With no letterbatch.smtp.from, the message is from the letter's sender by name
    and address (it was the bare address); a name with accents is encoded (RFC 2047),
    one with a comma quoted; a from in the config still wins."""
    from builder.build import build
    from conftest import MINIMAL_LETTER, write_yaml

    mailbox, port = smtp_server
    sender = "    name: Siân Ffion Dafydd, Clerc\n    role: Clerk\n    address: [1 High Street, Town]\n" \
             "    email: clerk@office.example.test\n"
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    name: Ann Sender\n    role: Clerk\n    address: [1 High Street, Town]\n", sender, 1) + ONE_READER)
    out = tmp_path / "build"
    assert build(source, out).ok
    done = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_FROM="")
    assert done.returncode == 0, done.stdout + done.stderr
    (_, message), = mailbox.messages
    assert message["From"] == '"Siân Ffion Dafydd, Clerc" <clerk@office.example.test>'
    assert message["From"].addresses[0].display_name == "Siân Ffion Dafydd, Clerc"
    raw = dict(message.raw_items())["From"]  # as it came over the wire: ASCII, the name encoded
    assert raw.isascii() and "=?utf-8?" in raw, raw
    again = run_send(source, out, port, "--yes", "--resend", "one")  # the config's from wins
    assert again.returncode == 0 and mailbox.messages[-1][1]["From"] == FROM

    # a name holding what mail programs decode ("=?utf-8?b?...?="): it arrived decoded, not as typed
    literal = "=?utf-8?q?Bcc?="  # (short: the letterhead prints the name)
    source.write_text(source.read_text(encoding="utf-8").replace("Siân Ffion Dafydd, Clerc", f"'Siân {literal}'"))
    assert build(source, out).ok
    done = run_send(source, out, port, "--yes", "--resend", "one", INVOKE_LETTERBATCH_SMTP_FROM="")
    assert done.returncode == 0, done.stdout + done.stderr
    sent = mailbox.messages[-1][1]["From"]
    assert sent.addresses[0].display_name == f"Siân {literal}"
    assert sent.addresses[0].addr_spec == "clerk@office.example.test"


def test_a_server_that_stops_answering_is_failed_before_the_message_and_unknown_after(batch, smtp_server):
    # letterbatch.smtp.timeout: a silent server at the envelope fails that letter (sent next
    # run); silent once it has the message, the letter is unknown and never sent again by itself
    source, out = batch
    mailbox, port = smtp_server
    mailbox.hold_at_rcpt.add(address("sussex"))
    mailbox.hold_after_data.add(address("london"))
    first = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_TIMEOUT="2")
    assert first.returncode == 1 and "Traceback" not in first.stderr, first.stderr
    lines = results(first.stdout)
    assert lines["sussex"][0] == "failed" and "timed out" in lines["sussex"][1], lines
    assert lines["london"][0] == "unknown", lines
    assert [lines[rid][0] for rid in ("avon-and-somerset", "south-wales", "essex")] == ["sent"] * 3  # new connections
    assert [mailbox.count(rid) for rid in IDS] == [1, 0, 1, 1, 1]  # london's message did arrive
    mailbox.released = True
    again = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_TIMEOUT="2")
    lines = results(again.stdout)
    assert lines["sussex"][0] == "sent" and lines["london"][0] == "unknown", again.stdout
    assert [mailbox.count(rid) for rid in IDS] == [1, 1, 1, 1, 1]  # nobody twice


def test_a_manifest_edited_by_hand_sends_only_what_it_still_vouches_for(batch, smtp_server):
    """A record damaged by hand is never a traceback: a letter whose entry is not
    what the builder writes is not vouched for, so it is not sent; the others go once."""
    source, out = batch
    mailbox, port = smtp_server
    data = json.loads((out / "manifest.json").read_text())
    data["letters"]["london"]["sha256"] = None
    data["letters"]["sussex"]["findings"] = "abc"
    data["bundle"]["inputs"] = [1]
    data["batch"]["warnings"] = "abc"
    (out / "manifest.json").write_text(json.dumps(data))
    done = run_send(source, out, port, "--yes")
    assert "Traceback" not in done.stderr and done.returncode == 1, done.stdout + done.stderr
    said = results(done.stdout)
    assert {rid: status for rid, (status, _) in said.items()} == {
        "avon-and-somerset": "sent", "sussex": "not ready", "london": "not ready", "south-wales": "sent",
        "essex": "sent"}, done.stdout
    assert sorted(mailbox.count(rid) for rid in IDS) == [0, 0, 1, 1, 1]
    assert mailbox.count("london") == 0 and mailbox.count("sussex") == 0


def test_a_letter_changed_while_the_send_runs_is_not_mailed(batch, smtp_server, tmp_path):
    """What is mailed is what was checked: a long send judges every letter first,
    then mails them one by one. A letter (or its signed copy) changed by hand in
    the meantime is not the file that was judged ready: it is not sent, the rest are."""
    source, out = batch
    mailbox, port = smtp_server
    signed_copy(out, "essex", tmp_path)
    mailbox.hold_at_rcpt.add(address("avon-and-somerset"))  # the first letter: the others are judged already
    proc = subprocess.Popen(send_command(source, out, "--yes"), cwd=ROOT, env=smtp_env(port),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert mailbox.holding.wait(120), "the sender never reached the held message"
        letters = Layout.of(out)
        with open(letters.pdf("sussex"), "ab") as handle:  # one byte appended
            handle.write(b"\n")
        letters.pdf("london").write_bytes(letters.pdf("south-wales").read_bytes())  # another letter's file
        with open(out / "signed" / "essex.pdf", "ab") as handle:
            handle.write(b"%%EOF\n")
    finally:
        mailbox.released = True
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr, stdout + stderr
    lines = results(stdout)
    assert {rid: status for rid, (status, _) in lines.items()} == {
        "avon-and-somerset": "sent", "sussex": "not ready", "london": "not ready", "south-wales": "sent",
        "essex": "not ready"}, stdout
    assert lines["sussex"][1] == "changed: letters/sussex.pdf changed since it was judged ready", lines
    assert lines["essex"][1] == "changed: signed/essex.pdf changed since it was judged ready", lines
    assert [mailbox.count(rid) for rid in IDS] == [1, 0, 0, 1, 0]
    assert set(sent_log(out)) == {"avon-and-somerset", "south-wales"}  # nothing attempted for the others


def test_an_id_given_to_someone_else_after_sending_mails_nobody_twice(batch, smtp_server):
    """Ids name letters, not people: london's id renamed (mopac) and 'london' given to a
    new recipient. The log's letter under 'london' went to the address mopac has now,
    so mopac is 'already sent as london', not mailed again; the newcomer is held back
    with the address the log has, to be sent on purpose."""
    from builder.build import build

    source, out = batch
    mailbox, port = smtp_server
    assert run_send(source, out, port, "--yes").returncode == 0
    text = source.read_text()
    essex = text[text.index("  - id: essex\n"):]
    source.write_text(text.replace("- id: london\n", "- id: mopac\n")
                      + essex.replace("id: essex", "id: london", 1).replace("essex@example.test", "new@example.test"))
    assert build(source, out).ok
    again = run_send(source, out, port, "--yes")
    lines = results(again.stdout)
    assert lines["mopac"][0].startswith(
        "already sent as 'london' (now the id of a recipient at another address) on "), again.stdout
    assert lines["london"][0].startswith("already sent on ") and "to london@example.test;" in lines["london"][0]
    assert len(mailbox.messages) == 5 and mailbox.count("london") == 1


def test_a_marked_letter_is_marked_on_the_bundle_s_front_and_in_its_e_mail_subject(batch, smtp_server):
    """A bundle that holds one OFFICIAL-SENSITIVE letter is OFFICIAL-SENSITIVE:
    its cover says so, though the batch itself is marked OFFICIAL, and a
    marking the scheme does not name (PERSONAL) is shown beside it. A marked
    letter's e-mail subject begins with its marking, once."""
    from builder.build import build
    from builder.compose import bundle_marking, classification
    from builder.merge import merge

    source, out = batch
    mailbox, port = smtp_server
    text = source.read_text().replace("  title: ", "  marking: OFFICIAL\n  title: ", 1)
    text = text.replace("  - id: london\n", "  - id: london\n    marking: OFFICIAL-SENSITIVE\n", 1)
    source.write_text(text.replace("  - id: essex\n", "  - id: essex\n    marking: PERSONAL\n", 1))
    assert build(source, out).ok
    bundle = merge(source, out, duplex=True).path
    cover = subprocess.run(["pdftotext", "-l", "1", "-layout", str(bundle), "-"], capture_output=True, text=True,
                           check=True).stdout
    assert cover.split()[:3] == ["OFFICIAL-SENSITIVE", "/", "PERSONAL"], cover[:200]
    assert cover.rstrip().endswith("OFFICIAL-SENSITIVE / PERSONAL"), cover[-200:]
    blank = subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(bundle), "-"], capture_output=True, text=True,
                           check=True).stdout  # duplex: the blank page behind the one-page cover
    assert blank.split() == ["OFFICIAL-SENSITIVE", "/", "PERSONAL"] * 2, blank

    done = run_send(source, out, port, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    subjects = {rcpts[0]: m["Subject"] for rcpts, m in mailbox.messages}
    assert subjects[address("london")] == "OFFICIAL-SENSITIVE: Violence Reduction Units and modern slavery"
    assert subjects[address("essex")] == "PERSONAL: Violence Reduction Units and modern slavery"
    assert subjects[address("sussex")] == "OFFICIAL: Violence Reduction Units and modern slavery"

    class Batch:  # only the batch's marking is read
        class letter:
            marking = "OFFICIAL"

    class Marked:
        def __init__(self, marking):
            self.marking = marking

    assert [classification(m) for m in ("OFFICIAL", "official - sensitive personal", "SECRET", "TOP SECRET",
                                         "OFFICIALLY", "PERSONAL")] == [1, 2, 3, 4, 0, 0]
    assert bundle_marking(Batch, [Marked(None), Marked("SECRET"), Marked("OFFICIAL-SENSITIVE")]) == "SECRET"
    assert bundle_marking(Batch, [Marked(None)]) == "OFFICIAL"


def test_resend_of_a_recipient_saved_invalid_says_so_and_suggests_no_other(tmp_path):
    """`send --resend two`, two being saved invalid, was "no valid recipient with id: two
    (did you mean 'one'?)": another person's letter, to copy and mail again. It is said to
    be invalid now, with the status that says why; a typo of it is told it is that one.
    So is `publish --cleared` (the same words, from the same rule)."""
    from conftest import MINIMAL_LETTER, write_yaml

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + """\
recipients:
  - {id: one, name: Reader One, address: [1 Road], salutation: 'Dear One,', email: one@example.test}
  - {id: two, name: Reader Two, address: [2 Road], salutation: 'Dear Two,', email: two@example.test, bogus: 1}
""")
    out = tmp_path / "build"
    for ids in ("two", "tow"):
        said = run_send(source, out, 28150, "--resend", ids)  # refused before any server is asked
        assert said.returncode == 2, said.stdout + said.stderr
        assert "did you mean 'one'" not in said.stderr, said.stderr
    assert said.stderr.strip().endswith("--resend: no valid recipient with id: tow (did you mean 'two'?)")
    said = run_send(source, out, 28150, "--resend", "two")
    assert said.stderr.strip().endswith(f"--resend: two is not valid now: fix what {suggested(source, out, 'status')} "
                                        "says of it first"), said.stderr
    site = tmp_path / "site"
    site.mkdir()
    published = subprocess.run([sys.executable, "-m", "invoke", "publish", "--to", str(site), "--cleared", "two",
                                "-r", str(source), "-b", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert published.returncode == 2 and "--cleared: two is not valid now" in published.stderr, published.stderr


def test_a_subject_holds_a_marking_only_as_the_marking_s_own_words(batch):
    """A marked letter's subject begins with its marking unless the subject shows it
    already: as its words, not as letters inside others. "SECRET" was found in "the
    Secretary of State" and "OFFICIAL" in "Unofficial", and those letters went unmarked."""
    from builder.build import build

    source, out = batch
    text = source.read_text().replace("  title: ", "  marking: OFFICIAL\n  email:\n    subject: "
                                      "Unofficial note to the Secretary of State\n  title: ", 1)
    source.write_text(text.replace("  - id: london\n", "  - id: london\n    marking: SECRET\n", 1))
    assert build(source, out).ok
    dry = run_send(source, out, 28150)  # a dry run: no server is asked
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"to {address('london')}: 'SECRET: Unofficial note to the Secretary of State'" in dry.stdout
    assert f"to {address('sussex')}: 'OFFICIAL: Unofficial note to the Secretary of State'" in dry.stdout
    # a subject that does show it is left as it is: the marking once
    source.write_text(source.read_text().replace("subject: Unofficial note to the Secretary of State\n",
                                                 "subject: 'OFFICIAL: Note to the Secretary of State'\n", 1))
    dry = run_send(source, out, 28150)
    assert f"to {address('sussex')}: 'OFFICIAL: Note to the Secretary of State'" in dry.stdout, dry.stdout
    assert f"to {address('london')}: 'SECRET: OFFICIAL: Note to the Secretary of State'" in dry.stdout


def test_a_welsh_recipient_gets_the_e_mail_in_welsh_when_it_is_given_by_language(tmp_path, smtp_server):
    """letter.email's subject and body, like the letters' own texts, may be
    written once per language: each recipient gets the one in their letter's
    language, $date in it too ("13 Hydref 2020"). A text written once is in
    the letter's language."""
    from builder.build import build
    from conftest import MINIMAL_LETTER, write_yaml

    mailbox, port = smtp_server
    letter = MINIMAL_LETTER.replace("    - main: This is the shared text.",
                                    "    - main: {en: This is the shared text., cy: Dyma'r testun.}").replace(
        "  body:\n", "  email:\n    subject: {en: Our letter of $date, cy: Ein llythyr dyddiedig $date}\n"
                     "    body:\n      en: Please find our letter attached, $name.\n"
                     "      cy: Amgaeir ein llythyr, $name.\n  body:\n", 1).replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")  # signed in each letter's language
    source = write_yaml(tmp_path / "recipients.yaml", letter + """\
recipients:
  - {id: saesneg, name: Reader One, address: [1 Road], salutation: 'Dear Reader,', email: one@example.test}
  - {id: cymraeg, name: Darllenydd Dau, address: [2 Ffordd], salutation: 'Annwyl Ddarllenydd,',
     email: two@example.test, language: cy}
""")
    out = tmp_path / "build"
    assert build(source, out).ok
    done = run_send(source, out, port, "--yes", INVOKE_LETTERBATCH_SMTP_FROM="clerk@example.test")
    assert done.returncode == 0, done.stdout + done.stderr
    mails = {rcpts[0]: (m["Subject"], body_of(m)) for rcpts, m in mailbox.messages}
    assert mails["one@example.test"] == ("Our letter of 4 March 2021", "Please find our letter attached, Reader One.\n")
    assert mails["two@example.test"] == ("Ein llythyr dyddiedig 4 Mawrth 2021", "Amgaeir ein llythyr, Darllenydd Dau.\n")

    welsh_batch = letter.replace("letter:\n", "letter:\n  language: cy\n", 1).replace(
        "{en: Our letter of $date, cy: Ein llythyr dyddiedig $date}", "Llythyr $date")  # written once: in Welsh
    write_yaml(source, welsh_batch + "recipients:\n  - {id: cymraeg, name: Darllenydd Dau, address: [2 Ffordd], "
                                     "salutation: 'Annwyl Ddarllenydd,', email: three@example.test}\n")
    assert build(source, out).ok
    again = run_send(source, out, port, "--yes", "--resend", "cymraeg", INVOKE_LETTERBATCH_SMTP_FROM="clerk@example.test")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [m["Subject"] for rcpts, m in mailbox.messages if rcpts[0] == "three@example.test"] == ["Llythyr 4 Mawrth 2021"]

    write_yaml(source, letter.replace("cy: Ein llythyr dyddiedig $date", "cy: Llythyr $dyddiad") + "recipients: []\n")
    refused = run_send(source, out, port)
    assert refused.returncode == 2
    assert "field 'letter.email.subject': unknown placeholder $dyddiad; use one of $name" in refused.stderr

    # without letter.email, the defaults are English: the dry run says so of a Welsh
    # letter (never a silent mix of languages), and of no other
    plain = MINIMAL_LETTER.replace("    - main: This is the shared text.",
                                   "    - main: {en: This is the shared text., cy: Dyma'r testun.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    write_yaml(source, plain + """\
recipients:
  - {id: saesneg, name: Reader One, address: [1 Road], salutation: 'Dear Reader,', email: one@example.test}
  - {id: cymraeg, name: Darllenydd Dau, address: [2 Ffordd], salutation: 'Annwyl Ddarllenydd,',
     email: four@example.test, language: cy}
  - {id: dwyieithog, name: Darllenydd Tri, address: [3 Ffordd], salutation: {cy: 'Annwyl Ddarllenydd,',
     en: 'Dear Reader,'}, email: five@example.test, language: cy-en}
""")
    assert build(source, out).ok
    dry = results(run_send(source, out, port, "--resend", "saesneg,cymraeg,dwyieithog").stdout)
    warning = (" (its e-mail's subject and body in English, as its letter is not: give letter.email's subject "
               "and body by language, {en: …, cy: …})")
    assert dry["cymraeg"][1].endswith(warning), dry
    assert not dry["saesneg"][1].endswith(")") and not dry["dwyieithog"][1].endswith(")"), dry  # English is theirs
    assert "(the text in 'cy')" in refused.stderr, refused.stderr


def test_an_empty_mark_sent_or_resend_mails_nobody(batch, smtp_server):
    """`send --yes --mark-sent "$ID"` (or `--resend "$ID"`) with ID empty, or only commas:
    a plain send would mail every letter not yet sent, which is not what was asked. One
    line, exit 2, no mail, no send log."""
    source, out = batch
    mailbox, port = smtp_server
    for flag, value in (("--mark-sent", ""), ("--resend", ""), ("--resend", " , "), ("--mark-sent", ",")):
        done = run_send(source, out, port, "--yes", flag, value)
        assert done.returncode == 2 and f"{flag} takes the ids of the letters" in done.stderr, done
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == "", done
    assert mailbox.messages == [] and not (out / "sent.json").exists()
    both = run_send(source, out, port, "--yes", "--mark-sent", "london", "--resend", "essex")
    assert both.returncode == 2 and "give one of them; nothing was sent" in both.stderr, both  # one was dropped
    assert mailbox.messages == [] and not (out / "sent.json").exists()
    # the flag given again adds to it (invoke said "No idea what 'essex' is!"): these two, and nothing else
    twice = run_send(source, out, port, "--resend", "london", "--resend", "essex")
    assert twice.returncode == 0 and sorted(results(twice.stdout)) == ["essex", "london"], twice
    assert {status for status, _ in results(twice.stdout).values()} == {"would send"}, twice.stdout


def test_a_recipient_from_a_spreadsheet_without_an_address_is_told_to_fill_in_its_row(tmp_path, smtp_server):
    """An address missing from a spreadsheet's row is added there, not in the YAML."""
    from builder.build import build
    from conftest import MINIMAL_LETTER, write_yaml

    mailbox, port = smtp_server
    (tmp_path / "people.csv").write_text("Name,Address 1,Salutation,Email\n"
                                         'Ann One,1 Road,"Dear Ann,",ann@example.test\n'
                                         'Bo Two,2 Road,"Dear Bo,",\n', encoding="utf-8")
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients: {from: people.csv}\n")
    out = tmp_path / "build"
    assert build(source, out).ok
    dry = run_send(source, out, port)
    assert results(dry.stdout)["bo-two"] == ("no address", "fill in recipient 'bo-two''s e-mail address in "
                                                           "people.csv (its row, in the column for the field `email`)")
    assert results(dry.stdout)["ann-one"][0] == "would send" and mailbox.messages == []


def test_two_rows_of_one_name_swapped_after_sending_mail_nobody_twice(tmp_path, smtp_server):
    """Without an id column, two people of one name are john-smith and john-smith-2 in row
    order: rows swapped, each id is the other's. Each letter read as "REBUILT SINCE: the
    recipient has the old letter; --resend sends the new one" (status exit 1), and doing so
    mailed both a second copy of the letter they had."""
    from builder.build import build
    from conftest import MINIMAL_LETTER, write_yaml

    mailbox, port = smtp_server
    rows = ['John Smith,1 Elm Road,"Dear Mr Smith,",john.a@example.test\n',
            'John Smith,22 Oak Avenue,"Dear Mr Smith,",john.b@example.test\n']
    people = tmp_path / "people.csv"
    people.write_text("Name,Address 1,Salutation,Email\n" + "".join(rows), encoding="utf-8")
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients: {from: people.csv}\n")
    out = tmp_path / "build"
    assert build(source, out).ok
    assert run_send(source, out, port, "--yes").returncode == 0 and len(mailbox.messages) == 2
    people.write_text("Name,Address 1,Salutation,Email\n" + "".join(reversed(rows)), encoding="utf-8")
    assert build(source, out).ok
    status = subprocess.run([sys.executable, "-m", "invoke", "status", "--recipients", str(source),
                             "--build-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert status.returncode == 0 and "REBUILT" not in status.stdout, status.stdout
    assert ("mailed as 'john-smith-2' (the id this recipient had then) to john.b@example.test on " in status.stdout)
    again = run_send(source, out, port, "--yes")
    assert again.returncode == 0 and len(mailbox.messages) == 2, again.stdout
    said = " ".join(results(again.stdout)["john-smith"])
    assert said.startswith("already sent as 'john-smith-2' (now the id of a recipient at another address) on ")
    assert "to john.b@example.test; " in said and "changed since" not in said


def test_mark_sent_names_every_id_nothing_was_sent_to(batch):
    """Two ids the batch has, neither ever sent: the message named the first alone, and
    marking it after a fix of that one was refused again for the second."""
    from builder.send import SendError, mark_sent

    source, out = batch
    with pytest.raises(SendError) as refused:
        mark_sent(source, out, ["essex", "london"])
    assert str(refused.value) == ("--mark-sent essex,london: the send log has no attempt to send them; "
                                  "nothing was marked")
    with pytest.raises(SendError, match=r"^--mark-sent essex: the send log has no attempt to send it; "):
        mark_sent(source, out, ["essex"])
