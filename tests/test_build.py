"""Building a batch: isolation of failures, incremental rebuilds, merge refusals, tasks."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from pypdf import PdfReader
from pathlib import Path

from builder.build import batch_name, build
from builder.merge import MergeRefused, merge
from conftest import MINIMAL_LETTER, ROOT, SAMPLE, UNDEFINED, pdf_text, write_yaml

BATCH = MINIMAL_LETTER + """\
recipients:
  - id: first
    name: First Person
    address: [1 Road]
    salutation: Dear First,
  - id: broken
    name: "Smiley 😀"
    address: [2 Road]
    salutation: Dear Smiley,
  - id: third
    name: Third Person
    address: [3 Road]
    salutation: Dear Third,
"""


def test_one_letter_that_fails_to_compile_does_not_stop_the_others_and_keeps_its_last_good_pdf(
        tmp_path, inject_latex):
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out).ok
    good = (out / "letters" / "broken.pdf").read_bytes()
    inject_latex({"broken": UNDEFINED})
    report = build(source, out, force=True)
    status = {o.recipient: o.status for o in report.outcomes}
    assert status == {"first": "built", "broken": "failed", "third": "built"}
    (failed,) = report.failed
    assert failed.message.startswith("broken.tex:") and "Undefined control sequence" in failed.message
    assert "undefinedmacro" in failed.message  # the source line, from the log
    # the last good PDF is kept, but marked failed: nothing uses it
    assert (out / "letters" / "broken.pdf").read_bytes() == good
    assert "Dear Third," in pdf_text(out / "letters" / "third.pdf")
    with pytest.raises(MergeRefused, match="broken: failed: its last build failed: broken.tex:"):
        merge(source, out)
    assert not (out / "bundle.pdf").exists()
    again = build(source, out)  # a failed letter is tried again, and still fails
    assert {o.recipient: o.status for o in again.outcomes}["broken"] == "failed"
    inject_latex({})
    fixed = build(source, out)
    assert {o.recipient: o.status for o in fixed.outcomes} == {
        "first": "up to date", "broken": "built", "third": "up to date"}
    assert merge(source, out).letters == 3
    # pdflatex's work for the letter compiled alone (its batch failed) stays while it is in
    # the batch, and goes when it leaves, with its letter and .tex (it stayed for ever);
    # every log a record names stays
    assert (out / "work" / "broken").is_dir()
    write_yaml(source, BATCH.replace('  - id: broken\n    name: "Smiley 😀"\n    address: [2 Road]\n'
                                     '    salutation: Dear Smiley,\n', ""))
    assert build(source, out).removed == ["broken"]
    assert not (out / "work" / "broken").exists() and not (out / "letters" / "broken.pdf").exists()
    logs = [entry["log"] for entry in json.loads((out / "manifest.json").read_text())["letters"].values()]
    assert len(logs) == 2 and all((out / log).is_file() for log in logs), logs


def test_unprintable_character_is_refused_before_tex_runs(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", BATCH)
    out = tmp_path / "build"
    report = build(source, out)
    assert {o.recipient: o.status for o in report.outcomes} == {
        "broken": "invalid", "first": "built", "third": "built"}
    (failed,) = report.failed
    assert ("recipient 'broken', field 'name': contains characters the letter's fonts cannot print: "
            "'😀' (grinning face, U+1F600)") in failed.message
    assert not (out / "tex" / "broken.tex").exists()


def test_build_only_an_invalid_recipient_says_why_it_is_not_built(tmp_path):
    # `build --only broken` said "no valid recipient with id: broken" and nothing more:
    # the one letter a person asked for, and not a word about what is wrong with it
    source = write_yaml(tmp_path / "recipients.yaml", BATCH)
    out = tmp_path / "build"
    for _ in range(2):  # before anything is built, then from the record alone
        report = build(source, out, only=["broken"])
        (failed,) = report.failed
        assert failed.recipient == "broken" and failed.status == "invalid"
        assert "field 'name': contains characters the letter's fonts cannot print" in failed.message
        build(source, out)
    with pytest.raises(ValueError, match="no valid recipient with id: brokn"):
        build(source, out, only=["brokn"])


def test_status_and_check_name_the_field_of_an_invalid_recipient(tmp_path):
    # "broken  invalid  in recipients.yaml:11:11: contains characters ...": the line, not the field
    from builder.build import status
    from builder.check import check

    source = write_yaml(tmp_path / "recipients.yaml", BATCH)
    out = tmp_path / "build"
    for _ in range(2):  # before a build, then from the record
        states = {s.recipient: s for s in status(source, out)}
        assert states["broken"].state == "invalid"
        assert re.fullmatch(r"in recipients\.yaml:\d+:\d+: field 'name': contains characters the letter's fonts "
                            r"cannot print: .*", states["broken"].reason), states["broken"].reason
        (broken,) = [r for r in check(source, out) if r.name == "broken"]
        assert "field 'name': contains characters" in broken.reason, broken
        build(source, out)


def test_rebuild_compiles_only_what_changed_and_merge_refuses_stale(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out).ok
    first = merge(source, out)
    assert len(PdfReader(first.path).pages) == 1 + 3  # the cover, then the letters
    again = build(source, out)
    assert {o.status for o in again.outcomes} == {"up to date"}
    write_yaml(source, source.read_text().replace("Dear Third,", "Dear Thirza,"))
    with pytest.raises(MergeRefused, match=r"third: stale: older than its inputs; changed: its text \(recipients.yaml\)"):
        merge(source, out)
    rebuilt = build(source, out)
    assert {o.recipient: o.status for o in rebuilt.outcomes}["third"] == "built"
    assert [o.status for o in rebuilt.outcomes].count("up to date") == 2
    bundle = merge(source, out)  # a second merge really replaces the first
    assert "Dear Thirza," in pdf_text(bundle.path)


def test_a_build_forgets_the_composed_text_and_makes_it_again_to_the_same_bytes(tmp_path):
    """Once built, the letters' text is dropped (a merge of 10,000 letters needs the
    room); a later build in the same process that must compile a letter composes
    it again, to the same .tex and the same PDF."""
    from builder.build import Layout, prepare

    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out).ok
    prepared = prepare(source, out)  # the build's own, composed once for the command
    assert all(s.block is None for s in prepared.sources)
    assert not [key for key in prepared.loaded.memo if isinstance(key, tuple) and key[0] in ("block", "source")]
    layout = Layout.of(out)
    pdf, tex = layout.pdf("third"), layout.tex / "third.tex"
    made = pdf.read_bytes(), tex.read_text()
    pdf.unlink(), tex.unlink()
    again = build(source, out, jobs=1)
    assert prepare(source, out) is prepared  # the same batch in memory, its text made again
    assert {o.recipient: o.status for o in again.outcomes}["third"] == "built"
    assert (pdf.read_bytes(), tex.read_text()) == made
    assert prepared.source("third").block is None  # and dropped again


def test_an_edit_composes_only_the_letters_it_changes_and_the_record_holds_each_letters_own_text(
        tmp_path, monkeypatch):
    """The record keeps, with the hash of each letter's LaTeX, what it was composed
    from: editing one recipient composes that letter alone (a batch of 10,000 is
    not composed again for one edit). Whatever the edit, each letter's LaTeX as
    the record gives it is what composing it afresh makes: a Welsh letter added
    to an English batch makes every document load Welsh, so every letter is
    composed and built again."""
    from builder import compose as compose_module
    from builder.build import Layout, prepare
    from builder.manifest import sha256_bytes

    welsh = MINIMAL_LETTER.replace("    - main: This is the shared text.",
                                   "    - main: {en: This is the shared text., cy: Dyma'r testun.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    english = BATCH.replace("Smiley 😀", "Smiley").replace(MINIMAL_LETTER, welsh)
    source = write_yaml(tmp_path / "recipients.yaml", english)
    out = tmp_path / "build"
    assert build(source, out).ok
    composed, block = [], compose_module.letter_block
    monkeypatch.setattr(compose_module, "letter_block",
                        lambda batch, recipient, **kw: composed.append(recipient.id) or block(batch, recipient, **kw))

    def on_record_and_afresh() -> tuple[dict[str, str], dict[str, str]]:
        prepared = prepare(source, out)
        batch = prepared.loaded.batch
        return ({s.recipient.id: s.inputs["source"] for s in prepared.sources},
                {r.id: sha256_bytes(compose_module.letter_source(
                    batch, r, block(batch, r, assets=prepared.images)).encode()) for r in batch.recipients})

    write_yaml(source, english.replace("Dear Third,", "Dear Thirza,"))
    rebuilt = build(source, out)
    assert composed == ["third"]
    assert [o.recipient for o in rebuilt.outcomes if o.status == "built"] == ["third"]
    recorded, afresh = on_record_and_afresh()
    assert recorded == afresh and len(recorded) == 3

    first_tex = (Layout.of(out).tex / "first.tex").read_text()
    composed.clear()
    write_yaml(source, english.replace("Dear Third,", "Dear Thirza,") + (
        "  - {id: cymraeg, name: Darllenydd, address: [2 Ffordd], salutation: 'Annwyl Ddarllenydd,', language: cy}\n"))
    rebuilt = build(source, out)
    assert rebuilt.ok and sorted(composed) == ["broken", "cymraeg", "first", "third"]
    assert sorted(o.recipient for o in rebuilt.outcomes if o.status == "built") == sorted(composed)
    assert (Layout.of(out).tex / "first.tex").read_text() != first_tex  # it loads Welsh now
    recorded, afresh = on_record_and_afresh()
    assert recorded == afresh and len(recorded) == 4

    # a record edited by hand is never a crash: a hash the letter's own record does not
    # share is not taken; one it shares (both edited) gives way to the letter's text once
    # the letter is compiled, and the record holds the truth again
    manifest_file = out / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["batch"]["letters"][0][1] = "0" * 64
    manifest_file.write_text(json.dumps(manifest))
    write_yaml(source, source.read_text() + "# a comment: the batch is loaded again\n")
    again = build(source, out)
    assert again.ok and {o.status for o in again.outcomes} == {"up to date"}
    manifest = json.loads(manifest_file.read_text())
    first = manifest["batch"]["letters"][0][0]
    manifest["batch"]["letters"][0][1] = manifest["letters"][first]["inputs"]["source"] = "0" * 64
    manifest_file.write_text(json.dumps(manifest))
    (Layout.of(out).pdf(first)).unlink()
    write_yaml(source, source.read_text() + "# another\n")
    again = build(source, out)
    assert again.ok and [o.recipient for o in again.outcomes if o.status == "built"] == [first]
    recorded, afresh = on_record_and_afresh()
    assert recorded == afresh
    assert json.loads(manifest_file.read_text())["letters"][first]["inputs"]["source"] == afresh[first]


def test_invoke_list_explains_every_task():
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    for name in ("build", "merge", "clean", "test"):
        line = next(l for l in out.splitlines() if l.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 20, line


def test_invoke_build_exits_non_zero_and_names_the_failure(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", BATCH)
    proc = subprocess.run([sys.executable, "-m", "invoke", "build", "--recipients", str(source),
                           "--build-dir", str(tmp_path / "b")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    assert re.search(r"^3 letters: 2 built, 0 up to date, 0 failed, 1 invalid, 1 needs attention \([\d.]+ s\)",
                     proc.stdout, re.M), proc.stdout
    assert re.search(r"broken\s+invalid", proc.stdout) and "first" not in proc.stdout  # only what needs attention
    assert "field 'name': contains characters the letter's fonts cannot print" in proc.stdout


def test_killing_a_build_or_merge_leaves_the_last_good_outputs(tmp_path):
    import os
    import signal
    import time

    source = write_yaml(tmp_path / "recipients.yaml", (SAMPLE).read_text())
    out = tmp_path / "build"
    assert build(source, out).ok
    merge(source, out)
    ids = ["avon-and-somerset", "sussex", "london", "south-wales", "essex"]
    command = [sys.executable, "-m", "invoke", "build", "--force", "--recipients", str(source),
               "--build-dir", str(out)]
    for delay in (0.15, 0.35, 0.6, 0.9):
        proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for rid in ids:  # every PDF still there is whole
            assert len(PdfReader(out / "letters" / f"{rid}.pdf").pages) == 2, (delay, rid)
        assert not [p for p in out.rglob("*.pdf") if p.stem not in ids + ["bundle", "cover"]
                    and "work" not in p.parts]
    merge_command = [sys.executable, "-m", "invoke", "merge", "--recipients", str(source),
                     "--build-dir", str(out)]
    for delay in (0.2, 0.5):
        proc = subprocess.Popen(merge_command, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(PdfReader(out / "bundle.pdf").pages) == 11
    report = build(source, out)  # and the next build recovers
    assert report.ok and all(pdf_text(out / "letters" / f"{rid}.pdf") for rid in ids)
    assert len(PdfReader(merge(source, out).path).pages) == 11


def _pdflatex_running_under(pid: int) -> bool:
    """pdflatex compiling letters, a child of ``pid`` (from Linux's /proc; not the
    `pdflatex --version` the build asks first)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and command[0].endswith(b"pdflatex") and b"-interaction=nonstopmode" in command:
            return True
    return False


def write_letters(source: Path, salutation: str, count: int = 60) -> None:
    """The sample letter to ``count`` recipients, each greeted ``salutation``: 60 are one
    pdflatex run, cut in a process of its own (``split.APART_FROM``)."""
    import yaml

    data = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    data["recipients"] = [{"id": f"r{n:02d}", "name": f"Recipient {n}", "address": [f"{n} High Street", "Town"],
                           "salutation": f"{salutation} {n},", "text": {"highlight": f"Note {n}."}}
                          for n in range(1, count + 1)]
    source.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_ctrl_c_stops_a_build_and_what_it_built_is_on_the_record(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while pdflatex
    runs, and while letters are being cut: the build says it stopped (exit 130), what it
    built is recorded and the rest is stale. No letter reads as changed by hand or as
    failed, and the next build compiles only what is left. (It once stopped without a
    word, after compiling on for seconds, and recorded nothing: every letter it had cut
    read as "changed since it was built".)"""
    import os
    import signal
    import time

    from builder.build import status

    source = tmp_path / "recipients.yaml"
    out = tmp_path / "build"

    def stop_build(when) -> tuple[int, str]:
        proc = subprocess.Popen([sys.executable, "-m", "invoke", "build", "--jobs", "1", "--recipients",
                                 str(source), "--build-dir", str(out)], cwd=ROOT, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not when(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()  # still running: stopped, not finished
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err

    def states() -> dict[str, int]:
        found = {}
        for letter in status(source, out):
            found[letter.state] = found.get(letter.state, 0) + 1
        return found

    # while pdflatex runs: nothing is cut, nothing recorded as failed
    write_letters(source, "Dear Recipient")
    code, err = stop_build(_pdflatex_running_under)
    assert code == 130, err
    said = re.fullmatch(r"stopped: (\d+) letters? built and recorded(?:; (\d+) not built: run "
                        r"`invoke build -r \S+ -b \S+` to build them)?\n", err)
    assert said, err
    built = int(said[1])
    assert states() == ({"never built": 60} if built == 0 else {"ready": built, "never built": 60 - built}), err
    # while the letters are cut: the cutting goes on to its end, and all 60 are recorded. Every
    # letter is changed, so all 60 are cut, and the signal waits for a letter cut by this build
    # (a letter the first stop left in place once had it sent as Python started: exit -2)
    write_letters(source, "Dear Friend")
    started = time.time()

    def cutting(pid: int) -> bool:
        return any(p.stat().st_mtime >= started for p in (out / "letters").glob("*.pdf"))

    code, err = stop_build(cutting)
    assert (code, err) == (130, "stopped: 60 letters built and recorded\n")
    assert states() == {"ready": 60}
    assert not [p for p in out.rglob(".*") if p.is_file() and p.name != ".lock"]  # no temporary file left
    write_letters(source, "Dear Reader")  # and once more while pdflatex runs, over letters built before
    code, err = stop_build(_pdflatex_running_under)
    assert code == 130 and err.startswith("stopped: "), err
    left = states()
    assert set(left) <= {"ready", "stale"} and int(err.split()[1]) == left.get("ready", 0), (err, left)
    again = build(source, out)
    assert again.ok and sum(o.status == "built" for o in again.outcomes) == left.get("stale", 0)
    assert states() == {"ready": 60}


def test_ctrl_c_pressed_twice_while_letters_are_cut_still_records_them(tmp_path):
    """A second Ctrl-C while the build finishes the letters being cut (a person pressing it
    again, or `timeout -s INT`, which signals the command and its process group both) is held
    until the record is written: every letter cut is recorded and said so. (It raised out of
    the wait: "stopped" without a count, the letters in place off the record, and every task
    called them changed by hand.)"""
    import os
    import signal
    import time

    from builder.build import status

    source = tmp_path / "recipients.yaml"
    out = tmp_path / "build"

    write_letters(source, "Dear Recipient")
    assert build(source, out).ok
    write_letters(source, "Dear Friend")
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "build", "--jobs", "1", "--recipients",
                             str(source), "--build-dir", str(out)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (not any(p.stat().st_mtime >= started for p in (out / "letters").glob("*.pdf"))
           and proc.poll() is None and time.monotonic() < deadline):
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()  # cutting: stopped, not finished
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # again, while the letters being cut are finished
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (130, "stopped: 60 letters built and recorded\n")
    assert {letter.state for letter in status(source, out)} == {"ready"}


def test_a_run_whose_cutting_process_is_killed_leaves_the_other_runs_letters_on_the_record(tmp_path, monkeypatch):
    """The process cutting one pdflatex run's letters killed (as the system does when memory
    runs out): the other run's letters, already in place, are recorded, and the build says
    how many, not "Nothing was built" with every letter it made left to read as changed by
    hand; the next build compiles only the rest."""
    from builder import split as split_pdf
    from builder.build import BuildFailed, status

    source = tmp_path / "recipients.yaml"
    write_letters(source, "Dear Recipient", 80)  # two runs of 40: each cut in a process of its own
    out = tmp_path / "build"
    result = split_pdf.Cutting.result

    def killed_for_the_second_run(cutting):
        if cutting.source.name.startswith("_batch-r41-"):
            cutting.process.kill()
        return result(cutting)

    monkeypatch.setattr(split_pdf.Cutting, "result", killed_for_the_second_run)
    with pytest.raises(BuildFailed, match=r"cutting _batch-r41-.* stopped by SIGKILL") as failed:
        build(source, out, jobs=2)
    assert (failed.value.built, failed.value.left) == (40, 40)
    states = {letter.recipient: letter.state for letter in status(source, out)}
    assert {rid: state for rid, state in states.items() if rid <= "r40"} == {f"r{n:02d}": "ready" for n in range(1, 41)}
    assert "changed" not in states.values() and "ready" not in [states[f"r{n}"] for n in range(41, 81)]
    monkeypatch.setattr(split_pdf.Cutting, "result", result)
    again = build(source, out, jobs=2)
    assert again.ok and sum(o.status == "built" for o in again.outcomes) == 40


@pytest.mark.parametrize("signal_name, said", [
    ("SIGKILL", "stopped by SIGKILL (as the system does when memory runs out)"),
    ("SIGSEGV", "stopped by SIGSEGV; its letters"),  # a crash: nothing to do with memory running out
])
def test_a_killed_cutting_process_is_named_by_its_signal(tmp_path, signal_name, said):
    """Only SIGKILL is what the system sends when memory runs out: a cutting process that
    crashed (SIGSEGV) read "stopped by SIGSEGV (as the system does when memory runs out)"."""
    import signal

    from builder.split import Cutting

    cutting = Cutting(tmp_path / "_batch-one.pdf", [])
    cutting.process.wait()  # started for real (and failed: no such PDF); its end is faked below
    cutting.process.returncode = -getattr(signal, signal_name)
    cutting.process.communicate = lambda: (b"", b"")
    with pytest.raises(RuntimeError) as failed:
        cutting.result()
    assert said in str(failed.value) and (signal_name == "SIGKILL") == ("memory" in str(failed.value))


def test_a_second_build_at_the_same_time_is_refused(tmp_path):
    from builder.build import Layout, lock

    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    with lock(Layout(out)):
        with pytest.raises(RuntimeError, match="another build, merge, sign, send or publish is running"):
            build(source, out)
        with pytest.raises(RuntimeError, match="another build, merge, sign, send or publish is running"):
            merge(source, out)
    assert build(source, out).ok


def test_status_says_why_each_letter_is_not_up_to_date(tmp_path, inject_latex):
    from builder.build import status

    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley") + """\
  - id: fourth
    name: Fourth
    address: [4 Road]
    salutation: Dear Fourth,
""")
    out = tmp_path / "build"
    inject_latex({"third": UNDEFINED})
    build(source, out, only=["first", "broken", "third"])
    inject_latex({})
    write_yaml(source, source.read_text().replace("Dear Smiley,", "Dear Smiles,"))
    states = {s.recipient: (s.state, s.reason) for s in status(source, out)}
    assert states["first"] == ("ready", "")
    assert states["broken"] == ("stale", "older than its inputs; changed: its text (recipients.yaml)")
    assert states["third"][0] == "failed" and "Undefined control sequence" in states["third"][1]
    assert states["fourth"] == ("never built", "")
    # --only built three of four: merge still refuses, naming each letter and why
    with pytest.raises(MergeRefused) as refused:
        merge(source, out)
    assert re.search(r"^  fourth: never built", str(refused.value), re.M), str(refused.value)
    assert re.search(r"^  broken: stale: older than its inputs", str(refused.value), re.M), str(refused.value)
    assert re.search(r"^  third: failed: its last build failed", str(refused.value), re.M), str(refused.value)
    assert "first" not in str(refused.value) and not (out / "bundle.pdf").exists()


def test_a_batch_is_compiled_in_one_run_split_per_letter_and_bisected_on_failure(tmp_path, inject_latex):
    people = "".join(f"""  - id: p{n}
    name: Person {n}
    address: [{n} Road]
    salutation: Dear Person {n},
""" for n in range(1, 8))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + people)
    inject_latex({"p5": UNDEFINED})
    out = tmp_path / "build"
    report = build(source, out, jobs=1)  # one worker: all seven in one pdflatex run first
    status = {o.recipient: o.status for o in report.outcomes}
    assert status == {f"p{n}": ("failed" if n == 5 else "built") for n in range(1, 8)}
    assert report.failed[0].message.startswith("p5.tex:")  # reported from its own .tex
    for n in (1, 2, 3, 4, 6, 7):  # each PDF holds its own letter and nobody else's
        text = pdf_text(out / "letters" / f"p{n}.pdf")
        assert f"Dear Person {n}," in text and text.count("Dear Person") == 1
    # the batch run happened, and was bisected: p1's letter comes from the first half's run
    manifest = json.loads((out / "manifest.json").read_text())
    first_half = batch_name(["p1", "p2", "p3"])
    assert manifest["letters"]["p1"]["log"] == f"work/{first_half}/{first_half}.log"
    assert manifest["letters"]["p5"]["log"] == "work/p5/p5.log" and (out / "work/p5/p5.log").is_file()
    # the run of all seven, which no letter comes from, is not kept
    all_seven = batch_name([f"p{n}" for n in range(1, 8)])
    assert not (out / "work" / all_seven).exists() and not (out / "tex" / f"{all_seven}.tex").exists()


def test_editing_letters_again_and_again_does_not_grow_the_build_folder(tmp_path, inject_latex):
    """Each pdflatex run of many letters compiled in a folder named by its first
    letter and count, and kept the run's whole PDF there: every edit that put
    another letter first left another folder (about 2 MB per 250 letters) that
    nothing read again. A build keeps one run's log per letter and no compiled
    PDF; a failed letter's log and its last good PDF stay, and nothing outside
    the build folder is touched."""
    people = "".join(f"""\
  - id: p{n}
    name: Person {n}
    address: [{n} Road]
    salutation: Dear Person {n},
""" for n in range(1, 5))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + people)
    out = tmp_path / "build"
    assert build(source, out, jobs=1).ok
    good_p4 = (out / "letters" / "p4.pdf").read_bytes()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.pdf").write_bytes(b"not the build's")
    (out / "work" / "_batch-elsewhere-1").symlink_to(outside)  # a link out: never followed
    (out / "work" / "_batch-old-9").mkdir()  # left by an earlier build
    (out / "work" / "_batch-old-9" / "_batch-old-9.pdf").write_bytes(b"%PDF-1.5")
    (out / "tex" / "_batch-old-9.tex").write_text("% old")
    inject_latex({"p4": UNDEFINED})
    for edit in range(1, 4):  # each build compiles another letter first
        text = source.read_text().replace(f"Dear Person {edit},", f"Dear Person {edit} again,")
        source.write_text(text)
        report = build(source, out, jobs=2)  # the failed p4 is tried again, in a run of its own
        assert [o.recipient for o in report.outcomes if o.status == "built"] == [f"p{edit}"]
    manifest = json.loads((out / "manifest.json").read_text())
    logs = {rid: entry["log"] for rid, entry in manifest["letters"].items()}
    assert all((out / log).is_file() for log in logs.values()), logs  # every log the record names
    assert logs["p4"] == "work/p4/p4.log" and "failed" in manifest["letters"]["p4"]
    assert (out / "letters" / "p4.pdf").read_bytes() == good_p4  # its last good PDF stays
    runs = {Path(log).parent.name for log in logs.values() if "/_batch-" in log}
    assert runs == {batch_name(["p1"]), batch_name(["p2"]), batch_name(["p3"])}
    assert {p.name for p in (out / "work").glob("_batch-*") if not p.is_symlink()} == runs
    assert {p.stem for p in (out / "tex").glob("_batch-*.tex")} == runs
    assert not [p for p in (out / "work").rglob("*.pdf") if "elsewhere" not in str(p)]  # no compiled PDF kept
    assert (outside / "keep.pdf").read_bytes() == b"not the build's"
    for n in (1, 2, 3):
        assert f"Dear Person {n} again," in pdf_text(out / "letters" / f"p{n}.pdf")


def test_merge_refuses_a_letter_changed_after_its_build_and_an_invalid_recipient_s_kept_letter(tmp_path):
    """A recipient saved invalid keeps the letter built before (bad input loses nothing: it
    was deleted, the letter an office may have posted), not ready for any task, said so by
    status; its entry back as it was makes it ready again without a build."""
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out, jobs=3).ok  # three groups of one: each letter compiled alone
    pdf = out / "letters" / "third.pdf"
    pdf.write_bytes(pdf.read_bytes().replace(b"%%EOF", b"%%EOF\n% edited"))
    with pytest.raises(MergeRefused, match="third: changed: letters/third.pdf changed since it was built"):
        merge(source, out)
    first = (out / "letters" / "first.pdf").read_bytes()
    good = source.read_text()
    write_yaml(source, good.replace("    salutation: Dear First,\n", ""))
    report = build(source, out)
    assert {o.recipient: o.status for o in report.outcomes}["first"] == "invalid" and report.removed == []
    assert (out / "letters" / "first.pdf").read_bytes() == first and not (out / "tex" / "first.tex").exists()
    with pytest.raises(MergeRefused, match=r"first: invalid: in recipients.yaml:\d+:\d+: field 'salutation': "
                                           r".*\(letters/first.pdf is the letter of its entry as it was, kept: "
                                           r"not ready\)"):
        merge(source, out)
    again = build(source, out)  # (the quick path keeps it too)
    assert {o.recipient: o.status for o in again.outcomes} == {"first": "invalid", "broken": "up to date",
                                                             "third": "up to date"}
    assert (out / "letters" / "first.pdf").read_bytes() == first
    write_yaml(source, good)
    assert {o.recipient: o.status for o in build(source, out).outcomes}["first"] == "up to date"
    write_yaml(source, good.replace("    salutation: Dear First,\n", ""))
    # a letter an older version built for a recipient called glyphtounicode (now refused: TeX
    # reads a file of that name) leaves no tex/glyphtounicode.tex for TeX to read in its place
    (out / "tex" / "glyphtounicode.tex").write_text("\\documentclass{article}\n")
    write_yaml(source, source.read_text() + "  - {id: glyphtounicode, name: G, address: [4 Road], "
                                            "salutation: 'Dear G,'}\n")
    report = build(source, out, force=True)
    assert {o.recipient: o.status for o in report.outcomes} == {
        "first": "invalid", "glyphtounicode": "invalid", "broken": "built", "third": "built"}
    assert not (out / "tex" / "glyphtounicode.tex").exists()


def test_an_invalid_entry_with_another_recipient_s_id_is_told_so_and_not_given_its_letter(tmp_path):
    """A second entry of id third, refused for a missing salutation, was told of that alone,
    and merge said letters/third.pdf (the valid third's current letter) was "the letter of its
    entry as it was, kept": the id given twice is said, and the letter is not called its own."""
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out).ok
    write_yaml(source, source.read_text() + "  - {id: third, name: Other Third, address: [4 Road]}\n")
    report = build(source, out)
    invalid = [o for o in report.outcomes if o.status == "invalid"]
    assert [o.recipient for o in invalid] == ["third"] and "duplicate id 'third'" in invalid[0].message
    with pytest.raises(MergeRefused) as refused:
        merge(source, out)
    assert "third: invalid" in str(refused.value) and "kept" not in str(refused.value)


def test_build_only_leaves_the_letter_of_another_recipient_saved_invalid(tmp_path):
    """`build --only third` while first was saved invalid (half edited) deleted first's
    letter: `--only` removes nothing but what it was asked to build. The letter is still
    not ready (invalid, for every task); a build of the whole batch keeps it too, and
    deletes its .tex."""
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out).ok
    write_yaml(source, source.read_text().replace("    salutation: Dear First,\n", ""))
    report = build(source, out, only=["third"])
    assert {o.recipient: o.status for o in report.outcomes} == {"first": "invalid", "third": "up to date"}
    assert (out / "letters" / "first.pdf").exists() and (out / "tex" / "first.tex").exists()
    with pytest.raises(MergeRefused, match="first: invalid"):
        merge(source, out)
    build(source, out)
    assert (out / "letters" / "first.pdf").exists() and not (out / "tex" / "first.tex").exists()


def test_a_problem_in_the_shared_part_stops_build_and_merge_with_exit_2(tmp_path):
    # exit 2: the command could not run at all; exit 1 is kept for letters that need attention
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    out = tmp_path / "build"
    assert build(source, out).ok
    merge(source, out)
    good = {p.name: p.read_bytes() for p in (out / "letters").iterdir()} | {"bundle": (out / "bundle.pdf").read_bytes()}
    write_yaml(source, source.read_text().replace("    role: Clerk\n", "", 1))
    for task in ("build", "merge", "check", "status"):
        done = subprocess.run([sys.executable, "-m", "invoke", task, "-r", str(source), "-b", str(out)], cwd=ROOT,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (task, done.stdout, done.stderr)
        assert f"{source}:4:" in done.stderr and "field 'letter.sender.role': required field is missing" \
            in done.stderr, (task, done.stderr)
    assert {p.name: p.read_bytes() for p in (out / "letters").iterdir()} | \
        {"bundle": (out / "bundle.pdf").read_bytes()} == good  # nothing lost


def test_without_tex_the_build_says_so_and_fails(tmp_path):
    # the tests themselves fail rather than skip without TeX: this is what they would see
    import os

    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    done = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(tmp_path / "b")],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PATH": str(tmp_path / "no-tex-here")})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("pdflatex was not found: run scripts/install") and "latexmk" not in done.stderr
    assert not list((tmp_path / "b").rglob("*.pdf"))


def test_an_unknown_letterset_key_is_a_tex_error_not_ignored(tmp_path, inject_latex):
    # the class refuses a key it does not know: a misspelt setting never passes silently
    source = write_yaml(tmp_path / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    inject_latex({"third": r"\letterset{adress}{1 Road}"})
    report = build(source, tmp_path / "build")
    assert {o.recipient: o.status for o in report.outcomes} == {"first": "built", "broken": "built", "third": "failed"}
    (failed,) = report.failed
    assert failed.message.startswith("third.tex:") and "Unknown key `adress' in \\letterset" in failed.message, \
        failed.message


def test_a_recipient_removed_or_renamed_leaves_no_letter_to_post_or_publish(tmp_path):
    """A folder of letters to post, or of web copies to publish, holds this
    batch's letters only: a recipient taken out of the batch (or renamed)
    loses its letter, web copy and page and leaves the record; a signed copy,
    which a build cannot make again, is kept and named. A build of --only
    some letters removes nothing."""
    import hashlib
    import json

    three = BATCH.replace("Smiley 😀", "Smiley")
    source = write_yaml(tmp_path / "recipients.yaml", three)
    out = tmp_path / "build"
    assert build(source, out).ok and build(source, out, medium="web").ok
    signed = out / "signed" / "broken.pdf"
    signed.parent.mkdir()
    signed.write_bytes((out / "letters" / "broken.pdf").read_bytes())  # as `sign` leaves one
    record = json.loads((out / "manifest.json").read_text(encoding="utf-8"))  # and its record, as sign keeps it
    record["letters"]["broken"]["signed"] = {"letter": record["letters"]["broken"]["sha256"],
                                             "sha256": hashlib.sha256(signed.read_bytes()).hexdigest()}
    (out / "manifest.json").write_text(json.dumps(record), encoding="utf-8")
    web = sorted(p.name for p in (out / "web").iterdir() if p.suffix in (".pdf", ".html"))
    assert web == ["2021-03-04-broken.html", "2021-03-04-broken.pdf", "2021-03-04-first.html",
                   "2021-03-04-first.pdf", "2021-03-04-third.html", "2021-03-04-third.pdf"]
    fewer = three.replace('  - id: broken\n    name: "Smiley"\n    address: [2 Road]\n    salutation: Dear Smiley,\n', "")
    assert fewer != three
    write_yaml(source, fewer.replace("id: third", "id: third-person"))
    assert build(source, out, only=["first"]).ok and (out / "letters" / "broken.pdf").exists()
    # every letter of the batch built by --only: the next build had nothing to compile, and
    # so deleted nothing, then or ever after
    assert build(source, out, only=["third-person"]).ok and (out / "letters" / "broken.pdf").exists()
    for medium, copy in (("print", "letter"), ("web", "web copy")):  # status names them until then
        seen = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(source), "-b", str(out),
                               "--for", medium], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        build_it = f"`invoke build{' --for web' if medium == 'web' else ''} -r {source} -b {out}`"
        for rid in ("broken", "third"):
            assert re.search(rf"^  {rid} +\(gone\) +no longer in the batch; its {copy} is still in the build "
                             rf"folder: {re.escape(build_it)} deletes it$", seen.stdout, re.M), seen.stdout
    for medium in ("print", "web"):
        done = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(out),
                               "--for", medium], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        deleted = "their letters were" if medium == "print" else "their web copies and pages were"
        assert "no longer in the batch (removed or renamed): broken, third; " \
               f"{deleted} deleted from {out}" in done.stdout, done.stdout
        assert ("kept, as only `invoke sign` makes them: " in done.stdout) == (medium == "print"), done.stdout
    assert sorted(p.name for p in (out / "letters").iterdir()) == ["first.pdf", "third-person.pdf"]
    assert sorted(p.name for p in (out / "tex").glob("*.tex") if not p.name.startswith("_")) == \
        ["first.tex", "third-person.tex"]
    assert sorted(p.name for p in (out / "web").iterdir() if p.suffix in (".pdf", ".html")) == [
        "2021-03-04-first.html", "2021-03-04-first.pdf", "2021-03-04-third-person.html", "2021-03-04-third-person.pdf"]
    # each web copy is compiled alone, in web/work/<id>/: those of the recipients gone went with them
    assert sorted(p.name for p in (out / "web" / "work").iterdir() if p.is_dir() and not p.name.startswith("_")) \
        == ["first", "third-person"]
    assert signed.exists()
    letters = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["letters"]
    assert sorted(letters) == ["broken", "first", "third-person"] and list(letters["broken"]) == ["signed"]
    assert sorted(json.loads((out / "web" / "manifest.json").read_text(encoding="utf-8"))["letters"]) == \
        ["first", "third-person"]
    again = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(out)], cwd=ROOT,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and "no longer" not in again.stdout, again.stdout  # said once
    # its letter is gone; the record keeps what its signed copy was made from: status says so,
    # not that a build would delete a letter it deleted already
    seen = subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(source), "-b", str(out)],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert re.search(r"^  broken +\(gone\) +no longer in the batch; its letter is deleted; its signed copy "
                     rf"{re.escape(str(signed))} is kept", seen.stdout, re.M), seen.stdout
    assert "deletes it" not in seen.stdout and "third " not in seen.stdout, seen.stdout


def test_web_copies_of_letters_marked_more_than_official_are_named_before_publishing(tmp_path):
    # web copies are copies to publish: a letter marked OFFICIAL-SENSITIVE (or with a
    # marking the scheme does not name) is named; OFFICIAL, and no marking, are not
    marked = MINIMAL_LETTER.replace("letter:\n", "letter:\n  marking: OFFICIAL\n", 1) + """\
recipients:
  - id: plain
    name: Plain Person
    address: [1 Road]
    salutation: Dear Plain,
  - id: sensitive
    name: Sensitive Person
    address: [2 Road]
    salutation: Dear Sensitive,
    marking: OFFICIAL-SENSITIVE PERSONAL
"""
    source = write_yaml(tmp_path / "recipients.yaml", marked)
    web = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(tmp_path / "b"),
                          "--for", "web"], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert web.returncode == 0, web.stderr
    assert "marked more than OFFICIAL, so check it may be published (`invoke publish` leaves it out until " \
           "a person clears it with --cleared): sensitive (OFFICIAL-SENSITIVE PERSONAL)\n" in web.stdout, web.stdout
    # publish leaves it out until a person clears it, by its id
    site = tmp_path / "site"
    publish = lambda *args: subprocess.run([sys.executable, "-m", "invoke", "publish", "-r", str(source), "-b",
                                            str(tmp_path / "b"), "--to", str(site), *args], cwd=ROOT,
                                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    held = publish()
    assert held.returncode == 1 and held.stderr.startswith(
        "not published, marked more than OFFICIAL: sensitive (OFFICIAL-SENSITIVE PERSONAL)\nOnce a person has "
        f"cleared it for publication: `invoke publish --to {site} --cleared sensitive -r {source} -b "
        f"{tmp_path / 'b'}`"), held.stderr
    assert not list(site.glob("*sensitive*"))
    assert sorted(p.name for p in site.iterdir()) == ["2021-03-04-plain.html", "2021-03-04-plain.pdf"]
    status = lambda: subprocess.run([sys.executable, "-m", "invoke", "status", "-r", str(source), "-b",
                                     str(tmp_path / "b"), "--for", "web"], cwd=ROOT, capture_output=True, text=True)
    held_back = (r"^  sensitive +ready\n +marked OFFICIAL-SENSITIVE PERSONAL: publish leaves it out until a person "
                 r"clears it for publication \(publish --cleared\)$")
    assert re.search(held_back, status().stdout, re.M), status().stdout
    assert publish("--cleared", "sensitve").returncode == 2  # a typo clears nobody
    # an id that needs no clearance is said, not taken silently
    needless = publish("--cleared", "plain")
    assert needless.returncode == 1 and "note: --cleared plain: not recorded, it is not marked more than " \
        "OFFICIAL: it needs no clearance\n" in needless.stderr, needless.stderr
    (tmp_path / "afile").write_text("not a folder")
    for to in (tmp_path / "afile", tmp_path / "afile" / "site"):  # it said "could not go on: Not a directory"
        into_a_file = subprocess.run([sys.executable, "-m", "invoke", "publish", "-r", str(source), "-b",
                                      str(tmp_path / "b"), "--to", str(to)], cwd=ROOT, capture_output=True, text=True)
        assert into_a_file.returncode == 2 and into_a_file.stderr.strip() == (
            f"--to {to}: {tmp_path / 'afile'} is a file, not a folder: give the website's folder to publish into; "
            "nothing was published"), into_a_file.stderr
    # a link to a folder that is not there (moved, not mounted): it said "could not go on: File exists"
    (tmp_path / "gone-site").symlink_to(tmp_path / "unmounted")
    for to in (tmp_path / "gone-site", tmp_path / "gone-site" / "2021"):
        dangling = subprocess.run([sys.executable, "-m", "invoke", "publish", "-r", str(source), "-b",
                                   str(tmp_path / "b"), "--to", str(to)], cwd=ROOT, capture_output=True, text=True)
        assert dangling.returncode == 2 and dangling.stderr.strip() == (
            f"--to {to}: {tmp_path / 'gone-site'} is a link to {tmp_path / 'unmounted'}, which is not there: "
            "give the website's folder to publish into (mounted, if it is another disk); nothing was published"), \
            dangling.stderr
    assert not (tmp_path / "unmounted").exists()
    cleared = publish("--cleared", "sensitive")
    assert cleared.returncode == 0, cleared.stderr
    assert sorted(p.name for p in site.glob("*sensitive*")) == ["2021-03-04-sensitive.html", "2021-03-04-sensitive.pdf"]
    assert "  cleared    sensitive (OFFICIAL-SENSITIVE PERSONAL): on the record for this copy" in cleared.stdout
    # the clearance is on the record: a later publish keeps the letter published (it said "not
    # published, marked" of a letter already on the website), and status names it
    again = publish()
    assert again.returncode == 0 and "  current    sensitive (its copies in" in again.stdout, again.stdout + again.stderr
    assert re.search(r"^  sensitive +ready\n +cleared for publication, marked OFFICIAL-SENSITIVE PERSONAL "
                     r"\(publish --cleared\)$", status().stdout, re.M), status().stdout
    # status reads a clearance as publish does: one edited by hand for another marking holds
    # for nothing (status said "cleared for publication, marked OFFICIAL-SENSITIVE" of it, and
    # publish held the letter back), and one without its "by" was "(None)"
    record_file = tmp_path / "b" / "web" / "manifest.json"
    kept = record_file.read_text()
    for clearance, said in (({"marking": "OFFICIAL-SENSITIVE", "by": "publish --cleared"}, held_back),
                            ({"marking": "OFFICIAL-SENSITIVE PERSONAL"},
                             r"^ +cleared for publication, marked OFFICIAL-SENSITIVE PERSONAL$")):
        record = json.loads(kept)
        record["letters"]["sensitive"]["cleared"] = clearance
        record_file.write_text(json.dumps(record))
        assert re.search(said, status().stdout, re.M), status().stdout
    record_file.write_text(kept)
    # and a build of another letter does not name it as one publish leaves out (it said "marked
    # more than OFFICIAL ... leaves them out until a person clears them: sensitive" of it)
    source.write_text(source.read_text().replace("Dear Plain,", "Dear Mr Plain,"))
    other = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(tmp_path / "b"),
                            "--for", "web"], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert other.returncode == 0 and "1 built, 1 up to date" in other.stdout, other.stdout + other.stderr
    assert "marked more than OFFICIAL" not in other.stdout, other.stdout
    assert publish().returncode == 0
    # built again into the same bytes (build -f; a new version of the builder), it is the copy
    # that was cleared: the clearance stays (it was dropped, and the letter held back)
    forced = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(tmp_path / "b"),
                             "--for", "web", "-f", "-o", "sensitive"], cwd=ROOT, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert forced.returncode == 0 and "1 built" in forced.stdout, forced.stdout + forced.stderr
    assert "cleared for publication, marked OFFICIAL-SENSITIVE PERSONAL" in status().stdout, status().stdout
    assert publish().returncode == 0
    # given for that letter: rebuilt with other words, it is cleared again
    source.write_text(source.read_text().replace("Dear Sensitive,", "Dear Ms Sensitive,"))
    assert subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(tmp_path / "b"),
                           "--for", "web"], cwd=ROOT, capture_output=True, stdin=subprocess.DEVNULL).returncode == 0
    assert "cleared for publication" not in status().stdout
    held = publish()
    assert held.returncode == 1 and held.stderr.startswith("not published, marked more than OFFICIAL: sensitive ")
    assert "Ms Sensitive" not in subprocess.run(["pdftotext", str(site / "2021-03-04-sensitive.pdf"), "-"],
                                                capture_output=True, text=True).stdout
    # a clearance given for a copy that is not ready (the batch changed since it was built) is not
    # recorded, and says so: the copy a build makes next is not the one the person saw
    source.write_text(source.read_text().replace("Dear Ms Sensitive,", "Dear Dr Sensitive,"))
    stale = publish("--cleared", "sensitive")
    assert stale.returncode == 1 and "sensitive: stale" in stale.stderr, stale.stderr
    assert "note: --cleared sensitive: not recorded, its web copy is not ready (below): clear it once it is " \
        "built\n" in stale.stderr, stale.stderr
    assert "cleared" not in json.loads(record_file.read_text())["letters"]["sensitive"]
    printed = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(tmp_path / "b")],
                             cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert printed.returncode == 0 and "marked" not in printed.stdout, printed.stdout  # letters to post: no word


def test_a_publish_from_a_folder_never_built_for_the_web_leaves_no_folder_there(tmp_path):
    # -b naming a build folder's web/ (or a folder that is not there): publish made it, and
    # its web/.lock was "(not ours)" in that build's status, which clean would not remove
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + """\
recipients:
  - id: plain
    name: Plain Person
    address: [1 Road]
    salutation: Dear Plain,
""")
    run = lambda task, *args: subprocess.run([sys.executable, "-m", "invoke", task, "-r", str(source), *args],
                                             cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run("build", "-b", str(tmp_path / "b"), "--for", "web").returncode == 0
    held = run("publish", "-b", str(tmp_path / "nope"), "--to", str(tmp_path / "site"))
    assert held.returncode == 1 and "plain: never built" in held.stderr, held.stderr
    assert not (tmp_path / "nope").exists()
    # a folder inside a build folder is no build folder, for any task: a build there made
    # b/web/web/, "(not ours)" in b's status, which clean would not remove
    inside = tmp_path / "b" / "web"
    for task, *args in (("publish", "--to", str(tmp_path / "site")), ("build", "--for", "web"), ("build",),
                        ("status", "--for", "web")):
        refused = run(task, "-b", str(inside), *args)
        assert refused.returncode == 2 and refused.stderr == (
            f"{inside} is part of the build folder {tmp_path / 'b'}, not a build folder of its own: give -b that "
            "folder, or one outside it\n"), (task, refused.stderr)
    assert not (inside / "web").exists() and not (inside / "letters").exists()
    assert not (tmp_path / "site").exists()
    status = run("status", "-b", str(tmp_path / "b"), "--for", "web")
    assert status.returncode == 0 and "not ours" not in status.stdout, status.stdout


def test_a_publish_killed_while_it_wrote_leaves_no_temporary_file_in_the_website_s_folder(tmp_path):
    """kill -9 while publish writes a copy leaves its temporary file in the website's folder, a
    part of a PDF: the next publish deletes it (it stayed for good), and leaves alone a file
    kept there by hand under such a name, and one another publish is writing (locked)."""
    import fcntl
    import os

    from builder.publish import publish

    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + """\
recipients:
  - id: plain
    name: Plain Person
    address: [1 Road]
    salutation: Dear Plain,
""")
    out, site = tmp_path / "build", tmp_path / "site"
    assert build(source, out, medium="web").ok
    [pdf] = (out / "web").glob("*.pdf")
    site.mkdir()
    left = site / f".{pdf.name}.k1ll3d9x"  # as ``files.replacing`` names it: private, unlocked
    left.write_bytes(pdf.read_bytes()[:1000])
    left.chmod(0o600)
    kept = site / f".{pdf.name}.backup01"  # kept by hand: not private
    kept.write_bytes(b"mine")
    busy = site / f".{pdf.name.replace('.pdf', '.html')}.wr1t1ng0"  # being written: locked
    busy.write_bytes(b"<p>")
    busy.chmod(0o600)
    with open(busy, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        report = publish(source, out, site)
        assert sorted(p.name for p in report.published) == sorted([pdf.name, pdf.with_suffix(".html").name])
        assert not left.exists() and kept.exists() and busy.exists()
    assert (site / pdf.name).read_bytes() == pdf.read_bytes()
    assert sorted(os.listdir(site)) == sorted([pdf.name, pdf.with_suffix(".html").name, kept.name, busy.name])


def test_every_letter_s_log_is_of_the_run_that_made_it(tmp_path):
    """A run was named by its first letter and count: london and essex rebuilt, then london
    and south-wales, compiled in the same folder, and essex's record named the log of a
    run that did not hold essex."""
    people = "".join(f"  - id: p{n}\n    name: Person {n}\n    address: [{n} Road]\n    salutation: Dear Person {n},\n"
                     for n in range(1, 5))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + people)
    out = tmp_path / "build"
    assert build(source, out, jobs=1).ok
    for edited in (("p2", "p3"), ("p2", "p4")):  # two letters each time, p2 first: one run, jobs=1
        for rid in edited:
            source.write_text(re.sub(rf"name: Person {rid[1:]}.*\n", f"name: Person {rid[1:]} {edited}\n",
                                     source.read_text()))
        assert [o.recipient for o in build(source, out, jobs=1).outcomes if o.status == "built"] == list(edited)
    manifest = json.loads((out / "manifest.json").read_text())
    for rid, entry in manifest["letters"].items():
        run = Path(entry["log"]).parent.name
        assert (out / entry["log"]).is_file(), entry["log"]
        assert "\\begin{letter}{%s}" % rid in (out / "tex" / f"{run}.tex").read_text(), (rid, run)


def test_a_file_the_record_names_by_hand_is_never_deleted_for_a_letter(tmp_path):
    """Only a web copy named by an earlier date is deleted by the name the record gives: a
    manifest edited by hand to name the signed bundle (or the cover, or any PDF beside the
    letters) as a letter's file made the next build delete it, for a letter rebuilt or removed."""
    people = "".join(f"  - id: p{n}\n    name: Person {n}\n    address: [{n} Road]\n    salutation: Dear Person {n},\n"
                     for n in range(1, 4))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + people)
    out = tmp_path / "build"
    assert build(source, out).ok
    kept = {"bundle-signed.pdf": b"%PDF signed", "cover.pdf": b"%PDF cover", "2020-01-01-p2.pdf": b"%PDF mine"}
    for name, data in kept.items():
        (out / name).write_bytes(data)
    record = json.loads((out / "manifest.json").read_text())
    record["letters"]["p1"]["file"] = "bundle-signed.pdf"  # p1 is removed below
    record["letters"]["p2"]["file"] = "cover.pdf"  # p2 is rebuilt below
    record["letters"]["p3"]["file"] = "2020-01-01-p2.pdf"
    (out / "manifest.json").write_text(json.dumps(record))
    text = source.read_text().replace("name: Person 2\n", "name: Person 2 again\n")
    write_yaml(source, text.replace("  - id: p1\n    name: Person 1\n    address: [1 Road]\n    salutation: Dear Person 1,\n", ""))
    report = build(source, out, force=True)
    assert report.ok and report.removed == ["p1"]
    assert {name: (out / name).read_bytes() for name in kept if (out / name).exists()} == kept



def test_a_folder_whose_path_tex_cannot_search_is_refused_in_words(tmp_path):
    """kpathsea reads ',' ';' ':' '{' '}' and '$NAME' in TEXINPUTS as its own
    syntax: a project in "Letters, 2021" failed every letter with "I can't find
    file `first.tex'". The build now stops first, naming the folder and the fix."""
    project = tmp_path / "Letters, 2021"
    project.mkdir()
    source = write_yaml(project / "recipients.yaml", BATCH.replace("Smiley 😀", "Smiley"))
    done = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(project / "build")],
                          cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(
        f"TeX cannot find files in {str(project / 'build')!r}: pdflatex reads ',' in a folder's "
        "path as a separator; rename the folder (or the batch file it is named after), or build elsewhere with -b"), \
        done.stderr
    assert not list(project.rglob("*.pdf"))
    assert build(source, tmp_path / "elsewhere").ok  # the same batch, built in a folder TeX can search
