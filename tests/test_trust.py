"""Nothing wrong reaches paper (issue 9): one readiness rule, a remembered
preflight, outputs that are what they claim, failures that keep good work.
Every test builds real letters with pdflatex and tries to break a promise."""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
import pytest

from builder.build import batch_name, build, status
from builder.check import check
from builder.merge import MergeRefused, merge
from conftest import MINIMAL_LETTER, ROOT, SAMPLE, copy_batch, pdf_text, write_yaml


def person(rid, address=("1 Road",), extra=""):
    lines = "\n".join(f"      - {a}" for a in address)
    return f"""  - id: {rid}
    name: Reader {rid}
    address:
{lines}
    salutation: Dear Reader,
{extra}"""


def two_letters_merged(tmp_path: Path) -> tuple[Path, Path]:
    """A batch of two letters, built and merged: its YAML and its build folder."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    out = tmp_path / "build"
    assert build(source, out).ok
    merge(source, out)
    return source, out


def invoke(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


TALL = [f"Line {n}" for n in range(1, 13)]
WRAPS = ["A line of the address so long that it cannot fit on one line of the recipient block at all"]


def test_preflight_is_remembered_refused_until_accepted_on_the_record(tmp_path):
    # reserved-looking ids (bundle, cover, manifest) live beside the others in letters/
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("bundle") + person("tall", TALL) + person("cover")
                        + person("wraps", WRAPS, "    accept: [address, window]\n") + person("manifest"))
    out = tmp_path / "build"
    first = build(source, out)
    assert first.ok and {o.recipient for o in first.not_ready} == {"tall"}  # wraps: accepted in the YAML
    codes = {o.recipient: sorted({f["code"] for f in o.findings}) for o in first.outcomes}
    # (a line that wraps stays inside the block: the address is one line taller, not wider)
    assert codes == {"bundle": [], "tall": ["window"], "cover": [], "wraps": ["address"], "manifest": []}
    tall = {f["message"] for o in first.outcomes if o.recipient == "tall" for f in o.findings}
    assert any(m.startswith("the address is not inside the envelope window") for m in tall)

    # the second build compiles nothing, and still reports the finding and exits non-zero
    again = invoke("build", "-r", str(source), "-b", str(out))
    assert again.returncode == 1 and "0 built, 5 up to date" in again.stdout
    # tall alone: wraps' finding is accepted in the YAML, shown but not the letter's to fix (it counted)
    assert "0 failed, 1 needs attention" in again.stdout, again.stdout
    # what it suggests is a command to copy: the letter and its finding, no <placeholders>
    accept = f"`invoke merge --accept tall:window -r {source} -b {out}`"
    assert f"not ready (preflight errors): tall; merge refuses them until they are fixed, or accepted on purpose " \
           f"({accept})" in again.stdout, again.stdout
    assert "error [window]: the address is not inside the envelope window" in again.stdout
    assert "wraps" in again.stdout and "(accepted)" in again.stdout  # accepted in the YAML, still shown
    for task in ("status", "check"):
        result = invoke(task, "-r", str(source), "-b", str(out))
        assert result.returncode == 1 and "tall" in result.stdout and "window" in result.stdout, result.stdout
        # said once: the reason is the finding (wraps' accepted findings are listed as such)
        assert result.stdout.count("and 55-117 mm down") == 1, result.stdout  # tall's address: 12 lines
    states = {s.recipient: s.state for s in status(source, out)}
    assert states == {"bundle": "ready", "tall": "preflight", "cover": "ready", "wraps": "ready",
                      "manifest": "ready"}

    with pytest.raises(MergeRefused, match="tall: preflight: window: the address is not inside"):
        merge(source, out)
    refused = invoke("merge", "-r", str(source), "-b", str(out))
    assert refused.returncode == 1 and "tall" in refused.stderr
    assert refused.stderr.rstrip().endswith(f"Run `invoke build -r {source} -b {out}` and fix what it reports "
                                            f"(or accept its preflight findings on purpose: {accept})."), refused.stderr
    accepted = invoke("merge", "-r", str(source), "-b", str(out), "--accept", "tall:window")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted on the record: tall: window" in accepted.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["letters"]["tall"]["accepted"] == {"window": "invoke merge --accept"}
    assert manifest["bundle"]["accepted"] == {"tall": {"window": "invoke merge --accept"},
                                              "wraps": {"address": "recipients.yaml"}}  # only what was found
    cover = pdf_text(out / "cover.pdf")
    assert "Preflight findings accepted on the record:" in cover
    assert "tall: window accepted (merge --accept): the address is not inside" in cover
    assert ("wraps: address accepted (recipients.yaml): a line of the recipient block is too long and wraps"
            in cover)
    # no id got in the way of another output: six documents, five letters, each its own
    assert len(pikepdf.open(out / "bundle.pdf").pages) == 6
    # the letter called cover keeps its LaTeX (the cover sheet's is apart) and its page labels
    assert "Reader cover" in (out / "tex" / "cover.tex").read_text(encoding="utf-8")
    from pypdf import PdfReader
    assert PdfReader(out / "bundle.pdf").page_labels == [
        "cover sheet 1", "bundle 1", "tall 1", "cover 1", "wraps 1", "manifest 1"]
    assert "Dear Reader," in pdf_text(out / "letters" / "bundle.pdf")
    # an acceptance of an error a letter does not have accepts nothing: said in one line (it was
    # dropped without a word); the merge goes on, as a rebuild may have cured the letter
    idle = invoke("merge", "-r", str(source), "-b", str(out), "--accept", "tall:window,bundle:window")
    assert idle.returncode == 0 and idle.stderr.strip() == (
        "warning: --accept bundle:window: no such preflight error in that letter, so nothing was accepted "
        "for it"), idle.stderr
    assert {o.status for o in build(source, out).outcomes} == {"up to date"}
    assert merge(source, out).letters == 5  # the acceptance stays with the file it was made for
    # ... and with that file only: rebuilt (even to the same bytes), the letter is judged afresh
    assert {o.status for o in build(source, out, force=True, only=["tall"]).outcomes} == {"built"}
    assert "accepted" not in json.loads((out / "manifest.json").read_text())["letters"]["tall"]
    assert {s.recipient: s.state for s in status(source, out)}["tall"] == "preflight"
    with pytest.raises(MergeRefused, match="tall: preflight: window"):
        merge(source, out)
    # accepted again: the bundle on disk is the same, but the acceptance is on the record for
    # every task to see
    again = invoke("merge", "-r", str(source), "-b", str(out), "--accept", "tall:window")
    assert again.returncode == 0 and "accepted on the record: tall: window" in again.stdout, again.stderr
    assert {s.recipient: s.state for s in status(source, out)}["tall"] == "ready"
    assert invoke("check", "-r", str(source), "-b", str(out)).returncode == 0

    # a batch not posted in window envelopes turns the window check off (a letter setting)
    write_yaml(source, source.read_text().replace("  body:", "  envelope: none\n  body:", 1))
    (reason,) = [s.reason for s in status(source, out) if s.recipient == "tall"]
    assert reason.startswith("older than its inputs; changed:") and "the envelope setting" in reason
    rebuilt = build(source, out)
    # (a line that wraps still breaks the address: found, and accepted by its recipient)
    assert not rebuilt.not_ready and {o.recipient: [f["code"] for f in o.findings] for o in rebuilt.outcomes
                                      if o.findings} == {"wraps": ["address"]}


def test_build_merge_accept_makes_the_bundle_the_person_accepted(tmp_path):
    """`invoke build merge --accept tall:window`: the build stopped the chain (exit 1)
    for the very finding the merge was told to accept, so the bundle was never made.
    Findings the chain's merge accepts do not stop the build or check before it; any
    other finding still does, and the acceptance is on the record only once merged."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("tall", TALL))
    out = tmp_path / "build"
    batch = ["-r", str(source), "-b", str(out)]
    other = invoke("build", "merge", *batch, "--accept", "one:window")  # not tall's: still refused
    assert other.returncode == 1 and "not ready (preflight errors): tall" in other.stdout, other.stdout
    assert not (out / "bundle.pdf").exists()
    assert "accepted" not in json.loads((out / "manifest.json").read_text())["letters"]["tall"]

    done = invoke("build", "check", "merge", *batch, "--accept", "tall:window")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"55-117 mm down, the window 20-110 mm and 50-95 mm; the window holds 8 lines .* or join "
                     r"short ones \(accepted by this command's merge --accept\)", done.stdout), done.stdout
    assert "not ready" not in done.stdout and "0 with errors" in done.stdout
    assert "accepted on the record: tall: window" in done.stdout
    assert json.loads((out / "manifest.json").read_text())["letters"]["tall"]["accepted"] == {
        "window": "invoke merge --accept"}
    assert "tall: window accepted (merge --accept)" in pdf_text(out / "bundle.pdf")
    assert subprocess.run(["qpdf", "--check", str(out / "bundle.pdf")], capture_output=True).returncode == 0
    # on the record now, with this very file: the chain without --accept goes through too
    assert invoke("build", "merge", *batch).returncode == 0
    assert invoke("status", *batch).returncode == 0
    # an id the batch does not have is a bad value, as for --only (exit 2, not 1: no letter
    # needs attention)
    for typo, meant in (("nobody:window", ""), ("TALL:window", " (did you mean 'tall'?)"),
                        ("tal:window", " (did you mean 'tall'?)")):
        wrong = invoke("merge", *batch, "--accept", typo)
        assert wrong.returncode == 2 and wrong.stderr.strip() == (
            f"--accept: no valid recipient with id: {typo.split(':')[0]}{meant}"), wrong.stderr

    # one's letter edited: the documented chain merges again. Its check saw the bundle the
    # merge was about to replace as stale and stopped the chain (exit 1), every time
    write_yaml(source, source.read_text().replace("name: Reader one", "name: Reader one again"))
    again = invoke("build", "check", "merge", *batch, "--accept", "tall:window")
    assert again.returncode == 0 and "(this command's merge makes it again)" in again.stdout, again.stdout
    assert "Reader one again" in pdf_text(out / "bundle.pdf")
    write_yaml(source, source.read_text().replace("name: Reader one again", "name: Reader one once more"))
    stale = invoke("build", "check", *batch)  # no merge follows: a stale bundle is a fault
    assert stale.returncode == 1 and "bundle: stale" in stale.stdout, stale.stdout
    # `check merge` with a letter not yet built: check stops the chain and the merge never runs
    # (nor could it: it refuses the letter); it said the merge would make the bundle again
    write_yaml(source, source.read_text().replace("name: Reader one once more", "name: Reader one unbuilt"))
    unbuilt = invoke("check", "merge", *batch, "--accept", "tall:window")
    assert unbuilt.returncode == 1 and "bundle: stale" in unbuilt.stdout, unbuilt.stdout
    assert "this command's merge" not in unbuilt.stdout, unbuilt.stdout
    write_yaml(source, source.read_text().replace("name: Reader one unbuilt", "name: Reader one once more"))
    # what the merge accepts counts for the tasks before it only: a build after it rebuilds
    # tall, whose record then holds no acceptance; it said "accepted by this command's merge", exit 0
    after = invoke("merge", "--accept", "tall:window", *batch, "build", "-f")
    assert after.returncode == 1 and "accepted by this command's merge" not in after.stdout, after.stdout
    assert "not ready (preflight errors): tall" in after.stdout
    assert invoke("check", *batch).returncode == 1


def test_merge_accept_for_a_recipient_saved_invalid_names_it_invalid(tmp_path):
    """A recipient saved invalid is still one of the batch: `merge --accept` for it is
    refused as any merge of a batch with an invalid letter is (exit 1, what is wrong with
    it), not as a typo. It said "--accept names no recipient of this batch", of a
    recipient `status` listed a line above."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two", extra="    bogus: 1\n"))
    batch = ("-r", str(source), "-b", str(tmp_path / "build"))
    refused = invoke("merge", *batch, "--accept", "two:window")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "names no recipient" not in refused.stderr, refused.stderr
    assert re.search(r"^  two: invalid: .*field 'bogus': unknown key", refused.stderr, re.M), refused.stderr


def test_everything_in_the_window_is_the_address(tmp_path, inject_latex):
    # a window higher up than the letterhead allows: the letterhead's rule (24 mm down) shows
    inject_latex({"high": r"\setlength\lbwindowtop{15mm}"}, at_start=True)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("high") + person("fine"))
    report = build(source, tmp_path / "build")
    found = {o.recipient: [f["message"] for f in o.findings] for o in report.outcomes}
    assert found["fine"] == []
    assert any(m.startswith("the letterhead reaches") and "into the envelope window" in m for m in found["high"])
    # and says what to do
    # (the sender's name on two lines, above a bilingual letter's two roles, reached it too: it
    # named only the lines under letter.sender, and a role on one line)
    assert any(m.endswith("mm): make it shorter, with fewer lines under letter.sender (address, phone, email, web), "
                          "or a sender name and role that fit on one line each (a bilingual letter prints the "
                          "role in both languages)") for m in found["high"]), found


def test_the_line_that_wraps_is_named_with_its_width_and_the_room_a_line_has(tmp_path):
    """The preflight says which line of the recipient block wraps (the name, the role, an
    address line), quoting it, with its width and the block's, so a person corrects the
    right field. It used to say "an address line is too long" of a long role, and a user
    who shortened the (also long) name rebuilt to the same error."""
    long_name = "The Right Honourable Professor Dame Angharad Wynne-Llewellyn-Montgomery DBE FRS"
    long_role = "Chair, Joint Standing Committee on Coastal Navigation \\ Port"  # quoted as typed, one \\
    long_line = "Joint Standing Committee Secretariat, Plas Crug Park"
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("fits", ("Plas Crug", "Aberystwyth"), "    role: Chair\n") + f"""\
  - id: long
    name: {long_name}
    role: {long_role}
    address: [Plas Crug, "{long_line}", Aberystwyth]
    salutation: Dear Dame Angharad,
""")
    out = tmp_path / "build"
    report = build(source, out)
    found = {o.recipient: [f["message"] for f in o.findings if f["code"] == "address"] for o in report.outcomes}
    assert found["fits"] == []
    (message,) = found["long"]
    assert message.startswith("a line of the recipient block is too long and wraps (the address takes ")
    named = re.findall(r"(the name|the role|address line \d), '([^']*)', is ([\d.]+) mm wide "
                       r"where a line holds ([\d.]+) mm: (shorten it|split it into two lines or shorten it)", message)
    assert [(what, fix) for what, _, _, _, fix in named] == [
        ("the name", "shorten it"), ("the role", "shorten it"),
        ("address line 2", "split it into two lines or shorten it")], message
    assert named[1][1] == long_role and named[2][1] == long_line
    assert named[0][1].endswith("\u2026") and long_name.startswith(named[0][1][:-1])  # a long value cut short
    assert all(float(width) > float(room) for _, _, width, room, _ in named)
    assert len({room for _, _, _, room, _ in named}) == 1  # one block, one width
    shown = invoke("status", "-r", str(source), "-b", str(out))
    assert shown.returncode == 1 and f"the role, '{long_role}', is " in shown.stdout, shown.stdout


def test_a_line_that_wraps_is_named_by_the_spreadsheet_column_it_came_from(tmp_path):
    """From a spreadsheet, the finding names the column a person corrects: "address line 1"
    left the office to work out that it was their column 'Street' (or the second line of
    the cell under 'Address')."""
    import openpyxl

    long_line = "Joint Standing Committee Secretariat, Plas Crug Parc"
    book = openpyxl.Workbook()
    book.active.append(["Full name", "Street", "Town", "Address", "Salutation"])
    book.active.append(["Street Person", long_line, "Aberystwyth", None, "Dear S,"])
    book.active.append(["Cell Person", None, None, f"Plas Crug\n{long_line}\nAberystwyth", "Dear C,"])
    book.save(tmp_path / "people.xlsx")
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + (
        "recipients:\n  from: people.xlsx\n"
        "  columns: {Full name: name, Street: address 1, Town: address 2, Address: address}\n"))
    report = build(source, tmp_path / "build")
    found = {o.recipient: " ".join(f["message"] for f in o.findings if f["code"] == "address") for o in report.outcomes}
    assert f"address line 1 (the column 'Street'), '{long_line}', is " in found["street-person"], found
    assert f"address line 2 (line 2 of the column 'Address'), '{long_line}', is " in found["cell-person"], found
    assert found["street-person"].endswith("split it into two lines or shorten it")


def test_the_sample_letters_show_only_the_address_through_the_window(real_batch):
    from builder.check import window
    from builder.compile import _read_aux

    out, report, _ = real_batch
    manifest = json.loads((out / "manifest.json").read_text())
    assert {rid: entry["findings"] for rid, entry in manifest["letters"].items()} == {
        rid: [] for rid in manifest["letters"]}
    # south-wales has the longest address: its salutation used to show in the window, 91 mm
    # down (the window ends at 95 mm). Put it back there: the check sees it.
    (aux,) = [p for p in (out / "work").glob("*/*.aux") if "south-wales" in p.read_text()]
    placed = _read_aux(aux.read_text())[0]["south-wales"]
    assert window(placed, 7) == []
    page, x, _ = placed.marks["salutation"]
    placed.marks["salutation"] = (page, x, 91 / 25.4 * 72.27)
    (finding,) = window(placed, 7)
    assert finding.message == ("the salutation shows through the envelope window: "
                               "it starts 88 mm down, the window ends at 95 mm")


def streams_stored_twice(pdf: Path) -> list:
    seen, twice = {}, []
    with pikepdf.open(pdf) as document:
        for obj in document.objects:
            if isinstance(obj, pikepdf.Stream):
                key = hashlib.sha256(obj.read_raw_bytes()).hexdigest()
                if key in seen:
                    twice.append((seen[key], obj.objgen))
                seen[key] = obj.objgen
    return twice


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in [*sorted((out / "letters").glob("*.pdf")), out / "bundle.pdf"]}


def test_same_inputs_same_bytes_whatever_the_batch_and_valid_files(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", SAMPLE.read_text())
    one = tmp_path / "one"
    assert build(source, one, jobs=1).ok  # all five in one pdflatex run
    merge(source, one)
    reference = outputs(one)

    other = tmp_path / "other"  # london alone first (--only), then the rest in three runs
    assert build(source, other, only=["london"]).ok
    assert build(source, other, jobs=3).ok
    merge(source, other)
    assert outputs(other) == reference
    # every output of a build mixing letters compiled alone and together is valid
    for pdf in [*sorted((other / "letters").glob("*.pdf")), other / "cover.pdf", other / "bundle.pdf"]:
        checked = subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True)
        assert checked.returncode == 0 and "WARNING" not in checked.stdout + checked.stderr, (pdf, checked)
    assert streams_stored_twice(other / "bundle.pdf") == []

    text = source.read_text()
    write_yaml(source, text.replace("Dear Sophie,", "Dear Sophie Linden,"))
    assert build(source, one).ok  # an edit made (london compiled alone) ...
    write_yaml(source, text)
    assert build(source, one).ok  # ... and undone
    merge(source, one)
    assert outputs(one) == reference
    assert build(source, one, force=True, jobs=2).ok
    merge(source, one)
    assert outputs(one) == reference


def test_a_letter_with_a_pdf_logo_is_the_same_bytes_in_any_folder(tmp_path):
    """pdfTeX writes an included PDF's path into the letter (/PTEX.FileName): the
    path TeX found it by, the build folder's own, so the same batch built in
    two folders made two letters. The class leaves that key out."""
    import pikepdf

    logo = pikepdf.new()
    logo.add_blank_page(page_size=(300, 80))
    logo.pages[0].Contents = logo.make_stream(b"0 0 1 rg 0 0 300 10 re f")
    letters = []
    for folder in (tmp_path / "here", tmp_path / "there" / "deeper"):
        folder.mkdir(parents=True)
        logo.save(folder / "logo.pdf")
        source = write_yaml(folder / "recipients.yaml", MINIMAL_LETTER.replace(
            "  sender:\n", "  sender:\n    logo: logo.pdf\n") + "recipients:\n"
            "  - {id: one, name: Ann, address: [1 Road], salutation: 'Dear Ann,'}\n")
        assert build(source, folder / "build").ok
        letters.append((folder / "build" / "letters" / "one.pdf").read_bytes())
    assert letters[0] == letters[1] and b"/PTEX.FileName" not in letters[0]
    with pikepdf.open(tmp_path / "here" / "build" / "letters" / "one.pdf") as pdf:  # the logo is in it
        assert any(b"0 0 300 10 re" in x.read_bytes() for x in pdf.objects
                   if isinstance(x, pikepdf.Stream) and x.get("/Subtype") == "/Form")


def test_a_letter_is_the_same_bytes_alone_or_after_a_welsh_one(tmp_path):
    """A Welsh letter's letterhead says "Ffôn:" where an English one says "Tel:". The
    letterhead's forms used to be made again at each change of language, after a page had
    been shipped, and pdfTeX then places the text after the logo another way (the same look,
    other bytes): the Welsh letter and the English ones after it in a pdflatex run were not
    the bytes they are alone, so a rebuild in other company (another --jobs, --only) made a
    letter already signed and mailed look rebuilt since."""
    from test_bundle import tiny_png

    (tmp_path / "images").mkdir()
    tiny_png(tmp_path / "images" / "logo.png")
    letter = MINIMAL_LETTER.replace(
        "    address: [1 High Street, Town]",
        "    address: [1 High Street, Town]\n    phone: 01234 567890\n    logo: images/logo.png").replace(
        "    - main: This is the shared text.", "    - main: {en: This is the shared text., cy: Dyma'r testun.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    source = write_yaml(tmp_path / "recipients.yaml", letter + "recipients:\n" + person("first")
                        + person("cymraeg", extra="    language: cy\n") + person("after"))
    together, alone = tmp_path / "together", tmp_path / "alone"
    assert build(source, together, jobs=1).ok  # one pdflatex run: first, cymraeg, after
    for rid in ("first", "cymraeg", "after"):
        assert build(source, alone, only=[rid]).ok
    for rid in ("first", "cymraeg", "after"):
        pdf = f"letters/{rid}.pdf"
        assert (together / pdf).read_bytes() == (alone / pdf).read_bytes(), rid
    # the telephone line is still in each letter's language, where it was
    assert "Ffôn: 01234 567890" in pdf_text(together / "letters" / "cymraeg.pdf")
    assert "Tel: 01234 567890" in pdf_text(together / "letters" / "after.pdf")
    # and so is the sender's role, given by language: beside the logo's form, not in it
    assert "Clerc" in pdf_text(together / "letters" / "cymraeg.pdf").split("Ffôn")[0]
    assert "Clerc" not in pdf_text(together / "letters" / "after.pdf")


def test_a_logo_beside_a_full_sender_address_keeps_the_letterhead_out_of_the_window(tmp_path):
    """The README's sender (four address lines, phone, e-mail, web) with a logo: the
    address starts level with the logo's top, not under its foot, so the letterhead
    ends above the envelope window. Hung below the logo, it reached 53 mm down and
    every letter failed the window check."""
    import pikepdf
    from test_bundle import tiny_png

    (tmp_path / "images").mkdir()
    tiny_png(tmp_path / "images" / "logo.png", width=600, height=200)
    letter = MINIMAL_LETTER.replace(
        "    address: [1 High Street, Town]",
        "    address: [5th Floor, Globe House, 89 Eccleston Square, 'London, SW1V 1PN']\n"
        "    phone: +44 (0) 20 3513 0477\n    email: iasc@iasc.independent.gov.uk\n"
        "    web: https://www.antislaverycommissioner.co.uk\n    logo: images/logo.png")
    source = write_yaml(tmp_path / "recipients.yaml", letter + "recipients:\n" + person("one"))
    out = tmp_path / "build"
    report = build(source, out)
    assert report.ok and [o.findings for o in report.outcomes] == [[]], report.outcomes
    pdf = out / "letters" / "one.pdf"
    def image_tops(stream, resources, ctm) -> list[float]:  # into the letterhead's forms too
        tops, stack = [], [ctm]
        for operands, operator in pikepdf.parse_content_stream(stream):
            if str(operator) == "q":
                stack.append(stack[-1])
            elif str(operator) == "Q" and len(stack) > 1:
                stack.pop()
            elif str(operator) == "cm":
                stack[-1] = pikepdf.Matrix(*map(float, operands)) @ stack[-1]
            elif str(operator) == "Do":
                xobject = resources.XObject[operands[0]]
                if xobject.Subtype == "/Image":
                    tops.append(stack[-1].f + stack[-1].d)  # the unit square, drawn upright
                else:
                    inner = pikepdf.Matrix(*map(float, xobject.get("/Matrix", [1, 0, 0, 1, 0, 0]))) @ stack[-1]
                    tops += image_tops(xobject, xobject.get("/Resources", resources), inner)
        return tops

    with pikepdf.open(pdf) as opened:
        page = opened.pages[0]
        height = float(page.mediabox[3])
        (logo_top,) = image_tops(page, page.Resources, pikepdf.Matrix())
    words = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
    first = re.search(r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="[\d.]+">5th</word>', words)
    assert first, words
    # the address's first line starts where the logo does (a line's box is taller than its letters)
    assert abs(float(first.group(1)) - (height - logo_top)) < 3, (first.group(1), height - logo_top)


def test_the_bundle_names_a_few_of_many_letters_not_ready_and_how_many_more(tmp_path):
    """Every letter not ready has a line of its own in status and check: the bundle's one
    line names the first ten and counts the rest. It named every one: 1500 ids, 25 KB on
    one line, after the 1500 lines that already said it."""
    from builder.ready import some_ids

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + "".join(person(f"r{n:02d}") for n in range(1, 14)))
    out = tmp_path / "build"
    assert build(source, out).ok
    merge(source, out)
    write_yaml(source, source.read_text().replace("Dear Reader", "Dear Friend"))
    bundle = {r.name: r for r in check(source, out)}["bundle"]
    assert bundle.reason == ("it holds letters that are not ready: r01, r02, r03, r04, r05, r06, r07, r08, r09, r10"
                             " and 3 more")
    assert some_ids([f"r{n}" for n in range(11)]) == ", ".join(f"r{n}" for n in range(11))  # "and 1 more": no shorter


def test_the_accept_a_refusal_suggests_keeps_what_the_command_accepted(tmp_path):
    """A letter with two findings, one accepted on the command line: the merge (and the
    build of a `build merge --accept` chain) suggests the --accept of both, to run as copied.
    It suggested the other alone, and that, copied, was refused for the first."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("both", WRAPS + TALL))
    out = tmp_path / "build"
    assert {f["code"] for o in build(source, out).outcomes for f in o.findings} == {"address", "window"}
    accept = f"`invoke merge --accept both:window,both:address -r {source} -b {out}`"
    with pytest.raises(MergeRefused) as refused:
        merge(source, out, accept={"both": ["window"]})
    assert str(refused.value).endswith("(or accept its preflight findings on purpose: "
                                       "`invoke merge --accept both:window,both:address`).")  # (no -r: in-process)
    chain = invoke("build", "merge", "--accept", "both:window", "-r", str(source), "-b", str(out))
    assert chain.returncode == 1 and f"or accepted on purpose ({accept})" in chain.stdout, chain.stdout
    copied = invoke("merge", "--accept", "both:window,both:address", "-r", str(source), "-b", str(out))
    assert copied.returncode == 0, copied.stderr


def test_a_bundle_stale_for_its_letters_says_which_came_went_or_moved(tmp_path):
    """Recipients put in another order (the bundle's order) read "its letters are not the
    batch's letters now", as if letters had come or gone: it now says which it is."""
    source, out = two_letters_merged(tmp_path)
    three = MINIMAL_LETTER + "recipients:\n"
    for recipients, reason in ((person("two") + person("one"), "the batch has its letters in another order now"),
                               (person("one") + person("three"),
                                "letters new to the batch: three; letters no longer in the batch: two")):
        write_yaml(source, three + recipients)
        assert build(source, out).ok
        bundle = {r.name: r for r in check(source, out)}["bundle"]
        assert not bundle.ready and bundle.reason == f"{reason}; run `invoke merge`", bundle.reason


def test_check_fails_on_a_bundle_older_than_its_letters_and_on_an_invalid_recipient(tmp_path):
    source, out = two_letters_merged(tmp_path)
    assert all(r.ready for r in check(source, out))
    write_yaml(source, source.read_text().replace("name: Reader two", "name: Reader Two"))
    assert build(source, out).ok
    results = {r.name: r for r in check(source, out)}
    assert results["two"].ready and not results["bundle"].ready
    assert results["bundle"].reason == "older than its letters (rebuilt since the merge): two; run `invoke merge`"
    stale = invoke("check", "-r", str(source), "-b", str(out))
    assert stale.returncode == 1 and "bundle: stale" in stale.stdout
    merge(source, out)
    assert invoke("check", "-r", str(source), "-b", str(out)).returncode == 0
    write_yaml(source, source.read_text().replace("    salutation: Dear Reader,\n", "", 1))
    results = {r.name: r for r in check(source, out)}
    assert results["one"].state == "invalid" and not results["one"].ready
    assert invoke("check", "-r", str(source), "-b", str(out)).returncode == 1


def test_a_hand_changed_letter_is_refused_by_merge_and_repaired_by_build(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    out = tmp_path / "build"
    assert build(source, out).ok
    pdf = out / "letters" / "two.pdf"
    good = pdf.read_bytes()
    pdf.write_bytes(good + b"\n% one more byte\n")
    with pytest.raises(MergeRefused, match="two: changed: letters/two.pdf changed since it was built"):
        merge(source, out)
    report = build(source, out)
    assert {o.recipient: o.status for o in report.outcomes} == {"one": "up to date", "two": "built"}
    assert pdf.read_bytes() == good  # rebuilt: the same bytes as before the edit
    assert merge(source, out).letters == 2


@pytest.mark.parametrize("apart", [False, True], ids=["cut-here", "cut-apart"])
def test_a_letter_written_over_while_the_build_places_it_is_not_recorded_as_built(tmp_path, monkeypatch, apart):
    """Between cutting a letter into letters/<id>.pdf and recording it (for a large batch,
    the whole batch's cutting in a process of its own) another program writes over it:
    the record keeps the bytes the build made and checked, so the file is "changed" and
    merged by no one. The record read the file back, and vouched for whatever was there."""
    from builder import split as split_pdf

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    out = tmp_path / "build"
    two = out / "letters" / "two.pdf"
    if apart:
        monkeypatch.setattr(split_pdf, "APART_FROM", 1)
        real_result = split_pdf.Cutting.result

        def cut(self):
            names = [c["name"] for c in json.loads(self.request.read_bytes())["cuts"]]
            written = real_result(self)
            if "two" in names:
                two.write_bytes(two.read_bytes() + b"\n% written over\n")
            return written

        monkeypatch.setattr(split_pdf.Cutting, "result", cut)
    else:
        real_split = split_pdf.split

        def cut(source_pdf, cuts):
            written = real_split(source_pdf, cuts)
            if any(c.name == "two" for c in cuts):
                two.write_bytes(two.read_bytes() + b"\n% written over\n")
            return written

        monkeypatch.setattr(split_pdf, "split", cut)
    assert build(source, out).ok
    monkeypatch.undo()
    with pytest.raises(MergeRefused, match="two: changed: letters/two.pdf changed since it was built"):
        merge(source, out)
    report = build(source, out)
    assert {o.recipient: o.status for o in report.outcomes} == {"one": "up to date", "two": "built"}
    assert not two.read_bytes().endswith(b"% written over\n")
    assert merge(source, out).letters == 2


def test_a_cover_written_over_between_its_cutting_and_the_bundle_is_not_bundled(tmp_path, monkeypatch):
    """The cover sheet as the letters: another program writing over cover.pdf after merge
    cut it (while the letters are put together) does not put that file in the bundle. Its
    record was read back from the file, and vouched for whatever was there."""
    from builder import split as split_pdf

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + person("one"))
    out = tmp_path / "build"
    assert build(source, out).ok
    cover = out / "cover.pdf"
    real_split = split_pdf.split

    def cut(source_pdf, cuts):
        written = real_split(source_pdf, cuts)
        if any(c.dest == cover for c in cuts):
            cover.write_bytes(cover.read_bytes() + b"\n% written over\n")
        return written

    monkeypatch.setattr(split_pdf, "split", cut)
    with pytest.raises(MergeRefused, match="cover.pdf changed since it was judged ready"):
        merge(source, out)
    monkeypatch.undo()
    assert not (out / "bundle.pdf").exists()
    report = merge(source, out)  # made again, not taken from the record
    assert report.cover_pages == 1 and not cover.read_bytes().endswith(b"% written over\n")


def test_a_letter_replaced_by_a_fifo_or_a_folder_is_not_ready_and_nothing_hangs(tmp_path):
    """A named pipe in a letter's place would make every task wait for ever on
    reading it, a folder stopped status outright: each is a letter that is not
    the file built ('not a file'), said by status and refused by merge, and a
    build puts the letter back in the pipe's place."""
    source, out = two_letters_merged(tmp_path)
    one, two = out / "letters" / "one.pdf", out / "letters" / "two.pdf"
    good = one.read_bytes()
    one.unlink()
    os.mkfifo(one)
    two.rename(tmp_path / "two.pdf")
    two.mkdir()
    (out / "bundle.pdf").unlink()
    os.mkfifo(out / "bundle.pdf")
    run = functools.partial(subprocess.run, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=60)
    said = run([sys.executable, "-m", "invoke", "status", "-r", str(source), "-b", str(out)])
    assert said.returncode == 1 and "Traceback" not in said.stderr, said.stdout + said.stderr
    assert re.search(r"^  one +changed +letters/one.pdf is not a file$", said.stdout, re.M), said.stdout
    assert re.search(r"^  two +changed +letters/two.pdf is not a file$", said.stdout, re.M), said.stdout
    assert re.search(r"^  bundle.pdf +changed +bundle.pdf is not a file$", said.stdout, re.M), said.stdout
    refused = run([sys.executable, "-m", "invoke", "merge", "-r", str(source), "-b", str(out)])
    assert refused.returncode == 1 and "one: changed: letters/one.pdf is not a file" in refused.stderr, refused.stderr
    two.rmdir()
    assert build(source, out).ok and one.is_file() and one.read_bytes() == good
    assert merge(source, out).letters == 2 and (out / "bundle.pdf").is_file()
    # the batch's spreadsheet replaced by a named pipe: said, not waited on
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "contacts.csv").write_text("name,address,salutation\nAnn Other,1 Road,Dear Ann,\n")
    table = write_yaml(folder / "recipients.yaml", MINIMAL_LETTER + "recipients: {from: contacts.csv}\n")
    assert build(table, folder / "build").ok
    (folder / "contacts.csv").unlink()
    os.mkfifo(folder / "contacts.csv")
    for task in ("status", "build"):
        done = run([sys.executable, "-m", "invoke", task, "-r", str(table), "-b", str(folder / "build")])
        assert done.returncode == 2 and "field 'recipients.from': 'contacts.csv' is a pipe or a device, not a file" in done.stderr, \
            done.stdout + done.stderr


def test_a_letter_changed_while_merge_runs_is_not_merged(tmp_path, monkeypatch):
    """merge judges the letters, compiles the cover sheet (a second or so of pdflatex),
    then reads the letters: one changed by hand meanwhile is not the file judged
    ready. Nothing is written, and the bundle before stays on the record."""
    from builder import merge as merging

    source, out = two_letters_merged(tmp_path)
    before, record = (out / "bundle.pdf").read_bytes(), (out / "manifest.json").read_bytes()
    two = out / "letters" / "two.pdf"
    good = two.read_bytes()
    real = merging._cover

    def cover(*args, **kw):  # the real cover sheet; a person edits a letter meanwhile
        made = real(*args, **kw)
        (out / "letters" / "two.pdf").write_bytes((out / "letters" / "one.pdf").read_bytes())  # another letter
        return made

    monkeypatch.setattr(merging, "_cover", cover)
    with pytest.raises(MergeRefused, match=r"^not merging: letters/two.pdf changed since it was judged ready"):
        merge(source, out, duplex=True)
    assert (out / "bundle.pdf").read_bytes() == before and (out / "manifest.json").read_bytes() == record

    # cut short or deleted while merge reads the letters (after one, before two):
    # pikepdf cannot open it. That was a traceback, or "could not write the bundle".
    from builder import split as split_module

    monkeypatch.undo()
    two.write_bytes(good)
    real_append = split_module.Deduplicator.append
    for edit in (lambda: two.write_bytes(good[:1000]), two.unlink):
        pending = [edit]

        def append(self, *args, **kw):
            while pending:
                pending.pop()()
            return real_append(self, *args, **kw)

        monkeypatch.setattr(split_module.Deduplicator, "append", append)
        with pytest.raises(MergeRefused, match=r"^not merging: letters/two.pdf changed since it was judged ready"):
            merge(source, out, cover=False)
        assert not pending and (out / "bundle.pdf").read_bytes() == before
        assert (out / "manifest.json").read_bytes() == record
        two.write_bytes(good)

    # another letter renamed onto letters/two.pdf just before merge opens it, and the
    # letter put back (renamed again) just after: the file merge read was not the one
    # judged, though the one there at the end is. That bundle held letter one twice.
    one = out / "letters" / "one.pdf"
    steps = [lambda: os.replace(shutil.copy(one, out / "swap.pdf"), two),
             lambda: os.replace(shutil.copy(out / "good.pdf", out / "back.pdf"), two)]
    (out / "good.pdf").write_bytes(good)

    def append(self, *args, **kw):
        steps.pop(0)()  # before letter one is copied (two is opened next); before two is copied
        return real_append(self, *args, **kw)

    monkeypatch.setattr(split_module.Deduplicator, "append", append)
    with pytest.raises(MergeRefused, match=r"^not merging: letters/two.pdf changed since it was judged ready"):
        merge(source, out, cover=False)
    for step in steps:  # refused on opening letter two: put back as the swap would have
        step()
    assert two.read_bytes() == good and (out / "bundle.pdf").read_bytes() == before
    assert (out / "manifest.json").read_bytes() == record

    # written in place while merge reads it, and written back before the end: its change
    # time moved, so what was read may not be what was judged
    time.sleep(0.05)  # the letter's stat, older than a clock tick, is what its judging reads
    calls = []

    def append(self, *args, **kw):
        calls.append(1)
        if len(calls) == 2:  # letter two, open
            two.write_bytes(one.read_bytes())
            try:
                return real_append(self, *args, **kw)
            finally:
                two.write_bytes(good)
        return real_append(self, *args, **kw)

    monkeypatch.setattr(split_module.Deduplicator, "append", append)
    with pytest.raises(MergeRefused, match=r"^not merging: letters/two.pdf changed since it was judged ready"):
        merge(source, out, cover=False)
    assert len(calls) == 2 and two.read_bytes() == good and (out / "bundle.pdf").read_bytes() == before


@pytest.fixture
def letterhead_copy(tmp_path, monkeypatch):
    """A copy of the letterhead folder that a test may break."""
    from builder import build as build_module

    copy = tmp_path / "letterhead"
    shutil.copytree(build_module.LETTERHEAD, copy)
    monkeypatch.setattr(build_module, "LETTERHEAD", copy)
    return copy


def test_a_broken_class_keeps_the_last_good_pdfs_and_names_its_own_line(tmp_path, letterhead_copy):
    source, out = two_letters_merged(tmp_path)
    good = outputs(out)
    # an editor's swap file and a backup copy are not what TeX reads: nothing goes stale
    (letterhead_copy / ".letterbatch.cls.swp").write_bytes(b"swap")
    (letterhead_copy / "letterbatch.cls~").write_text("backup")
    assert {s.state for s in status(source, out)} == {"ready"}

    cls = letterhead_copy / "letterbatch.cls"
    lines = cls.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(r"\newcommand\closing"))
    lines.insert(at, "\\undefinedinclass\n")
    cls.write_text("".join(lines))
    report = build(source, out)
    assert {o.status for o in report.outcomes} == {"failed"}
    assert all(o.message.startswith(f"letterbatch.cls:{at + 1}: Undefined control sequence")
               for o in report.outcomes), [o.message for o in report.outcomes]
    assert outputs(out) == good  # nothing good was lost
    with pytest.raises(MergeRefused, match="one: failed: its last build failed: letterbatch.cls:"):
        merge(source, out)
    del lines[at]
    cls.write_text("".join(lines))
    assert build(source, out).ok and outputs(out) == good | {"bundle.pdf": good["bundle.pdf"]}

    # a change to the class that only the cover sheet shows: the letters are rebuilt to the
    # same bytes, but the bundle's cover is not what merge makes now (it was "ready" and signed)
    cls.write_text(cls.read_text().replace(r"\setlength\lbcovernamewidth{55mm}", r"\setlength\lbcovernamewidth{40mm}"))
    assert build(source, out).ok and outputs(out)["letters/one.pdf"] == good["letters/one.pdf"]
    bundle = {r.name: r for r in check(source, out)}["bundle"]
    assert not bundle.ready and bundle.reason == ("its cover sheet is older than the letterhead or the builder; "
                                                  "run `invoke merge`")
    assert merge(source, out).path.read_bytes() != good["bundle.pdf"]
    assert {r.name: r for r in check(source, out)}["bundle"].ready


def test_a_corrupt_logo_names_the_image_and_pdftexs_message(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    address: [1 High Street, Town]", "    address: [1 High Street, Town]\n    logo: images/logo.png")
        + "recipients:\n" + person("one"))
    report = build(source, tmp_path / "build")
    (failed,) = report.failed
    assert failed.message.startswith("pdfTeX cannot read the image assets/logo.png (from images/logo.png): "
                                      "libpng error: Read Error"), failed.message
    assert failed.message != "pdflatex failed (see the log)"


@pytest.mark.parametrize("name, content, said", [
    ("logo.png", b"Not an image at all\n", "'images/logo.png' is not a PNG file: save the image as PNG"),
    ("logo.png", b"\xff\xd8\xff", "'images/logo.png' is not a PNG file: it is a JPEG file; name it logo.jpg"),
    ("logo.jpg", b"\x89PNG", "'images/logo.jpg' is not a JPEG file: it is a PNG file; name it logo.png"),
    ("logo.pdf", b"<html></html>", "'images/logo.pdf' is not a PDF file: save the image as PDF"),
])
def test_a_logo_of_another_kind_than_its_name_is_one_message_at_its_line(tmp_path, name, content, said):
    # it was libpng's "Not a PNG file" from pdfTeX, once for every letter, with no line
    from builder.load import LoadError

    from PIL import Image

    (tmp_path / "images").mkdir()
    target = tmp_path / "images" / name
    if content in (b"\xff\xd8\xff", b"\x89PNG"):  # a real image of the other kind
        Image.new("RGB", (20, 10), "green").save(target, "JPEG" if content == b"\xff\xd8\xff" else "PNG")
    else:
        target.write_bytes(content)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    address: [1 High Street, Town]", f"    address: [1 High Street, Town]\n    logo: images/{name}")
        + "recipients:\n" + person("one") + person("two"))
    with pytest.raises(LoadError) as refused:
        build(source, tmp_path / "build")
    (problem,) = refused.value.problems
    assert "field 'letter.sender.logo': " + said in str(problem) and problem.line, str(problem)


def test_bad_jobs_is_one_line_not_a_traceback(tmp_path):
    result = invoke("build", "-r", str(SAMPLE), "-b", str(tmp_path / "b"), "--jobs", "abc")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "--jobs" in result.stderr


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A real file system of ``size`` (tmpfs, mounted at ``folder``): full disks for real."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode:  # root in a container without the right to mount
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_full_disk_and_a_read_only_folder_lose_nothing(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    with small_disk(tmp_path / "disk", "4m") as disk:
        out = disk / "build"
        assert build(source, out).ok
        merge(source, out)
        good = outputs(out)
        record = (out / "manifest.json").read_bytes()
        shutil.rmtree(out / "tex")  # so the build needs new room on the disk
        filler = fill(disk)
        full = invoke("build", "-r", str(source), "-b", str(out), "--force")
        assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
        assert "No space left on device" in full.stderr and "kept" in full.stderr
        assert outputs(out) == good and {s.state for s in status(source, out)} == {"ready"}
        for options, words in [(["--duplex"], "the previous bundle is unchanged"),  # bundle.pdf, made anew
                               (["--output", str(disk / "new.pdf")], "no bundle was written")]:
            merged = invoke("merge", "-r", str(source), "-b", str(out), *options)
            assert merged.returncode == 2 and "Traceback" not in merged.stderr, merged.stderr
            assert "No space left on device" in merged.stderr and words in merged.stderr, merged.stderr
        assert outputs(out) == good and not (disk / "new.pdf").exists()
        assert (out / "manifest.json").read_bytes() == record  # the manifest as it was, too
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        read_only = invoke("build", "-r", str(source), "-b", str(out), "--force")
        assert read_only.returncode == 2 and "Traceback" not in read_only.stderr, read_only.stderr
        assert "Read-only file system" in read_only.stderr
        merged = invoke("merge", "-r", str(source), "-b", str(out))
        assert merged.returncode == 2 and "Traceback" not in merged.stderr, merged.stderr
        assert "Read-only file system" in merged.stderr and len(merged.stderr.strip().splitlines()) == 1
        # the folder, by its name: it named the hidden lock file (.lock), and clean gave no fix
        assert f"Read-only file system ({out})" in merged.stderr and ".lock" not in merged.stderr, merged.stderr
        cleaned = invoke("clean", "-r", str(source), "-b", str(out))
        assert cleaned.returncode == 2 and cleaned.stderr.strip() == (
            f"could not go on: Read-only file system ({out}). Make it writable (or work in another folder), then "
            "try again."), cleaned.stderr
        assert outputs(out) == good


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_publish_stopped_by_a_full_disk_says_what_it_published_before(tmp_path):
    """The website's disk full part way through a publish: it said only "could not go on: No
    space left on device", and not that the first copies were published already. It lists
    them, whole, says how many, and a publish with room copies the rest."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two") + person("three"))
    out = tmp_path / "build"
    assert build(source, out, medium="web").ok
    web = sorted((out / "web").glob("*-one.*"))
    with small_disk(tmp_path / "disk", "2m") as disk:
        site = disk / "site"
        site.mkdir()
        filler = fill(disk)
        # room for the first letter's copies and a little more, not for the second's
        room = sum(p.stat().st_size for p in web) + 16384
        with open(filler, "r+b") as handle:
            handle.truncate(filler.stat().st_size - room)
        full = invoke("publish", "-r", str(source), "-b", str(out), "--to", str(site))
        assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
        published = [line.split()[-1] for line in full.stdout.splitlines() if line.startswith("  published  ")]
        assert published and all(Path(p).read_bytes() == (out / "web" / Path(p).name).read_bytes()
                                 for p in published), full.stdout
        assert full.stderr.strip().splitlines() == [
            f"could not go on: No space left on device ({site / Path(full.stderr.split('(')[1].split(')')[0]).name})."
            f" Free some space, then try again. {len(published)} file{'s' * (len(published) != 1)} published before "
            "it (above); publishing again copies the rest."], full.stderr
        filler.unlink()
        rest = invoke("publish", "-r", str(source), "-b", str(out), "--to", str(site))
        assert rest.returncode == 0, rest.stderr
        assert sorted(p.name for p in site.iterdir()) == sorted(p.name for p in (out / "web").glob("*.*")
                                                                if p.suffix in (".pdf", ".html"))


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the file that fills it."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_sign_and_send_on_a_full_disk_lose_nothing_and_finish_next_time(tmp_path):
    """sign and send stop in one line naming the file they could not write (exit 2);
    every letter, the bundle, the manifest and the send log are as they were; nothing
    is mailed; with room again, both finish and each recipient is mailed once."""
    from aiosmtpd.controller import Controller

    from test_bundle import make_certificates
    from test_send import Mailbox, free_port, smtp_env

    p12, _ = make_certificates(tmp_path)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one", extra="    email: one@example.test\n")
                        + person("two", extra="    email: two@example.test\n"))
    mailbox = Mailbox()
    server = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    server.start()

    def run(*args):
        return subprocess.run([sys.executable, "-m", "invoke", *args, "-r", str(source), "-b", str(out)], cwd=ROOT,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=smtp_env(server.port, LETTERBATCH_P12_PASSWORD="secret"))

    try:
        with small_disk(tmp_path / "disk", "3m") as disk:
            out = disk / "build"
            assert build(source, out).ok
            merge(source, out)
            shutil.rmtree(out / "work")
            shutil.rmtree(out / "tex")
            good, record = outputs(out), (out / "manifest.json").read_bytes()
            filler = fill(disk)
            for task, written in [(("sign", "--p12", str(p12)), "signed"), (("send", "--yes"), "sent.json")]:
                full = run(*task)
                assert full.returncode == 2 and "Traceback" not in full.stderr, full.stdout + full.stderr
                said = full.stderr.strip().splitlines()
                assert len(said) == 1 and said[0].startswith("could not go on: No space left on device (") \
                    and f"{out / written}" in said[0], full.stderr
                assert outputs(out) == good and (out / "manifest.json").read_bytes() == record
                assert not list((out / "signed").glob("*")) if (out / "signed").exists() else True
                assert not (out / "sent.json").exists() and mailbox.messages == []
            filler.unlink()
            signed, sent = run("sign", "--p12", str(p12)), run("send", "--yes")
            assert signed.returncode == 0 and sent.returncode == 0, signed.stderr + sent.stdout + sent.stderr
            assert sorted(p.name for p in (out / "signed").iterdir()) == ["one.pdf", "two.pdf"]
            assert sorted(rcpts[0] for rcpts, _ in mailbox.messages) == ["one@example.test", "two@example.test"]
            assert outputs(out) == good
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_disk_that_fills_while_pdflatex_writes_stops_the_build_and_fails_no_letter(tmp_path):
    """Room for the .tex files, not for the PDF: pdfTeX says "fwrite() failed".
    That is the disk's fault, not the letters': one line, exit 2, as for any
    full disk, and no letter marked failed; with room, the next build is whole."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    with small_disk(tmp_path / "disk", "300k") as disk:
        out = disk / "build"
        full = invoke("build", "-r", str(source), "-b", str(out))
        assert full.returncode == 2 and "Traceback" not in full.stderr, full.stdout + full.stderr
        assert len(full.stderr.strip().splitlines()) == 1, full.stderr
        assert "No space left on device: pdflatex could not write its PDF (pdfTeX: fwrite() failed)" \
            in full.stderr and "letters built before are kept" in full.stderr, full.stderr
        assert "failed" not in full.stdout and not (out / "manifest.json").exists()
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        assert build(source, out).ok and {s.state for s in status(source, out)} == {"ready"}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_disk_that_fills_after_a_run_placed_its_letters_records_them(tmp_path, monkeypatch):
    """Two pdflatex runs: the first puts its letter in place, then the disk fills and the
    second cannot write. The letter put in place is on the record (ready), as a stopped
    build's are: it was left off it, and every task called it changed by hand (a full disk
    left 59 of 100 new letters so); the other keeps its old letter, stale."""
    import threading

    from builder.build import BuildFailed, _Compiler

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    with small_disk(tmp_path / "disk", "8m") as disk:
        out = disk / "build"
        assert build(source, out).ok
        old_two = (out / "letters" / "two.pdf").read_bytes()
        source.write_text(source.read_text().replace("the shared text", "the shared text, edited"))
        original, one_placed, filled = _Compiler.run, threading.Event(), []

        def run(self, sources, *args, **kwargs):
            if sources[0].recipient.id == "two" and not filled:  # only once "one" is in place
                assert one_placed.wait(120)
                room = shutil.disk_usage(disk).free
                (disk / "filler").write_bytes(b"\0" * (room - 128 * 1024))  # no room for a PDF
                filled.append(True)
            outcomes = original(self, sources, *args, **kwargs)
            if sources[0].recipient.id == "one":
                one_placed.set()
            return outcomes

        monkeypatch.setattr(_Compiler, "run", run)
        with pytest.raises(BuildFailed) as failed:
            build(source, out, jobs=2)  # two letters, two runs
        assert isinstance(failed.value.failure, OSError) and failed.value.failure.errno == errno.ENOSPC
        assert (failed.value.built, failed.value.left) == (1, 1)
        states = {s.recipient: s.state for s in status(source, out)}
        assert states == {"one": "ready", "two": "stale"}, states
        assert (out / "letters" / "two.pdf").read_bytes() == old_two
        (disk / "filler").unlink()
        monkeypatch.undo()
        assert build(source, out).ok and {s.state for s in status(source, out)} == {"ready"}


def test_a_file_size_limit_that_stops_pdflatex_fails_no_letter(tmp_path):
    """A shell's limit on a file's size (`ulimit -f 64`) smaller than a letter: pdflatex is
    stopped (SIGXFSZ) as it writes the PDF. That is the limit's fault, not the letters': one
    line naming it (exit 2), as for a full disk, no letter marked failed, the old letters and
    bundle kept. Every letter was marked failed, each with a line of pdflatex's last words."""
    import resource

    source, out = two_letters_merged(tmp_path)
    good = outputs(out)
    source.write_text(source.read_text().replace("the shared text", "the shared text, edited"))

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    for task in ("build", "merge"):
        if task == "merge":  # the cover sheet, compiled anew
            assert build(source, out).ok
            good = outputs(out)
            shutil.rmtree(out / "work")
        done = subprocess.run([sys.executable, "-m", "invoke", task, "-r", str(source), "-b", str(out)], cwd=ROOT,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, preexec_fn=limited)
        said = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(said) == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
        assert "File too large" in said[0] and "failed" not in done.stdout, said
        if task == "build":
            assert "pdflatex was stopped as its PDF outgrew the limit on a file's size (ulimit -f)" in said[0] \
                and "Raise the limit on a file's size (ulimit -f)" in said[0], said
        assert outputs(out) == good
    assert {s.state for s in status(source, out)} == {"ready"}
    # sign writes its signed copies itself: said of the limit too, not only "File too large"
    from test_bundle import make_certificates

    p12, _ = make_certificates(tmp_path)
    signed = subprocess.run([sys.executable, "-m", "invoke", "sign", "--p12", str(p12), "-r", str(source), "-b",
                             str(out)], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=limited, env={**os.environ, "LETTERBATCH_P12_PASSWORD": "secret"})
    said = signed.stderr.strip().splitlines()
    assert signed.returncode == 2 and len(said) == 1 and said[0].startswith("could not go on: File too large (") \
        and said[0].endswith("Raise the limit on a file's size (ulimit -f), then try again."), signed.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_disk_that_fills_as_pdflatex_flushes_the_cover_stops_merge_as_a_full_disk(tmp_path):
    """With a few kilobytes free, pdfTeX writes the small cover sheet but cannot
    flush its end: it says "fflush() failed". That is the disk, not the letterhead:
    merge says so in one line (exit 2), and nothing is lost."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two") + person("three"))
    with small_disk(tmp_path / "disk", "8m") as disk:
        out = disk / "build"
        assert build(source, out).ok
        merge(source, out)
        good, said = outputs(out), []
        for free in (4096, 12288, 20480):  # pages left: pdfTeX fails in fflush (or, with more, fwrite)
            shutil.rmtree(out / "work", ignore_errors=True)
            room = shutil.disk_usage(disk).free
            (disk / "filler").write_bytes(b"\0" * max(0, room - free))
            merged = invoke("merge", "-r", str(source), "-b", str(out), "--duplex")
            (disk / "filler").unlink()
            assert merged.returncode == 2 and len(merged.stderr.strip().splitlines()) == 1, merged.stderr
            assert "No space left on device" in merged.stderr and "did not compile" not in merged.stderr, \
                merged.stderr
            assert "the previous bundle is unchanged" in merged.stderr and outputs(out) == good
            said.append(merged.stderr)
        assert any("(pdfTeX: fflush() failed)" in line for line in said), said


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_disk_that_fills_as_the_bundle_is_recorded_says_the_bundle_was_written(tmp_path):
    """Room for the bundle, none left for the manifest that records it: merge stops
    in one line (exit 2) that says the bundle was written and is not on the record
    (not "no bundle was written", which the file in place would belie); no task uses
    it; with room, merge records it."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two") + person("three"))
    with small_disk(tmp_path / "disk", "8m") as disk:
        out, new = disk / "build", disk / "new.pdf"
        assert build(source, out).ok
        size = merge(source, out, cover=False, out=tmp_path / "probe.pdf").size
        record = (out / "manifest.json").read_bytes()
        room = shutil.disk_usage(disk).free
        pages = -(-size // 4096)  # the bundle's, on tmpfs: then no page is left for the manifest
        (disk / "filler").write_bytes(b"\0" * (room - pages * 4096 - 2048))
        merged = invoke("merge", "-r", str(source), "-b", str(out), "--no-cover", "--output", str(new))
        (disk / "filler").unlink()
        said = merged.stderr.strip().splitlines()
        assert merged.returncode == 2 and len(said) == 1, merged.stderr
        assert said[0].startswith(f"could not go on: No space left on device ({out / 'manifest.json'})") \
            and f"{new} was written but is not on the record" in said[0], said
        assert new.read_bytes() == (tmp_path / "probe.pdf").read_bytes()
        assert (out / "manifest.json").read_bytes() == record  # still the bundle merged before
        assert not merge(source, out, cover=False, out=new).up_to_date
        assert merge(source, out, cover=False, out=new).up_to_date


KILLED_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from builder.files import replacing
with replacing(Path(sys.argv[1])) as handle:
    handle.write(b"%PDF-1.7 half a bundle")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""

STILL_WRITING = """
import sys
from pathlib import Path
from builder.files import replacing
with replacing(Path(sys.argv[1])) as handle:
    handle.write(b"%PDF-1.7 being written")
    handle.flush()
    print("writing", flush=True)
    sys.stdin.read()
"""


def test_the_temporary_file_of_a_merge_killed_while_it_saves_is_cleared_by_the_next(one_letter_merged, tmp_path):
    """kill -9 while the bundle is saved: the bundle in place is the old one, whole;
    the temporary file left beside it (as large as a bundle: 55 MB for 10,000
    letters) is deleted by the next merge, into the build folder or --output's.
    A temporary file a live process still writes is left alone."""
    import signal

    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    bundle, elsewhere = out / "bundle.pdf", tmp_path / "elsewhere.pdf"
    good = bundle.read_bytes()
    for target in (bundle, elsewhere):
        killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(target)], cwd=ROOT)
        assert killed.returncode == -signal.SIGKILL
    left = [p for p in [*out.iterdir(), *tmp_path.iterdir()] if p.name.startswith((".bundle.pdf.", ".elsewhere.pdf."))]
    assert len(left) == 2 and bundle.read_bytes() == good and not elsewhere.exists()
    kept = out / ".bundle.pdf.backup01"  # a copy kept by hand, named as a temporary file might be
    kept.write_bytes(good)
    writer = subprocess.Popen([sys.executable, "-c", STILL_WRITING, str(bundle)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == "writing\n"
        [live] = [p for p in out.iterdir() if p.name.startswith(".bundle.pdf.") and p not in [*left, kept]]
        assert not merge(source, out, duplex=True).up_to_date
        assert not merge(source, out, out=elsewhere).up_to_date
        assert not any(p.exists() for p in left) and live.exists()  # the live one is another's
    finally:
        writer.communicate("")
    assert not live.exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".bundle.pdf.backup01", ".lock"]


def test_a_merge_with_nothing_to_write_clears_the_temporary_file_a_killed_merge_left(one_letter_merged, tmp_path):
    """A merge killed while it saved (the letters unchanged since), then merge again: the
    bundle in place is current, so nothing is written, and the temporary file left beside
    it goes too. It stayed for good behind an up-to-date bundle, as large as a bundle."""
    import signal

    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    bundle = out / "bundle.pdf"
    merge(source, out)  # (the batch copied elsewhere: merged again there)
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(bundle)], cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    [left] = [p for p in out.iterdir() if p.name.startswith(".bundle.pdf.")]
    assert merge(source, out).up_to_date and not left.exists()


def test_the_temporary_files_of_a_build_killed_while_it_wrote_are_cleared_by_the_next(one_letter_merged, tmp_path):
    """kill -9 (or Ctrl-C) while a build writes a letter, its LaTeX or the record: each
    leaves a hidden temporary file (a letter's is as large as the letter). The next
    build deletes them; a temporary file a live process still writes, and a file kept
    there by hand under such a name, are left alone."""
    import signal

    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    targets = [out / "letters" / "one.pdf", out / "tex" / "one.tex", out / "manifest.json"]
    for target in targets:
        killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(target)], cwd=ROOT)
        assert killed.returncode == -signal.SIGKILL

    def hidden() -> set[Path]:
        return {p for folder in (out, out / "letters", out / "tex") for p in folder.iterdir()
                if p.name.startswith(".") and p.name != ".lock"}

    left = hidden()
    assert sorted(p.parent.name + "/" + p.name.split(".")[1] for p in left) == ["build/manifest", "letters/one",
                                                                                 "tex/one"]
    kept = out / "letters" / ".one.pdf.backup01"  # a copy kept by hand, named as a temporary file might be
    kept.write_bytes((out / "letters" / "one.pdf").read_bytes())
    writer = subprocess.Popen([sys.executable, "-c", STILL_WRITING, str(out / "letters" / "two.pdf")], cwd=ROOT,
                              text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == "writing\n"
        [live] = hidden() - left - {kept}
        source.write_text(source.read_text().replace("Dear Reader,", "Dear Reader One,"))  # built again, after an edit
        report = build(source, out)
        assert report.ok and [o.status for o in report.outcomes] == ["built"]
        assert hidden() == {kept, live}  # the live one is another's
    finally:
        writer.communicate("")
    assert hidden() == {kept}


def test_the_temporary_files_of_a_sign_killed_while_it_wrote_are_cleared_by_the_next(one_letter_merged, tmp_path):
    """kill -9 while sign writes a signed copy or the signed bundle: each leaves a hidden
    temporary file (as large as what it signs), which stayed for good, behind any number
    of signs. The next sign deletes them; one a live process still writes is left alone."""
    import signal

    from builder.sign import Key, sign_batch
    from test_bundle import make_certificates

    p12, _ = make_certificates(tmp_path)
    key = Key(p12=p12, password=b"secret")
    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    assert build(source, out).ok
    merge(source, out)
    assert sign_batch(source, out, key).signed  # the signed/ folder there, as after any sign
    for target in (out / "signed" / "one.pdf", out / "bundle-signed.pdf"):
        killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(target)], cwd=ROOT)
        assert killed.returncode == -signal.SIGKILL

    def hidden() -> set[Path]:
        return {p for folder in (out, out / "signed") for p in folder.iterdir()
                if p.name.startswith((".one.pdf.", ".bundle-signed.pdf."))}

    left = hidden()
    assert len(left) == 2
    writer = subprocess.Popen([sys.executable, "-c", STILL_WRITING, str(out / "signed" / "one.pdf")], cwd=ROOT,
                              text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == "writing\n"
        [live] = hidden() - left
        sign_batch(source, out, key, force=True)
        assert hidden() == {live}  # the live one is another's
    finally:
        writer.communicate("")
    assert hidden() == set()


def test_a_build_with_nothing_to_do_clears_the_temporary_files_a_killed_build_left(one_letter_merged, tmp_path):
    """kill -9 while a build writes a letter its record still vouches for (`build -f`, the
    same bytes again): the next build has nothing to compile, and deletes the temporary
    files all the same. They stayed for good, each as large as its letter."""
    import signal

    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    assert build(source, out).ok  # (the batch copied elsewhere: built again there)
    targets = [out / "letters" / "one.pdf", out / "tex" / "one.tex", out / "manifest.json"]
    for target in targets:
        killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(target)], cwd=ROOT)
        assert killed.returncode == -signal.SIGKILL
    left = [p for folder in (out, out / "letters", out / "tex") for p in folder.iterdir()
            if p.name.startswith(".") and p.name != ".lock"]
    assert len(left) == 3
    report = build(source, out)
    assert [o.status for o in report.outcomes] == ["up to date"] and not any(p.exists() for p in left)


def test_an_output_that_cannot_be_written_is_named_not_a_temporary_file(one_letter_merged, tmp_path):
    """--output naming a folder, or a file in a folder that cannot be written: one
    line naming the file given (not the hidden temporary file merge wrote first,
    which is gone), exit 2, nothing left behind."""
    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    (tmp_path / "folder.pdf").mkdir()
    long_name = tmp_path / ("a" * 250 + ".pdf")  # a name the file system allows; its temporary file's too
    assert merge(source, out, out=long_name).path.read_bytes() == (out / "bundle.pdf").read_bytes()
    in_a_file = invoke("merge", "-r", str(source), "-b", str(out), "--output", str(source / "new.pdf"))
    assert in_a_file.returncode == 2 and in_a_file.stderr.strip().splitlines() == [
        f"could not write the bundle: Not a directory ({source}); no bundle was written"], in_a_file.stderr
    targets = [tmp_path / "folder.pdf"]
    if os.geteuid() == 0:  # root writes into any folder: a read-only file system refuses it
        with small_disk(tmp_path / "disk", "1m") as disk:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
            merged = invoke("merge", "-r", str(source), "-b", str(out), "--output", str(disk / "new.pdf"))
        assert merged.returncode == 2 and merged.stderr.strip().splitlines() == [
            f"could not write the bundle: Read-only file system ({disk / 'new.pdf'}); no bundle was written"]
    else:
        targets.append(tmp_path / "locked" / "new.pdf")
        targets[-1].parent.mkdir(mode=0o555)
    merged = invoke("merge", "-r", str(source), "-b", str(out), "--output", str(targets[0]))
    assert merged.returncode == 2 and merged.stderr.strip().splitlines() == [
        f"could not write the bundle: Is a directory ({targets[0]}); no bundle was written"], merged.stderr
    for target in targets[1:]:
        merged = invoke("merge", "-r", str(source), "-b", str(out), "--output", str(target))
        assert merged.returncode == 2 and merged.stderr.strip().splitlines() == [
            f"could not write the bundle: Permission denied ({target}); no bundle was written"], merged.stderr
    assert not [p for p in tmp_path.rglob(".*.pdf.*")]


def test_merge_writes_nothing_when_the_bundle_is_current_and_everything_else_merges_again(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two"))
    out = tmp_path / "build"
    assert build(source, out).ok
    first = merge(source, out)
    bundle = first.path
    stamp = bundle.stat()
    again = merge(source, out)
    assert again.up_to_date and (again.letters, again.pages, again.cover_pages) == (2, 3, 1)
    assert (bundle.stat().st_ino, bundle.stat().st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)  # not rewritten
    said = invoke("merge", "-r", str(source), "-b", str(out))
    assert said.returncode == 0 and "bundle.pdf: up to date, 2 letters" in said.stdout

    # each of these makes a different bundle, so merge writes it
    assert not merge(source, out, duplex=True).up_to_date  # an option
    assert merge(source, out, duplex=True).up_to_date
    assert not merge(source, out).up_to_date
    assert not merge(source, out, out=tmp_path / "elsewhere.pdf").up_to_date  # another file
    assert not merge(source, out).up_to_date
    good = bundle.read_bytes()
    at = len(good) // 2
    bundle.write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1:])  # one byte changed by hand
    assert bundle.read_bytes() != good
    assert not merge(source, out).up_to_date and bundle.read_bytes() == good
    write_yaml(source, source.read_text().replace("name: Reader two", "name: Reader Two"))
    assert build(source, out).ok
    assert not merge(source, out).up_to_date  # a letter rebuilt
    assert merge(source, out).up_to_date


def test_a_letter_changed_with_its_size_and_times_put_back_is_still_caught(tmp_path):
    # merge does not re-read a letter whose stat is the one recorded when it was
    # last hashed; the change time, which no program can set, still gives it away
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + person("one"))
    out = tmp_path / "build"
    assert build(source, out).ok
    time.sleep(0.1)  # a file changed within a clock tick of its reading is read again next time
    assert build(source, out).ok  # a no-change build: the letter's stat is on the record
    assert "seen" in json.loads((out / "manifest.json").read_text())["letters"]["one"]
    pdf = out / "letters" / "one.pdf"
    good, before = pdf.read_bytes(), pdf.stat()
    at = len(good) // 2
    forged = good[:at] + bytes([good[at] ^ 1]) + good[at + 1:]  # one byte, same size
    with open(pdf, "r+b") as handle:  # in place: same inode
        handle.write(forged)
    os.utime(pdf, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = pdf.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(MergeRefused, match="one: changed: letters/one.pdf changed since it was built"):
        merge(source, out)
    assert [s.state for s in status(source, out)] == ["changed"]


def test_a_batch_unchanged_since_its_build_is_judged_from_the_record_and_any_change_is_seen(tmp_path):
    # status, check, build and merge of a batch whose files are byte for byte those of its
    # build read the manifest's record instead of loading it; every file it came from counts
    from test_bundle import tiny_png

    project = tmp_path / "project"
    (project / "images").mkdir(parents=True)
    tiny_png(project / "images" / "one.png")
    (project / "logo.png").symlink_to("images/one.png")
    (project / "people.csv").write_text("id,name,address,salutation\none,Reader One,1 Road,Dear Reader,\n"
                                        "two,Reader Two,2 Road,Dear Reader,\n", encoding="utf-8")
    source = write_yaml(project / "recipients.yaml", MINIMAL_LETTER.replace(
        "    role: Clerk\n", "    role: Clerk\n    logo: logo.png\n") + "recipients: {from: people.csv}\n")
    out = tmp_path / "build"
    assert invoke("build", "merge", "-r", str(source), "-b", str(out)).returncode == 0
    assert json.loads((out / "manifest.json").read_text())["batch"]["files"] == sorted(
        str(p) for p in (project / "people.csv", project / "logo.png"))  # as named, not resolved

    def states():
        done = invoke("status", "-r", str(source), "-b", str(out))
        return {line.split()[0]: " ".join(line.split()[1:]) for line in done.stdout.splitlines()
                if line.startswith("  ") and not line.split()[0].endswith(".pdf")}  # letters, not the bundle

    assert states() == {"one": "ready", "two": "ready"}
    again = invoke("build", "merge", "-r", str(source), "-b", str(out))
    assert "0 built, 2 up to date" in again.stdout and "bundle.pdf: up to date" in again.stdout

    csv = (project / "people.csv").read_text()
    (project / "people.csv").write_text(csv.replace("Reader Two", "Reader 2"), encoding="utf-8")
    assert states() == {"one": "ready", "two": "stale older than its inputs; changed: its text (people.csv)"}
    (project / "people.csv").write_text(csv, encoding="utf-8")  # put back: ready again
    assert states() == {"one": "ready", "two": "ready"}
    # the YAML alone changed (the shared text): it alone is named
    yaml_text = source.read_text()
    source.write_text(yaml_text.replace("This is the shared text.", "The shared text."), encoding="utf-8")
    assert states() == {"one": "stale older than its inputs; changed: its text (recipients.yaml)",
                        "two": "stale older than its inputs; changed: its text (recipients.yaml)"}
    source.write_text(yaml_text, encoding="utf-8")

    tiny_png(project / "images" / "two.png", width=60)
    (project / "logo.png").unlink()
    (project / "logo.png").symlink_to("images/two.png")  # the link points at another image now
    assert set(states().values()) == {"stale older than its inputs; changed: the logo or signature image"}
    rebuilt = invoke("build", "merge", "-r", str(source), "-b", str(out))
    assert "2 built" in rebuilt.stdout and "up to date" not in rebuilt.stdout.splitlines()[-1]

    # the same project in another folder: the record names the old one, so the batch is loaded
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    there = invoke("build", "merge", "-r", str(moved / "recipients.yaml"), "-b", str(out))
    assert "0 built, 2 up to date" in there.stdout, there.stdout
    assert json.loads((out / "manifest.json").read_text())["batch"]["files"][0].startswith(str(moved))


def test_the_cover_is_used_again_only_while_it_is_what_merge_would_compile(tmp_path):
    source, out = two_letters_merged(tmp_path)
    cover_log = out / "work" / "_cover" / "_cover.log"
    compiled = cover_log.stat().st_mtime_ns
    # one recipient's wording changes: their letter is rebuilt, the cover (same rows) is kept
    write_yaml(source, source.read_text().replace("name: Reader two\n", "name: Reader two\n    your_ref: X1\n"))
    assert build(source, out).ok
    # the one letter went the batch route (one pass, its page count from the last build)
    run = batch_name(["two"])
    assert json.loads((out / "manifest.json").read_text())["letters"]["two"]["log"] == f"work/{run}/{run}.log"
    kept = merge(source, out)
    assert not kept.up_to_date and cover_log.stat().st_mtime_ns == compiled
    fresh = tmp_path / "fresh"  # the same batch merged from nothing: the same bytes
    assert build(source, fresh).ok
    assert merge(source, fresh).path.read_bytes() == kept.path.read_bytes()
    # a name on the cover changes: compiled again
    write_yaml(source, source.read_text().replace("name: Reader two\n", "name: Reader Two\n"))
    assert build(source, out).ok
    merge(source, out)
    assert cover_log.stat().st_mtime_ns != compiled
    compiled = cover_log.stat().st_mtime_ns
    cover = out / "cover.pdf"
    good = cover.read_bytes()
    cover.write_bytes(good[:-10] + bytes(b ^ 1 for b in good[-10:]))  # the cover changed by hand
    assert merge(source, out).up_to_date  # the bundle holds the cover as it was compiled: still current
    elsewhere = merge(source, out, out=tmp_path / "elsewhere.pdf")  # a new bundle: the cover is compiled again
    assert cover_log.stat().st_mtime_ns != compiled and cover.read_bytes() == good
    assert elsewhere.path.read_bytes() == (out / "bundle.pdf").read_bytes()


def test_a_batch_cut_in_a_process_of_its_own_gives_the_same_letters_and_its_errors(tmp_path):
    # big batches are cut in a child process (both cores cut); the letters are the same
    # bytes, and a full disk there is the same OSError here
    from builder import compile as tex, split as split_pdf

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + person("one") + person("two") + person("three", ("3 Road", "Town")))
    out = tmp_path / "build"
    assert build(source, out, jobs=1).ok  # one worker: one batch of three
    from builder.build import prepare

    (batch_tex,) = (out / "tex").glob("_batch-*.tex")
    # the build keeps no batch PDF once its letters are cut: the batch's .tex, compiled again
    compiled = tex.compile_batch(batch_tex, tmp_path / "again", prepare(source, out).env, rerun=False)
    pdf, letters = compiled.pdf, compiled.letters
    assert len(letters) == 3

    def cuts(folder):
        return [split_pdf.Cut(rid, p.start, p.pages, folder / f"{rid}.pdf", {"Title": f"Letter {rid}"})
                for rid, p in letters.items()]

    here = split_pdf.split(pdf, cuts(tmp_path / "here"))
    assert split_pdf.split_apart(pdf, cuts(tmp_path / "apart")) == here  # the fonts' digests too
    for rid in letters:
        assert (tmp_path / "apart" / f"{rid}.pdf").read_bytes() == (tmp_path / "here" / f"{rid}.pdf").read_bytes()

    with small_disk(tmp_path / "disk", "512k") as disk:
        with pytest.raises(OSError) as raised:
            split_pdf.split_apart(pdf, cuts(disk))
        assert raised.value.strerror == "No space left on device", raised.value
        assert not [p for p in disk.iterdir() if p.name.startswith(".")]  # no temporary file left
    with pytest.raises(FileNotFoundError):
        split_pdf.split_apart(tmp_path / "nothing.pdf", cuts(tmp_path / "none"))
    (tmp_path / "garbage.pdf").write_bytes(b"not a PDF at all")
    with pytest.raises(RuntimeError, match="cutting garbage.pdf into letters failed: .*garbage.pdf"):
        split_pdf.split_apart(tmp_path / "garbage.pdf", cuts(tmp_path / "none"))


def test_a_manifest_nested_too_deep_or_not_a_file_is_no_record(tmp_path):
    from builder.manifest import Manifest

    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert Manifest.read(tmp_path).letters == {}
    (tmp_path / "manifest.json").unlink()
    os.mkfifo(tmp_path / "manifest.json")  # reading it would never end
    assert Manifest.read(tmp_path).letters == {}


@pytest.fixture(scope="module")
def one_letter_merged(tmp_path_factory):
    """One letter, built and merged once for the module: tests change copies (``copy_batch``)."""
    folder = tmp_path_factory.mktemp("one")
    source = write_yaml(folder / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + person("one"))
    assert build(source, folder / "build").ok
    merge(source, folder / "build")
    return source, folder / "build"


def test_the_record_every_stage_writes_is_the_shape_a_fresh_read_checks_for(tmp_path):
    # a command does not check the shape of the record it wrote itself again as it reads it
    # back (Manifest.write keeps the verdict for those bytes): what each stage writes must be
    # what a fresh read of the file finds, or the next command would judge it otherwise
    from builder import manifest as record
    from builder.publish import publish

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + person("one") +
                        person("two", extra="    marking: OFFICIAL-SENSITIVE\n"))
    out = tmp_path / "build"

    def kept_and_fresh(root: Path):
        data = (root / "manifest.json").read_bytes()
        return record._verdicts.get(hashlib.sha256(data).digest()), record._verdict(json.loads(data))

    assert build(source, out).ok
    kept, fresh = kept_and_fresh(out)
    assert kept == fresh and fresh[0] == {"one", "two"} and fresh[3], (kept, fresh)
    merge(source, out)
    kept, fresh = kept_and_fresh(out)
    assert kept == fresh and fresh[2], (kept, fresh)
    assert build(source, out, medium="web").ok
    kept, fresh = kept_and_fresh(out / "web")
    assert kept == fresh and fresh[0] == {"one", "two"}, (kept, fresh)
    assert publish(source, out, tmp_path / "site", cleared=["two"]).cleared == {"two": "OFFICIAL-SENSITIVE"}
    kept, fresh = kept_and_fresh(out / "web")
    assert kept == fresh and "cleared" in json.loads((out / "web" / "manifest.json").read_text())["letters"]["two"]


@pytest.mark.parametrize("where, key, value", [
    ("letter", "seen", "x"), ("letter", "inputs", "x"), ("letter", "findings", "abc"),
    ("letter", "findings", ["abc"]), ("letter", "accepted", ["window"]), ("letter", "pages", "two"),
    ("letter", "sha256", None), ("letter", "cleared", "x"), ("bundle", "inputs", [1]), ("bundle", "seen", "x"), ("bundle", "file", 5),
    ("batch", "letters", [["one", "s", "k", 5]]), ("batch", "rejected", [[1]]), ("batch", "warnings", "abc"),
])
def test_a_manifest_edited_by_hand_is_never_a_traceback(one_letter_merged, tmp_path, where, key, value):
    # a part of the record that is not what the builder writes is left out: the
    # letter is built again, the bundle merged again, the batch loaded again
    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    assert [s.state for s in status(source, out)] == ["ready"]  # the copy is as good as the original
    good = outputs(out)
    data = json.loads((out / "manifest.json").read_text())
    {"letter": data["letters"]["one"], "bundle": data["bundle"], "batch": data["batch"]}[where][key] = value
    (out / "manifest.json").write_text(json.dumps(data))
    for task in ("status", "check", "build", "merge"):  # the first two read the damaged record
        done = invoke(task, "-r", str(source), "-b", str(out))
        assert "Traceback" not in done.stderr and done.returncode in (0, 1), (task, done.stdout, done.stderr)
        assert "a, b, c" not in done.stdout + done.stderr  # "warnings": "abc" is no list of three
    assert outputs(out) == good and [s.state for s in status(source, out)] == ["ready"]


def test_a_manifest_that_cannot_be_read_is_said_not_taken_for_letters_never_built(one_letter_merged, tmp_path):
    """A manifest.json cut short (a copy to a shared drive that stopped, an edit saved half
    way) is no record at all: status called every letter in the folder "never built" and the
    bundle "never merged", and build built them all again, with no word of the record. Both
    say the record cannot be read, and why; the build's new record then holds."""
    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[:len(text) // 2])
    said = f"{out / 'manifest.json'} cannot be read (Unterminated string"
    seen = invoke("status", "-r", str(source), "-b", str(out))
    assert "Traceback" not in seen.stderr and said in seen.stdout, seen.stdout + seen.stderr
    assert "the record of what was built is lost, so its letters read as never built" in seen.stdout, seen.stdout
    # so do check and send's dry run, which said "never built: run build" of each, and no more
    for task in ("check", "send"):
        seen = invoke(task, "-r", str(source), "-b", str(out))
        assert "Traceback" not in seen.stderr and seen.returncode == 1, seen.stdout + seen.stderr
        assert f"{said}" in seen.stdout + seen.stderr, (task, seen.stdout + seen.stderr)
    built = invoke("build", "-r", str(source), "-b", str(out))
    assert built.returncode == 0 and said in built.stderr, built.stdout + built.stderr
    again = invoke("status", "-r", str(source), "-b", str(out))
    assert "cannot be read" not in again.stdout and [s.state for s in status(source, out)] == ["ready"], again.stdout


def test_a_record_naming_a_letter_no_recipient_can_have_touches_no_file(one_letter_merged, tmp_path):
    """A manifest edited (or received) with a letter "../../../victim": its key names the
    letter's files (letters/<id>.pdf, tex/<id>.tex), and a build deleted "its" files,
    outside the build folder. A key that is no recipient id is not this builder's."""
    source, out = copy_batch(one_letter_merged, tmp_path / "batch")
    victims = [tmp_path / "victim.pdf", tmp_path / "victim.tex"]
    for victim in victims:
        victim.write_text("someone else's")
    data = json.loads((out / "manifest.json").read_text())
    for key in ("../../../victim", "Victim", "-victim", "x/../../../../victim"):
        data["letters"][key] = dict(data["letters"]["one"])
    (out / "manifest.json").write_text(json.dumps(data))
    assert [s.recipient for s in status(source, out)] == ["one"]
    for force in (False, True):
        assert build(source, out, force=force).ok
    assert all(v.read_text() == "someone else's" for v in victims)
    assert list(json.loads((out / "manifest.json").read_text())["letters"]) == ["one"]


def test_merge_output_never_overwrites_what_the_batch_is_made_of_or_what_the_build_keeps(tmp_path):
    from test_bundle import tiny_png

    tiny_png(tmp_path / "logo.png")
    with pikepdf.new() as stamp:  # a PDF logo (a PNG named .pdf is now refused as it is read)
        stamp.add_blank_page(page_size=(60, 20))
        stamp.save(tmp_path / "stamp.pdf")
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    role: Clerk\n", "    role: Clerk\n    logo: logo.png\n") + "recipients:\n" + person("one"))
    out = tmp_path / "build"
    assert build(source, out).ok
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for target, words in [(source, "the bundle is a PDF"), (out / "manifest.json", "the bundle is a PDF"),
                          (out / "letters" / "one.pdf", "that is the letters, which the build keeps"),
                          (out / "cover.pdf", "that is the cover sheet"),
                          (out / "signed" / "one.pdf", "the signed letters"),
                          (out / "bundle-signed.pdf", "the signed bundle"),
                          (out / "work" / "one" / "one.pdf", "pdflatex's work"), (out / "tex" / "x.pdf", "the LaTeX"),
                          (out / "web" / "2021-03-04-one.pdf", "the web copies"),
                          (tmp_path / "bundle.PDF.txt", "the bundle is a PDF"), (tmp_path / "logo.png", "a PDF")]:
        done = invoke("merge", "-r", str(source), "-b", str(out), "--output", str(target))
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    # an empty name (a script's unset variable) wrote <build>/bundle.pdf as if none was given
    empty = invoke("merge", "-r", str(source), "-b", str(out), "--output", "")
    assert empty.returncode == 2 and empty.stderr == "--output takes the bundle's file name, ending in .pdf, " \
        "not ''\n", empty.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # another batch's build folder: its signed copies no command can make again
    second = tmp_path / "second"
    shutil.copytree(out, second)
    (second / "signed").mkdir()
    (second / "signed" / "one.pdf").write_bytes(b"%PDF- signed by hand")
    for target, words in [(second / "signed" / "one.pdf", "the signed letters of the build in"),
                          (second / "bundle-signed.pdf", "the signed bundle of the build in"),
                          (second / "letters" / "one.pdf", "the letters of the build in"),
                          # its bundle: overwritten, it read "changed since it was merged" and sign refused it
                          (second / "bundle.pdf", "the bundle of the build in")]:
        done = invoke("merge", "-r", str(source), "-b", str(out), "--output", str(target))
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (second / "signed" / "one.pdf").read_bytes() == b"%PDF- signed by hand"
    assert not merge(source, out, out=second / "elsewhere.pdf").up_to_date  # beside them: a file of its own
    with pytest.raises(MergeRefused, match="that is a file the batch is made from"):
        write_yaml(source, source.read_text().replace("logo: logo.png", "logo: stamp.pdf"))
        merge(source, out, out=tmp_path / "stamp.pdf")
    # the image named through a link, and the file it links to named on the command line
    (tmp_path / "images").mkdir()
    shutil.move(tmp_path / "stamp.pdf", tmp_path / "images" / "stamp.pdf")
    (tmp_path / "stamp.pdf").symlink_to("images/stamp.pdf")
    image = (tmp_path / "images" / "stamp.pdf").read_bytes()
    for target in (tmp_path / "images" / "stamp.pdf", tmp_path / "images" / ".." / "stamp.pdf"):
        with pytest.raises(MergeRefused, match="that is a file the batch is made from"):
            merge(source, out, out=target)
    assert (tmp_path / "images" / "stamp.pdf").read_bytes() == image and (tmp_path / "stamp.pdf").is_symlink()


def test_a_bundle_left_behind_by_merge_output_elsewhere_is_not_vouched_for(tmp_path):
    """After `merge --output other.pdf` the record names other.pdf: an earlier
    bundle.pdf (which anyone may change) is reported, not silently left."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + person("one"))
    out = tmp_path / "build"
    assert invoke("build", "merge", "-r", str(source), "-b", str(out)).returncode == 0
    assert invoke("check", "-r", str(source), "-b", str(out)).returncode == 0
    assert invoke("merge", "-r", str(source), "-b", str(out), "--output", str(tmp_path / "other.pdf")).returncode == 0
    with open(out / "bundle.pdf", "ab") as pdf:
        pdf.write(b"%% changed by hand\n")
    done = invoke("check", "-r", str(source), "-b", str(out))
    assert done.returncode == 1, done.stdout
    assert f"bundle: changed; bundle.pdf is not on the record (merge last wrote {tmp_path / 'other.pdf'}): " \
        f"run `invoke merge -r {source} -b {out}` to write it again, or delete it" in done.stdout, done.stdout
    # `invoke build check merge`, the README's chain, stopped at its check with "run merge": its
    # merge writes bundle.pdf again, so the check before it lets it (one to another file does not)
    elsewhere = invoke("build", "check", "merge", "--output", str(tmp_path / "third.pdf"), "-r", str(source),
                       "-b", str(out))
    assert elsewhere.returncode == 1 and not (tmp_path / "third.pdf").exists(), elsewhere.stdout
    chained = invoke("build", "check", "merge", "-r", str(source), "-b", str(out))
    assert chained.returncode == 0, chained.stdout + chained.stderr
    assert f"bundle: bundle.pdf is not on the record (merge last wrote {tmp_path / 'other.pdf'}) (this command's " \
        "merge writes it again)" in chained.stdout, chained.stdout
    assert invoke("check", "-r", str(source), "-b", str(out)).returncode == 0  # written again: on the record


def test_status_and_check_exit_1_exactly_when_the_readme_says(tmp_path, inject_latex):
    # status: 1 when a letter needs a person (preflight, failed, changed, invalid), 0 when a
    # command would do (stale, never built); check: 1 whenever a letter is not ready
    from conftest import UNDEFINED

    source, out = two_letters_merged(tmp_path)
    text = source.read_text()

    def codes():
        status_run = invoke("status", "-r", str(source), "-b", str(out))
        check_run = invoke("check", "-r", str(source), "-b", str(out))
        assert "Traceback" not in status_run.stderr + check_run.stderr
        return status_run.returncode, check_run.returncode

    assert codes() == (0, 0)
    write_yaml(source, text.replace("name: Reader two", "name: Reader Two"))  # stale
    assert [s.state for s in status(source, out)] == ["ready", "stale"] and codes() == (0, 1)
    write_yaml(source, text + person("three"))  # never built
    assert [s.state for s in status(source, out)] == ["ready", "ready", "never built"] and codes() == (0, 1)
    write_yaml(source, text)
    assert [s.state for s in status(source, out)] == ["ready", "ready"]
    pdf = out / "letters" / "two.pdf"
    good = pdf.read_bytes()
    pdf.write_bytes(good + b"\n% edited\n")  # changed after its build
    assert [s.state for s in status(source, out)] == ["ready", "changed"] and codes() == (1, 1)
    pdf.write_bytes(good)
    inject_latex({"two": UNDEFINED})
    assert [o.status for o in build(source, out, force=True).outcomes] == ["built", "failed"]
    inject_latex({})
    assert [s.state for s in status(source, out)] == ["ready", "failed"] and codes() == (1, 1)
    assert build(source, out).ok
    merge(source, out)
    assert codes() == (0, 0)
    write_yaml(source, text.replace("    salutation: Dear Reader,\n", "", 1))  # one: invalid
    assert [s.state for s in status(source, out)] == ["invalid", "ready"] and codes() == (1, 1)


def test_a_change_to_the_builders_code_tex_or_pikepdf_rebuilds_letters_whose_tex_is_the_same(tmp_path):
    # the way letters are cut and checked is code, not TeX: a builder that changed
    # (here split.py, which makes no LaTeX) may make other PDFs from the same .tex
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("tasks.py", "invoke.yaml"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "builder", copy / "builder", ignore=shutil.ignore_patterns("__pycache__"))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + person("one"))
    out = tmp_path / "build"
    env = {**os.environ, "PYTHONPATH": str(copy)}

    def run(task):
        return subprocess.run([sys.executable, "-m", "invoke", task, "-r", str(source), "-b", str(out)], cwd=copy,
                              env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    assert run("build").returncode == 0
    assert re.search(r"^  one +ready$", run("status").stdout, re.M)
    with open(copy / "builder" / "split.py", "a") as code:
        code.write("\n# a change that leaves every .tex as it was\n")
    seen = run("status")
    assert re.search(r"^  one +stale +older than its inputs; changed: the builder's code$", seen.stdout, re.M), seen.stdout
    assert "1 built" in run("build").stdout

    # TeX upgraded: the same pdflatex behind a wrapper that says it is another version
    # (it still compiles with the real one, so the rebuilt letter is a real PDF)
    upgraded = tmp_path / "texbin"
    upgraded.mkdir()
    wrapper = upgraded / "pdflatex"
    wrapper.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "pdfTeX 3.141592653-2.6-1.40.99 (TeX Live 2099)"; '
                       f'exit 0; fi\nexec {shutil.which("pdflatex")} "$@"\n')
    wrapper.chmod(0o755)
    env["PATH"] = f"{upgraded}{os.pathsep}{os.environ['PATH']}"
    seen = run("status")
    assert re.search(r"^  one +stale +older than its inputs; changed: the TeX version$", seen.stdout, re.M), seen.stdout
    assert "1 built" in run("build").stdout
    assert re.search(r"^  one +ready$", run("status").stdout, re.M)

    # pikepdf upgraded (another copy first on the path, as an upgrade writes new files): it
    # cuts and writes each letter's file, so the same pages may be written as other bytes
    import pikepdf

    site = tmp_path / "site"
    for folder in (Path(pikepdf.__file__).parent, Path(pikepdf.__file__).parent.with_name("pikepdf.libs")):
        if folder.is_dir():
            shutil.copytree(folder, site / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    version = site / "pikepdf" / "_version.py"
    version.write_text(version.read_text().replace(pikepdf.__version__, pikepdf.__version__ + ".post1"))
    env["PYTHONPATH"] = f"{site}{os.pathsep}{copy}"
    seen = run("status")
    assert re.search(r"^  one +stale +older than its inputs; changed: pikepdf, which writes the letters' files$",
                     seen.stdout, re.M), seen.stdout
    assert "1 built" in run("build").stdout
    assert re.search(r"^  one +ready$", run("status").stdout, re.M)


def pdflatex_in(folder: Path) -> dict[int, str]:
    """The pdflatex processes working in ``folder``: pid -> its working folder (inside it)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            # the program, or the script a shell runs (a wrapper, before it execs pdflatex)
            words = [Path(w.decode()).name for w in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:2]]
            where = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, UnicodeDecodeError):
            continue
        if "pdflatex" in words and Path(where).is_relative_to(folder):
            found[int(pid)] = where
    return found


def test_a_build_killed_outright_keeps_its_folder_locked_until_its_pdflatex_has_finished(tmp_path):
    """kill -9 of the build leaves its pdflatex running, writing into the work
    folder: until it ends, the folder stays locked (it holds the lock too), so no
    new build shares the work folder with it; then a build is whole."""
    from builder.build import Layout, lock

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + "".join(person(f"r{n:03d}") for n in range(400)))
    out = tmp_path / "build"
    # The real pdflatex, its terminal output sent elsewhere: one that writes to the killed
    # build's pipe dies of SIGPIPE at its next line; one busy without a word (a large image,
    # writing the PDF) lives on. This one lives on, every time.
    quiet = tmp_path / "texbin"
    quiet.mkdir()
    (quiet / "pdflatex").write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then exec {shutil.which("pdflatex")} "$@"; fi\n'
                                    f'exec {shutil.which("pdflatex")} "$@" >/dev/null 2>&1\n')
    (quiet / "pdflatex").chmod(0o755)
    started = subprocess.Popen([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(out),
                                "--jobs", "1"], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "PATH": f"{quiet}{os.pathsep}{os.environ['PATH']}"})
    deadline = time.monotonic() + 120
    work = out / "work"
    # the batch's own pdflatex run, not the one making the preamble's format
    while not [where for where in pdflatex_in(work).values() if "_preamble" not in where]:
        assert started.poll() is None and time.monotonic() < deadline, "the build ended before pdflatex was seen"
        time.sleep(0.01)
    started.kill()
    started.wait()
    assert pdflatex_in(work), "pdflatex outlives the build that started it"
    with pytest.raises(RuntimeError, match="another build, merge, sign, send or publish is running .*pdflatex of one that was stopped"):
        with lock(Layout.of(out)):
            pass
    while True:  # free once every pdflatex it started has finished, not before
        try:
            with lock(Layout.of(out)):
                assert not pdflatex_in(work)
            break
        except RuntimeError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    report = build(source, out)
    assert report.ok and {s.state for s in status(source, out)} == {"ready"}
