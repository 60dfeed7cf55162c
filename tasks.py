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
from builder.check import CODES as FINDING_CODES, check as check_letters
from builder.compile import TexMissing
from builder.diff import personal
from builder.load import LoadError, load
from builder.merge import MergeRefused, merge as merge_letters
from builder.ready import finding_text
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
    jobs = _count("--jobs", jobs or c.config.letterbatch.jobs)
    try:
        report = build_letters(recipients, build_dir, jobs=jobs or None,
                               only=only.split(",") if only else None, force=force, medium=for_,
                               progress=_progress(started) if sys.stderr.isatty() else None)
    except (LoadError, TexMissing, RuntimeError, ValueError) as exc:
        raise Exit(f"{exc}\nNothing was built.", code=2)
    except OSError as exc:
        raise Exit(f"could not write in {build_dir}: {exc.strerror or exc} ({exc.filename or build_dir}); "
                   "free some space or make the folder writable, then build again. "
                   "Letters built before are kept.", code=2)
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
    # every letter's stored preflight, on every build (not only the first)
    flagged = [o for o in report.outcomes if o.findings]
    if flagged:
        print("preflight:")
        for o in flagged:
            for finding in o.findings:
                note = " (accepted)" if finding.get("code") in o.accepted else ""
                print(f"  {o.recipient}: {finding_text(finding)}{note}")
    if report.failed:
        raise Exit(f"{summary}: {', '.join(o.recipient for o in report.failed)}", code=1)
    print(summary)
    if report.not_ready:
        raise Exit(f"preflight found errors in: {', '.join(o.recipient for o in report.not_ready)} "
                   "(not ready: merge refuses them until fixed, or accepted with "
                   "`invoke merge --accept <id>:<code>`)", code=1)


def _progress(started):
    """A one-line progress report on the terminal: count, letter, time left."""
    def report(outcome, done, total):
        elapsed = time.perf_counter() - started
        left = elapsed / done * (total - done)
        end = "\n" if done == total else ""
        print(f"\r  [{done}/{total}] {outcome.recipient:<24.24} about {left:4.0f} s left", end=end,
              file=sys.stderr, flush=True)
    return report


def _count(flag, value):
    """A whole number of at least 0 from the command line, or a one-line error."""
    try:
        number = int(value or 0)
        if number < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise Exit(f"{flag} must be a whole number (0 or more), not {value!r}", code=2) from None
    return number


def _preflight(recipients, build_dir, medium="print", only=None):
    results = check_letters(recipients, build_dir, medium, only)
    for result in results:
        print(f"  {result.line()}")
    failing = [r.name for r in results if not r.ready]
    if failing:
        raise Exit(f"not ready: {', '.join(failing)}", code=1)


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
    "accept": "accept preflight findings on purpose, recorded in the manifest and on the cover sheet: "
              "id:code[,id:code...] (for example essex:window)",
})
def merge(c, recipients=None, build_dir=None, output=None, cover=True, duplex=False,
          signature_fields=False, accept=None):
    """Merge every letter, in YAML order, into build/bundle.pdf (refuses any letter that is not ready)."""
    recipients, build_dir = _settings(c, recipients, build_dir)
    accepted = {}
    for item in (accept or "").split(","):
        if item.strip():
            rid, _, code = item.strip().partition(":")
            if not code or code not in FINDING_CODES:
                raise Exit(f"--accept {item.strip()!r}: write id:code, the code one of "
                           f"{', '.join(FINDING_CODES)}", code=2)
            accepted.setdefault(rid, []).append(code)
    try:
        report = merge_letters(recipients, build_dir, output, cover=cover, duplex=duplex,
                               signature_fields=signature_fields, accept=accepted)
    except (LoadError, MergeRefused, TexMissing, RuntimeError) as exc:
        raise Exit(str(exc), code=1)
    except OSError as exc:
        raise Exit(f"could not write the bundle: {exc.strerror or exc} ({exc.filename or build_dir}); "
                   "the previous bundle is unchanged", code=2)
    extras = [f"{report.cover_pages}-page cover"] if report.cover_pages else []
    extras += [f"{report.blank_pages} blank pages for duplex"] if duplex else []
    saved = report.inputs_size - report.size
    print(f"{report.path}: {report.letters} letters, {report.pages} pages"
          + (f" ({', '.join(extras)})" if extras else "")
          + f"; {report.size / 1024:.0f} KiB; the letters' own files add up to "
          f"{report.inputs_size / 1024:.0f} KiB"
          + (f" ({saved / 1024:.0f} KiB saved: each font and letterhead stored once)" if saved > 0 else ""))
    for rid, codes in (report.accepted or {}).items():
        print(f"  accepted on the record: {rid}: {', '.join(codes)}")


@task(help={
    **BATCH_HELP,
    "p12": "PKCS#12 file (.p12/.pfx) holding the signing key and certificate",
    "bundle": "the PDF to sign (default: build/bundle.pdf)",
    "output": "where the signed copy goes (default: build/bundle-signed.pdf)",
    "reason": "the reason recorded in the signature",
})
def sign(c, p12, bundle=None, output=None, reason="Approved for dispatch", recipients=None, build_dir=None):
    """Sign the bundle digitally (PAdES); password from $LETTERBATCH_P12_PASSWORD or a prompt."""
    recipients, build_dir = _settings(c, recipients, build_dir)
    bundle = Path(bundle or Path(build_dir) / "bundle.pdf")
    output = Path(output or bundle.with_name(bundle.stem + "-signed.pdf"))
    if not bundle.exists():
        raise Exit(f"{bundle} does not exist: run `invoke build merge` first", code=1)
    try:  # only a ready bundle is signed: the file merge wrote, holding the current ready letters
        state = bundle_readiness(recipients, build_dir, bundle)
    except (LoadError, TexMissing) as exc:
        raise Exit(str(exc), code=2)
    if not state.ready:
        raise Exit(f"not signing {bundle}: {state.state}: {state.reason}", code=1)
    password = os.environ.get("LETTERBATCH_P12_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise Exit("set LETTERBATCH_P12_PASSWORD (no terminal to ask for the password)", code=2)
        password = getpass.getpass(f"Password for {p12}: ")
    try:
        signed = sign_pdf(bundle, p12, password.encode(), output, reason=reason)
    except (OSError, ValueError) as exc:
        raise Exit(f"could not sign: {exc}", code=2)
    except Exception as exc:  # pyHanko's own errors (a wrong password among them)
        raise Exit(f"could not sign with {p12}: {exc} (wrong password, or not a PKCS#12 file with a key?)",
                   code=2)
    print(f"signed: {signed}")


def bundle_readiness(recipients, build_dir, bundle):
    from builder.build import prepare
    from builder.manifest import Manifest
    from builder.ready import bundle_state

    prepared = prepare(recipients, build_dir)
    return bundle_state(prepared, Manifest.read(prepared.layout.root), path=Path(bundle))


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
        print(f"  {s.recipient:<{width}}  {s.state:<11} {s.reason}".rstrip())
        for finding in s.findings:
            note = " (accepted)" if finding.get("code") in s.accepted else ""
            print(f"  {'':<{width}}    {finding_text(finding)}{note}")
    counts = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    if any(not s.ready for s in states):
        raise Exit(summary, code=1)
    print(summary)


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
    "letters": "how many synthetic letters (default 100)",
    "jobs": "parallel workers (default: one per core)",
    "baseline-sample": "raw pdflatex is timed on at most this many letters and scaled up (0: all)",
})
def bench(c, letters=100, jobs=0, baseline_sample=60):
    """Benchmark a synthetic batch of N letters against raw pdflatex; prints figures."""
    c.run(f"{sys.executable} benchmarks/bench.py --letters {int(letters)} --jobs {int(jobs)} "
          f"--baseline-sample {int(baseline_sample)}", pty=False)


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
