"""letterbatch tasks: `invoke --list` shows them, `invoke --help TASK` explains one.

Defaults (the YAML file, the build folder, the number of workers) live in the
``letterbatch`` config section below; override them in invoke.yaml, with
INVOKE_LETTERBATCH_<KEY> environment variables, or with each task's flags.
"""
import getpass
import os
import shutil
import sys
import time
from pathlib import Path

from invoke import Collection, Exit, task

from builder.build import build as build_letters, status as letter_states
from builder.check import check as check_letters
from builder.compile import TexMissing
from builder.diff import personal
from builder.load import LoadError, load
from builder.merge import MergeRefused, merge as merge_letters
from builder.schema import SCHEMA_FILE, json_schema_text
from builder.sign import sign as sign_pdf


# Flags several tasks share, explained once.
BATCH_HELP = {
    "recipients": "the batch (default: recipients.yaml)",
    "build-dir": "where the letters are (default: build/)",
}
MEDIUM_HELP = {"for": "which letters: print (default) or web"}


def _settings(c, recipients, build_dir):
    cfg = c.config.letterbatch
    return recipients or cfg.recipients, build_dir or cfg.build_dir


@task(help={
    **BATCH_HELP,
    "only": "comma-separated recipient ids: build just these",
    "jobs": "parallel pdflatex runs (default: one per core)",
    "force": "recompile every letter even when it is up to date",
    "for": "print (default: black links, build/<id>.pdf) or web (coloured links, PDF/A-2b "
           "metadata, build/web/<date>-<id>.pdf)",
})
def build(c, recipients=None, build_dir=None, only=None, jobs=0, force=False, for_="print"):
    """Build one PDF per recipient: build/<id>.pdf (sources in build/tex/)."""
    recipients, build_dir = _settings(c, recipients, build_dir)
    started = time.perf_counter()
    try:
        report = build_letters(recipients, build_dir, jobs=int(jobs or c.config.letterbatch.jobs) or None,
                               only=only.split(",") if only else None, force=force, medium=for_,
                               progress=_progress(started) if sys.stderr.isatty() else None)
    except (LoadError, TexMissing, RuntimeError, ValueError) as exc:
        raise Exit(f"{exc}\nNothing was built.", code=2)
    for warning in report.warnings:
        print(warning, file=sys.stderr)
    # every letter when there are few; when there are many, only those that need attention
    shown = [o for o in report.outcomes if len(report.outcomes) <= 30 or o.status not in ("built", "up to date")]
    width = max((len(o.recipient) for o in shown), default=0)
    for o in shown:
        timing = f"{o.seconds:5.2f} s" if o.seconds else ""
        print(f"  {o.recipient:<{width}}  {o.status:<10} {timing}  {o.pdf or ''}")
        for line in o.message.splitlines():
            print(f"      {line}")
    built = sum(o.status == "built" for o in report.outcomes)
    fresh = sum(o.status == "up to date" for o in report.outcomes)
    summary = (f"{built} built, {fresh} up to date, {len(report.failed)} failed "
               f"in {time.perf_counter() - started:.1f} s")
    if report.failed:
        raise Exit(f"{summary}: {', '.join(o.recipient for o in report.failed)}", code=1)
    print(summary)
    checked = [o.recipient for o in report.outcomes if o.status == "built"]
    if checked:  # letters up to date were checked when they were built
        print("preflight:")
        _preflight(recipients, build_dir, for_, checked)


def _progress(started):
    """A one-line progress report on the terminal: count, letter, time left."""
    def report(outcome, done, total):
        elapsed = time.perf_counter() - started
        left = elapsed / done * (total - done)
        end = "\n" if done == total else ""
        print(f"\r  [{done}/{total}] {outcome.recipient:<24.24} about {left:4.0f} s left", end=end,
              file=sys.stderr, flush=True)
    return report


def _preflight(recipients, build_dir, medium="print", only=None):
    results = check_letters(recipients, build_dir, medium, only)
    for result in results:
        print(f"  {result.line()}")
    failing = [r.name for r in results if r.errors]
    if failing:
        raise Exit(f"preflight found errors in: {', '.join(failing)}", code=1)


@task(help={**BATCH_HELP, **MEDIUM_HELP})
def check(c, recipients=None, build_dir=None, for_="print"):
    """Preflight every letter: A4, embedded fonts, overfull lines, address in window, manifest."""
    recipients, build_dir = _settings(c, recipients, build_dir)
    try:
        _preflight(recipients, build_dir, for_)
    except (LoadError, TexMissing) as exc:
        raise Exit(str(exc), code=2)


@task(help={
    **BATCH_HELP,
    "output": "the bundle's path (default: build/bundle.pdf)",
    "cover": "start with a cover sheet listing every letter (default; --no-cover leaves it out)",
    "duplex": "pad each document with a blank page so every letter starts on a front side",
    "signature-fields": "add an empty signature field on each letter's signature block",
})
def merge(c, recipients=None, build_dir=None, output=None, cover=True, duplex=False,
          signature_fields=False):
    """Merge every letter, in YAML order, into build/bundle.pdf (refuses if any is missing or stale)."""
    recipients, build_dir = _settings(c, recipients, build_dir)
    try:
        report = merge_letters(recipients, build_dir, output, cover=cover, duplex=duplex,
                               signature_fields=signature_fields)
    except (LoadError, MergeRefused, TexMissing, RuntimeError) as exc:
        raise Exit(str(exc), code=1)
    extras = [f"{report.cover_pages}-page cover"] if report.cover_pages else []
    extras += [f"{report.blank_pages} blank pages for duplex"] if duplex else []
    print(f"{report.path}: {report.letters} letters, {report.pages} pages"
          + (f" ({', '.join(extras)})" if extras else "")
          + f"; {report.size / 1024:.0f} KiB, against {report.inputs_size / 1024:.0f} KiB"
          " for the letters on their own (shared fonts and objects stored once)")


@task(help={
    "p12": "PKCS#12 file (.p12/.pfx) holding the signing key and certificate",
    "bundle": "the PDF to sign (default: build/bundle.pdf)",
    "output": "where the signed copy goes (default: build/bundle-signed.pdf)",
    "reason": "the reason recorded in the signature",
})
def sign(c, p12, bundle=None, output=None, reason="Approved for dispatch"):
    """Sign the bundle digitally (PAdES); password from $LETTERBATCH_P12_PASSWORD or a prompt."""
    build_dir = Path(c.config.letterbatch.build_dir)
    bundle = Path(bundle or build_dir / "bundle.pdf")
    output = Path(output or bundle.with_name(bundle.stem + "-signed.pdf"))
    if not bundle.exists():
        raise Exit(f"{bundle} does not exist: run `invoke build merge` first", code=1)
    password = os.environ.get("LETTERBATCH_P12_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise Exit("set LETTERBATCH_P12_PASSWORD (no terminal to ask for the password)", code=2)
        password = getpass.getpass(f"Password for {p12}: ")
    try:
        signed = sign_pdf(bundle, p12, password.encode(), output, reason=reason)
    except (OSError, ValueError) as exc:
        raise Exit(f"could not sign: {exc}", code=1)
    print(f"signed: {signed}")


@task(help={**BATCH_HELP, **MEDIUM_HELP})
def status(c, recipients=None, build_dir=None, for_="print"):
    """List every recipient: up to date, stale (and why), failed (first error), never built."""
    recipients, build_dir = _settings(c, recipients, build_dir)
    try:
        states = letter_states(recipients, build_dir, for_)
    except (LoadError, TexMissing) as exc:
        raise Exit(str(exc), code=2)
    width = max(len(s.recipient) for s in states)
    for s in states:
        print(f"  {s.recipient:<{width}}  {s.state:<11} {s.detail}".rstrip())
    counts = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    print(", ".join(f"{n} {state}" for state, n in counts.items()))


@task(help={"recipients": BATCH_HELP["recipients"], "only": "comma-separated recipient ids: just these"})
def diff(c, recipients=None, only=None):
    """Show, per recipient, what differs from the shared letter (to review only what is personal)."""
    recipients, _ = _settings(c, recipients, None)
    try:
        loaded = load(recipients)
    except LoadError as exc:
        raise Exit(str(exc), code=2)
    wanted = only.split(",") if only else None
    for recipient in loaded.batch.recipients:
        if wanted is None or recipient.id in wanted:
            print(recipient.id)
            for line in personal(loaded.batch, recipient):
                print(f"  {line}")
            print()


@task(help={
    "letters": "how many synthetic letters (default 500)",
    "jobs": "parallel workers for the in-process stages (default: one per core)",
    "baseline-sample": "raw pdflatex is timed on at most this many letters and scaled up (0: all)",
    "repeat": "run each command this many times and report medians (default 1)",
    "engine-letters": "batch sizes to compare the merge engines at (default 500,1000; '' skips)",
    "stages": "also time each stage inside one process (default; --no-stages for a very large N)",
    "web": "also time web copies against print (default; --no-web skips)",
})
def bench(c, letters=500, jobs=0, baseline_sample=60, repeat=1, engine_letters="500,1000", stages=True, web=True):
    """Benchmark N synthetic letters: the whole command as a user runs it, beside each stage."""
    import shlex

    command = [sys.executable, "benchmarks/bench.py", "--letters", str(int(letters)), "--jobs", str(int(jobs)),
               "--baseline-sample", str(int(baseline_sample)), "--repeat", str(int(repeat)),
               "--engine-letters", engine_letters]
    command += [] if stages else ["--no-stages"]
    command += [] if web else ["--no-web"]
    c.run(shlex.join(command), pty=False)


@task
def schema(c):
    """Write recipients.schema.json (JSON Schema for editors) from the builder's models."""
    Path(SCHEMA_FILE).write_text(json_schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


@task(help={"build-dir": "the folder to remove (default: build/)"})
def clean(c, build_dir=None):
    """Remove everything the build made (the build/ folder)."""
    target = Path(build_dir or c.config.letterbatch.build_dir)
    if target.exists():
        shutil.rmtree(target)
        print(f"removed {target}")


@task(help={"k": "only tests matching this pytest -k expression"})
def test(c, k=None):
    """Run the test suite (real pdflatex; about half a minute)."""
    command = f"{sys.executable} -m pytest -q" + (f" -k '{k}'" if k else "")
    c.run(command, pty=False)


ns = Collection(build, status, check, diff, merge, sign, bench, schema, clean, test)
ns.configure({"letterbatch": {"recipients": "recipients.yaml", "build_dir": "build", "jobs": 0}})
