"""Compile stage: LaTeX -> PDF with pdflatex, safely.

pdflatex runs non-interactively, without shell escape, with file access
restricted (``openin_any=p``, ``openout_any=p``: no absolute paths, no ``..``,
no dotfiles), inside a private work folder, and with its dates fixed to the
letter's date so the same input gives the same bytes. ``compile_letter``
compiles one letter and moves its PDF into place only when the compile
succeeded, so no half-written or failed PDF ever stands where a good one is
expected. ``compile_batch`` compiles a document holding many letters in one
run (``split`` then cuts it into one PDF per letter).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .files import locks_for_children

PDFLATEX = "pdflatex"
MAX_PASSES = 3
TIMEOUT_SECONDS = 120

_ERROR_RE = re.compile(r"^(?P<file>[^:\n]*\.(?:tex|cls|sty|def|cfg|fd)):(?P<line>\d+): (?P<msg>.*)$", re.M)
# a line that goes on with a package's error: "(fontspec)                LuaTeX." (not an empty one)
_GOES_ON_RE = re.compile(r"^\([\w@.-]+\)\s+(?P<text>\S.*?)\s*$")
_CONTEXT_RE = re.compile(r"^l\.(?P<line>\d+) (?P<context>.*)$", re.M)
# what TeX says when a Ctrl-C (SIGINT) stops it, as an error of its own
_INTERRUPTED_RE = re.compile(r"^(?:! |[^:\n]*:\d+: )Interruption\.$", re.M)
_RERUN_RE = re.compile(r"Rerun to get|Label\(s\) may have changed|mcid--rerun")
_TAGGED_RE = re.compile(r"^Package: tagpdf ", re.M)


class TexMissing(RuntimeError):
    """pdflatex is not installed."""


class TexCannotSearch(TexMissing):
    """A folder TeX must find files in has a path kpathsea reads as its own syntax."""


# In TEXINPUTS kpathsea takes ':' and ';' (and ',' outside braces) as separators,
# braces as alternatives and $NAME as a variable; a path cannot quote them.
_KPATHSEA_SYNTAX = re.compile(r"[,;:{}]|\$(?:\{[^}]*\}?|[A-Za-z_]\w*)")


def check_searchable(folder: Path, fix: str) -> None:
    """Raise ``TexCannotSearch`` when TeX could not find files under ``folder``: a project
    in "Letters, 2021" failed every letter with "I can't find file `one.tex'"."""
    found = _KPATHSEA_SYNTAX.search(str(folder.resolve()))
    if found:
        syntax = found.group()
        meaning = "a variable" if syntax[0] == "$" else "a choice of folders" if syntax in "{}" else "a separator"
        raise TexCannotSearch(f"TeX cannot find files in {str(folder)!r}: pdflatex reads {syntax!r} in a "
                              f"folder's path as {meaning}; {fix}")


@dataclass
class TexError:
    file: str
    line: int
    message: str
    context: str = ""

    def __str__(self) -> str:
        if self.file == "pdfTeX":  # pdfTeX's own error, not at a line of TeX source
            return f"pdfTeX {self.message}"
        text = f"{self.file}:{self.line}: {self.message}"
        return text + (f" (near: {self.context.strip()})" if self.context.strip() else "")


@dataclass
class Placed:
    """Where one letter sits in a compiled document, as the class recorded it."""

    start: int  # pages before it
    pages: int
    # where the signature goes: (page from 1, x, y bottom, y top, width) in PDF
    # points, as the letterhead class measured it
    signature: tuple[int, float, float, float, float] | None = None
    # lines that run into the margin: (their text, as the log gives it, and by how many TeX points)
    overfull: list[tuple[str, float]] = field(default_factory=list)
    # what the class measured for the preflight (TeX points; y from the page's
    # top edge): marks: name -> (page, x, y) of \lb@mark (addrfirst, salutation ...)
    marks: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    # the envelope window (left, top, width, height); height 0: no window
    window: tuple[float, float, float, float] | None = None
    # baselineskip, widest address line, ascent, descent, paper height, first baseline of a page,
    # the address block's width
    measures: dict[str, float] = field(default_factory=dict)
    # the return address's type size as printed (scaled down to the window's width), in TeX points
    return_size: float | None = None
    # the recipient block's lines wider than the block (so they wrap): (line from 1, width)
    wide: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class CompileResult:
    ok: bool
    pdf: Path | None
    log: Path
    passes: int
    seconds: float
    errors: list[TexError] = field(default_factory=list)
    letters: dict[str, Placed] = field(default_factory=dict)
    # the envelope window the letterhead promises: (left, top, width, height) in
    # points from the page's top left corner
    window: tuple[float, float, float, float] | None = None
    # the page as the class set it up: "paper" (width, height) and "text_start"
    # (where later pages' text starts, below the running header), in points
    # from the top left
    layout: dict = field(default_factory=dict)
    # pdflatex was stopped from outside (Ctrl-C reaches it with the build): no fault of the letter
    interrupted: bool = False

    @property
    def first_error(self) -> str:
        return str(self.errors[0]) if self.errors else "pdflatex failed (see the log)"

    @property
    def only(self) -> Placed:
        """The one letter of a single-letter document."""
        return next(iter(self.letters.values()), Placed(0, 0))


@cache
def tex_version() -> str:
    """pdflatex's version line: part of what a PDF depends on."""
    exe = shutil.which(PDFLATEX)
    if exe is None:
        raise TexMissing(
            "pdflatex was not found: run scripts/install, which installs TeX Live (Debian: "
            "texlive-latex-base texlive-latex-recommended texlive-latex-extra lmodern texlive-lang-european).")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def tex_environment(texinputs: list[Path], epoch: int) -> dict[str, str]:
    """The environment every pdflatex run gets (kpathsea reads these first)."""
    env = dict(os.environ)
    env.update({
        # trailing ':' keeps the system tree after our folders
        "TEXINPUTS": "".join(f"{p.resolve()}//:" for p in texinputs),
        # font map files (the letterhead's lm-full.map) come from the same folders
        "TEXFONTMAPS": "".join(f"{p.resolve()}//:" for p in texinputs),
        "openin_any": "p",
        "openout_any": "p",
        "shell_escape": "f",
        # dates in the PDF (and its /ID) come from the letter, not the clock
        "SOURCE_DATE_EPOCH": str(epoch),
        "FORCE_SOURCE_DATE": "1",
        # no case-insensitive rescans of big folders for each lookup
        "texmf_casefold_search": "0",
        # log lines unwrapped, so errors and overfull text can be read back whole
        "max_print_line": "10000",
        "error_line": "254",
        "half_error_line": "238",
    })
    return env


def compile_letter(tex: Path, workdir: Path, dest: Path, env: dict[str, str]) -> CompileResult:
    """Compile ``tex`` in ``workdir``; on success move the PDF to ``dest``.

    On failure ``dest`` is left as it was: a failed rebuild never destroys the
    last good output (the caller records the failure, so it is not used).
    """
    result = compile_batch(tex, workdir, env)
    if result.ok:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(result.pdf, dest)
        result.pdf = dest
    return result


def compile_batch(tex: Path, workdir: Path, env: dict[str, str],
                  line_owner=None, rerun: bool = True, fmt: Path | None = None) -> CompileResult:
    """Compile ``tex`` (one letter or many) in ``workdir``; the PDF stays there.

    ``line_owner(line)`` names the letter a line of ``tex`` belongs to, so
    overfull lines are reported against their letter (default: the only one).
    ``rerun``: run pdflatex again when the log asks (page totals); a caller
    that checks the totals itself passes False. ``fmt``: a format holding the
    document's preamble (``preloaded_format``).
    """
    tex_version()  # fail clearly when TeX is missing
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    jobname = tex.stem
    built = workdir / f"{jobname}.pdf"
    log = workdir / f"{jobname}.log"
    aux = workdir / f"{jobname}.aux"
    built.unlink(missing_ok=True)
    # Run inside the work folder and find the .tex (and its images) through
    # TEXINPUTS: paths in the PDF stay relative, so its /ID does not depend on
    # where the build folder is, and TeX can write nowhere but here.
    env = {**env, "TEXINPUTS": f"{tex.parent.resolve()}//:" + env.get("TEXINPUTS", "")}
    command = [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
               "-no-shell-escape", *([f"-fmt={fmt.with_suffix('')}"] if fmt else []), tex.name]
    passes, ok, log_text, errors, terminal, interrupted = 0, False, "", [], "", False
    kept_aux = aux.exists()
    aux_before = aux.read_bytes() if kept_aux else b""
    if kept_aux and _AUX_END not in aux_before:
        # cut short: pdflatex was stopped (a build killed with kill -9) while writing it. Read,
        # it may not fail, yet a tagged PDF's structure tree made from it is wrong
        aux.unlink()
        kept_aux, aux_before = False, b""

    def aux_changed() -> bool:
        # A tagged PDF's structure tree is written from the last run's .aux
        # (each marked-content id's page): it is right only once the .aux
        # stops changing, and tagpdf does not always say so.
        nonlocal aux_before
        now = aux.read_bytes() if aux.exists() else b""
        changed, aux_before = now != aux_before, now
        return changed

    while passes < MAX_PASSES:
        passes += 1
        try:
            # The terminal output is kept: some errors (TeX's capacity exceeded
            # by a huge paragraph, a corrupt image) are printed only there.
            proc = subprocess.run(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=TIMEOUT_SECONDS, pass_fds=locks_for_children())
            returncode = proc.returncode
            terminal = proc.stdout.decode("utf-8", errors="replace")
        except subprocess.TimeoutExpired:
            returncode, terminal = None, ""
        log_text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        ok = returncode == 0 and built.exists()
        interrupted = not ok and bool(_INTERRUPTED_RE.search(log_text))
        if returncode is None:
            errors = [TexError(tex.name, 0, f"pdflatex did not finish within {TIMEOUT_SECONDS} s")]
            break
        if not ok and kept_aux and not interrupted:
            # The .aux kept from the last run (for "Page n of m") may be cut
            # short by an interrupted build: try once more without it.
            aux.unlink(missing_ok=True)
            kept_aux = False
            continue
        if not ok or not rerun:
            break
        # (from a web copy's format, the log does not show tagpdf loading: its preamble is tagged)
        tagged_and_moved = aux_changed() and ((fmt is not None and fmt.name.startswith("preamble-"))
                                              or _TAGGED_RE.search(log_text))
        if not _RERUN_RE.search(log_text) and not tagged_and_moved:
            break
    result = CompileResult(ok, built if ok else None, log, passes, 0.0, interrupted=interrupted)
    if ok:
        result.letters, result.window, result.layout = _read_aux(
            aux.read_text(encoding="utf-8", errors="replace") if aux.exists() else "")
        for line, text, by in overfull_boxes(log.read_bytes().decode("latin-1") if log.exists() else ""):
            owner = line_owner(line) if line_owner else next(iter(result.letters), None)
            if owner in result.letters:
                result.letters[owner].overfull.append((text, by))
    else:
        if returncode == -signal.SIGXFSZ:
            # stopped by the shell's limit on a file's size (ulimit -f) as its PDF outgrew it: no
            # fault of the letters' (each was marked failed with pdflatex's last words, a line of
            # "pdflatex:0: ) (/usr/share/texmf/tex/latex/lm/ot1lmr.fd) ...")
            raise OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)}: pdflatex was stopped as its PDF outgrew "
                          "the limit on a file's size (ulimit -f)", str(workdir))
        failed_write = _WRITE_FAILED_RE.search(terminal) or _WRITE_FAILED_RE.search(log_text)
        if failed_write:
            raise _write_failed(workdir, failed_write.group(0))
        result.errors = errors or tex_errors(log_text) or tex_errors(terminal) or _terminal_error(terminal)
    result.seconds = time.perf_counter() - started
    return result


# pdfTeX's words when writing its PDF fails (a full disk, a quota): no fault of the letter's.
# fwrite() while it writes; fflush() when the last of a small PDF (a cover sheet) is flushed
_WRITE_FAILED_RE = re.compile(r"\b(?:fwrite|fflush)\(\) failed")
# what LaTeX writes last into the .aux at \end{document}: an .aux without it is cut short
_AUX_END = b"\\gdef \\@abspage@last{"


def _write_failed(workdir: Path, said_by_pdftex: str = "fwrite() failed") -> OSError:
    """The OSError a write of the build's own would raise: the command stops
    with one line and no letter is marked failed."""
    try:
        full = shutil.disk_usage(workdir).free < ROOM_NEEDED
    except OSError:
        full = False
    said = f"pdflatex could not write its PDF (pdfTeX: {said_by_pdftex})"
    return OSError(errno.ENOSPC if full else errno.EIO,
                   f"{os.strerror(errno.ENOSPC)}: {said}" if full else said, str(workdir))


# ---- the preamble of a tagged letter, loaded once -----------------------------

# A web copy's first two lines, when its class is letterbatch (whose state
# outside a format letterbatch-preload.tex knows how to put back).
_PRELOADABLE_RE = re.compile(r"\\DocumentMetadata\{[^\n]*\}\n\\documentclass\[[^\]\n]*\]\{letterbatch\}%?\n")
PRELOAD = "letterbatch-preload"
# A printed letter's (or cover sheet's) first line: letterbatch-preload-print.tex
_PRELOADABLE_PRINT_RE = re.compile(r"\\documentclass\[[^\]\n]*\]\{letterbatch\}%?\n")
PRELOAD_PRINT = "letterbatch-preload-print"
_making = threading.Lock()  # letters compiled side by side ask for the same format
_unmakeable: set[Path] = set()  # formats that failed in this process: not tried again
_looked_up: dict[Path, tuple[int, int]] = {}  # formats whose inputs TeX still finds (by their record's stat)
# A format is about 7.6 MB. One is made per preamble (language, envelope ...); the most
# recently used few are kept. It saves time and is never a cause of failure: without
# this much free space, or in a folder that cannot be written, letters compile without one.
KEEP_FORMATS = 4
ROOM_NEEDED = 64 * 2**20


def preloaded_format(source: str, folder: Path, env: dict[str, str], make: bool = True,
                     made_from: str = "") -> Path | None:
    """A pdfTeX format holding the preamble of ``source`` (a web copy's
    \\DocumentMetadata and \\documentclass lines, or a printed document's
    \\documentclass line), made in ``folder`` with ``pdflatex -ini`` (see
    letterhead/letterbatch-preload.tex and letterbatch-preload-print.tex), or
    reused while TeX would read the same files, unchanged, to make it again.
    Each pass of a tagged letter then skips loading LaTeX's tagging code
    (about 0.7 s of 1.1 s), a printed letter's the class (0.07 s of 0.17 s).
    None when ``source`` does not start that way, no format can be made, or
    none is made yet and ``make`` is False: the letter is then compiled as it
    is, with the same bytes. ``made_from``: a hash of the content of the files
    of ours it reads (the class and its map): TeX's files are judged by size
    and date, but a class edited to the same size with its date put back is
    another class, as the letters it makes are judged by content."""
    start = _PRELOADABLE_RE.match(source)
    if start is not None:
        metadata, documentclass = start.group(0).splitlines(keepends=True)
        text, kind = f"{metadata}\\input{{{PRELOAD}}}\n{documentclass}\\lbdumpformat\n", "preamble"
    elif (start := _PRELOADABLE_PRINT_RE.match(source)) is not None:
        text, kind = f"{start.group(0)}\\input{{{PRELOAD_PRINT}}}\n", "print"
    else:
        return None
    key = hashlib.sha256("\0".join([text, env.get("TEXINPUTS", ""), env.get("TEXFONTMAPS", ""),
                                     tex_version(), made_from]).encode()).hexdigest()[:20]
    fmt, record = folder / f"{kind}-{key}.fmt", folder / f"{kind}-{key}.json"
    with _making:
        if fmt in _unmakeable:
            return None
        try:
            if fmt.exists() and _still_current(fmt, record, env):
                _touch(fmt)  # recently used: kept
                return fmt
            if not make:
                return None
            folder.mkdir(parents=True, exist_ok=True)
            made = _dump_format(text, fmt, record, env) if shutil.disk_usage(folder).free >= ROOM_NEEDED else None
            if made is not None:
                _keep_recent(folder)
        except OSError:  # a full disk, a folder that cannot be written: compiled without
            made = fmt if fmt.exists() and record.exists() else None
        if made is None:
            _unmakeable.add(fmt)
        return made


def forget_format(fmt: Path) -> None:
    """A format a letter could not be compiled from: thrown away, and not made
    again by this process (a later command tries again)."""
    with _making:
        _unmakeable.add(fmt)
        for path in (fmt, fmt.with_suffix(".json")):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass


def _dump_format(text: str, fmt: Path, record: Path, env: dict[str, str]) -> Path | None:
    from .files import write_atomic

    # made in a folder of its own, then moved into place; the folder goes once it is made
    # (after a failure its log stays there to read, without the half-written format)
    making = fmt.parent / f"making-{fmt.stem}"
    shutil.rmtree(making, ignore_errors=True)
    making.mkdir(parents=True)
    (making / f"{fmt.stem}.tex").write_text(text, encoding="utf-8")
    env = {**env, "TEXINPUTS": f"{making.resolve()}//:" + env.get("TEXINPUTS", "")}
    try:
        proc = subprocess.run([PDFLATEX, "-ini", "-recorder", "-interaction=nonstopmode", "-halt-on-error",
                               "-no-shell-escape", "&pdflatex", f"{fmt.stem}.tex"],
                              cwd=making, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=TIMEOUT_SECONDS, pass_fds=locks_for_children())
    except subprocess.TimeoutExpired:
        proc = None
    made = making / fmt.name
    if proc is None or proc.returncode != 0 or not made.exists():
        made.unlink(missing_ok=True)
        return None
    # every file the format was made from, as it was: the format stands while they do
    inputs = {}
    for line in (making / f"{fmt.stem}.fls").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("INPUT "):
            path = Path(line[6:])
            path = path if path.is_absolute() else making / path
            if path.name != f"{fmt.stem}.tex" and path.exists():
                stat = path.stat()
                inputs[str(path.resolve())] = [stat.st_size, stat.st_mtime_ns]
    os.replace(made, fmt)
    write_atomic(record, json.dumps(inputs, sort_keys=True).encode())
    shutil.rmtree(making, ignore_errors=True)
    return fmt


def _still_current(fmt: Path, record: Path, env: dict[str, str]) -> bool:
    """Every file the format was made from is as it was (size and date), and
    TeX still finds those files, not others of the same names (a package
    installed since in a folder searched first, such as ~/texmf)."""
    try:
        inputs = json.loads(record.read_text(encoding="utf-8"))
        if not inputs or not all([(stat := os.stat(path)).st_size, stat.st_mtime_ns] == list(seen)
                                 for path, seen in inputs.items()):
            return False
        seen_record = os.stat(record)
        if _looked_up.get(fmt) == (seen_record.st_mtime_ns, seen_record.st_size):
            return True  # looked up once by this process: one kpsewhich per format, not per letter
        # (texmf.cnf: every one on the path is read, not the first found)
        searched = [path for path in inputs if not path.endswith(".cnf")]
        found = subprocess.run(["kpsewhich", "-engine=pdftex", *sorted({Path(p).name for p in searched})],
                               env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=TIMEOUT_SECONDS).stdout.splitlines()
        if not set(searched) <= {str(Path(line).resolve()) for line in found if line}:
            return False
        _looked_up[fmt] = (seen_record.st_mtime_ns, seen_record.st_size)
        return True
    except (OSError, ValueError, TypeError, AttributeError, subprocess.SubprocessError):
        return False


def _touch(fmt: Path) -> None:
    try:
        os.utime(fmt)
    except OSError:
        pass  # a folder that cannot be written: the format is still used


def _keep_recent(folder: Path) -> None:
    """The formats used last stay; older ones (a preamble no longer built) go."""
    formats = sorted(folder.glob("*.fmt"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in formats[KEEP_FORMATS:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


def tex_errors(log_text: str) -> list[TexError]:
    """Errors from a ``-file-line-error`` log, each with its source line."""
    errors = []
    for match in _ERROR_RE.finditer(log_text):
        message = match.group("msg").strip()
        if "Fatal error occurred" in message or "Emergency stop" in message:
            continue
        after = log_text[match.end():match.end() + 2000]
        # a package's message goes on in lines of its own, "(fontspec)   LuaTeX.", to its first
        # empty one: it was cut there ("requires either XeTeX or")
        for line in after.split("\n")[1:]:
            more = _GOES_ON_RE.match(line)
            if not more:
                break
            message += " " + more.group("text")
        context = _CONTEXT_RE.search(after)
        errors.append(TexError(Path(match.group("file")).name, int(match.group("line")),
                               message, context.group("context") if context else ""))
    if not errors:
        bang = re.search(r"^! (.*)$", log_text, re.M)
        if bang:
            errors.append(TexError("?", 0, bang.group(1)))
    return errors


_OVERFULL_RE = re.compile(
    r"^Overfull \\hbox \((?P<by>[\d.]+)pt too wide\) in (?:paragraph|alignment) at lines (?P<line>\d+)--\d+\n"
    r"(?P<text>.*)$", re.M)


# The upper half of the T1 fonts (LaTeX's t1enc.def), as TeX writes an overfull line's
# characters to the log: one byte a glyph, not UTF-8 (read as UTF-8, "Konstantynopolitańczyk"
# was quoted "Konstantynopolita\ufffdczyk" and named no field); 0xC0-0xFF are Latin-1's but four.
_T1_TEXT = dict(enumerate("ĂĄĆČĎĚĘĞĹĽŁŃŇŊŐŔŘŚŠŞŤŢŰŮŸŹŽŻĲİđ§ăąćčďěęğĺľłńňŋőŕřśšşťţűůÿźžżĳ¡¿£", 0x80))
_T1_TEXT.update({0xD7: "Œ", 0xDF: "SS", 0xF7: "œ", 0xFF: "ß"})


def overfull_boxes(log_text: str) -> list[tuple[int, str, float]]:
    """Each overfull line of a TeX log: (source line, the text that overflows, by how many
    TeX points). ``log_text``: the log read byte for byte (Latin-1), the line's T1 glyphs
    read back as the characters typed; the empty glyphs at the edges of a letter drawn with
    its accent (``^^W``) are left out."""
    out = []
    for match in _OVERFULL_RE.finditer(log_text):
        text = match.group("text").replace("^^W", "").translate(_T1_TEXT)
        text = re.sub(r"\\[A-Z0-9]+/[a-z0-9]+/[a-z]+/[a-z]+/[\d.]+ ?|\[\]|\$[^$]*\$", "", text)
        out.append((int(match.group("line")), " ".join(text.split())[:80], float(match.group("by"))))
    return out


_IMAGE_ERROR_RE = re.compile(r"(?:^|\)|\s)(?P<lib>lib\w+ error: [^!\n]*?)\s*!\s*pdfTeX error: \S+ \(file "
                             r"(?P<file>[^)]*)\): (?P<msg>[^\n]*?)(?:\s*==> Fatal error.*)?$", re.M)


def _terminal_error(terminal: str) -> list[TexError]:
    """pdfTeX's own complaint when the log holds no TeX error (an image it
    cannot read, a run cut short): the image and what pdfTeX said, or its
    last non-empty lines."""
    image = _IMAGE_ERROR_RE.search(terminal)
    if image:
        name = image.group("file")
        name = name[name.rindex("/tex/") + 5:] if "/tex/" in name else Path(name).name
        return [TexError("pdfTeX", 0, f"cannot read the image {name}: {image.group('lib').strip()} "
                                      f"({image.group('msg').strip()})")]
    lines = [line.strip() for line in terminal.splitlines() if line.strip()]
    wanted = [line for line in lines if re.search(r"(?i)error|cannot|can't|not found|corrupt|overflow", line)]
    text = " ".join((wanted or lines)[-3:])
    return [TexError("pdflatex", 0, text[:400])] if text else []


_SP_PER_PT = 65536
_BP_PER_PT = 72 / 72.27  # TeX points -> PDF points


def _read_aux(aux_text: str):
    """Each letter's place, page count and signature space, the envelope
    window and the page layout, and each letter's measurements for the
    preflight (its window, address block, salutation, closing), as the
    letterhead class recorded them in the .aux. Python repeats none of the
    class's lengths."""
    starts = dict(re.findall(r"\\lb@start\{([^}]*)\}\{(\d+)\}", aux_text))
    pages = dict(re.findall(r"\\lb@pages\{([^}]*)\}\{(\d+)\}", aux_text))
    marks: dict[str, dict] = {}
    for rid, which, page, x, y in re.findall(
            r"\\lb@sigpos\{([^}]*)\}\{(top|bottom)\}\{(\d+)\}\{(-?\d+)\}\{(-?\d+)\}", aux_text):
        marks.setdefault(rid, {})[which] = (int(page), int(x) / _SP_PER_PT * _BP_PER_PT,
                                            int(y) / _SP_PER_PT * _BP_PER_PT)
    width = _lengths(aux_text, "lb@sigwidth", 1)
    # the preflight's measurements, in TeX points
    windows = {rid: tuple(float(v) for v in values) for rid, *values in re.findall(
        r"\\lb@letterwindow\{([^}]*)\}" + r"\{([\d.]+)pt\}" * 4, aux_text)}
    measures = {rid: dict(zip(("baselineskip", "widest", "ascent", "descent", "paperheight", "firstbaseline",
                               "block"), (float(v) for v in values)))
                for rid, *values in re.findall(r"\\lb@address\{([^}]*)\}" + r"\{(-?[\d.]+)pt\}" * 7, aux_text)}
    return_sizes = {rid: float(size) for rid, size in re.findall(r"\\lb@returnsize\{([^}]*)\}\{([\d.]+)pt\}", aux_text)}
    wide: dict[str, list] = {}
    for rid, line, wd in re.findall(r"\\lb@wideline\{([^}]*)\}\{(\d+)\}\{([\d.]+)pt\}", aux_text):
        wide.setdefault(rid, []).append((int(line), float(wd)))
    raw: dict[str, dict] = {}
    for rid, name, page, x, y in re.findall(
            r"\\lb@pos\{([^}]*)\}\{([a-z]+)\}\{(\d+)\}\{(-?\d+)\}\{(-?\d+)\}", aux_text):
        raw.setdefault(rid, {})[name] = (int(page), int(x) / _SP_PER_PT, int(y) / _SP_PER_PT)
    letters = {}
    for rid, start in starts.items():
        signature = None
        if {"top", "bottom"} <= set(marks.get(rid, {})) and width:
            # the class keeps the closing and the signature block on one page
            page, x, bottom = marks[rid]["bottom"]
            top = marks[rid]["top"][2]
            signature = (page, round(x, 2), round(bottom, 2), round(top, 2), round(width[0], 2))
        height = measures.get(rid, {}).get("paperheight")
        from_top = {name: (page, round(x, 3), round(height - y, 3))
                    for name, (page, x, y) in raw.get(rid, {}).items()} if height else {}
        letters[rid] = Placed(int(start), int(pages.get(rid, 0)), signature, marks=from_top,
                              window=windows.get(rid), measures=measures.get(rid, {}),
                              wide=wide.get(rid, []), return_size=return_sizes.get(rid))
    window = _lengths(aux_text, "lb@window", 4)
    layout = {}
    if paper := _lengths(aux_text, "lb@paper", 2):
        layout["paper"] = paper
    if start := _lengths(aux_text, "lb@textstart", 1):
        layout["text_start"] = start[0]
    return letters, window, layout


def _lengths(aux_text: str, name: str, count: int) -> tuple[float, ...] | None:
    """The lengths ``\\<name>{12.3pt}...`` the class wrote, in PDF points."""
    match = re.search(r"\\" + re.escape(name) + r"\{([\d.]+)pt\}" * count, aux_text)
    return tuple(round(float(v) * _BP_PER_PT, 2) for v in match.groups()) if match else None
