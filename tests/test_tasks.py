"""The tasks as a person runs them: one batch per command, its own build folder, any
working folder, one meaning per flag, readable output, `new`, `watch`, `--open`, a start-up
that loads only what it uses, and the package installed on its own (`letterbatch`)."""
from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from builder import cores
from builder.build import Layout
from conftest import MINIMAL_LETTER, ROOT, SAMPLE, pdf_text, write_yaml

TWO = MINIMAL_LETTER + """\
recipients:
  - id: alpha
    name: Alpha Person
    address: [1 Road]
    salutation: Dear Alpha,
  - id: beta
    name: Beta Person
    address: [2 Road]
    salutation: Dear Beta,
"""


def invoke(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`invoke ARGS` in ``cwd``, with this checkout's builder importable from anywhere."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def letter(build_dir: Path, recipient_id: str) -> Path:
    return Layout.of(build_dir).pdf(recipient_id)


@pytest.fixture
def project(tmp_path) -> Path:
    """A project of its own: the checkout's tasks.py and invoke.yaml, a recipients.yaml,
    a second batch other.yaml whose ids overlap it, and a subfolder to run from."""
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    for name in ("tasks.py", "invoke.yaml"):
        shutil.copy(ROOT / name, folder / name)
    write_yaml(folder / "recipients.yaml", TWO)
    write_yaml(folder / "other.yaml", TWO.replace("Dear Alpha,", "Dear Other Alpha,").replace(
        "  - id: beta", "  - id: gamma"))
    return folder


def test_a_chain_of_tasks_works_on_the_batch_the_user_named(project):
    # the issue's own example: the flags follow `merge`, and `build` uses them too
    done = invoke("build", "merge", "--recipients", "other.yaml", "-b", "out", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    out = project / "out"
    assert "Dear Other Alpha," in pdf_text(letter(out, "alpha"))
    assert letter(out, "gamma").exists() and (out / "bundle.pdf").exists()
    assert not (project / "build").exists()  # the default batch was not built
    assert "Dear Other Alpha," in pdf_text(out / "bundle.pdf")

    # two batches in one command: refused before anything runs, in one line
    refused = invoke("build", "-r", "recipients.yaml", "merge", "-r", "other.yaml", cwd=project)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "one batch per command" in refused.stderr
    # one batch spelled two ways is one batch (it was refused as "different values")
    same = invoke("status", "-r", "other.yaml", "-b", "out", "check", "-r", "./other.yaml", "-b", "out/",
                  cwd=project)
    assert same.returncode == 0 and "one batch per command" not in same.stderr, same.stdout + same.stderr
    assert "2 letters checked: 2 ok" in same.stdout + same.stderr, same.stdout + same.stderr


def test_a_cover_sheet_that_does_not_compile_stops_merge_as_the_shared_part_does(project):
    """A house letterhead that breaks only the cover sheet: every letter is built,
    and merge stops with one line naming the cover's error and exit 2 (a fault of
    the shared part, as build gives it), not 1 (letters that need attention)."""
    (project / "house.cls").write_text("\\NeedsTeXFormat{LaTeX2e}\n\\ProvidesClass{house}\n"
                                       "\\LoadClassWithOptions{letterbatch}\n"
                                       "\\renewcommand\\coversheet[1]{\\lbnosuchcommand}\n")
    write_yaml(project / "recipients.yaml", TWO.replace("  body:", "  letterhead: house.cls\n  body:", 1))
    built = invoke("build", cwd=project)
    assert built.returncode == 0, built.stdout + built.stderr
    merged = invoke("merge", cwd=project)
    assert merged.returncode == 2, merged.stdout + merged.stderr
    said = merged.stderr.strip()
    assert said.count("\n") == 0 and "the cover sheet did not compile" in said and "Traceback" not in said, said
    assert "lbnosuchcommand" in said or "Undefined control sequence" in said, said
    assert not (project / "build" / "recipients" / "bundle.pdf").exists()


def test_a_bundle_merged_to_a_path_given_from_the_working_folder_is_found_again(project):
    """`--output` is read from where the command runs: the record keeps where
    the file really is, so status, check and sign find that bundle, not another."""
    (project / "elsewhere").mkdir()
    done = invoke("build", "merge", "-b", "out", "--output", "out/other.pdf", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    done = invoke("merge", "-b", "out", "--output", "elsewhere/x.pdf", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    for folder in (project, project / "sub"):  # any working folder
        seen = invoke("status", "-b", str(project / "out"), "-r", str(project / "recipients.yaml"), cwd=folder)
        assert re.search(rf"^  {re.escape(str(project / 'elsewhere' / 'x.pdf'))} +ready$", seen.stdout, re.M), \
            seen.stdout + seen.stderr
        assert seen.returncode == 0 and "not on the record" not in seen.stdout
        checked = invoke("check", "-b", str(project / "out"), "-r", str(project / "recipients.yaml"), cwd=folder)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_batch_builds_into_its_own_folder_whatever_the_working_folder(project):
    from test_bundle import tiny_png

    (project / "images").mkdir()
    tiny_png(project / "images" / "logo.png")  # read from the batch file's folder, not from sub/
    source = project / "recipients.yaml"
    write_yaml(source, source.read_text().replace(
        "address: [1 High Street, Town]", "address: [1 High Street, Town]\n    logo: images/logo.png", 1))
    sub = project / "sub"
    first = invoke("build", cwd=sub)  # the project's recipients.yaml, though run from sub/
    assert first.returncode == 0, first.stdout + first.stderr
    mine, theirs = project / "build" / "recipients", project / "build" / "other"
    assert "Dear Alpha," in pdf_text(letter(mine, "alpha"))
    images = subprocess.run(["pdfimages", "-list", str(letter(mine, "alpha"))], capture_output=True,
                            text=True, check=True).stdout
    assert re.search(r"^\s*1\s+\d+\s+image\s+120\s+40\b", images, re.M), images  # the logo
    # a path typed on the command line is read from where the command runs
    second = invoke("build", "-r", "../other.yaml", cwd=sub)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Dear Other Alpha," in pdf_text(letter(theirs, "alpha"))
    assert "Dear Alpha," in pdf_text(letter(mine, "alpha"))  # same id, not overwritten
    status = invoke("status", cwd=sub)
    assert re.search(r"alpha\s+ready", status.stdout), status.stdout
    assert invoke("schema", cwd=sub).returncode == 0
    assert json.loads((project / "recipients.schema.json").read_text())["title"]
    # a batch given with -r that is a folder, or not there: it wrote the schema beside it, saying "wrote"
    for typed, words in (("../sub", "is a folder, not a batch file"), ("../othr.yaml", "no such file")):
        given = invoke("schema", "-r", typed, cwd=sub)
        assert given.returncode == 2 and words in given.stderr, given.stdout + given.stderr
    assert list(sub.iterdir()) == []  # nothing stray in the working folder
    assert invoke("clean", "-r", "other.yaml", cwd=project).returncode == 0
    assert not theirs.exists() and letter(mine, "alpha").exists()


def test_one_meaning_per_short_flag_across_tasks():
    from builder.tasks import SHORT_FLAGS, ns

    meanings: dict[str, set[str]] = {}
    for name in ns.task_names:
        for argument in ns[name].get_arguments():
            for flag in argument.names[1:]:
                meanings.setdefault(flag, set()).add(argument.attr_name or argument.name)
    assert meanings, "no short flags at all"
    for flag, names in meanings.items():
        assert len(names) == 1 and SHORT_FLAGS[names.pop()] == flag, (flag, meanings[flag])
    assert {"r", "b", "f", "o"} <= set(meanings)


@pytest.mark.parametrize("args, words", [
    (("build", "--jobs", "abc"), "--jobs takes a whole number"),
    (("build", "-j", "-3"), "--jobs takes a whole number"),
    # no bound: 10,000 letters would have started 10,000 pdflatex runs at once
    (("build", "-j", "100000"), f"--jobs takes a whole number from 0 to {4 * cores()} "),
    (("watch", "-j", "100000"), "--jobs takes a whole number from 0 to"),
    (("status", "--for", "pdf"), "--for takes print or web"),
    (("watch", "--interval", "soon"), "--interval takes seconds"),
    (("bench", "--letters", "many"), "--letters takes a whole number"),
    (("build", "--only", "nobody"), "nothing was built: no valid recipient with id: nobody"),
    # a typo in --only is named with the id meant, in every task that takes it: never
    # "0 letters checked: 0 ok" (check) or nothing at all (diff), exit 0
    (("build", "-o", "alpa"), "nothing was built: no valid recipient with id: alpa (did you mean 'alpha'?)"),
    (("check", "-o", "alpha,bta"), "nothing was checked: no valid recipient with id: bta (did you mean 'beta'?)"),
    (("diff", "-o", "alpa"), "nothing to show: no valid recipient with id: alpa (did you mean 'alpha'?)"),
    # --only from a script's empty variable names no letter: never read as every letter
    (("build", "-o", ""), "--only takes the ids of letters, comma-separated"),
    (("check", "-o", " , "), "--only takes the ids of letters, comma-separated"),
    (("diff", "-o", ","), "--only takes the ids of letters, comma-separated"),
    (("new", ".."), "`invoke new` takes a name"),
    (("new", "pyproject.toml/october"), "could not go on: File exists (pyproject.toml)"),  # a file, not a folder
    (("merge", "--accept", "alpha"), "--accept 'alpha': write id:code"),
    (("merge", "--accept", "alpha:window,beta:nonsense"), "--accept 'beta:nonsense': write id:code"),
    # a flag that takes ids, given again, adds to it in every task (invoke said "No idea what 'bta' is!")
    (("build", "-o", "alpha", "-o", "bta"), "nothing was built: no valid recipient with id: bta (did you mean"),
    (("check", "--only", "alpha", "--only", "bta"), "nothing was checked: no valid recipient with id: bta"),
    (("diff", "-o", "beta", "-o", "alpa"), "nothing to show: no valid recipient with id: alpa"),
    (("merge", "--accept", "alpha:window", "--accept", "beta:nonsense"), "--accept 'beta:nonsense': write id:code"),
    (("send", "--resend", "alpha", "--mark-sent", "beta", "--mark-sent", "alpha"), "give one of them"),
    (("send", "--mark-sent", "", "--mark-sent", ","), "--mark-sent takes the ids of the letters"),
    # given no value (before -r): invoke gave it none, with no word, and every letter was built
    (("build", "-o"), "build: -o (--only) needs a value after it"),
    (("check", "--only"), "check: --only needs a value after it"),
    (("send", "--mark-sent"), "send: --mark-sent needs a value after it"),
    (("publish",), "give the website's folder to publish into: --to DIR"),
    (("publish", "--to", "site", "--cleared", "alpa"), "--cleared: no valid recipient with id: alpa (did you mean"),
    (("publish", "--to", "site", "--cleared"), "publish: --cleared needs a value after it"),
    (("publish", "--to", "site", "--cleared", " , "), "--cleared takes the ids of the letters a person cleared"),
])
def test_a_bad_flag_value_is_one_line_and_exit_2(args, words, tmp_path):
    batch = ["-r", str(write_yaml(tmp_path / "two.yaml", TWO)), "-b", str(tmp_path / "b")]
    batch = batch[:2] if args[0] == "diff" else batch  # diff builds nothing: it takes no -b
    done = invoke(*args, *(batch if args[0] not in ("bench", "new") else []), cwd=ROOT)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.skipif(not shutil.which("taskset") or not hasattr(os, "sched_getaffinity"), reason="no taskset")
def test_jobs_are_bounded_by_the_cores_the_command_may_use(tmp_path):
    """On one core of the machine (taskset, as a container's CPU set does), --jobs is
    bounded by that core, not by the machine's cores, and the message says so."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    batch = ["-r", str(write_yaml(tmp_path / "two.yaml", TWO)), "-b", str(tmp_path / "b")]
    done = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "invoke", "build", "-j", "5", *batch],
                          cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--jobs takes a whole number from 0 to 4 " in done.stderr, done.stderr
    assert "this command may use 1 core)" in done.stderr, done.stderr
    # by default one pdflatex a core it may use: the two letters compiled as one batch
    built = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "invoke", "build", *batch],
                           cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert built.returncode == 0, (built.stdout, built.stderr)
    assert [p.name.split("-")[1] for p in (tmp_path / "b" / "work").glob("_batch-*")] == ["alpha"]


def test_a_bad_flag_value_of_a_later_task_stops_the_command_before_the_first_runs(tmp_path):
    """`build watch -j 100`: watch's --jobs is bad, so nothing is built first (it built every
    letter, then watch refused); so with `build status --for pdf`."""
    batch = ["-r", str(write_yaml(tmp_path / "two.yaml", TWO)), "-b", str(tmp_path / "b")]
    for args, words in ((("build", "watch", "-j", "100"), "--jobs takes a whole number from 0 to"),
                        (("build", "status", "--for", "pdf"), "--for takes print or web")):
        done = invoke(*args, *batch, cwd=ROOT)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == "" and not (tmp_path / "b").exists(), (args, done.stdout)


def test_check_only_checks_the_letters_named(tmp_path):
    """`check -o alpha` reports alpha, not also every invalid recipient of the batch."""
    source = write_yaml(tmp_path / "three.yaml", TWO + "  - id: gamma\n    name: Gamma Person\n    address: [3 Road]\n")
    done = invoke("check", "-o", "alpha", "-r", str(source), "-b", str(tmp_path / "b"), cwd=ROOT)
    assert "1 letter checked" in done.stdout and "gamma" not in done.stdout, done.stdout
    both = invoke("check", "-o", "alpha", "-o", "gamma", "-r", str(source), "-b", str(tmp_path / "b"), cwd=ROOT)
    assert "2 letters checked" in both.stdout and "gamma: invalid" in both.stdout, both.stdout + both.stderr
    everything = invoke("check", "-r", str(source), "-b", str(tmp_path / "b"), cwd=ROOT)
    assert "gamma: invalid" in everything.stdout, everything.stdout


def test_list_and_status_load_no_pdf_library(tmp_path):
    probe = ("import sys, runpy\n"
             "sys.argv = ['invoke', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('invoke', run_name='__main__')\n"
             "except SystemExit as e:\n    assert not e.code, e.code\n"
             "print('LOADED', sorted(m for m in ('pikepdf', 'pypdf', 'pyhanko', 'pydantic', 'pylatex')"
             " if m in sys.modules))\n")
    batch = ["-r", str(SAMPLE), "-b", str(tmp_path)]

    def loaded(*args, env=None):
        done = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, **(env or {})})
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert loaded("--list") == "LOADED []"
    assert loaded("status", *batch) == "LOADED ['pydantic', 'pylatex']"  # never built: loads the batch
    # the probe sees a library when one is loaded: `build` places letters with pikepdf
    assert loaded("build", *batch) == "LOADED ['pikepdf', 'pydantic', 'pylatex']"
    # built and unchanged since: status, check and a merge with nothing to do read the
    # manifest and the files' bytes, and load neither the batch's libraries nor the PDF ones
    assert loaded("status", *batch) == "LOADED []"
    assert loaded("merge", *batch).startswith("LOADED ['pikepdf'")  # writes the bundle
    for task in ("status", "check", "merge"):
        assert loaded(task, *batch) == "LOADED []", task
    # another copy of a library that shapes letters (an upgrade, say): the batch is loaded again
    import xlfmt
    shutil.copytree(Path(xlfmt.__file__).parent, tmp_path / "shim" / "xlfmt")
    assert loaded("status", *batch, env={"PYTHONPATH": str(tmp_path / "shim")}) == "LOADED ['pydantic', 'pylatex']"
    (tmp_path / "letters" / "essex.pdf").write_bytes(b"changed")
    assert "changed" in invoke("status", *batch, cwd=ROOT).stdout


def test_commands_keep_the_builder_s_compiled_modules_as_python_does(project, tmp_path):
    # invoke turns off writing compiled modules for the whole command: every command compiled
    # the builder's modules from source again. Python's own setting decides, as for any program.
    letterbatch = [sys.executable, "-c", "import sys; from builder.cli import main; sys.exit(main())"]
    for name, argv in (("invoke", [sys.executable, "-m", "invoke"]), ("letterbatch", letterbatch)):
        for setting in ("", "1"):
            cache = tmp_path / f"pyc-{name}-{setting}"
            env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
            env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(cache))
            if setting:
                env["PYTHONDONTWRITEBYTECODE"] = setting
            done = subprocess.run([*argv, "status"], cwd=project, env=env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            assert "never built" in done.stdout, done.stdout + done.stderr
            written = {path.name.split(".")[0] for path in cache.rglob("*.pyc")}
            if setting:  # PYTHONDONTWRITEBYTECODE: nothing
                assert written == set(), (name, written)
            else:
                # `status` of a batch never built loads it: modules the task imports as it runs
                assert {"tasks", "load", "compose", "ready"} <= written, (name, written)
                # the project's own tasks.py is left without one, as invoke means
                assert not (cache / str(project).lstrip("/") / f"tasks.{sys.implementation.cache_tag}.pyc").exists()


def test_build_prints_one_summary_and_only_the_letters_that_need_attention(project):
    write_yaml(project / "recipients.yaml", TWO + """\
  - id: broken
    name: "Smiley 😀"
    address: [3 Road]
    salutation: Dear Smiley,
""")
    first = invoke("build", cwd=project)
    assert first.returncode == 1
    lines = first.stdout.strip().splitlines()
    assert re.fullmatch(r"3 letters: 2 built, 0 up to date, 0 failed, 1 invalid, 1 needs attention "
                        r"\([\d.]+ s\) -> .*build/recipients", lines[-1]), lines
    assert "broken" in first.stdout and "alpha" not in first.stdout and "beta" not in first.stdout
    again = invoke("build", "--verbose", cwd=project)
    assert re.search(r"^3 letters: 0 built, 2 up to date, 0 failed, 1 invalid", again.stdout, re.M), again.stdout
    assert re.search(r"alpha\s+up to date", again.stdout) and re.search(r"beta\s+up to date", again.stdout)
    # the time is the command's own, not that of a shell which ran something else first and
    # then handed its process over (`bash -c 'scripts/install && invoke build'` execs invoke)
    shell = subprocess.run(["bash", "-c", f"sleep 4; exec {sys.executable} -m invoke build"], cwd=project,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=300)
    took = float(re.search(r"^3 letters: .* \(([\d.]+) s\) ->", shell.stdout, re.M).group(1))
    assert took < 4, shell.stdout
    write_yaml(project / "recipients.yaml", TWO)
    rebuilt = invoke("build", "-v", "-f", cwd=project)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert re.search(r"alpha\s+built, 1 page\b", rebuilt.stdout), rebuilt.stdout
    assert "1 pages" not in rebuilt.stdout
    check = invoke("check", cwd=project)
    # never merged: check comes before merge, so no fault, but it says there was no bundle to check
    assert check.returncode == 0
    assert check.stdout.strip().splitlines()[-2:] == ["2 letters checked: 2 ok, 0 with warnings, 0 with errors",
                                                      "  bundle: none yet, not checked (`invoke merge` makes it)"]
    each = invoke("check", "-v", cwd=project)
    assert re.search(r"^  alpha: ready \(1 page\)$", each.stdout, re.M) and "1 pages" not in each.stdout, each.stdout


def test_the_time_left_waits_for_a_fair_sample(capsys):
    from builder.build import Outcome
    from builder.tasks import progress_line

    report = progress_line()
    report(Outcome("first", "built"), 1, 500)  # letters come in batches: one says nothing yet
    assert "estimating" in capsys.readouterr().err
    report(Outcome("early", "built"), 24, 500)  # one short of a twentieth: still nothing
    assert "estimating" in capsys.readouterr().err
    report(Outcome("fair", "built"), 25, 500)
    assert re.search(r"\[25/500\] fair\s+about \d+ s left", capsys.readouterr().err)
    report(Outcome("many", "built"), 100, 500)
    assert re.search(r"\[100/500\] many\s+about \d+ s left", capsys.readouterr().err)
    report(Outcome("last", "built"), 500, 500)  # the line clears: the summary follows
    assert capsys.readouterr().err == "\r\x1b[K"


def test_new_starts_a_batch_that_builds_as_it_stands(tmp_path):
    import jsonschema

    made = invoke("--search-root", str(ROOT), "new", "letters/october", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    source = tmp_path / "letters" / "october.yaml"
    assert (tmp_path / "letters" / "images").is_dir()
    text = source.read_text(encoding="utf-8")
    assert text.count("#") > 20  # commented for the person who fills it in
    schema = json.loads((tmp_path / "letters" / "recipients.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(yaml.safe_load(text), default=str)), schema)  # dates as text
    built = invoke("build", "merge", "-r", str(source), "-b", str(tmp_path / "out"), cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Dear First Recipient," in pdf_text(letter(tmp_path / "out", "first-recipient"))
    assert "Dear Second Recipient," in pdf_text(tmp_path / "out" / "bundle.pdf")
    # the signatory's name is printed only with show_name, which the starter did not mention: an
    # office filled in its name and found the letters signed by a title alone
    assert pdf_text(letter(tmp_path / "out", "first-recipient")).count("Your Name") == 1  # the letterhead's
    shown = tmp_path / "shown.yaml"
    shown.write_text(text.replace("    # show_name: true ", "    show_name: true   "), encoding="utf-8")
    assert invoke("build", "-r", str(shown), "-b", str(tmp_path / "shown"), cwd=ROOT).returncode == 0
    assert pdf_text(letter(tmp_path / "shown", "first-recipient")).count("Your Name") == 2
    again = invoke("--search-root", str(ROOT), "new", "letters/october", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert source.read_text(encoding="utf-8") == text
    kept = tmp_path / "letters" / "recipients.schema.json"
    kept.write_text('{"an office\'s own": true}')  # the schema is written only when missing
    other = invoke("--search-root", str(ROOT), "new", "letters/november", cwd=tmp_path)
    assert other.returncode == 0 and (tmp_path / "letters" / "november.yaml").exists()
    assert kept.read_text() == '{"an office\'s own": true}'


def test_new_never_writes_through_a_link_of_the_batch_s_name(tmp_path):
    """`new z` where z.yaml is a link to nowhere followed it: the batch and an images/
    folder were written where the link pointed, outside the folder. A link is a file
    that exists: refused, nothing written."""
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "z.yaml").symlink_to(tmp_path / "elsewhere" / "zz.yaml")
    done = invoke("--search-root", str(ROOT), "new", "z", cwd=tmp_path / "here")
    assert done.returncode == 2 and done.stderr == "z.yaml already exists: choose another name, or edit it\n", \
        done.stderr
    assert not (tmp_path / "elsewhere").exists() and sorted(os.listdir(tmp_path / "here")) == ["z.yaml"]


def test_new_beside_a_file_called_images_writes_nothing(tmp_path):
    """A file called images beside the batch: `new` wrote the batch, then stopped with
    "could not go on: File exists (images)" (exit 2), leaving half a start behind. Now it
    says what is in the way, before writing anything."""
    (tmp_path / "images").write_text("notes")
    done = invoke("--search-root", str(ROOT), "new", "october", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("images is a file, not a folder: "), done.stderr
    assert sorted(os.listdir(tmp_path)) == ["images"] and (tmp_path / "images").read_text() == "notes"


@pytest.mark.parametrize("name, words", [
    ("x,y", "TeX cannot find files in '{folder}/build/x,y': pdflatex reads ',' in a folder's path as a separator; "
            "choose a name for the batch without it; nothing was written"),
    ("oct$HOME", "pdflatex reads '$HOME' in a folder's path as a variable; choose a name for the batch without it"),
    ("Letters, 2021/nov", "pdflatex reads ',' in a folder's path as a separator; start the batch in another folder"),
    ("oct\x07", "`letterbatch new` takes a name without control characters, not 'oct\\x07'"),
    # it wrote people.xlsx.yaml
    ("people.xlsx", "`letterbatch new` starts a batch file (.yaml), not a spreadsheet: `letterbatch new people`, "
                    "then write `recipients: {{from: people.xlsx}}` in it"),
])
def test_new_refuses_a_name_whose_build_would_fail_and_writes_nothing(name, words, tmp_path):
    """`new x,y` wrote x,y.yaml, and the build it then said to run failed: "TeX cannot find
    files in build/x,y" (kpathsea reads , ; : { } $NAME as its own syntax); a name with a
    control character was written too. Both are refused before anything is written."""
    (tmp_path / "Letters, 2021").mkdir()
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    done = subprocess.run([*letterbatch, "new", name], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and words.format(folder=tmp_path) in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["Letters, 2021"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_new_on_a_full_disk_can_be_tried_again(tmp_path):
    """Room for the batch file, not for the schema beside it: `new` wrote october.yaml, then
    stopped with "No space left on device (recipients.schema.json). Free some space, then try
    again", and trying again was refused: "october.yaml already exists". The batch file is now
    written last, so a `new` stopped by the disk leaves no batch, and the next one starts it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:  # root in a container without the right to mount
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        room = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (room - 8 * 1024))  # the 3 KiB batch fits, the 42 KiB schema not
        full = invoke("--search-root", str(ROOT), "new", "october", cwd=disk)
        assert full.returncode == 2 and "No space left on device" in full.stderr, full.stderr
        assert sorted(os.listdir(disk)) == ["filler"], os.listdir(disk)
        (disk / "filler").unlink()
        again = invoke("--search-root", str(ROOT), "new", "october", cwd=disk)
        assert again.returncode == 0, again.stderr
        assert sorted(os.listdir(disk)) == ["images", "october.yaml", "recipients.schema.json"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def watching(project: Path, **popen) -> tuple[subprocess.Popen, queue.Queue]:
    """`invoke watch` started in ``project``, looking every 0.1 s: the process, and the
    lines it prints (stdout and stderr), read on a thread of their own."""
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "watch", "--interval", "0.1"], cwd=project,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, **popen)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return proc, lines


def test_watch_rebuilds_on_save_one_line_each(project):
    proc, lines = watching(project)

    def next_line(timeout=120) -> str:
        return lines.get(timeout=timeout)

    try:
        assert next_line().startswith("watching")
        assert re.search(r"start: 2 letters: 2 built", next_line())
        time.sleep(0.3)
        source = project / "recipients.yaml"
        write_yaml(source, source.read_text().replace("Dear Beta,", "Dear Beta Changed,"))
        line = next_line()
        assert re.search(r"recipients\.yaml changed: 2 letters: 1 built, 1 up to date, 0 failed", line), line
        assert "Dear Beta Changed," in pdf_text(letter(project / "build" / "recipients", "beta"))
    finally:
        proc.terminate()
        proc.wait(10)


def test_watch_says_what_is_wrong_with_a_letter_saved_invalid(project):
    """A typo saved while watching printed only the summary ("1 failed, 1 needs
    attention"): which letter, which line and what to fix were left to a separate
    `invoke build`. Now the letter's message comes before the summary, as build prints it."""
    proc, lines = watching(project)
    try:
        assert lines.get(timeout=120).startswith("watching")
        assert re.search(r"start: 2 letters: 2 built", lines.get(timeout=120))
        time.sleep(0.3)
        source = project / "recipients.yaml"
        source.write_text(source.read_text().replace("salutation: Dear Beta,", "salutation: Dear: Beta,"))
        said = [lines.get(timeout=120)]
        while "changed:" not in said[-1]:
            said.append(lines.get(timeout=120))
        text = "".join(said)
        assert re.search(r"recipients\.yaml changed: 2 letters: 0 built, 1 up to date, 0 failed, 1 invalid", said[-1]), text
        assert re.search(r"beta\s+invalid", text) and "recipients.yaml:" in text and "put the whole value in quotes" \
            in text, text
    finally:
        proc.terminate()
        proc.wait(10)


def test_watch_of_an_image_given_as_the_batch_stops_at_once(tmp_path):
    """`watch -r logo.png` said the file is no text once, then watched the image for good
    (build exits 2 for it): refused before watching."""
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    done = subprocess.run([sys.executable, "-m", "invoke", "watch", "-r", str(logo)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stderr == (
        f"{logo}: the file is a PNG image, not text: give the batch's YAML file (.yaml), whose `recipients: "
        "from:` may name a spreadsheet; nothing to watch\n"), done.stderr


def test_watch_takes_a_file_gone_between_two_looks_at_it_as_missing(tmp_path, monkeypatch):
    """An editor that deletes the batch file and writes it anew (or a sync tool) could
    remove it between watch's `exists()` and `stat()`: watch ended in a FileNotFoundError
    traceback. A file gone at any point of the look is missing, and watch goes on."""
    from builder.tasks import watch_stamps

    there, gone = tmp_path / "there.yaml", tmp_path / "gone.yaml"
    there.write_text("x")
    monkeypatch.setattr(Path, "exists", lambda self: True)  # it was there a moment ago
    stamps = watch_stamps([there, gone])
    assert stamps[gone] is None and stamps[there] == (there.stat().st_mtime_ns, 1)


def test_watch_misses_no_save_waits_for_the_lock_and_stops_with_ctrl_c(project):
    """A save made while watch rebuilt was taken as seen (it stamped the files after the
    build), and a rebuild refused because another build held the folder was never tried
    again: in both, letters stayed stale without a word. Ctrl-C during a rebuild stopped
    that build and watch went on (exit 0 at the end). Now the save is built next, the
    refused build follows once the folder is free, and Ctrl-C stops watch: exit 130."""
    import fcntl
    import signal

    from test_build import _pdflatex_running_under

    source = project / "recipients.yaml"
    proc, lines = watching(project, start_new_session=True)

    def until_compiling() -> None:
        deadline = time.monotonic() + 60
        while not _pdflatex_running_under(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _pdflatex_running_under(proc.pid), "watch never compiled"

    try:
        assert lines.get(timeout=120).startswith("watching")
        assert re.search(r"start: 2 letters: 2 built", lines.get(timeout=120))
        write_yaml(source, source.read_text().replace("Dear Beta,", "Dear Beta One,"))
        until_compiling()
        write_yaml(source, source.read_text().replace("Dear Alpha,", "Dear Alpha Two,"))  # while it builds
        assert re.search(r"changed: 2 letters: 1 built, 1 up to date", lines.get(timeout=120))
        assert re.search(r"recipients\.yaml changed: 2 letters: 1 built, 1 up to date", lines.get(timeout=120))
        assert "Dear Alpha Two," in pdf_text(letter(project / "build" / "recipients", "alpha"))
        with open(project / "build" / "recipients" / ".lock", "w") as held:  # another build runs
            fcntl.flock(held, fcntl.LOCK_EX)
            write_yaml(source, source.read_text().replace("Dear Beta One,", "Dear Beta Three,"))
            refused = lines.get(timeout=120)
            assert "another build, merge, sign, send or publish is running" in refused and \
                refused.rstrip().endswith("; the build follows when it has finished"), refused
            time.sleep(0.5)  # tried again and again meanwhile, without a word
            assert lines.empty()
        assert re.search(r"recipients\.yaml changed: 2 letters: 1 built, 1 up to date", lines.get(timeout=120))
        assert "Dear Beta Three," in pdf_text(letter(project / "build" / "recipients", "beta"))
        write_yaml(source, source.read_text().replace("Dear Beta Three,", "Dear Beta Four,"))
        until_compiling()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 130
        said = "".join(iter(lambda: lines.get(timeout=5), "stopped watching\n")) + "stopped watching\n"
        assert re.search(r"recipients\.yaml changed: stopped: \d letters? built and recorded", said), said
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_watch_sees_the_spreadsheet_the_logo_and_a_house_letterhead(project):
    from test_bundle import tiny_png

    (project / "images").mkdir()
    tiny_png(project / "images" / "logo.png")
    (project / "house.cls").write_text("\\NeedsTeXFormat{LaTeX2e}\n\\ProvidesClass{house}\n"
                                       "\\LoadClassWithOptions{letterbatch}\n")
    # a column no field takes: a warning on every rebuild, on a line of its own (the time
    # and reason printed first, the warning ended their line and the summary stood alone)
    (project / "people.csv").write_text("id,name,address,salutation,Phone\n"
                                        "alpha,Alpha,1 Road,\"Dear Alpha,\",01443 000000\n", encoding="utf-8")
    warning = f"{project / 'people.csv'}:row 1: warning: column 'Phone' not used"
    write_yaml(project / "recipients.yaml", MINIMAL_LETTER.replace(
        "    role: Clerk\n", "    role: Clerk\n    logo: images/logo.png\n").replace(
        "  body:", "  letterhead: house.cls\n  body:") + "recipients: {from: people.csv}\n")
    proc, lines = watching(project)
    try:
        first = lines.get(timeout=120)  # names the spreadsheet it watches too
        assert first.startswith("watching recipients.yaml, people.csv, the letterhead"), first
        assert lines.get(timeout=120).startswith(warning)
        assert re.match(r"\d\d:\d\d:\d\d start: 1 letter: 1 built", lines.get(timeout=120))
        for path, change in [
                (project / "people.csv", lambda p: p.write_text(p.read_text().replace("Dear Alpha,", "Dear Al,"))),
                (project / "images" / "logo.png", lambda p: tiny_png(p, width=60)),
                (project / "house.cls", lambda p: p.write_text(p.read_text() + "\\setlength\\lbsigspace{30mm}\n"))]:
            time.sleep(0.3)
            change(path)
            assert lines.get(timeout=120).startswith(warning)
            line = lines.get(timeout=120)
            assert re.match(rf"\d\d:\d\d:\d\d \S*{re.escape(path.name)} changed: 1 letter: 1 built", line), (path, line)
        assert "Dear Al," in pdf_text(letter(project / "build" / "recipients", "alpha"))
        # an editor that empties the spreadsheet, then writes it: the build says what is wrong,
        # and the spreadsheet is still watched (it was not, once the batch failed to load)
        table = project / "people.csv"
        written = table.read_text()
        time.sleep(0.3)
        table.write_text("")
        assert "people.csv changed: " in lines.get(timeout=120)
        time.sleep(0.3)
        table.write_text(written.replace("Dear Al,", "Dear Alpha Again,"))
        assert lines.get(timeout=120).startswith(warning)
        line = lines.get(timeout=120)
        assert re.match(r"\d\d:\d\d:\d\d \S*people\.csv changed: 1 letter: 1 built", line), line
    finally:
        proc.terminate()
        proc.wait(10)


def test_watch_builds_when_a_logo_named_before_it_was_there_arrives(project):
    """A logo named in the batch before it was copied in: the batch did not load, so the
    logo was not among the watched files, and copying it in built nothing; the letters
    stayed stale while watch ran. The files the batch names are watched while it does not load."""
    from test_bundle import tiny_png

    source = project / "recipients.yaml"
    write_yaml(source, TWO.replace("    role: Clerk\n", "    role: Clerk\n    logo: images/logo.png\n"))
    proc, lines = watching(project)
    try:
        assert lines.get(timeout=120).startswith("watching")
        start = lines.get(timeout=120)
        assert "start: " in start and "no such file: 'images/logo.png'" in start, start
        (project / "images").mkdir()
        tiny_png(project / "images" / "logo.png")
        line = lines.get(timeout=120)
        assert re.match(r"\d\d:\d\d:\d\d images/logo\.png changed: 2 letters: 2 built", line), line
    finally:
        proc.terminate()
        proc.wait(10)


def fake_viewer(folder: Path, code: int) -> dict:
    """A stand-in xdg-open (the desktop's opener) that records what it was asked to open."""
    folder.mkdir()
    script = folder / "xdg-open"
    script.write_text(f"#!/bin/sh\necho \"$1\" >> {folder / 'opened'}\nexit {code}\n")
    script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_open_shows_the_result_or_says_why_not(project, tmp_path):
    env = fake_viewer(tmp_path / "desk", 0)
    assert invoke("build", cwd=project).returncode == 0
    done = invoke("build", "--open", "-o", "beta", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    opened = (tmp_path / "desk" / "opened").read_text().split()
    assert opened == [str(letter(project / "build" / "recipients", "beta"))]
    done = invoke("merge", "--open", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "desk" / "opened").read_text().split()[-1].endswith("bundle.pdf")
    none = fake_viewer(tmp_path / "bare", 3)  # xdg-open's "no application" exit
    done = invoke("merge", "--open", cwd=project, env=none)
    assert done.returncode == 0 and "no PDF viewer" in done.stderr and "Traceback" not in done.stderr


def test_the_tests_never_read_the_projects_recipients_file():
    """An office replaces recipients.yaml with its own letters; the tests use tests/sample/."""
    for path in Path(__file__).parent.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"ROOT\s*/\s*[\"']recipients\.yaml", text), path.name
    assert (Path(__file__).parent / "sample" / "recipients.yaml").exists()


def test_invoke_test_fails_when_no_test_runs():
    done = invoke("test", "-k", "no_test_has_this_name_at_all", cwd=ROOT)
    assert done.returncode == 5  # pytest's "no tests collected", passed on


def test_status_and_check_while_a_build_runs_say_so(project):
    """While a build holds the folder, the letters it has put in place and not recorded yet
    read as changed: status and check said "changed since built (edited, or left by a build
    stopped outright): `invoke build` makes them again", a build the running one refused.
    They now say a build is running, and to ask again when it has ended."""
    import fcntl

    assert invoke("build", cwd=project).returncode == 0
    write_yaml(project / "recipients.yaml", TWO.replace("Dear Alpha,", "Dear Alpha, again"))
    letter(project / "build" / "recipients", "beta").write_bytes(b"%PDF-1.4 put in place, not yet recorded")
    running = "a build, merge or send is running in build/recipients now"
    with open(project / "build" / "recipients" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the build does
        for task in ("status", "check"):
            said = invoke(task, cwd=project)
            assert running in said.stdout and f"run `invoke {task}` again then" in said.stdout, said.stdout
            assert "makes it again" not in said.stdout and "to build it" not in said.stdout, said.stdout
    after = invoke("status", cwd=project)  # the lock let go: the usual words
    assert running not in after.stdout and "`invoke build` makes it again" in after.stdout, after.stdout


def test_a_build_folder_whose_path_is_too_long_says_so(tmp_path):
    """A build folder deep in folders (a path past the system's 4096 bytes): the build
    was told to "free some space or make the folder writable", neither of which helps."""
    deep = tmp_path.joinpath(*["d" * 200] * 20)
    done = invoke("build", "-r", str(SAMPLE), "-b", str(deep / "build"), cwd=ROOT)
    said = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(said) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "File name too long" in said[0] and "build in a folder with a shorter path, with -b" in said[0] \
        and "Free some space" not in said[0], said


def installed_packages(script: Path) -> set[str]:
    text = script.read_text()
    block = re.search(r"wanted=\((.*?)\n\)", text, re.S).group(1)
    return {line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()}


def test_scripts_install_installs_what_the_build_reads(real_batch, tmp_path):
    """Every TeX file pdflatex read (print and web copies) comes from a Debian package
    scripts/install installs, or from one those depend on; latexmk is not installed."""
    from builder.build import build

    wanted = installed_packages(ROOT / "scripts" / "install")
    assert "latexmk" not in wanted
    for package in wanted:  # each says what it is for
        assert re.search(rf"^\s+{re.escape(package)}\s+# \w", (ROOT / "scripts" / "install").read_text(), re.M)
    web = write_yaml(tmp_path / "recipients.yaml", TWO)
    assert build(web, tmp_path / "b", medium="web").ok
    logs = list(real_batch[0].rglob("*.log")) + list((tmp_path / "b").rglob("*.log"))
    read = set()
    for log in logs:
        read |= set(re.findall(r"(/usr/share/[^\s()<>{}]+\.(?:sty|cls|def|cfg|fd|tex|ltx|enc|pfb|map))",
                               log.read_text(errors="replace")))
    assert read, "no TeX files found in the logs"
    owners = subprocess.run(["dpkg", "-S", *sorted(read)], capture_output=True, text=True).stdout
    packages = {line.split(":")[0] for line in owners.splitlines()}
    depends = subprocess.run(["apt-cache", "depends", "--installed", *sorted(wanted)], capture_output=True,
                             text=True).stdout
    allowed = wanted | set(re.findall(r"Depends: (\S+)", depends))
    assert packages and packages <= allowed, packages - allowed


def test_scripts_install_runs_without_home_as_with_it(tmp_path):
    """`env -i PATH=/usr/bin:/bin scripts/install` (no HOME, as a service's shell has it):
    axe-core goes to the user's home folder, where the tests look (Path.home()); the script
    stopped with "HOME: unbound variable" (set -u). The system's commands are stand-ins here:
    dpkg-query says every package is installed, the venv's python has pip, npm only notes
    where it was asked to install."""
    import pwd

    checkout, stubs = tmp_path / "checkout", tmp_path / "stubs"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "install", checkout / "scripts" / "install")
    (checkout / ".venv" / "bin").mkdir(parents=True)
    stubs.mkdir()
    for name, script in [(checkout / ".venv" / "bin" / "python", "exit 0"),
                         (stubs / "dpkg-query", "printf 'install ok installed'"),
                         (stubs / "npm", f'echo "$@" > {tmp_path / "npm-args"}')]:
        name.write_text(f"#!/bin/sh\n{script}\n")
        name.chmod(0o755)
    home = pwd.getpwuid(os.getuid()).pw_dir
    for env in ({"PATH": f"{stubs}:/usr/bin:/bin"}, {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(tmp_path)}):
        (tmp_path / "npm-args").unlink(missing_ok=True)
        done = subprocess.run([str(checkout / "scripts" / "install")], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 0 and "unbound" not in done.stderr, done.stdout + done.stderr
        axe = Path(env.get("HOME", home)) / ".cache" / "letterbatch" / "axe"
        if not (axe / "node_modules" / "axe-core" / "axe.min.js").exists():  # else there already: not fetched
            assert (tmp_path / "npm-args").read_text().split()[:3] == ["install", "--prefix", str(axe)]


@pytest.mark.slow
def test_the_package_installed_on_its_own_builds_from_any_folder(tmp_path):
    """`pip install .` (not editable) into a new venv ships the letterhead, the starter and
    the `letterbatch` command; it builds and merges a batch from another folder."""
    import site
    import sysconfig

    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    # `pip install .` builds a wheel and installs it; the build runs here, offline (tests use
    # no network): setuptools comes from the test extras
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert wheel.returncode == 0, wheel.stdout + wheel.stderr
    (built,) = (tmp_path / "dist").glob("letterbatch-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The dependencies come from this interpreter's site-packages, added as a plain path
    # (so its .pth files, such as an editable letterbatch, are not run).
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                         sysconfig.get_paths()["platlib"]} if Path(p).is_dir()]
    Path(purelib, "outer-dependencies.pth").write_text("\n".join(outer) + "\n")
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(built)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    shutil.rmtree(source)  # nothing may come from the source folder now
    where = subprocess.run([str(python), "-c", "import builder, builder.build as b; "
                            "print(builder.__file__); print(next(b.LETTERHEAD.glob('*.cls')))"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert all(path.startswith(purelib) for path in where), where

    letters = tmp_path / "letters"
    letters.mkdir()
    shutil.copy(SAMPLE, letters / "oct.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = venv / "bin" / "letterbatch"
    done = subprocess.run([str(command), "build", "merge", "-r", str(letters / "oct.yaml")], cwd=elsewhere,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    out = letters / "build" / "oct"
    assert "Dear Sophie," in pdf_text(letter(out, "london"))
    assert len(re.findall("Yours sincerely", pdf_text(out / "bundle.pdf"))) == 5
    assert list(elsewhere.iterdir()) == []
    made = subprocess.run([str(command), "new", "nov"], cwd=elsewhere, capture_output=True, text=True)
    assert made.returncode == 0 and (elsewhere / "nov.yaml").exists(), made.stderr
    # what it suggests runs here: `invoke` finds no tasks outside a checkout
    assert "next: fill it in, then `letterbatch build merge -r nov.yaml`" in made.stdout



@pytest.mark.parametrize("args, words", [
    (("build", "merge", "-r", "two.yaml", "-j", "2"),
     "merge takes no -j (--jobs): it is build's; put it after build: "
     "`letterbatch build -j 2 merge -r two.yaml`"),
    # invoke took it for its own -f (--config): "Flag <Argument: config (f)> needed value"
    (("build", "merge", "-f"), "merge takes no -f (--force): it is build's; put it after build: "
                               "`letterbatch build -f merge`"),
    (("build", "check", "merge", "-v"), "merge takes no -v (--verbose): it is build's and check's; put it "
                                        "after build: `letterbatch build -v check merge`"),
    (("status", "-j", "2"), "status takes no -j (--jobs): it is a flag of bench, build and watch"),
    # before any task: invoke said "No idea what '-r' is!", exit 1
    (("-r", "two.yaml", "build", "merge"), "-r (--recipients) goes after the task that takes it: "
                                           "`letterbatch build -r two.yaml merge`"),
    (("-j2", "status", "build"), "-j (--jobs) goes after the task that takes it: `letterbatch status build -j2`"),
    (("-o", "alpha", "status"), "-o (--only) goes after the task that takes it: it is a flag of build, check and diff"),
    # invoke's own flag before the tasks stays in the command (it was dropped)
    (("--echo", "build", "merge", "-j", "2"), "merge takes no -j (--jobs): it is build's; put it after build: "
                                              "`letterbatch --echo build -j 2 merge`"),
    # an inverse flag: invoke said "No idea what '--no-cover' is!"
    (("status", "--no-cover"), "status takes no --no-cover: it is a flag of merge"),
    (("--no-cover", "build", "merge"), "--no-cover goes after the task that takes it: "
                                       "`letterbatch build merge --no-cover`"),
    # a flag without its value: invoke said "Flag <Argument: jobs (j)> needed value and was not given one!"
    (("build", "-j"), "build: -j (--jobs) needs a value after it (one that starts with - as --jobs=VALUE)"),
    (("status", "-r", "-b", "out"), "status: -r (--recipients) needs a value after it (one that starts with - as "
                                    "--recipients=VALUE)"),
    # a flag that may be repeated, given no value: invoke gave it none, with no word (`build -o -r
    # two.yaml` built every letter)
    (("build", "-o", "-r", "two.yaml"), "build: -o (--only) needs a value after it"),
    (("build", "-o", "alpha", "-o"), "build: -o (--only) needs a value after it"),
    (("merge", "-r", "two.yaml", "--accept"), "merge: --accept needs a value after it"),
    # a task or flag misspelt, a flag given twice: invoke said "No idea what 'biuld' is!" (exit 1),
    # `biuld -r two.yaml` that -r "goes after the task that takes it", `build -r a.yaml -r b.yaml`
    # "No idea what 'b.yaml' is!", and `new` alone "'new' did not receive required positional arguments"
    (("biuld",), "'biuld' is no task of letterbatch: did you mean build? `letterbatch --list` lists the tasks"),
    (("biuld", "-r", "two.yaml"), "'biuld' is no task of letterbatch: did you mean build? `letterbatch --list` "
                                  "lists the tasks"),
    (("build", "mrege"), "'mrege' is no task of letterbatch: did you mean merge? `letterbatch --list` lists the tasks"),
    (("build", "--froce"), "build takes no --froce: did you mean --force? `letterbatch build --help` lists its flags"),
    (("build", "-r", "two.yaml", "-r", "other.yaml"), "build: -r (--recipients) is given twice (two.yaml and "
                                                      "other.yaml): give it once"),
    (("build", "-j", "2", "--jobs=3"), "build: --jobs is given twice (2 and 3): give it once"),
    (("new",), "new takes a name after it: `letterbatch new NAME`"),
    # a script's empty variable: -b '' built into the default folder, clean -b ' ' said "nothing to
    # remove:   does not exist", and status -r '' suggested `letterbatch status -r '' -r two.yaml`
    (("build", "-r", "two.yaml", "-b", ""), "-b (--build-dir) takes a folder, not ''"),
    (("clean", "-r", "two.yaml", "-b", " "), "-b (--build-dir) takes a folder, not ' '"),
    (("status", "-r", ""), "-r (--recipients) takes a batch file, not ''"),
])
def test_a_flag_after_a_task_that_lacks_it_says_which_task_takes_it(args, words, tmp_path):
    """A short flag means one thing in every task, and given after a task that lacks it,
    invoke said "No idea what '-j' is!" (exit 1). One line, exit 2, nothing run."""
    write_yaml(tmp_path / "two.yaml", TWO)
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    done = subprocess.run([*letterbatch, *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stderr == words + "\n", (done.stdout, done.stderr)
    assert not (tmp_path / "build").exists()


def test_letterbatch_s_own_help_and_list_stop_quietly_when_the_reader_has_gone(tmp_path):
    """`letterbatch --list | head -1` ended in a BrokenPipeError traceback (invoke prints the
    list; a task's output already stopped quietly)."""
    for args in ("--list", "--help", "build --help"):
        done = subprocess.run(f"{shlex.quote(sys.executable)} -c 'from builder.cli import main; main()' {args} "
                              "| head -c 1 >/dev/null", shell=True, cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.stderr == "", (args, done.stderr)


def test_the_letterbatch_command_in_a_folder_that_is_gone_is_one_line(tmp_path):
    """A terminal left in a folder since deleted (or moved away): `letterbatch status -r
    /abs/two.yaml` was a traceback, FileNotFoundError from invoke's os.getcwd(). One line
    now says so, exit 2."""
    write_yaml(tmp_path / "two.yaml", TWO)
    gone = tmp_path / "gone"
    gone.mkdir()
    run = (f"cd {shlex.quote(str(gone))} && rmdir {shlex.quote(str(gone))} && exec {shlex.quote(sys.executable)} "
           f"-c 'from builder.cli import main; main()' status -r {shlex.quote(str(tmp_path / 'two.yaml'))}")
    done = subprocess.run(["bash", "-c", run], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == ("the folder this command was run in no longer exists (deleted, or moved away): "
                           "cd to a folder that does, then run it again\n"), done.stderr


def test_the_letterbatch_command_suggests_letterbatch_commands(tmp_path):
    """Outside a checkout `invoke` finds no tasks: what `letterbatch` tells a person
    to run next is a `letterbatch` command (the builder's messages as the task's)."""
    write_yaml(tmp_path / "two.yaml", TWO)
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = subprocess.run([*letterbatch, "new", "nov"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert "next: fill it in, then `letterbatch build merge -r nov.yaml`" in made.stdout, made.stderr
    status = subprocess.run([*letterbatch, "status", "-r", "two.yaml"], cwd=tmp_path, capture_output=True,
                            text=True, env=env)
    # (never built: merge once they are, as merge refuses letters not ready)
    assert "no bundle: `letterbatch merge -r two.yaml` once every letter is ready (not yet: " in status.stdout, \
        status.stdout
    assert "invoke" not in made.stdout + status.stdout
    # and so does the file it wrote, whose first lines say how to build it
    header = (tmp_path / "nov.yaml").read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "written by `letterbatch new`" in header and "`letterbatch build merge -r nov.yaml`" in header
    assert "invoke" not in header


def test_the_letterbatch_command_without_r_in_a_folder_with_a_batch_says_the_command_with_it(tmp_path):
    """An office's folder holds its batch (two.yaml), no recipients.yaml: `letterbatch build
    merge` said "recipients.yaml: error: cannot read the file: No such file or directory",
    not what to type. It now gives the command again with -r, which runs as copied; in a
    folder with no batch at all, `new`."""
    import shlex

    write_yaml(tmp_path / "two.yaml", TWO)
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    missing = subprocess.run([*letterbatch, "build", "merge", "--no-cover"], cwd=tmp_path, capture_output=True,
                             text=True, env=env)
    assert missing.returncode == 2 and missing.stdout == "", missing.stdout
    assert missing.stderr == ("recipients.yaml: not found (the batch when no -r is given); name your batch with -r: "
                              "`letterbatch build merge --no-cover -r two.yaml`\n"), missing.stderr
    suggested = re.search(r"`letterbatch ([^`]*)`", missing.stderr).group(1)
    copied = subprocess.run([*letterbatch, *shlex.split(suggested)], cwd=tmp_path, capture_output=True, text=True,
                            env=env)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "build" / "two" / "bundle.pdf").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    none = subprocess.run([*letterbatch, "status"], cwd=empty, capture_output=True, text=True, env=env)
    assert none.returncode == 2 and none.stderr == ("recipients.yaml: not found (the batch when no -r is given); "
                                                    "start one with `letterbatch new NAME`, or name yours with "
                                                    "-r FILE.yaml\n"), none.stderr


def test_a_stray_pdf_in_the_letters_folder_is_named_by_status_and_never_merged(project):
    """A PDF copied into build/<batch>/letters/ by hand (not a letter of the batch) was named
    by no task: status now says it is there and not the batch's (exit 1); merge leaves it out."""
    out = project / "build" / "recipients"
    assert invoke("build", "merge", cwd=project).returncode == 0
    shutil.copy(letter(out, "beta"), out / "letters" / "scan.pdf")
    seen = invoke("status", cwd=project)
    assert seen.returncode == 1 and re.search(
        r"^  letters/scan\.pdf +\(not ours\) +not a letter of this batch \(no task made it, and none merges, "
        r"signs or sends it\): move it out of build/recipients/letters$", seen.stdout, re.M), seen.stdout
    merged = invoke("merge", "--no-cover", cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert "Alpha Person" in pdf_text(out / "bundle.pdf") and pdf_text(out / "bundle.pdf").count("Dear Beta,") == 1
    (out / "letters" / "scan.pdf").unlink()
    assert invoke("status", cwd=project).returncode == 0
    # a name with a line break or a terminal's escape: printed as it was, it broke the line
    # (and coloured the terminal); now quoted with those written as escapes, in status and clean
    (out / "letters" / "scan\n2.pdf").write_bytes(b"x")
    (out / "letters" / "red\x1b[31m.pdf").write_bytes(b"x")
    seen = invoke("status", cwd=project)
    assert "\x1b" not in seen.stdout and re.search(r"^  'letters/scan\\n2\.pdf' +\(not ours\) ", seen.stdout, re.M) \
        and re.search(r"^  'letters/red\\x1b\[31m\.pdf' +\(not ours\) ", seen.stdout, re.M), seen.stdout
    cleaned = invoke("clean", cwd=project)
    assert cleaned.returncode == 2 and len(cleaned.stderr.splitlines()) == 1 and "\x1b" not in cleaned.stderr
    assert "('letters/red\\x1b[31m.pdf', 'letters/scan\\n2.pdf')" in cleaned.stderr, cleaned.stderr


def test_status_of_a_batch_in_another_batchs_build_folder_says_whose_it_is(project):
    """`status -b build/other` for recipients.yaml called other's letters gone or stale and
    suggested the build that would delete them (clean refuses that folder): one line, exit 2;
    and so do check, merge, sign and send, which suggested that build too."""
    assert invoke("build", "-r", "other.yaml", cwd=project).returncode == 0
    seen = invoke("status", "-b", "build/other", cwd=project)
    assert seen.returncode == 2 and seen.stderr == (
        "build/other holds the build of another batch, other.yaml, not of recipients.yaml: its status is "
        "`invoke status -r other.yaml -b build/other`; a build of recipients.yaml there would delete its "
        "letters\n"), (seen.stdout, seen.stderr)
    # check, merge, sign and send suggested `invoke build -b build/other`, which deleted other's letters
    for task in (["check"], ["merge"], ["send"], ["sign", "--p12", "key.p12"]):
        refused = invoke(*task, "-b", "build/other", cwd=project)
        assert refused.returncode == 2 and refused.stderr == seen.stderr, (task, refused.stdout, refused.stderr)
    assert len(list((project / "build" / "other" / "letters").iterdir())) == 2
    assert invoke("status", "-r", "other.yaml", "-b", "build/other", cwd=project).returncode == 0


def test_build_into_last_months_folder_by_mistake_is_refused_and_its_letters_stay(project):
    """`build -r november.yaml -b build/october`: status, check, merge, sign and send refused
    that folder, saying a build there would delete october's letters, and build did just
    that (gamma's letter deleted, alpha's replaced), and then clean took the folder as
    november's. One line, exit 2, with the folder of its own; a copy of the project (a batch
    file of the same name) still builds into the old one's folder, as the person chose."""
    assert invoke("build", "-r", "other.yaml", cwd=project).returncode == 0
    letters = project / "build" / "other" / "letters"
    made = {p.name: p.read_bytes() for p in letters.iterdir()}
    refused = invoke("build", "merge", "-b", "build/other", cwd=project)
    assert refused.returncode == 2 and refused.stderr == (
        "build/other holds the build of another batch, other.yaml, not of recipients.yaml: building there "
        "would replace its letters and delete those of its recipients not in recipients.yaml; build "
        "recipients.yaml into a folder of its own: `invoke build -r recipients.yaml -b build/recipients`\n"
        "Nothing was built.\n"), (refused.stdout, refused.stderr)
    assert {p.name: p.read_bytes() for p in letters.iterdir()} == made
    assert not (project / "build" / "other" / "bundle.pdf").exists()
    # watch too, before it watches: it said so at every save, and went on watching
    watched = invoke("watch", "-b", "build/other", cwd=project, timeout=60)
    assert watched.returncode == 2 and watched.stderr == refused.stderr, (watched.stdout, watched.stderr)
    copy = project / "copy"  # a copy of the project's batch, of the same name, building into its folder
    copy.mkdir()
    shutil.copy(project / "other.yaml", copy / "other.yaml")
    assert invoke("build", "-r", "copy/other.yaml", "-b", "build/other", cwd=project).returncode == 0


def test_clean_without_r_where_the_batches_have_other_names_says_which_to_name(project):
    """`clean` with no -r in a folder of october.yaml and november.yaml (no recipients.yaml)
    said "nothing to remove: build/recipients does not exist", exit 0, as if the office's
    batches were clean; every other task names them. Where no batch file is, nothing to remove."""
    (project / "recipients.yaml").rename(project / "november.yaml")
    assert invoke("build", "-r", "november.yaml", cwd=project).returncode == 0
    cleaned = invoke("clean", cwd=project)
    assert cleaned.returncode == 2 and cleaned.stderr == (
        "recipients.yaml: not found (the batch when no -r is given); name your batch with -r, one of "
        "november.yaml, other.yaml: `invoke clean -r FILE.yaml`\n"), (cleaned.stdout, cleaned.stderr)
    assert (project / "build" / "november" / "manifest.json").exists()
    for batch_file in ("november.yaml", "other.yaml"):
        (project / batch_file).unlink()
    nothing = invoke("clean", cwd=project)
    assert nothing.returncode == 0 and nothing.stdout == "nothing to remove: build/recipients does not exist\n"


def test_a_batch_misnamed_with_r_is_no_such_file_with_the_one_meant(tmp_path):
    """`-r two` (no .yaml) said build/two "holds the letters of two.yaml, another batch of
    the same name", and `-r tow.yaml` "cannot read the file": now no such file, and the
    command again with the batch file it most likely names, which runs as copied."""
    import shlex

    write_yaml(tmp_path / "two.yaml", TWO)
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([*letterbatch, "build", "-r", "two.yaml"], cwd=tmp_path, env=env).returncode == 0
    for typed in ("two", "tow.yaml"):
        done = subprocess.run([*letterbatch, "status", "-r", typed], cwd=tmp_path, capture_output=True, text=True,
                              env=env)
        assert done.returncode == 2 and done.stderr == (
            f"{typed}: no such file (the batch given with -r); did you mean two.yaml? "
            "`letterbatch status -r two.yaml`\n"), done.stderr
        suggested = re.search(r"`letterbatch ([^`]*)`", done.stderr).group(1)
        copied = subprocess.run([*letterbatch, *shlex.split(suggested)], cwd=tmp_path, capture_output=True,
                                text=True, env=env)
        assert copied.returncode == 0, copied.stderr
    far = subprocess.run([*letterbatch, "build", "-r", "other.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         env=env)
    assert far.returncode == 2 and far.stderr == "other.yaml: no such file (the batch given with -r)\n", far.stderr


def test_a_spreadsheet_given_with_r_is_named_as_one_with_the_batch_file_that_reads_it(tmp_path):
    """`-r people.csv`, the spreadsheet of people.yaml: build said build/people "holds the
    letters of people.yaml, another batch of the same name", and with -b that the file
    "is not UTF-8 text: save the file as UTF-8". Now: a spreadsheet, not a batch file, and
    the command again with the batch file that reads it, which runs as copied."""
    import shlex

    write_yaml(tmp_path / "people.yaml", MINIMAL_LETTER + "recipients:\n  from: people.csv\n")
    (tmp_path / "people.csv").write_text("id,name,address,salutation\nann,Ann,1 Road,\"Dear Ann,\"\n",
                                         encoding="utf-8")
    (tmp_path / "lone.csv").write_text("id,name\n", encoding="utf-8")
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([*letterbatch, "build", "-r", "people.yaml"], cwd=tmp_path, env=env).returncode == 0
    for typed in (["build", "-r", "people.csv"], ["build", "-r", "people.csv", "-b", "out"]):
        done = subprocess.run([*letterbatch, *typed], cwd=tmp_path, capture_output=True, text=True, env=env)
        again = shlex.join(typed).replace("people.csv", "people.yaml")
        assert done.returncode == 2 and done.stderr == (
            "people.csv is a spreadsheet, not a batch file: -r takes the batch's .yaml file, whose `recipients: "
            f"from:` names the spreadsheet (people.yaml): `letterbatch {again}`\n"), done.stderr
        suggested = re.search(r"`letterbatch ([^`]*)`", done.stderr).group(1)
        copied = subprocess.run([*letterbatch, *shlex.split(suggested)], cwd=tmp_path, capture_output=True,
                                text=True, env=env)
        assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "out" / "letters" / "ann.pdf").is_file()
    lone = subprocess.run([*letterbatch, "status", "-r", "lone.csv"], cwd=tmp_path, capture_output=True, text=True,
                          env=env)
    assert lone.returncode == 2 and "no batch file beside it names lone.csv" in lone.stderr, lone.stderr
    assert "Traceback" not in lone.stderr


@pytest.mark.parametrize("name", ["Oct.YAML", "Oct.yml", "Oct.YML"])
def test_a_batch_file_of_any_suffix_case_is_the_one_meant(name, tmp_path):
    """`-r Oct` suggested Oct.yaml and Oct.yml but not Oct.YAML (which builds as well), nor
    did the default's "not found" name it; `new Oct.YAML` wrote Oct.YAML.yaml."""
    write_yaml(tmp_path / name, TWO)
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    typed = subprocess.run([*letterbatch, "status", "-r", "Oct"], cwd=tmp_path, capture_output=True, text=True,
                           env=env)
    assert typed.returncode == 2 and typed.stderr == (
        f"Oct: no such file (the batch given with -r); did you mean {name}? `letterbatch status -r {name}`\n")
    default = subprocess.run([*letterbatch, "status"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert f"name your batch with -r: `letterbatch status -r {name}`" in default.stderr, default.stderr
    made = subprocess.run([*letterbatch, "new", "Nov" + Path(name).suffix], cwd=tmp_path, capture_output=True,
                          text=True, env=env)
    assert made.returncode == 0 and (tmp_path / ("Nov" + Path(name).suffix)).is_file(), made.stderr
    # `new Oct` beside it wrote Oct.yaml: two batches sharing build/Oct/, the second refused at its build
    twin = subprocess.run([*letterbatch, "new", "Oct"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert twin.returncode == 2 and twin.stderr == (f"{name} is a batch of that name already: both would build "
                                                    "into build/Oct/; choose another name, or edit it\n"), twin.stderr
    assert sorted(p.name for p in tmp_path.glob("Oct*")) == [name]


def test_a_folder_given_with_r_is_named_as_a_folder_with_the_batches_in_it(tmp_path):
    """`-r letters` naming the folder the batch is in said "cannot read the file: Is a
    directory", and `watch -r letters` went on watching the folder. Now every task that
    reads the batch says it is a folder and names the batch files in it (exit 2)."""
    (tmp_path / "letters").mkdir()
    write_yaml(tmp_path / "letters" / "two.yaml", TWO)
    letterbatch = [sys.executable, "-c", "from builder.cli import main; main()"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for task in ("build", "status", "check", "diff", "watch"):
        done = subprocess.run([*letterbatch, task, "-r", "letters"], cwd=tmp_path, capture_output=True, text=True,
                              env=env, stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 2 and done.stderr == (
            "letters is a folder, not a batch file: give -r the batch's .yaml file (in it: letters/two.yaml)\n"), \
            (task, done.stderr)


def test_invoke_in_the_package_folder_says_where_to_run_it():
    """`invoke` run in builder/ (or builder/letterhead/, beside the class) found
    builder/tasks.py before the project's and ended in an ImportError traceback: one line
    naming the project folder instead, exit 1 (invoke's own for a tasks file it cannot load)."""
    for folder in (ROOT / "builder", ROOT / "builder" / "letterhead"):
        told = invoke("status", cwd=folder)
        assert told.returncode == 1 and told.stdout == "" and told.stderr == (
            f"{ROOT / 'builder' / 'tasks.py'} is the package's own tasks file: run invoke in the project "
            f"folder, {ROOT} (or give it --search-root {ROOT})\n"), told.stderr


def test_ci_runs_exactly_the_readmes_two_commands_on_the_system_path():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.split(r"\n##+ ", readme.split("## Two commands", 1)[1], maxsplit=1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", section, re.S)
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd ", "export", "unset"))]
    # the first stops CI when it fails: `set -e` does not stop at a failed `a` of `a && b`
    assert steps[0].endswith(" || exit") and [steps[0].removesuffix(" || exit"), *steps[1:]] == commands, \
        (steps, commands)
    assert re.search(r"^export PATH=/usr/sbin:/usr/bin:/sbin:/bin$", ci, re.M)
    assert "/usr/bin/python3" in (ROOT / "scripts" / "install").read_text()  # never a pyenv python3


def test_the_package_carries_every_file_of_the_letterhead():
    """A wheel holds only what package-data names: the class, its font map and
    the web copies' preload file are read at build time."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["builder"]
    files = [p.relative_to(root / "builder").as_posix() for p in (root / "builder" / "letterhead").iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files), files


def test_output_read_by_a_reader_that_stops_early_is_no_traceback(project):
    """`invoke diff | head` or a pager quit early: the reader has gone before the task has
    printed everything. The task stops quietly (exit 1), with no traceback and no
    "Exception ignored" from Python's flush at exit."""
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as on a stock machine
    for task in (["diff"], ["status"], ["check"], ["send"]):
        # output buffered (a short one then fails only when flushed, at the end) or not
        for env in ({**buffered, "PYTHONPATH": str(ROOT)}, {**buffered, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}):
            read, write = os.pipe()
            os.close(read)  # the reader is gone before the first line: every write fails (EPIPE)
            try:
                done = subprocess.run([sys.executable, "-m", "invoke", *task], cwd=project, env=env, stdout=write,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=300)
            finally:
                os.close(write)
            assert done.returncode == 1, (task, env.get("PYTHONUNBUFFERED"), done.stderr)
            assert done.stderr == "", (task, env.get("PYTHONUNBUFFERED"), done.stderr)


def test_a_suggested_command_names_the_batch_as_typed_and_runs_as_copied(project):
    """Working on other.yaml, messages said "run `invoke merge`" (or `invoke sign`, `invoke
    send --resend ID --yes`): copied, that worked on recipients.yaml, another batch. A
    suggested command carries the -r/-b the person typed, shell-quoted, and `new` quotes a
    name with a space, so each runs as copied."""
    import shlex

    assert invoke("build", "-r", "other.yaml", "-b", "out dir", cwd=project).returncode == 0
    shown = invoke("status", "-r", "other.yaml", "-b", "out dir", cwd=project)
    assert "no bundle: run `invoke merge -r other.yaml -b 'out dir'`" in shown.stdout, shown.stdout
    suggested = re.search(r"run `invoke ([^`]*)`", shown.stdout).group(1)
    merged = invoke(*shlex.split(suggested), cwd=project)
    assert merged.returncode == 0, merged.stderr
    assert (project / "out dir" / "bundle.pdf").is_file() and not (project / "build").exists()
    made = invoke("new", "my batch", cwd=project)
    assert "next: fill it in, then `invoke build merge -r 'my batch.yaml'`" in made.stdout, made.stdout
    # the defaults typed by nobody: nothing added
    assert "no bundle: `invoke merge` once every letter is ready (not yet: " in invoke("status", cwd=project).stdout


def test_status_and_check_say_the_build_that_makes_stale_letters_ready(project):
    """`check` said "8 letters checked: 0 ok, 0 with warnings, 8 with errors" and `status`
    "8 stale", and left the person to guess what to run. Both now name the build, for
    this batch, and it runs as copied."""
    import shlex

    status = invoke("status", "-r", "other.yaml", cwd=project)
    hint = "2 letters stale or never built: run `invoke build -r other.yaml` to build them"
    assert f"\n{hint}\n" in status.stdout, status.stdout
    suggested = re.search(r"run `invoke ([^`]*)` to build", status.stdout).group(1)
    assert invoke(*shlex.split(suggested), cwd=project).returncode == 0
    assert "stale or never built" not in invoke("status", "-r", "other.yaml", cwd=project).stdout
    other = project / "other.yaml"
    other.write_text(other.read_text(encoding="utf-8").replace("Dear Other Alpha,", "Dear A,"), encoding="utf-8")
    checked = invoke("check", "-r", "other.yaml", cwd=project)
    assert checked.returncode == 1
    # stale is no preflight error: counted in status's words, not "1 with errors"
    assert "\n2 letters checked: 1 ok, 0 with warnings, 0 with errors, 1 stale\n" in checked.stdout, checked.stdout
    assert "\n1 letter stale or never built: run `invoke build -r other.yaml` to build it\n" in checked.stdout


def test_a_setting_from_the_environment_of_the_wrong_type_is_one_line(project):
    """invoke casts INVOKE_LETTERBATCH_* to the setting's type; a port of 'abc'
    was its traceback."""
    for name, value in [("INVOKE_LETTERBATCH_SMTP_PORT", "abc"), ("INVOKE_LETTERBATCH_JOBS", "2.5")]:
        result = invoke("status", cwd=project, env={name: value})
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"{name}={value!r} is not a whole number: set it to one, or unset it"
        assert "Traceback" not in result.stdout + result.stderr
    assert invoke("status", cwd=project, env={"INVOKE_LETTERBATCH_JOBS": "2"}).returncode in (0, 1)


def test_an_os_error_that_stops_a_task_is_said_in_words_with_its_file(tmp_path):
    """As `invoke sign` on a full disk once said "[Errno 28] No space left on device"."""
    import errno

    from builder.tasks import stopped

    full = stopped(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "signed" / "a.pdf")))
    assert full.message == (f"could not go on: No space left on device ({tmp_path / 'signed' / 'a.pdf'}). "
                            "Free some space, then try again.") and full.code == 2
    denied = stopped(PermissionError(errno.EACCES, "Permission denied"), then="\nNothing was signed.")
    assert denied.message == "could not go on: Permission denied.\nNothing was signed."
    read_only = stopped(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "build")))
    assert read_only.message == (f"could not go on: Read-only file system ({tmp_path / 'build'}). Make it writable "
                                 "(or work in another folder), then try again.")
    assert "Errno" not in stopped(OSError(errno.EIO, "Input/output error", "x")).message


def test_the_defaults_come_from_invoke_config_and_the_environment(project):
    # `letterbatch.recipients` in the environment names another batch; a flag still wins
    env = {"INVOKE_LETTERBATCH_RECIPIENTS": "other.yaml"}
    seen = invoke("status", cwd=project / "sub", env=env)
    assert "gamma" in seen.stdout and "beta" not in seen.stdout, seen.stdout + seen.stderr
    flagged = invoke("status", "-r", str(project / "recipients.yaml"), cwd=project / "sub", env=env)
    assert "beta" in flagged.stdout and "gamma" not in flagged.stdout, flagged.stdout + flagged.stderr
    (project / "invoke.yaml").write_text((project / "invoke.yaml").read_text()
                                         + "letterbatch:\n  recipients: other.yaml\n")
    seen = invoke("status", cwd=project / "sub")
    assert "gamma" in seen.stdout and "beta" not in seen.stdout, seen.stdout + seen.stderr
    assert list((project / "sub").iterdir()) == [] and not (project / "build").exists()


def test_clean_removes_only_a_build_folder_never_the_batch_or_other_batches(project):
    """`clean -b .` would delete the batch file and the project, and `clean -b build` (the
    folder of every batch) every batch's letters and send logs: each is refused, one line,
    exit 2, and nothing is removed."""
    assert invoke("build", cwd=project).returncode == 0
    assert invoke("build", "-r", "other.yaml", cwd=project).returncode == 0
    mine, theirs = project / "build" / "recipients", project / "build" / "other"
    (theirs / "sent.json").write_text("{}")  # who was mailed: clean must never lose it
    (project / "images").mkdir()
    (project / "images" / "logo.png").write_bytes(b"a logo")
    before = sorted(str(p) for p in project.rglob("*"))
    for folder, holds in ((".", "the batch file"), ("build", "another batch's build folder"),
                          ("..", "the batch file")):
        done = invoke("clean", "-b", folder, cwd=project)
        assert done.returncode == 2 and holds in done.stderr and "Nothing was removed" in done.stderr, done
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    # the batch's own images (its logo), a folder no build made, another batch's build folder;
    # an empty one too (images/ before the logo is copied in: it was removed, and `cp logo.png
    # images` then made a file called images)
    (project / "empty").mkdir()
    for folder, holds in (("images", "no build (no manifest.json)"),
                          ("empty", "no build (no manifest.json): an empty folder of your own"),
                          ("build/other", "the letters of another batch, other.yaml"),
                          # a folder inside one (its letters, its web copies: "files no build makes")
                          ("build/recipients/letters", "it is part of the build folder build/recipients")):
        done = invoke("clean", "-b", folder, cwd=project)
        assert done.returncode == 2 and holds in done.stderr and "Nothing was removed" in done.stderr, done
    # a folder with a file of a build's name among files of its own (a web app's manifest.json,
    # a .lock of a thesis): the whole folder was removed
    (project / "webapp" / "src").mkdir(parents=True)
    (project / "webapp" / "manifest.json").write_text('{"name": "My App"}')
    (project / "webapp" / "src" / "app.js").write_text("x")
    (project / "thesis").mkdir()
    (project / "thesis" / ".lock").write_text("")
    (project / "thesis" / "thesis.tex").write_text("x")
    (mine / "notes.txt").write_text("mine")  # a build folder holding a file of the person's own
    before = sorted(str(p) for p in project.rglob("*"))
    for folder, holds in (("webapp", "files no build makes (src): files of your own"),
                          ("thesis", "files no build makes (thesis.tex): files of your own"),
                          ("build/recipients", "files no build makes (notes.txt): files of your own")):
        done = invoke("clean", "-b", folder, cwd=project)
        assert done.returncode == 2 and holds in done.stderr and "Nothing was removed" in done.stderr, done
    (mine / "notes.txt").unlink()
    # a batch elsewhere, `-b .` where the person stands: not their folder to lose
    elsewhere = invoke("clean", "-r", str(project / "other.yaml"), "-b", ".", cwd=project / "sub")
    assert elsewhere.returncode == 2 and "the folder you are in" in elsewhere.stderr, elsewhere
    assert sorted(str(p) for p in project.rglob("*")) == [b for b in before if not b.endswith("notes.txt")]
    assert invoke("clean", cwd=project).returncode == 0  # its own folder, as ever
    assert not mine.exists() and (theirs / "sent.json").exists() and letter(theirs, "alpha").exists()



def test_clean_removes_the_build_folder_of_a_batch_built_only_for_the_web(project):
    """A batch built only `--for web` has its record in web/: clean refused its folder as
    "holds no build (no manifest.json): files of your own", so its web copies could not be
    cleaned, and a folder inside it (its web/) was not known as part of a build folder."""
    assert invoke("build", "--for", "web", cwd=project).returncode == 0
    mine = project / "build" / "recipients"
    assert not (mine / "manifest.json").exists() and (mine / "web" / "manifest.json").exists()
    inside = invoke("clean", "-b", "build/recipients/web", cwd=project)
    assert inside.returncode == 2 and "it is part of the build folder build/recipients" in inside.stderr, inside
    done = invoke("clean", cwd=project)
    assert done.returncode == 0 and "removed build/recipients" in done.stdout, done
    assert not mine.exists()



def test_a_file_of_your_own_among_the_web_copies_is_not_ours_and_clean_keeps_it(project):
    """A page edited by hand and saved beside the web copies (`<date>-<id>-edited.html`) was
    named by nothing: status said the copies were ready (it would be published with them),
    and clean deleted it without a word, as it names a file of one's own in letters/."""
    assert invoke("build", "--for", "web", cwd=project).returncode == 0
    web = project / "build" / "recipients" / "web"
    page = web / "2021-03-04-alpha.html"
    edited = web / "2021-03-04-alpha-edited.html"
    edited.write_bytes(page.read_bytes())
    done = invoke("status", "--for", "web", cwd=project)
    assert done.returncode == 1, done
    assert re.search(r"^  web/2021-03-04-alpha-edited\.html +\(not ours\) +not a web copy of this batch \(no task "
                     r"made it\): move it out of build/recipients/web", done.stdout, re.M), done.stdout
    done = invoke("clean", cwd=project)
    assert done.returncode == 2 and "web/2021-03-04-alpha-edited.html" in done.stderr, done
    assert edited.exists() and page.exists()
    edited.unlink()  # the copies of an earlier date (a changed letter.date) are ours: not named
    (web / "2021-03-01-alpha.pdf").write_bytes((web / "2021-03-04-alpha.pdf").read_bytes())
    assert "(not ours)" not in invoke("status", "--for", "web", cwd=project).stdout
    assert invoke("clean", cwd=project).returncode == 0 and not web.exists()


def test_clean_refuses_a_file_of_your_own_in_letters_or_signed_but_not_a_letter_left_unrecorded(project):
    """A PDF copied into build/<batch>/letters/ (status lists it as not ours) went with the
    folder: `clean` printed "removed build/recipients". It is named, exit 2, nothing removed;
    a letter of the batch a killed build left off the record is no file of the person's,
    nor is one whose batch file no longer loads."""
    assert invoke("build", cwd=project).returncode == 0
    mine = project / "build" / "recipients"
    for stray in (mine / "letters" / "stray.pdf", mine / "signed" / "x.pdf"):
        stray.parent.mkdir(exist_ok=True)
        shutil.copy(letter(mine, "alpha"), stray)
        done = invoke("clean", cwd=project)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done
        assert done.stderr == (f"build/recipients holds files no build makes ({stray.relative_to(mine)}): files "
                               "of your own, no letter of recipients.yaml; move them out of it, then clean "
                               "again. Nothing was removed.\n"), done.stderr
        assert stray.exists() and letter(mine, "alpha").exists()
        stray.unlink()
    # beta's letter and LaTeX on disk, off the record (a build killed before it recorded it);
    # then its LaTeX gone too: its id is in the batch
    record = json.loads((mine / "manifest.json").read_text())
    del record["letters"]["beta"]
    (mine / "manifest.json").write_text(json.dumps(record))
    snapshot = project / "snapshot"
    shutil.copytree(mine, snapshot)
    (mine / "tex" / "beta.tex").unlink()
    done = invoke("clean", cwd=project)
    assert done.returncode == 0 and done.stdout == "removed build/recipients\n", done
    # the batch file broken (and gone): clean still works, by the LaTeX the build left
    shutil.copytree(snapshot, mine)
    (project / "recipients.yaml").write_text("recipients: [\n")
    assert invoke("clean", cwd=project).returncode == 0 and not mine.exists()
    shutil.copytree(snapshot, mine)
    (project / "recipients.yaml").unlink()
    assert invoke("clean", cwd=project).returncode == 0 and not mine.exists()


def test_a_batch_file_that_is_a_named_pipe_or_a_device_is_one_line_never_read(project):
    """`-r` naming a FIFO would wait for ever, `-r /dev/zero` filled the memory until the
    kernel killed the command: neither is read, and each is one line, exit 2."""
    fifo = project / "pipe.yaml"
    os.mkfifo(fifo)
    for task in ("status", "build", "merge"):
        done = invoke(task, "-r", str(fifo), "-b", "out", cwd=project, timeout=60)
        assert done.returncode == 2 and "it is not a file (a device or a named pipe)" in done.stderr, done
        assert "Traceback" not in done.stderr
    assert not (project / "out" / "manifest.json").exists()


def test_another_batch_of_the_same_name_never_builds_over_a_batch_s_letters(project):
    """archive/recipients.yaml and recipients.yaml both build into
    build/recipients/: the second deleted the first's letters as "no longer in
    the batch". It is refused, in one line with the fix, and the letters stay;
    the same batch moved (the file it was built from gone) builds on."""
    assert invoke("build", cwd=project).returncode == 0
    letters = project / "build" / "recipients" / "letters"
    made = sorted(p.name for p in letters.iterdir())
    (project / "archive").mkdir()
    write_yaml(project / "archive" / "recipients.yaml", TWO.replace("  - id: beta", "  - id: delta"))
    refused = invoke("build", "-r", "archive/recipients.yaml", cwd=project)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr == ("build/recipients holds the letters of recipients.yaml, another batch of the same "
                              "name: build archive/recipients.yaml into a folder of its own with -b (for example "
                              "-b build-archive), or give it another name\nNothing was built.\n"), refused.stderr
    assert sorted(p.name for p in letters.iterdir()) == made
    cleaned = invoke("clean", "-r", "archive/recipients.yaml", cwd=project)  # nor is it removed as this one's
    assert cleaned.returncode == 2 and "holds the letters of another batch, recipients.yaml" in cleaned.stderr
    assert cleaned.stderr.endswith("Nothing was removed.\n"), cleaned.stderr
    assert sorted(p.name for p in letters.iterdir()) == made
    assert invoke("build", "-r", "archive/recipients.yaml", "-b", "build-archive", cwd=project).returncode == 0
    (project / "recipients.yaml").rename(project / "archive" / "kept.yaml")  # the first batch moved away
    assert invoke("build", "-r", "archive/recipients.yaml", cwd=project).returncode == 0  # builds on


def test_a_batch_file_gone_while_the_build_reads_it_is_not_called_a_full_disk(project, monkeypatch):
    """A logo moved away (or being replaced) between loading the batch and copying it for
    TeX was reported as "could not write in build/…: … Free some space or make the folder
    writable": the fault is the file's, and the message says so. A write into the build
    folder that fails is still the disk's."""
    import errno

    from invoke import Config, Context, Exit

    import builder
    from builder import build as build_module
    from builder import tasks

    monkeypatch.setattr(builder, "BATCH_FLAGS", builder.BATCH_FLAGS)  # batch_paths sets the commands' flags
    context = Context(Config(defaults=tasks.ns.configuration()))
    batch = tasks.batch_paths(context, str(project / "recipients.yaml"), str(project / "out"))
    for where, said in ((project / "images" / "logo.png", "could not read "),
                        (project / "out" / "tex" / "logo.png", "could not write in ")):
        def fail(self, where=where):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(where))

        monkeypatch.setattr(build_module.Prepared, "write_assets", fail)
        with pytest.raises(Exit) as stopped:
            tasks.run_build(context, batch)
        assert stopped.value.code == 2 and stopped.value.message.startswith(said), stopped.value.message
        assert "logo.png" in stopped.value.message and "No such file or directory" in stopped.value.message


def test_a_build_folder_under_a_file_is_not_called_a_full_disk(project):
    """`-b recipients.yaml/out` (a file on the folder's path) was told to "free some space
    or make the folder writable": neither helps. The message now names the fault."""
    wrong = invoke("build", "-b", "recipients.yaml/out", cwd=project)
    assert wrong.returncode == 2 and "Not a directory" in wrong.stderr, wrong.stderr
    assert "a file, not a folder: give -b a folder" in wrong.stderr and "space" not in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_folder_where_a_letter_goes_is_named_not_called_a_full_disk(project):
    """A folder made where a letter goes (`letters/alpha.pdf/`) stopped the build with "Is a
    directory … Free some space or make the folder writable": neither helps. The message
    says what is in the way; the other letter stays as it was."""
    assert invoke("build", cwd=project).returncode == 0
    beta = letter(project / "build" / "recipients", "beta")
    kept = beta.read_bytes()
    in_the_way = letter(project / "build" / "recipients", "alpha")
    in_the_way.unlink()
    in_the_way.mkdir()
    stopped = invoke("build", cwd=project)
    assert stopped.returncode == 2 and "Is a directory" in stopped.stderr, stopped.stderr
    assert "A folder stands where that file goes: move it out of the build folder" in stopped.stderr
    assert "space" not in stopped.stderr and "Traceback" not in stopped.stderr, stopped.stderr
    assert beta.read_bytes() == kept


def test_status_and_check_say_what_to_do_after_a_build_killed_or_a_record_lost(project):
    """`-b recipients.yaml` (a file) said "could not write … free some space"; a letter
    changed since its build (as a build killed outright leaves them) was named with no
    command that mends it; and a bundle.pdf with its record lost read "no bundle" beside
    "bundle.pdf is not on the record", and check said "none yet" of it."""
    for task in ("build", "status", "merge"):
        wrong = invoke(task, "-b", "recipients.yaml", cwd=project)
        assert wrong.returncode == 2 and wrong.stderr == (
            "--build-dir recipients.yaml is a file, not a folder: give the folder to build into "
            "(such as build/recipients)\n"), (task, wrong.stderr)
    assert invoke("build", "merge", cwd=project).returncode == 0
    out = project / "build" / "recipients"
    with open(letter(out, "beta"), "ab") as handle:
        handle.write(b"\n")
    for task in ("status", "check"):
        said = invoke(task, cwd=project)
        assert said.returncode == 1 and ("1 letter changed since built (edited, or left by a build stopped "
                                         "outright): `invoke build` makes it again") in said.stdout, said.stdout
    assert invoke("build", cwd=project).returncode == 0
    (out / "manifest.json").unlink()
    assert invoke("build", cwd=project).returncode == 0  # every letter again; the bundle left as it was
    shown = invoke("status", cwd=project).stdout
    assert "no bundle" not in shown and "bundle.pdf  never merged  no merge on the record: run `invoke merge`" \
        in shown, shown
    checked = invoke("check", cwd=project).stdout
    assert "none yet" not in checked and "bundle.pdf is not on the record (no merge on record)" in checked, checked
