"""Benchmark: how fast is a batch of N letters, against raw pdflatex in the same run?

    python benchmarks/bench.py --letters 500      (or: invoke bench --letters 500)

Generates N synthetic recipients (distinct text, the real letterhead and shared
letter) in a temporary folder, then times each stage: load, compose, a cold
build, a no-change rebuild, a rebuild after editing one recipient, and merge;
and, over the same .tex files, one plain pdflatex pass per letter, one after
another (sampled and scaled up when N is large: the line says so). Prints
figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from builder import build as build_module  # noqa: E402
from builder.compile import PDFLATEX, tex_environment  # noqa: E402
from builder.load import load  # noqa: E402
from builder.merge import merge  # noqa: E402

WORDS = ("violence reduction partnership supports young people through mentoring outreach "
         "schools hospitals custody youth workers families communities prevention early "
         "intervention exploitation safeguarding county lines referral").split()


def synthetic_batch(folder: Path, letters: int, seed: int = 1) -> Path:
    """The bundled batch's shared letter with ``letters`` made-up recipients."""
    # the tests' copy of the sample letter: the project's recipients.yaml may be anything
    data = yaml.safe_load((ROOT / "tests" / "sample" / "recipients.yaml").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    recipients = []
    for n in range(1, letters + 1):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60)))
        recipients.append({
            "id": f"r{n:05d}", "name": f"Recipient {n:05d}", "role": f"Commissioner for Area {n}",
            "address": [f"{n} High Street", "Town", f"AB{n % 90 + 10} {n % 9}CD"],
            "salutation": f"Dear Recipient {n:05d},",
            "text": {"highlight": f"Having reviewed the report[^apcc-vru], I was interested in {words}."},
        })
    data["recipients"] = recipients
    path = folder / "recipients.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def timed(label, results, fn, *args, **kw):
    started = time.perf_counter()
    value = fn(*args, **kw)
    results[label] = time.perf_counter() - started
    return value


def raw_pdflatex(tex_files: list[Path], workdir: Path) -> float:
    """Seconds for one plain pdflatex pass per file, one after another."""
    env = tex_environment([build_module.LETTERHEAD], 1602590400)
    started = time.perf_counter()
    for tex in tex_files:
        out = workdir / tex.stem
        out.mkdir(parents=True, exist_ok=True)
        env["TEXINPUTS"] = f"{tex.parent.resolve()}//:" + tex_environment([build_module.LETTERHEAD], 0)["TEXINPUTS"]
        subprocess.run([PDFLATEX, "-interaction=batchmode", "-no-shell-escape", tex.name], cwd=out,
                       env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=0, help="workers (default: one per core)")
    parser.add_argument("--baseline-sample", type=int, default=60,
                        help="time raw pdflatex on at most this many letters and scale up (0: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    n = args.letters
    folder = Path(tempfile.mkdtemp(prefix="letterbatch-bench-"))
    try:
        source = synthetic_batch(folder, n)
        out = folder / "build"
        t: dict[str, float] = {}
        timed("load", t, load, source)
        timed("load + compose", t, build_module.prepare, source, out)
        report = timed("build (cold)", t, build_module.build, source, out, jobs=args.jobs or None)
        failed = report.failed
        bundle = timed("merge", t, merge, source, out)
        timed("rebuild, no change", t, build_module.build, source, out, jobs=args.jobs or None)
        edited = source.read_text(encoding="utf-8").replace("Dear Recipient 00001,", "Dear Recipient One,")
        source.write_text(edited, encoding="utf-8")
        timed("rebuild, one edited", t, build_module.build, source, out, jobs=args.jobs or None)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        tex_files = sorted((out / "tex").glob("r*.tex"))
        sample = tex_files if not args.baseline_sample else tex_files[: args.baseline_sample]
        raw = raw_pdflatex(sample, folder / "raw") * len(tex_files) / max(1, len(sample))
        scaled = "" if len(sample) == len(tex_files) else f" (timed on {len(sample)}, scaled to {n})"

        cold = t["build (cold)"] + t["merge"]
        print(f"letterbatch benchmark: {n} letters, {len(failed)} failed")
        for label, seconds in t.items():
            print(f"  {label:<22} {seconds:8.2f} s   {seconds / n * 1000:8.1f} ms/letter")
        print(f"  {'build + merge (cold)':<22} {cold:8.2f} s   {cold / n * 1000:8.1f} ms/letter")
        print(f"  {'raw pdflatex, 1 pass':<22} {raw:8.2f} s   {raw / n * 1000:8.1f} ms/letter{scaled}")
        print(f"  speed-up over raw sequential pdflatex: {raw / cold:.1f}x")
        print(f"  peak memory (this process): {peak_mib:.0f} MiB")
        print(f"  bundle: {bundle.size / 1e6:.2f} MB, {bundle.pages} pages; letters alone "
              f"{bundle.inputs_size / 1e6:.2f} MB")
        if args.keep:
            print(f"  kept: {folder}")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
