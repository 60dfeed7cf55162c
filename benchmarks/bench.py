"""Benchmark: what a user waits for, beside what each stage costs.

    python benchmarks/bench.py --letters 500      (or: letterbatch bench --letters 500)

Generates N synthetic recipients (distinct text, the real letterhead and shared
letter) in a temporary folder, then measures:

- the whole command as a user runs it: ``letterbatch build merge`` in a
  child process, timed from outside (start-up, load, compile, preflight, merge),
  with the child's peak memory (``os.wait4``); cold, again with nothing
  changed, and after editing one recipient;
- ``letterbatch status`` on the bundled five letters, as a command;
- one plain pdflatex pass per letter, one after another, over the same ``.tex``
  files, in the same run (sampled and scaled up when N is large: the line
  says so), and the cold command's speed-up over it;
- the stages inside one Python process: load, load + compose, build (cold),
  preflight, merge, rebuilds, and web copies against print;
- the merge engines at ``--engine-letters`` (500 and 1000 by default): the
  project's merge (pikepdf; the first after the build, with the font digests
  the build kept, and again; then from nothing, without them) against pypdf's
  best (pages cloned from the letters, ``compress_identical_objects``), time
  and size;
- the bundle's size against its pages' own content plus one copy of each font
  program and image;
- loading ``--table-rows`` recipients (10,000 by default; 0 skips) written
  three ways, the same rows each: YAML, a UTF-8 CSV and an ``.xlsx`` (openpyxl's
  write-only mode: inline strings, a phone number in each row formatted
  ``00000000000``): ``load()`` in a fresh process each time, its CPU time
  (``time.process_time()``, imports it makes included) and wall time.

Command figures are the median of ``--repeat`` runs. Each goal (issue 14) is
printed beside its figure, "met" or "not met"; nothing is asserted.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from builder import build as build_module  # noqa: E402
from builder.compile import PDFLATEX, tex_environment, tex_version  # noqa: E402

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
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipients.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


TABLE_HEADERS = ["id", "name", "role", "address 1", "address 2", "address 3", "salutation", "text.highlight"]


def table_batches(folder: Path, rows: int) -> dict[str, Path]:
    """The same ``rows`` recipients as YAML, CSV and .xlsx, each with the
    sample's shared letter: what issue 10's "10,000 rows in under 2 s" is about."""
    import csv

    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((ROOT / "tests" / "sample" / "recipients.yaml").read_text(encoding="utf-8"))
    table = [[f"r{n:05d}", f"Recipient {n:05d}", f"Commissioner for Area {n}", f"{n} High Street", "Town",
              2035130000 + n, f"Dear Recipient {n:05d},", f"Note {n}: the mentoring scheme."]
             for n in range(1, rows + 1)]
    data["recipients"] = [
        {"id": row[0], "name": row[1], "role": row[2], "address": [row[3], row[4], f"{row[5]:011d}"],
         "salutation": row[6], "text": {"highlight": row[7]}} for row in table]
    batches = {"YAML": folder / "recipients.yaml"}
    batches["YAML"].write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    data["recipients"] = {"from": "contacts.csv"}
    with open(folder / "contacts.csv", "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(TABLE_HEADERS)
        writer.writerows(row[:5] + [f"{row[5]:011d}"] + row[6:] for row in table)
    batches["CSV"] = folder / "from-csv.yaml"
    batches["CSV"].write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Contacts")
    sheet.append(TABLE_HEADERS)
    for row in table:
        phone = WriteOnlyCell(sheet, value=row[5])
        phone.number_format = "00000000000"
        sheet.append(row[:5] + [phone] + row[6:])
    book.save(folder / "contacts.xlsx")
    data["recipients"] = {"from": "contacts.xlsx"}
    batches["XLSX"] = folder / "from-xlsx.yaml"
    batches["XLSX"].write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return batches


LOAD_ONCE = """import sys, time
sys.path.insert(0, sys.argv[1])
from builder.load import load
cpu, wall = time.process_time(), time.perf_counter()
loaded = load(sys.argv[2])
print(time.process_time() - cpu, time.perf_counter() - wall, len(loaded.batch.recipients))
"""


def table_loads(folder: Path, rows: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """``load()`` of each of ``table_batches`` in a fresh process (its imports
    count, as for a user), ``repeat`` times: CPU and wall seconds."""
    found = {}
    for kind, path in table_batches(folder, rows).items():
        found[kind] = {"cpu": [], "wall": []}
        for _ in range(repeat):
            out = subprocess.run([sys.executable, "-c", LOAD_ONCE, str(ROOT), str(path)], cwd=folder,
                                 capture_output=True, text=True)
            if out.returncode != 0 or not out.stdout.strip():
                raise SystemExit(f"bench: loading {path.name} failed:\n{out.stderr[-2000:]}")
            cpu, wall, loaded = out.stdout.split()
            if int(loaded) != rows:
                raise SystemExit(f"bench: {path.name} loaded {loaded} of {rows} recipients")
            found[kind]["cpu"].append(float(cpu))
            found[kind]["wall"].append(float(wall))
    return found


def edit_one(recipients_yaml: Path) -> None:
    """Change the first recipient's salutation: one letter to rebuild."""
    text = recipients_yaml.read_text(encoding="utf-8")
    recipients_yaml.write_text(text.replace("Dear Recipient 00001,", "Dear Recipient One,", 1), encoding="utf-8")


# ---- the whole command, as a user runs it -----------------------------------

# The `letterbatch` console command of this checkout (the installed script
# may point at another copy): the same lines as the script pip writes.
LETTERBATCH = [sys.executable, "-c", "import sys; from builder.cli import main; sys.argv[0] = 'letterbatch'; "
               "sys.exit(main())"]


def user_command(recipients: Path, build_dir: Path, *tasks: str) -> list[str]:
    """``letterbatch TASK --recipients .. --build-dir .. [TASK ...]`` as a user types it."""
    argv = list(LETTERBATCH)
    for task in tasks:
        argv += [*task.split(), "--recipients", str(recipients), "--build-dir", str(build_dir)]
    return argv


# A stock machine lets Python keep compiled modules (__pycache__): the second
# command of a user starts from them. Some environments (CI, containers) set
# PYTHONDONTWRITEBYTECODE, which costs each command ~0.1 s of compiling the
# builder again; the commands here run as on a stock machine.
USER_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run_command(argv: list[str], log: Path) -> tuple[float, float]:
    """Seconds from start to exit, and the child's peak memory in MiB (its
    largest process: ru_maxrss of what ``os.wait4`` reports for it)."""
    with open(log, "ab") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env=USER_ENV)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"bench: {' '.join(argv[3:5])} ... exited {child.returncode}:\n{tail}")
    return seconds, usage.ru_maxrss / 1024


def command_runs(folder: Path, letters: int, repeat: int, cold_only: bool = False) -> dict[str, list[float]]:
    """``letterbatch build merge`` cold, with nothing changed, and with one recipient
    edited; each ``repeat`` times on a fresh copy of the batch."""
    runs: dict[str, list[float]] = {"cold": [], "peak": [], "nothing": [], "edited": []}
    for n in range(repeat):
        here = folder / f"command-{n}"
        source, out = synthetic_batch(here, letters), here / "build"
        argv = user_command(source, out, "build", "merge")
        seconds, peak = run_command(argv, here / "output.txt")
        runs["cold"].append(seconds)
        runs["peak"].append(peak)
        if cold_only:
            continue
        runs["nothing"].append(run_command(argv, here / "output.txt")[0])
        edit_one(source)
        runs["edited"].append(run_command(argv, here / "output.txt")[0])
    return runs


def status_runs(folder: Path, repeat: int) -> list[float]:
    """``letterbatch status`` on the bundled five letters, built beforehand."""
    here = folder / "five"
    here.mkdir()
    source = here / "recipients.yaml"
    shutil.copy(ROOT / "tests" / "sample" / "recipients.yaml", source)
    build_module.build(source, here / "build")
    argv = user_command(source, here / "build", "status")
    run_command(argv, here / "output.txt")  # warm the file cache as a user's second command would
    return [run_command(argv, here / "output.txt")[0] for _ in range(max(3, repeat))]


# ---- the baseline ------------------------------------------------------------

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


# ---- stages inside one process -------------------------------------------------

def timed(label, results, fn, *args, **kw):
    started = time.perf_counter()
    value = fn(*args, **kw)
    results[label] = time.perf_counter() - started
    return value


def stage_runs(folder: Path, letters: int, jobs: int | None, web: bool) -> tuple[dict[str, float], object]:
    from builder.check import check
    from builder.load import load
    from builder.merge import merge

    here = folder / "stages"
    source, out = synthetic_batch(here, letters), here / "build"
    t: dict[str, float] = {}
    # one process composes a batch once (load and compose keep what they did):
    # each stage below is timed without the ones before it
    timed("load", t, load, source)
    timed("compose", t, build_module.prepare, source, out)
    report = timed("build (cold)", t, build_module.build, source, out, jobs=jobs)
    if report.failed:
        raise SystemExit(f"bench: {len(report.failed)} letters failed: {report.failed[0].message}")
    timed("preflight", t, check, source, out)
    bundle = timed("merge", t, merge, source, out)
    timed("rebuild, no change", t, build_module.build, source, out, jobs=jobs)
    edit_one(source)
    timed("rebuild, one edited", t, build_module.build, source, out, jobs=jobs)
    if web:
        timed("web copies (cold)", t, build_module.build, source, out, jobs=jobs, medium="web")
    return t, bundle


# ---- merge engines ------------------------------------------------------------

def built_batch(folder: Path, letters: int, jobs: int | None) -> tuple[Path, Path]:
    here = folder / f"engines-{letters}"
    source, out = synthetic_batch(here, letters), here / "build"
    report = build_module.build(source, out, jobs=jobs)
    if report.failed:
        raise SystemExit(f"bench: {len(report.failed)} letters failed: {report.failed[0].message}")
    return source, out


def pypdf_merge(build_dir: Path) -> bytes:
    """pypdf's best bundle of the built letters, in order: each letter's pages
    cloned (``add_page``) from the letter's own file, as the project's merge
    takes them, its link targets, a bookmark and page labels per letter, and
    identical objects stored once (``compress_identical_objects``).

    ``PdfWriter.append`` would do the same, but it walks every named
    destination of the source for each letter appended (quadratic: minutes for
    500 letters taken from 250-letter batch PDFs), so the link targets are
    carried here by hand, into one sorted /Dests array."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject

    letters = json.loads((build_dir / "manifest.json").read_text(encoding="utf-8"))["letters"]
    writer, readers, names, start = PdfWriter(), {}, [], 0
    for rid in sorted(letters):
        entry = letters[rid]
        path, first = build_dir / entry["file"], 0
        if path not in readers:
            reader = PdfReader(path)
            targets: dict[int, list] = {}
            for name, where in _name_tree(reader.root_object["/Names"]["/Dests"]):
                where = where["/D"] if isinstance(where, DictionaryObject) else where
                targets.setdefault(where[0].idnum, []).append((name, where))
            readers[path] = reader, targets
        reader, targets = readers[path]
        pages = entry["pages"]
        for index in range(first, first + pages):
            page = reader.pages[index]
            copy = writer.add_page(page)
            for name, where in targets.get(page.indirect_reference.idnum, ()):
                if f".{rid}." in name:
                    names.append((name, ArrayObject([copy.indirect_reference, *where[1:]])))
        writer.add_outline_item(title=entry["recipient"], page_number=start)
        writer.set_page_label(start, start + pages - 1, style="/D", prefix=f"{rid} ", start=1)
        start += pages
    names.sort(key=lambda item: str(item[0]))
    writer.root_object[NameObject("/Names")] = DictionaryObject({NameObject("/Dests"): DictionaryObject(
        {NameObject("/Names"): ArrayObject([x for pair in names for x in pair])})})
    writer.page_mode = "/UseOutlines"
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _name_tree(node):
    """(name, value) pairs of a PDF name tree, read with pypdf."""
    node = node.get_object()
    names = node.get("/Names", [])
    for i in range(0, len(names), 2):
        yield names[i], names[i + 1].get_object()
    for kid in node.get("/Kids", []):
        yield from _name_tree(kid)


def engine_runs(folder: Path, sizes: list[int], jobs: int | None, reuse: dict[int, tuple[Path, Path]]):
    """For each size: the project's merge (with its cover, as a user runs it;
    and without), and pypdf's best merge of the same letters: seconds, bytes."""
    from builder.build import Layout
    from builder.merge import merge

    rows = []
    for size in sizes:
        source, out = reuse.get(size) or built_batch(folder, size, jobs)
        kept = Layout.of(out).digests  # the digests of the letters' fonts, kept by the build (and each merge)
        started = time.perf_counter()
        with_cover = merge(source, out, folder / f"bundle-{size}.pdf")  # a user's first merge after the build
        merge_s = time.perf_counter() - started
        started = time.perf_counter()
        merge(source, out, folder / f"bundle-{size}-again.pdf")
        again_s = time.perf_counter() - started
        kept.unlink(missing_ok=True)  # pypdf has no digests: the engines compared from nothing
        started = time.perf_counter()
        bare = merge(source, out, folder / f"bundle-{size}-nocover.pdf", cover=False)
        bare_s = time.perf_counter() - started
        started = time.perf_counter()
        data = pypdf_merge(out)
        pypdf_s = time.perf_counter() - started
        rows.append({"letters": size, "merge": merge_s, "again": again_s, "merge size": with_cover.size,
                     "pikepdf": bare_s, "pikepdf size": bare.size, "pypdf": pypdf_s, "pypdf size": len(data)})
    return rows


# ---- what a bundle holds ---------------------------------------------------------

def bundle_composition(path: Path) -> dict[str, int]:
    """The bundle's size against what it must hold: every page's own content
    (its content streams and form XObjects, each distinct one once), and one
    copy of each distinct font program and image; sizes as stored."""
    import pikepdf

    def raw(stream) -> bytes:
        return stream.read_raw_bytes()

    content: dict[bytes, int] = {}
    fonts: dict[bytes, int] = {}
    images: dict[bytes, int] = {}
    visited: set = set()

    def add(table: dict, stream) -> None:
        data = raw(stream)
        table[hashlib.sha256(data).digest()] = len(data)

    def resources(res) -> None:
        if res is None or (res.is_indirect and res.objgen in visited):
            return
        if res.is_indirect:
            visited.add(res.objgen)
        for font in (res.get("/Font") or {}).values():
            if font.is_indirect and font.objgen in visited:
                continue
            visited.add(font.objgen)
            if font.get("/Subtype") == "/Type0":
                font = font.DescendantFonts[0]
            descriptor = font.get("/FontDescriptor") or {}
            for key in ("/FontFile", "/FontFile2", "/FontFile3"):
                if key in descriptor:
                    add(fonts, descriptor[key])
            if font.get("/Subtype") == "/Type3":
                for glyph in (font.get("/CharProcs") or {}).values():
                    add(content, glyph)
                resources(font.get("/Resources"))
        for xobject in (res.get("/XObject") or {}).values():
            if xobject.objgen in visited:
                continue
            visited.add(xobject.objgen)
            if xobject.get("/Subtype") == "/Image":
                add(images, xobject)
                if "/SMask" in xobject:
                    add(images, xobject.SMask)
            else:
                add(content, xobject)
                resources(xobject.get("/Resources"))

    from builder.split import digest

    links = 0
    with pikepdf.open(path) as pdf:
        for page in pdf.pages:
            contents = page.obj.get("/Contents")
            for stream in (contents if isinstance(contents, pikepdf.Array) else [contents]):
                if stream is not None:
                    add(content, stream)
            resources(page.obj.get("/Resources"))
            links += len(page.obj.get("/Annots") or [])
        # "nothing twice": the objects that weigh (content streams, fonts and what they
        # hold, forms, images) equal by value to another one. Pages and link annotations
        # are not counted: the PDF standard lets an annotation belong to one page only,
        # so the same link at the same place on two letters' pages is two objects by rule
        memo: dict = {}
        by_value: dict[bytes, set] = {}

        def count(obj) -> None:
            if isinstance(obj, pikepdf.Object) and obj.is_indirect:
                by_value.setdefault(digest(pdf, obj, memo), set()).add(obj.objgen)

        def weigh(res) -> None:
            for table in ("/Font", "/XObject"):
                for item in (res.get(table) or {}).values() if res is not None else ():
                    if item.objgen in seen_objects:
                        continue
                    seen_objects.add(item.objgen)
                    count(item)
                    for key in ("/FontDescriptor", "/Widths", "/Encoding", "/ToUnicode"):
                        count(item.get(key))
                    for key in ("/FontFile", "/FontFile2", "/FontFile3"):
                        count((item.get("/FontDescriptor") or {}).get(key))
                    if item.get("/Subtype") == "/Form":
                        weigh(item.get("/Resources"))

        seen_objects: set = set()
        for page in pdf.pages:
            contents = page.obj.get("/Contents")
            for stream in (contents if isinstance(contents, pikepdf.Array) else [contents]):
                count(stream)
            weigh(page.obj.get("/Resources"))
        pages = len(pdf.pages)
    sizes = {"content": sum(content.values()), "fonts": sum(fonts.values()), "images": sum(images.values())}
    sizes["needed"] = sum(sizes.values())
    sizes["bundle"] = path.stat().st_size
    sizes["font programs"], sizes["image count"] = len(fonts), len(images)
    sizes["pages"], sizes["links"] = pages, links
    sizes["twins"] = sum(len(objects) - 1 for objects in by_value.values())
    return sizes


# ---- report ---------------------------------------------------------------------

def machine() -> str:
    """The CPU, its cores, the memory, the load (the machine may be shared), TeX."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
               "unknown CPU")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, load average {os.getloadavg()[1]:.1f} over the last 5 minutes; "
            f"Python {sys.version.split()[0]}; {tex_version()}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    return f" (median of {len(values)}: {min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""


def goal(met: bool, text: str) -> str:
    return f"goal {text}: {'met' if met else 'not met'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=0, help="workers for the stages (default: one per core)")
    parser.add_argument("--baseline-sample", type=int, default=60,
                        help="time raw pdflatex on at most this many letters and scale up (0: all)")
    parser.add_argument("--repeat", type=int, default=1, help="run each command this many times; medians")
    parser.add_argument("--engine-letters", default="500,1000",
                        help="batch sizes to compare merge engines at, comma-separated ('' skips)")
    parser.add_argument("--no-stages", action="store_true",
                        help="only the commands and the baseline (for a very large N)")
    parser.add_argument("--cold-only", action="store_true",
                        help="only the cold command: its time and peak memory (for a very large N)")
    parser.add_argument("--no-web", action="store_true", help="skip web copies")
    parser.add_argument("--table-rows", type=int, default=10000,
                        help="recipients for the loading figures, YAML against CSV and .xlsx (0 skips)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    n, jobs = args.letters, args.jobs or None
    folder = Path(tempfile.mkdtemp(prefix="letterbatch-bench-"))
    try:
        commands = command_runs(folder, n, max(1, args.repeat), args.cold_only)
        five = status_runs(folder, args.repeat)
        tex_files = sorted((folder / "command-0" / "build" / "tex").glob("r*.tex"))
        sample = tex_files if not args.baseline_sample else tex_files[: args.baseline_sample]
        raw = raw_pdflatex(sample, folder / "raw") * len(tex_files) / max(1, len(sample))
        scaled = "" if len(sample) == len(tex_files) else f" (timed on {len(sample)}, scaled to {len(tex_files)})"
        stages, bundle = ({}, None) if args.no_stages else stage_runs(folder, n, jobs, not args.no_web)
        self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sizes = [int(s) for s in args.engine_letters.split(",") if s.strip()]
        reuse = {n: (folder / "command-0" / "recipients.yaml", folder / "command-0" / "build")}
        engines = engine_runs(folder, sizes, jobs, reuse)
        held = bundle_composition(folder / "command-0" / "build" / "bundle.pdf")
        loads = table_loads(folder / "table", args.table_rows, max(1, args.repeat)) if args.table_rows else {}

        cold, peak = median(commands["cold"]), max(commands["peak"])
        nothing, edited = median(commands["nothing"]), median(commands["edited"])
        status = median(five)
        print(f"letterbatch benchmark: {n} letters, {time.strftime('%Y-%m-%d %H:%M %Z')}; {machine()}")
        print("The whole command, as a user runs it (`letterbatch build merge`, timed from outside"
              + ("; Python's bytecode cache allowed, as on a stock machine, though this environment sets "
                 "PYTHONDONTWRITEBYTECODE" if "PYTHONDONTWRITEBYTECODE" in os.environ else "") + "):")
        print(f"  {'build + merge, cold':<28} {cold:8.2f} s {cold / n * 1000:8.1f} ms/letter"
              f"{spread(commands['cold'])}")
        print(f"  {'raw pdflatex, 1 pass each':<28} {raw:8.2f} s {raw / n * 1000:8.1f} ms/letter{scaled}")
        print(f"  speed-up over raw sequential pdflatex: {raw / cold:.1f}x   {goal(raw / cold >= 30, '>= 30x')}")
        if not args.cold_only:
            print(f"  {'nothing changed':<28} {nothing:8.2f} s{spread(commands['nothing'])}   "
                  + (goal(nothing < 0.5, '< 0.5 s at 500') if n >= 500 else ""))
            print(f"  {'one recipient edited':<28} {edited:8.2f} s{spread(commands['edited'])}   "
                  + (goal(edited < 1, '< 1 s at 500') if n >= 500 else ""))
        print(f"  peak memory (the command): {peak:.0f} MiB   "
              + (goal(peak < 1024, '< 1 GB at 10,000') if n >= 10000 else ""))
        print(f"  {'status, five letters':<28} {status:8.2f} s{spread(five)}   {goal(status < 0.3, '< 0.3 s')}")
        if stages:
            print("Stages, inside one Python process:")
            for label, seconds in stages.items():
                per_letter = seconds / n * 1000
                print(f"  {label:<28} {seconds:8.2f} s {per_letter:8.1f} ms/letter"
                      + (f"   {goal(per_letter < 1, '< 1 ms/letter')}" if label == "preflight" else ""))
            ratio = stages.get("web copies (cold)", 0) / stages["build (cold)"]
            if "web copies (cold)" in stages:
                print(f"  web copies against print build: {ratio:.1f}x   {goal(ratio <= 2, 'within 2x')}")
            print(f"  peak memory (this process): {self_peak:.0f} MiB")
        for row in engines:
            size = row["letters"]
            print(f"Merge engines at {size} letters (the project's merge, then pypdf's best):")
            print(f"  {'merge, with cover':<28} {row['merge']:8.2f} s  {row['merge size'] / 1e6:6.2f} MB   "
                  + (goal(row['merge'] < 1.5, '< 1.5 s at 1000') if size >= 1000 else "")
                  + "  (the first after the build: its font digests kept by the build)")
            print(f"  {'again':<28} {row['again']:8.2f} s  (the cover compiled already)")
            print(f"  {'pikepdf, no cover':<28} {row['pikepdf']:8.2f} s  {row['pikepdf size'] / 1e6:6.2f} MB"
                  "  (from nothing: every letter's fonts hashed)")
            print(f"  {'pypdf, no cover':<28} {row['pypdf']:8.2f} s  {row['pypdf size'] / 1e6:6.2f} MB")
        over = held["bundle"] / held["needed"] - 1
        print(f"bundle: {held['bundle'] / 1e6:.2f} MB; its pages' own content {held['content'] / 1e6:.2f} MB "
              f"+ {held['font programs']} font programs {held['fonts'] / 1e6:.2f} MB + {held['image count']} "
              f"images {held['images'] / 1e6:.2f} MB = {held['needed'] / 1e6:.2f} MB; "
              f"{over:+.1%}   {goal(over <= 0.02, 'within 2%')}")
        print(f"  the rest ({(held['bundle'] - held['needed']) / 1e6:.2f} MB) is structure: {held['pages']} page "
              f"dictionaries, {held['links']} link annotations, named destinations, bookmarks, cross-references; "
              f"objects stored twice (equal by value): {held['twins']}   {goal(held['twins'] == 0, 'nothing twice')}")
        if bundle is not None:
            print(f"  (stages' bundle: {bundle.size / 1e6:.2f} MB, {bundle.pages} pages; letters alone "
                  f"{bundle.inputs_size / 1e6:.2f} MB)")
        if loads:
            print(f"Loading {args.table_rows:,} recipients (`load()` in a fresh process, imports included):")
            for kind, seconds in loads.items():
                cpu = median(seconds["cpu"])
                print(f"  {kind:<28} {cpu:8.2f} s CPU{spread(seconds['cpu'])}, {median(seconds['wall']):.2f} s wall"
                      + (f"   {goal(cpu < 2, '< 2 s at 10,000')}" if args.table_rows >= 10000 else ""))
        if args.keep:
            print(f"kept: {folder}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
