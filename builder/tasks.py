"""letterbatch tasks: `invoke --list` (or `letterbatch --list`) shows them, `--help TASK`
explains one.

One command works on one batch. ``-r/--recipients`` and ``-b/--build-dir`` given to any task
of a chain (``invoke build merge -r oct.yaml``) apply to every task in it (``BatchExecutor``).
Paths typed on the command line are read from the current folder; defaults from the
project (the checkout holding tasks.py; for the ``letterbatch`` command outside a checkout,
the current folder), and each batch builds into its own folder, ``build/<file name>/``.

Defaults (the YAML file, the build folder, the number of workers) live in the
``letterbatch`` config section below; override them in invoke.yaml or with
INVOKE_LETTERBATCH_<KEY> environment variables.

The builder is imported inside each task, only when that task runs: ``--list`` and ``status``
start without loading the PDF libraries (pikepdf, pypdf, pyHanko).
"""
from __future__ import annotations

if not __package__:
    # `invoke` run in builder/ (or builder/letterhead/, beside the class) finds this file before
    # the project's tasks.py and loaded it alone: an ImportError traceback. One line instead,
    # saying where to run it (from any other folder of the project invoke finds its tasks.py).
    import sys as _sys
    from pathlib import Path as _Path

    _project = _Path(__file__).resolve().parents[1]
    _sys.exit(f"{_Path(__file__).resolve()} is the package's own tasks file: run invoke in the project "
              f"folder, {_project} (or give it --search-root {_project})")

import contextlib
import errno
import inspect
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import invoke
from invoke import Collection, Exit, Task, task


def _write_bytecode_as_python_does() -> None:
    """invoke turns off Python's writing of compiled modules (``__pycache__``) for the whole
    command, unless given ``--write-pyc``, so as not to leave a ``tasks.pyc`` beside a
    project's ``tasks.py``. The builder's modules, which the tasks import as they run (and, for
    ``invoke``, this one), were then compiled from their source by every command, their cache
    never written: 6 modules and 0.03 s for a `build merge` with nothing to do. Python's own
    setting (``-B``, ``PYTHONDONTWRITEBYTECODE``) is kept."""
    sys.dont_write_bytecode = sys.flags.dont_write_bytecode


# `invoke` loads this file after turning it off (`letterbatch` before: BatchExecutor.execute)
_write_bytecode_as_python_does()

import builder

from . import command, cores

# `invoke new` copies this commented batch; it builds as it stands.
STARTER = Path(__file__).resolve().parent / "starter.yaml"

# /proc dates a process from its fork, and a shell may hand its own process to the
# command it runs last (`bash -c 'scripts/install && invoke build'` execs invoke): the
# process is then as old as the shell. Python and invoke start in well under this.
_START_UP_AT_MOST = 3.0  # seconds


def _process_started() -> float:
    """When this process started, on the perf_counter clock: summaries time the whole
    command, Python's own start-up included (Linux: /proc; elsewhere, or in a process
    older than a start-up can be: from this import)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        age = float(Path("/proc/uptime").read_text().split()[0]) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        age = 0.0
    return time.perf_counter() - (age if 0.0 <= age <= _START_UP_AT_MOST else 0.0)


STARTED = _process_started()

# One meaning per short flag, in every task. Flags not listed here have no short form.
SHORT_FLAGS = {
    "recipients": "r",
    "build_dir": "b",
    "only": "o",
    "jobs": "j",
    "force": "f",
    "verbose": "v",
    "k": "k",
}

# The flags that take ids (or id:code items), comma-separated, may also be given again:
# `send --resend a --resend b` is `--resend a,b` (invoke's ``iterable``), where invoke
# answered "No idea what 'b' is!". Every such flag of every task alike.
LISTED = ("only", "accept", "resend", "mark_sent", "cleared")


# Flags several tasks share, explained once.
BATCH_HELP = {
    "recipients": "the batch file (default: recipients.yaml in the project)",
    "build-dir": "where its letters go (default: build/<batch file name>/ in the project)",
}
MEDIUM_HELP = {"for": "which letters: print (default) or web"}
VERBOSE_HELP = {"verbose": "list every letter, not only those that need attention"}


class LetterTask(Task):
    """A task whose short flags come from SHORT_FLAGS, not from first letters."""

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        opts["names"] = [opts["names"][0]] + ([short] if short and short not in taken_names else [])
        return opts


def letter_task(*args, **kwargs):
    """``@task`` for letterbatch: fixed short flags, and the flags that take ids
    (``LISTED``) may be given more than once (use it for new tasks too)."""
    def decorate(body):
        takes = [name for name in LISTED if name in inspect.signature(body).parameters]
        return task(*args, klass=LetterTask, auto_shortflags=False, iterable=takes, **kwargs)(body)
    return decorate


STOPPED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM (`kill`, a CI job's timeout, a logout) stops a task as Ctrl-C does: the
    build records what it has built, instead of dying where it stood."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        before = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals are not ours to take
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _one_malloc_arena() -> None:
    """One heap for every thread of the command. glibc gives each thread that allocates a
    heap (arena) of its own, and what is freed in one is not used again by another: the
    build composes its batches' LaTeX on worker threads, the merge its cover sheet, and the
    bundle, put together on the main thread, could not reuse what they had freed. With one
    arena a 500-letter `build merge` peaks at 111 MiB instead of 145, 10,000 letters at
    996 MiB instead of about 1040, in no more time (README, "Speed"): the threads mostly wait for
    pdflatex, so they hardly contend for it. Set before any thread starts; a
    MALLOC_ARENA_MAX the person set is theirs; not glibc (no ``mallopt``): nothing."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    M_ARENA_MAX = -8  # glibc's malloc.h
    mallopt(M_ARENA_MAX, 1)


class BatchExecutor(invoke.Executor):
    """Runs a chain of tasks on ONE batch: a ``--recipients`` or ``--build-dir`` given to any
    task of the chain is given to every task of it that takes one. (invoke otherwise gives a
    flag only to the task it follows: ``invoke build merge -r x.yaml`` would build the
    default batch and merge x.yaml.) Named in invoke.yaml as ``tasks.executor_class``; the
    ``letterbatch`` command uses it directly."""

    SHARED = ("recipients", "build_dir")

    def execute(self, *tasks):
        self._check_environment()
        _one_malloc_arena()
        _write_bytecode_as_python_does()
        try:
            try:
                with _terminate_as_interrupt():
                    return super().execute(*tasks)
            finally:
                # output to a pipe is buffered: a short one reaches a reader that has gone
                # only when flushed, here rather than in Python's own flush at exit
                sys.stdout.flush()
        except KeyboardInterrupt:
            # invoke would exit 1 without a word. Every file is written whole or not at all
            # (and the send log before each step), so what a stopped task finished stays.
            raise Exit("stopped", code=STOPPED) from None
        except BrokenPipeError:
            # Whoever read the output has gone (`invoke diff | head`, a pager quit early):
            # stop quietly, as `cat` and `git log` do, not with a traceback. Every output
            # file is written atomically and the send log before each step, so stopping at
            # a print loses nothing. stdout then points at /dev/null, or Python's own flush
            # at exit would complain about the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=1)

    def _refuse_a_listed_flag_without_value(self) -> None:
        """invoke gives a flag that may be repeated (--only, --accept) no value at all when
        it comes last or before another flag of its task, with no word: `build -o -r x.yaml`
        built every letter, as if no -o had been given. One line instead, exit 2."""
        typed = list(getattr(self.core, "unparsed", None) or [])
        contexts = {name: context for context in self.collection.to_contexts()
                    for name in (context.name, *context.aliases)}
        current, waiting = None, False
        for index, token in enumerate(typed):
            if token == "--":
                return
            if waiting:
                waiting = False
                continue
            if token in contexts:
                current = contexts[token]
                continue
            if current is None or token not in current.flags:
                continue
            argument = current.flags[token]
            waiting = argument.takes_value
            following = typed[index + 1] if index + 1 < len(typed) else "--"
            if argument.kind is list and (following == "--" or following in current.flags
                                          or following in current.inverse_flags):
                long = "--" + argument.name.replace("_", "-")
                names = long if token == long else f"{token} ({long})"
                raise Exit(f"{current.name}: {names} needs a value after it", code=2)

    def _check_environment(self) -> None:
        """invoke turns INVOKE_LETTERBATCH_SMTP_PORT and the like into the type of the
        setting they replace, and a value not of that type ends in its traceback: here
        it is one line instead."""
        prefix = getattr(self.config, "_env_prefix", None) or "INVOKE_"

        def numbers(settings: dict, path: tuple):
            for key, value in settings.items():
                if isinstance(value, dict):
                    yield from numbers(value, path + (key,))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    yield prefix + "_".join(path + (key,)).upper(), value

        for name, default in numbers(self.collection.configuration(), ()):
            value = os.environ.get(name)
            if value is None:
                continue
            try:
                type(default)(value)
            except ValueError:
                kind = "a whole number" if isinstance(default, int) else "a number"
                raise Exit(f"{name}={value!r} is not {kind}: set it to one, or unset it", code=2) from None

    def normalize(self, tasks):
        self._refuse_a_listed_flag_without_value()
        calls = super().normalize(tasks)
        # `invoke build merge --accept id:code`: the findings the chain's merge accepts on
        # the record do not stop it at the build (or check) before the merge gets to record them
        accepting = [joined(call.kwargs["accept"]) for call in calls
                     if call.task.name == "merge" and call.kwargs.get("accept")]
        self.config["accepted_by_merge"] = accepting[0] if accepting else ""  # every task of the chain reads it
        # `invoke build check merge`: the bundle this command's merge is about to make again
        # is not a fault of the check before it (the merge clears this when it runs)
        names = [call.task.name for call in calls]
        self.config["merge_follows"] = "check" in names and "merge" in names[names.index("check"):]
        # and writes <build>/bundle.pdf, so a bundle.pdf left off the record by an earlier
        # `merge --output` is on it again after this command
        self.config["merge_writes_bundle"] = self.config["merge_follows"] and not any(
            call.task.name == "merge" and call.kwargs.get("output") for call in calls)
        # a bad --jobs or --for of any task stops the command before its first task runs
        # (`build watch -j 100` built every letter, then watch refused its --jobs)
        for call in calls:
            if call.task.name in ("build", "watch") and call.kwargs.get("jobs") is not None:
                jobs_of(call.kwargs["jobs"])
            if call.kwargs.get("for_") is not None:
                medium_of(call.kwargs["for_"])
        for key in self.SHARED:
            named = {str(call.kwargs[key]) for call in calls if call.kwargs.get(key)}
            # one file spelled two ways (`-r oct.yaml` and `-r ./oct.yaml`, `-b out` and
            # `-b out/`) is one value: it was refused as "different values"
            if len({os.path.abspath(value) for value in named}) > 1:
                flag = "--" + key.replace("_", "-")
                raise Exit(f"one batch per command: {flag} is given different values "
                           f"({', '.join(sorted(named))}); run the tasks separately", code=2)
            if named:
                value = min(named)
                for call in calls:
                    if key in inspect.signature(call.task.body).parameters:
                        call.kwargs[key] = value
        return calls


# ---------------------------------------------------------------- which batch, which folder

@dataclass
class BatchPaths:
    """The batch a command works on: its file and its build folder, both absolute."""
    recipients: Path
    build_dir: Path
    project: Path | None
    # build/<file name>/, made from the batch file's name (no -b, no letterbatch.build_dir):
    # another batch file of the same name would share it (refuse_another_batch)
    named_after_file: bool = False


def project_dir(c) -> Path | None:
    """The checkout's folder (tasks.py sets it), or None for the `letterbatch` command."""
    project = c.config.letterbatch.get("project")
    return Path(project) if project else None


def batch_paths(c, recipients: str | None, build_dir: str | None, *, read: bool = True) -> BatchPaths:
    """Where the batch is and where it builds. A path typed on the command line is read
    from the current folder (as a shell user means it); a default from the project. The
    default build folder is ``build/<batch file name>/``: one folder per batch, so two
    batches never overwrite each other's letters. ``read``: the task reads the batch, so
    a default batch file that is not there stops it with what to type instead."""
    # a script's empty variable (`-b "$OUT"`): -b '' built into the default folder, and clean -b ' '
    # said "nothing to remove:   does not exist"; -r '' suggested `status -r '' -r oct.yaml`
    for flag, value in (("-r (--recipients)", recipients), ("-b (--build-dir)", build_dir)):
        if value is not None and not str(value).strip():
            raise Exit(f"{flag} takes {'a batch file' if flag.startswith('-r') else 'a folder'}, "
                       f"not {value!r}", code=2)
    cfg = c.config.letterbatch
    project = project_dir(c)
    base = project or Path.cwd()
    # the commands messages suggest name this batch as the person did
    builder.BATCH_FLAGS = "".join(f" {flag} {shlex.quote(value)}" for flag, value in
                                  (("-r", recipients), ("-b", build_dir)) if value)
    source = Path(recipients).expanduser() if recipients else base / cfg.recipients
    source = source.resolve()
    if read and not recipients and not source.exists():
        raise Exit(no_batch_here(source), code=2)
    if read and recipients and not source.exists():
        raise Exit(no_such_batch(source, recipients), code=2)
    # `-r people.xlsx`, the spreadsheet a batch reads its recipients from: build said build/people
    # "holds the letters of people.yaml, another batch of the same name", and with -b that the
    # workbook "is not UTF-8 text: save the file as UTF-8"
    if recipients and source.suffix.lower() in SPREADSHEET_SUFFIXES and not source.is_dir():
        raise Exit(a_spreadsheet_given(source, recipients), code=2)
    # `-r letters` for the folder said "cannot read the file: Is a directory", and watch watched it
    if read and source.is_dir():
        inside = sorted(shlex.quote(show(p)) for p in source.iterdir() if is_batch_file(p))
        raise Exit(f"{show(source)} is a folder, not a batch file: give -r the batch's .yaml file"
                   + (f" (in it: {', '.join(inside)})" if inside else ""), code=2)
    if build_dir:
        out = Path(build_dir).expanduser()
    elif cfg.get("build_dir"):
        out = base / cfg.build_dir
    else:
        out = (project or source.parent) / "build" / source.stem
    if out.exists() and not out.is_dir():  # `-b recipients.yaml`: it said "could not write ... free some space"
        raise Exit(f"{'--build-dir' if build_dir else 'the build folder'} {show(out)} is a file, not a folder: "
                   f"give the folder to build into (such as build/{source.stem})", code=2)
    return BatchPaths(source, out.resolve(), project, named_after_file=not build_dir and not cfg.get("build_dir"))


class FolderOfAnotherBatch(RuntimeError):
    """The build folder named after the batch file (build/october/) holds the
    letters of another batch file of the same name (archive/october.yaml built
    where october.yaml's letters are): building there would delete them as
    letters no longer in the batch."""


def other_batch_in(build_dir: Path, recipients: Path) -> Path | None:
    """The batch file ``build_dir`` was last built from, if that is another file still
    there (one moved or renamed is the same batch), else None."""
    from .manifest import Manifest

    # from the build folder; a batch built only for the web has its record in web/ alone
    for root in (build_dir, build_dir / "web"):
        recorded = (Manifest.read(root).batch or {}).get("yaml")
        if recorded:
            break
    else:
        return None
    if recorded == os.path.relpath(recipients, root):
        return None
    other = (root / recorded).resolve()
    return other if other.is_file() and other != recipients else None


def refuse_another_batch(batch: BatchPaths) -> None:
    """FolderOfAnotherBatch if the batch's folder, named after its file, was
    last built from another batch file that is still there (one moved or
    renamed is the same batch). Not asked of a folder given with -b: that is
    the person's to choose (a copy of the project building into its folder)."""
    other = other_batch_in(batch.build_dir, batch.recipients)
    if other:
        raise FolderOfAnotherBatch(
            f"{show(batch.build_dir)} holds the letters of {show(other)}, another batch of the same "
            f"name: build {show(batch.recipients)} into a folder of its own with -b (for example "
            f"-b build-{batch.recipients.parent.name or 'other'}), or give it another name")


def refuse_to_build_over_another_batch(batch: BatchPaths) -> None:
    """FolderOfAnotherBatch if ``-b`` names the build folder of another batch file, of
    another name, still there: last month's folder given by mistake (`build -r november.yaml
    -b build/october`) built over october's letters, the signed and mailed ones too, and
    deleted those of its recipients not in november.yaml. A batch file of the same name (a
    copy of the project building into the old one's folder) is the person's choice."""
    other = other_batch_in(batch.build_dir, batch.recipients)
    if other and other.stem != batch.recipients.stem:
        own = (batch.project or batch.recipients.parent) / "build" / batch.recipients.stem
        raise FolderOfAnotherBatch(
            f"{show(batch.build_dir)} holds the build of another batch, {show(other)}, not of "
            f"{show(batch.recipients)}: building there would replace its letters and delete those of "
            f"its recipients not in {show(batch.recipients)}; build {show(batch.recipients)} into a "
            f"folder of its own: `{builder.COMMAND} build -r {shlex.quote(show(batch.recipients))} "
            f"-b {shlex.quote(show(own))}`")


def build_folder_around(folder: Path) -> Path | None:
    """The build folder ``folder`` is inside (``-b build/october/web``), or None. A batch
    built only for the web has its record in web/ alone."""
    return next((parent for parent in Path(os.path.abspath(folder)).parents if (parent / "manifest.json").is_file()
                 or (parent / "web" / "manifest.json").is_file()), None)


def refuse_a_folder_inside_a_build_folder(batch: BatchPaths) -> None:
    """Exit 2 for ``-b`` naming a folder inside a build folder (its web/, letters/): a build
    made a build folder inside it (build/october/web/web/), which october's status then named
    "(not ours)" and clean would not remove."""
    around = build_folder_around(batch.build_dir)
    if around is not None:
        raise Exit(f"{show(batch.build_dir)} is part of the build folder {show(around)}, not a build folder of "
                   f"its own: give -b that folder, or one outside it", code=2)


def refuse_to_build_in_another_batch_s_folder(batch: BatchPaths) -> None:
    """FolderOfAnotherBatch where a build of ``batch`` would replace another batch's letters
    (and exit 2 for a folder inside a build folder)."""
    refuse_a_folder_inside_a_build_folder(batch)
    if batch.named_after_file:
        refuse_another_batch(batch)
    else:  # a folder given with -b is the person's to choose, but not another batch's by mistake
        refuse_to_build_over_another_batch(batch)


def refuse_the_build_of_another_batch(batch: BatchPaths) -> None:
    """Exit 2 when ``-b`` names the build folder of another batch file still there (`status -r
    a.yaml -b build/b`): b's letters read as gone or never built, and the build status, check,
    merge, sign and send suggested would delete them (clean refuses that folder); said instead,
    with the status of the batch it holds (a command that runs as copied: sign's would lack
    its key). A chain's build of a.yaml there, before, is the
    person's choice of folder (a copy of the project): it leaves a.yaml's record."""
    refuse_a_folder_inside_a_build_folder(batch)
    other = other_batch_in(batch.build_dir, batch.recipients)  # (no record: None)
    if other:
        # a batch built only for the web: its print status said "never built"
        web = " --for web" if not (batch.build_dir / "manifest.json").exists() else ""
        raise Exit(f"{show(batch.build_dir)} holds the build of another batch, {show(other)}, not of "
                   f"{show(batch.recipients)}: its status is `{builder.COMMAND} status{web} -r "
                   f"{shlex.quote(show(other))} -b {shlex.quote(show(batch.build_dir))}`; a build of "
                   f"{show(batch.recipients)} there would delete its letters", code=2)


BATCH_SUFFIXES = (".yaml", ".yml")


def is_batch_file(path: Path) -> bool:
    """A file that may be a batch, as the folder listings that suggest one count them: in
    any case (`-r Oct` suggested Oct.yaml and Oct.yml but not Oct.YAML, which builds as well);
    invoke.yaml is the project's settings."""
    return path.suffix.lower() in BATCH_SUFFIXES and path.is_file() and path.stem.lower() != "invoke"


SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".csv", ".tsv")


def a_spreadsheet_given(source: Path, typed: str) -> str:
    """`-r people.xlsx`: the spreadsheet is not the batch; the batch file beside it that reads
    its recipients from it is, given again in the command as typed."""
    folder = source.parent
    naming = sorted(p for p in folder.iterdir() if is_batch_file(p) and source in
                    [named.resolve() for named in named_files(p)]) if folder.is_dir() else []
    said = (f"{show(source)} is a spreadsheet, not a batch file: -r takes the batch's .yaml file, whose "
            "`recipients: from:` names the spreadsheet")
    if not naming:
        return (f"{said}; no batch file beside it names {source.name}: write `recipients: from: "
                f"{source.name}` in one (README, \"From a spreadsheet\")")
    meant = shlex.quote(show(naming[0]))
    again = [meant if arg == typed else arg for arg in sys.argv[1:]]
    run = f": `{builder.COMMAND} {' '.join(again)}`" if meant in again else ""
    return f"{said} ({', '.join(shlex.quote(show(p)) for p in naming)}){run}"


def no_batch_here(default: Path) -> str:
    """`letterbatch build` in an office's folder that holds its own batch (rent-review.yaml)
    and no recipients.yaml said "cannot read the file: No such file or directory", not
    what to type: the command again with the batch there, or `new` when there is none."""
    # as the person types them: from the folder they are in (the project may be above it)
    here = sorted(shlex.quote(show(p)) for p in default.parent.iterdir() if is_batch_file(p))
    typed = shlex.join(sys.argv[1:])
    if len(here) == 1:
        fix = f"name your batch with -r: `{builder.COMMAND} {typed} -r {here[0]}`"
    elif here:
        fix = f"name your batch with -r, one of {', '.join(here)}: `{builder.COMMAND} {typed} -r FILE.yaml`"
    else:
        fix = f"start one with {command('new NAME', to_run=False)}, or name yours with -r FILE.yaml"
    return f"{show(default)}: not found (the batch when no -r is given); {fix}"


def no_such_batch(source: Path, typed: str) -> str:
    """`-r letters` (no .yaml) or `-r leters.yaml`: the first said that build/letters
    "holds the letters of letters.yaml, another batch of the same name", the second
    "cannot read the file". Now: no such file, and the batch file it most likely
    names, in the command again to copy."""
    import difflib

    folder = source.parent
    batches = sorted(p.name for p in folder.iterdir() if is_batch_file(p)) if folder.is_dir() else []
    by_stem = {Path(name).stem: name for name in batches}  # (".yaml" alone made any two alike)
    close = difflib.get_close_matches(source.stem, list(by_stem), n=1, cutoff=0.6)
    if not close:
        return f"{show(source)}: no such file (the batch given with -r)"
    meant = shlex.quote(show(folder / by_stem[close[0]]))
    again = [meant if arg == typed else arg for arg in sys.argv[1:]]
    run = f" `{builder.COMMAND} {' '.join(again)}`" if meant in again else ""
    return f"{show(source)}: no such file (the batch given with -r); did you mean {meant}?{run}"


def show(path: Path) -> str:
    """A path as a person wants to read it: relative to the current folder when inside it,
    else in full (the same wherever the folders happen to sit)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def build_hint(letters: list[tuple[str, str]], for_: str, build_dir: Path | None = None, task: str = "status",
               mailed: dict[str, tuple[str, bool]] | None = None) -> str | None:
    """What builds the letters a build alone makes ready (stale, never built; changed, as a
    build killed outright leaves them): `check` and `status` said "8 with errors" or "8
    stale" and left the person to guess the command. ``letters``: (recipient id, state by
    the readiness rule). ``build_dir``: while a build (merge, send) holds it, the letters it
    has not recorded yet are said to be its, not edited, and ``task`` (status, check) is the
    command to run again once it has ended. A stale letter mailed as it is (the send log's
    ``mailed``, read here when not given) is not one to build: building it makes another
    letter than the one its recipient has (last month's, after the shared logo changed), and
    `send` then offers to mail that again. It is said on a line of its own, and the build
    names the others with -o (status, check and send's dry run said "run build" of them all)."""
    from .build import Layout, folder_busy
    from .ready import CHANGED, NEVER_BUILT, STALE

    unread = mailed is None  # (status passes the notes it prints, the unreadable log's among them)
    if mailed is None:
        mailed = mail_notes(build_dir) if for_ == "print" and build_dir is not None else {}
    mailed_as_is = [rid for rid, state in letters if state == STALE and rid in mailed and not mailed[rid][1]]
    states = [state for rid, state in letters if rid not in mailed_as_is]
    only = [rid for rid, state in letters if rid not in mailed_as_is and state in (STALE, NEVER_BUILT, CHANGED)]
    build = command('build' + (' --for web' if for_ == 'web' else '')
                    + (f" -o {shlex.quote(','.join(only))}" if mailed_as_is else ''))
    waiting = sum(state in (STALE, NEVER_BUILT) for state in states)
    changed = sum(state == CHANGED for state in states)
    if (waiting or changed) and build_dir is not None and folder_busy(Layout.of(build_dir, for_)):
        # it said "857 letters changed since built (edited, or left by a build stopped outright):
        # `letterbatch build` makes them again" of a build running now, which refused that build
        return (f"a build, merge or send is running in {show(Layout.of(build_dir, for_).root)} now (or the "
                f"pdflatex of one that was stopped is finishing): the letters it has not recorded yet read as "
                f"stale or changed until it ends; run {command(task + (' --for web' if for_ == 'web' else ''))}"
                " again then")
    hints = [f"{plural(waiting, 'letter')} stale or never built: run {build} to build "
             f"{'it' if waiting == 1 else 'them'}"] if waiting else []
    if changed:  # edited by hand, or put in place by a build killed outright before it recorded them
        hints.append(f"{plural(changed, 'letter')} changed since built (edited, or left by a build stopped "
                     f"outright): {build} makes {'it' if changed == 1 else 'them'} again")
    if hints and unread and build_dir is not None:  # (status says it on a line of its own)
        from .manifest import Manifest

        record = Manifest.read(Layout.of(build_dir, for_).root)
        if record.unreadable:  # check and send said "never built: run build" of each letter, and no more
            hints.insert(0, f"{lost_record(record)}, so its letters read as never built")
    if hints and unread and "" in mailed:  # check said "run build" of every letter, mailed ones too, and no more
        hints.append(f"{mailed[''][0]}: until it is, which letters were mailed is not known, and a build may "
                     "replace one with another letter than its recipient has")
    if mailed_as_is:
        one = len(mailed_as_is) == 1
        hints.append(f"stale, but mailed as {'it is' if one else 'they are'}: {', '.join(mailed_as_is)}: a build "
                     f"replaces {'it with another letter' if one else 'them with other letters'} than the "
                     f"{'recipient has' if one else 'recipients have'}; build only to mail again on purpose")
    return "\n".join(hints) or None


def whole_number(value, flag: str, minimum: int = 0, maximum: int | None = None, why: str = "") -> int:
    """A flag's value as a whole number, or a one-line error (exit 2): never a traceback.
    ``why``: what the maximum is, said with it."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        bounds = (f" from {minimum} to {maximum}{why}" if maximum is not None
                  else f" from {minimum}" if minimum else "")
        raise Exit(f"--{flag} takes a whole number{bounds}, not {value!r}", code=2)
    return number


# pdflatex runs per core that --jobs may ask for: past the cores they only wait, each holding
# its memory (`build -j 100000` of 10,000 letters started 10,000 pdflatex runs at once)
JOBS_PER_CORE = 4


def jobs_of(value) -> int:
    """--jobs (or the letterbatch.jobs setting): 0 for one run per core, else at most
    JOBS_PER_CORE a core."""
    usable = cores()
    return whole_number(value, "jobs", 0, JOBS_PER_CORE * usable,
                        f" (0: one per core; at most {JOBS_PER_CORE} a core, and this command may use "
                        f"{plural(usable, 'core')})")


def medium_of(value: str) -> str:
    if value not in ("print", "web"):
        raise Exit(f"--for takes print or web, not {value!r}", code=2)
    return value


def joined(value) -> str | None:
    """A flag of ``LISTED`` as one comma-separated value, each time it was given in
    order; None when it was not given (invoke gives an iterable flag not given as [])."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) if value else None
    return value


def ids_of(only: str | None) -> list[str] | None:
    """``--only``'s comma-separated ids, or None when it is not given. A value that
    names no id (``-o ""``, ``-o ,``: a script's empty variable) is one line, exit 2:
    read as not given, it built or checked every letter."""
    if only is None:
        return None
    ids = [i.strip() for i in str(only).split(",") if i.strip()]
    if not ids:
        raise Exit(f"--only takes the ids of letters, comma-separated (--only london,essex), not {only!r}",
                   code=2)
    return ids


def accepted_of(accept: str | None) -> dict[str, list[str]]:
    """``--accept id:code[,id:code...]`` as {id: [code, ...]}; a bad item is one line (exit 2)."""
    from .check import CODES

    accepted: dict[str, list[str]] = {}
    for item in (accept or "").split(","):
        rid, _, code = item.strip().partition(":")
        if not item.strip():
            continue
        if not rid or code not in CODES:
            raise Exit(f"--accept {item.strip()!r}: write id:code, the code one of {', '.join(CODES)}", code=2)
        accepted.setdefault(rid, []).append(code)
    return accepted


def accepted_by_merge(c) -> dict[str, list[str]]:
    """What the merge of this same command (``invoke build merge --accept ...``) accepts."""
    return accepted_of(c.config.get("accepted_by_merge"))


def built_and_left(ended, medium: str) -> str:
    """What a build that ended part way (``BuildStopped``, ``BuildFailed``) put on the
    record, and the build that makes the rest."""
    return (f"{plural(ended.built, 'letter')} built and recorded"
            + (f"; {ended.left} not built: run {command('build' + (' --for web' if medium == 'web' else ''))}"
               " to build them" if ended.left else ""))


def stopped(exc: Exception, code: int = 2, then: str = "") -> Exit:
    if isinstance(exc, OSError) and exc.strerror:  # in words, with the file: not "[Errno 28] ..."
        where = f" ({show(Path(exc.filename))})" if exc.filename else ""
        hint = (" Free some space, then try again." if exc.errno == errno.ENOSPC else
                # a shell's limit on a file's size: there is no disk to free
                " Raise the limit on a file's size (ulimit -f), then try again." if exc.errno == errno.EFBIG else
                " Make it writable (or work in another folder), then try again."
                if exc.errno in (errno.EROFS, errno.EACCES) and exc.filename else "")
        return Exit(f"could not go on: {exc.strerror}{where}.{hint}{then}", code=code)
    return Exit(f"{exc}{then}", code=code)


# ---------------------------------------------------------------- build

@letter_task(help={
    **BATCH_HELP,
    "only": "ID[,ID...], recipient ids (or the flag again: -o a -o b): build just these",
    "jobs": "parallel pdflatex runs (default: one per core)",
    "force": "recompile every letter even when it is up to date",
    "for": "print (default: black links, <build>/<id>.pdf) or web (tagged PDFs with coloured links "
           "and PDF/A-2b metadata, <build>/web/<date>-<id>.pdf, each with an accessible .html page)",
    **VERBOSE_HELP,
    "open": "open the result in the desktop's PDF viewer (the --only letters, else the first)",
})
def build(c, recipients=None, build_dir=None, only=None, jobs=None, force=False, for_="print",
          verbose=False, open=False):
    """Build one PDF per recipient into build/<batch>/ and preflight each letter built."""
    batch = batch_paths(c, recipients, build_dir)
    only = joined(only)
    outcomes, checks = run_build(c, batch, only=ids_of(only), jobs=jobs, force=force,
                                 medium=medium_of(for_), verbose=verbose,
                                 accepting=accepted_by_merge(c) if for_ == "print" else None)
    if open:
        wanted = ids_of(only) or [o.recipient for o in outcomes if o.pdf][:1]
        open_in_viewer([o.pdf for o in outcomes if o.recipient in wanted and o.pdf])
    failed = [o.recipient for o in outcomes if o.status in ("failed", "invalid")]
    if failed or checks:  # checks: letters whose stored preflight has errors nobody accepted
        raise Exit(code=1)


def not_written(exc: OSError, batch: BatchPaths, kept: str) -> Exit:
    """A build stopped by an OSError, in one line (exit 2): the file, the fix, and ``kept``,
    what became of the letters."""
    outside = exc.filename and not Path(os.path.abspath(exc.filename)).is_relative_to(
        Path(os.path.abspath(batch.build_dir)))
    if outside and exc.errno in (errno.ENOENT, errno.EACCES, errno.EISDIR, None):
        # a file the batch names (its logo) gone or replaced while the build read it: not the disk
        return Exit(f"could not read {show(Path(exc.filename))}: {exc.strerror or 'it changed as it was read'}; "
                    f"build again once it is in place. {kept[0].upper()}{kept[1:]}.", code=2)
    # the fix the error calls for: `-b recipients.yaml/out` (a file on the path) was told
    # to "free some space or make the folder writable"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "Free some space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "Make the folder writable (or build elsewhere with -b)"
    elif exc.errno == errno.ENOTDIR:
        fix = "A part of that path is a file, not a folder: give -b a folder"
    elif exc.errno == errno.EISDIR:  # a folder made where a letter goes: neither space nor rights help
        fix = "A folder stands where that file goes: move it out of the build folder"
    elif exc.errno == errno.EFBIG:  # no disk to free: it was told to "free some space"
        fix = "Raise the limit on a file's size (ulimit -f) or build where there is none"
    elif exc.errno == errno.ENAMETOOLONG:  # a folder deep in folders: neither space nor rights help
        fix = ("The path is longer than the system allows (4096 bytes, 255 for one name): "
               "build in a folder with a shorter path, with -b")
    else:
        fix = "Free some space or make the folder writable"
    named = exc.filename and os.path.abspath(exc.filename) != os.path.abspath(batch.build_dir)  # (not it twice)
    return Exit(f"could not write in {show(batch.build_dir)}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if named else "")
                + f". {fix}, then build again; {kept}.", code=2)


def lost_record(manifest) -> str:
    """What to say of a build folder's record that cannot be read at all (``Manifest.unreadable``)."""
    return f"{show(manifest.path)} cannot be read ({manifest.unreadable}): the record of what was built is lost"


def run_build(c, batch: BatchPaths, *, only=None, jobs=None, force=False, medium="print",
              verbose=False, quiet=False, started=None, accepting=None, prefix=""):
    """Build, print what needs attention (every letter's stored preflight, on every build,
    not only the one that made it) and one summary line. Returns (outcomes, the outcomes
    that are not ready for their preflight); raises Exit(2) when nothing could be built.
    ``accepting``: findings the merge of this same command accepts on the record (``merge
    --accept``), which do not make a letter count as not ready here. ``prefix``: put before
    the summary (watch's time and reason), after the warnings, which have lines of their own."""
    from .build import BuildFailed, BuildStopped, build as build_letters
    from .compile import TexMissing
    from .problems import LoadError
    from .ready import accept_command, finding_text, some_ids

    workers = jobs_of(jobs if jobs is not None else c.config.letterbatch.jobs)
    live = sys.stderr.isatty() and not quiet
    try:
        refuse_to_build_in_another_batch_s_folder(batch)
        from .build import Layout
        from .manifest import Manifest

        record = Manifest.read(Layout.of(batch.build_dir, medium).root)
        if record.unreadable:  # every letter is built again: said, not left to look like a first build
            print(f"{lost_record(record)}; every letter is built again", file=sys.stderr)
        report = build_letters(batch.recipients, batch.build_dir, jobs=workers or None, only=only,
                               force=force, medium=medium, progress=progress_line() if live else None)
    except ValueError as exc:  # --only names no valid recipient
        raise Exit(f"nothing was built: {exc}", code=2)
    except BuildStopped as stop:
        if live:
            print(file=sys.stderr)  # after the progress line
        raise Exit(f"stopped: {built_and_left(stop, medium)}", code=STOPPED) from None
    except BuildFailed as failed:  # the other runs' letters are on the record: not "Nothing was built"
        if live:
            print(file=sys.stderr)  # after the progress line
        if isinstance(failed.failure, OSError):  # the disk, in its one line, with what was recorded
            raise not_written(failed.failure, batch, built_and_left(failed, medium)) from None
        raise Exit(f"{failed}\n{built_and_left(failed, medium)}", code=2) from None
    except (LoadError, TexMissing, RuntimeError) as exc:
        raise stopped(exc, then="\nNothing was built.")
    except OSError as exc:
        raise not_written(exc, batch, "letters built before are kept as they were") from None
    for warning in report.warnings:
        print(warning, file=sys.stderr)
    width = max((len(o.recipient) for o in report.outcomes), default=0)
    attention = []
    to_accept = {}  # the findings merge --accept is about to accept on the record, by letter
    for o in report.outcomes:
        found = {f.get("code") for f in o.findings}
        to_accept[o.recipient] = sorted(found.intersection((accepting or {}).get(o.recipient, [])) - set(o.accepted))
        o.accepted = sorted({*o.accepted, *to_accept[o.recipient]})
    # one fault of every letter (a house class that does not load) is said once, with the letters
    # it stops: 300 letters printed the same two lines 300 times
    by_fault: dict[str, list[str]] = {}
    for o in report.outcomes:
        if o.status == "failed" and o.message and not o.findings:
            by_fault.setdefault(o.message, []).append(o.recipient)
    shared = {message: ids for message, ids in by_fault.items() if len(ids) > 2}
    for o in report.outcomes:
        ids = shared.get(o.message) if o.status == "failed" and not o.findings else None
        if ids is not None:
            attention.append(o.recipient)
            if o.recipient == ids[0]:
                print(f"  {some_ids(ids)}  failed ({len(ids)} letters, the same fault)")
                for line in o.message.splitlines():
                    print(f"      {line}")
            continue
        notes = [o.message] if o.message else []
        notes += [finding_text(f) + (" (accepted by this command's merge --accept)" if f.get("code")
                                     in to_accept[o.recipient] else " (accepted)" if f.get("code") in o.accepted
                                     else "") for f in o.findings]
        # a finding accepted (in the YAML, on the record, or by this command's merge) is
        # shown, but is no longer the letter's to fix: it counted as needing attention
        if o.status in ("failed", "invalid") or o.message or any(f.get("code") not in o.accepted
                                                                 for f in o.findings):
            attention.append(o.recipient)
        # quiet (watch) still says what is wrong with a letter: a typo saved showed only
        # "1 failed" in the summary, and the person had to run build to learn where
        if (verbose and not quiet) or o.status in ("failed", "invalid") or notes:
            print(f"  {o.recipient:<{width}}  {o.status}" + (f", {plural(o.pages, 'page')}" if o.pages else "")
                  + (f"  {show(o.pdf)}" if verbose and o.pdf else ""))
            for note in notes:
                for line in note.splitlines():
                    print(f"      {line}")
    counts = {status: sum(o.status == status for o in report.outcomes)
              for status in ("built", "up to date")}
    failed = [o.recipient for o in report.outcomes if o.status == "failed"]
    # a recipient whose data is wrong was counted as failed, a word the report keeps for a
    # letter pdflatex or preflight could not make
    invalid = sum(o.status == "invalid" for o in report.outcomes)
    summary = (f"{plural(len(report.outcomes), 'letter')}: {counts['built']} built, "
               f"{counts['up to date']} up to date, {len(failed)} failed, "
               + (f"{invalid} invalid, " if invalid else "") +
               f"{len(attention)} need{'s' if len(attention) == 1 else ''} attention "
               f"({time.perf_counter() - (started or STARTED):.1f} s) -> {show(batch.build_dir)}")
    print(prefix + summary, flush=True)
    if report.removed and not quiet:
        one = len(report.removed) == 1
        what = (("its letter was" if one else "their letters were") if medium == "print"
                else ("its web copy and page were" if one else "their web copies and pages were"))
        kept = (f"; kept, as only {command('sign', to_run=False)} makes them: "
                f"{', '.join(show(p) for p in report.kept_signed)}" if report.kept_signed else "")
        print(f"no longer in the batch (removed or renamed): {', '.join(report.removed)}; "
              f"{what} deleted from {show(batch.build_dir)}{kept}", flush=True)
    if report.marked and not quiet:  # web copies are copies to publish
        they, them = ("it", "it") if len(report.marked) == 1 else ("they", "them")
        print(f"marked more than OFFICIAL, so check {they} may be published ({command('publish', to_run=False)} "
              f"leaves {them} out until a person clears {them} with --cleared): "
              + ", ".join(f"{rid} ({marking})" for rid, marking in report.marked.items()), flush=True)
    not_ready = report.not_ready
    if not_ready and not quiet and medium == "web":
        # merge makes no web copy: its --accept put the finding on the printed letter's record
        # and left the web copy not ready; the recipient's accept (a list in the YAML, a column
        # of a spreadsheet) is read for both
        codes = {o.recipient: ", ".join(dict.fromkeys(f.get("code") for f in o.errors)) for o in not_ready}
        print(f"not ready (preflight errors): {', '.join(codes)}; {command('publish', to_run=False)} leaves "
              f"them out: fix them, or accept a finding on purpose with the recipient's accept (in the YAML `accept: "
              f"[{next(iter(codes.values()))}]`, in a spreadsheet an accept column): "
              + "; ".join(f"{rid}: {found}" for rid, found in codes.items()), flush=True)
    elif not_ready and not quiet:
        print(f"not ready (preflight errors): {', '.join(o.recipient for o in not_ready)}; merge refuses them "
              f"until they are fixed, or accepted on purpose "
              f"({accept_command(((o.recipient, o.errors) for o in not_ready), accepting)})", flush=True)
    return report.outcomes, not_ready


def progress_line():
    """One line on the terminal: count, last letter, time left. Letters finish in batches,
    so the first few say nothing of the rate: the estimate waits for a twentieth of them."""
    started = time.perf_counter()

    def report(outcome, done, total):
        elapsed = time.perf_counter() - started
        if done >= max(2, total // 20):
            left = f"about {elapsed / done * (total - done):.0f} s left"
        else:
            left = "estimating time left"
        line = "" if done == total else f"  [{done}/{total}] {outcome.recipient:<24.24} {left}"
        print(f"\r\x1b[K{line}", end="", file=sys.stderr, flush=True)  # the summary takes its place
    return report


def open_in_viewer(pdfs: list[Path]) -> None:
    """Open PDFs in the desktop's viewer (xdg-open); say so plainly when there is none."""
    if not pdfs:
        print("nothing to open: no letter was built", file=sys.stderr)
        return
    opener = shutil.which("xdg-open")
    if opener is None:
        print(f"cannot open {', '.join(show(p) for p in pdfs)}: no PDF viewer found "
              "(xdg-open is missing; install xdg-utils and a PDF viewer, or open the file yourself)",
              file=sys.stderr)
        return
    for pdf in pdfs:
        try:
            done = subprocess.run([opener, str(pdf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=15)
        except subprocess.TimeoutExpired:
            continue  # some openers wait for the viewer: it is open
        if done.returncode != 0:
            print(f"cannot open {show(pdf)}: xdg-open found no PDF viewer (exit {done.returncode}); "
                  "open the file yourself", file=sys.stderr)


# ---------------------------------------------------------------- check, status, diff

@letter_task(help={**BATCH_HELP, **MEDIUM_HELP, "only": "ID[,ID...], recipient ids (or the flag again: -o a -o b): just these",
                   **VERBOSE_HELP})
def check(c, recipients=None, build_dir=None, for_="print", only=None, verbose=False):
    """Preflight every letter: A4, embedded fonts, overfull lines, address in window, manifest."""
    from .check import check as check_letters
    from .compile import TexMissing
    from .problems import LoadError
    from .ready import NEVER_BUILT, NEVER_MERGED, STALE

    batch = batch_paths(c, recipients, build_dir)
    refuse_the_build_of_another_batch(batch)
    only = joined(only)
    try:
        results = check_letters(batch.recipients, batch.build_dir, medium_of(for_), ids_of(only),
                                accept=accepted_by_merge(c) if for_ == "print" else None)
    except ValueError as exc:  # --only names no recipient
        raise Exit(f"nothing was checked: {exc}", code=2)
    except (LoadError, TexMissing, OSError) as exc:
        raise stopped(exc)
    letters = [r for r in results if r.kind == "letter"]
    bundle = [r for r in results if r not in letters]
    for r in letters:
        if verbose or r.findings or not r.ready:
            print(f"  {r.line()}")
    # a letter stale or never built has no error of its own: counted in status's words, not
    # "5 with errors" for five letters an edit of the shared text made stale
    not_ready = [r for r in letters if not r.ready]
    unbuilt = {state: sum(r.state == state for r in not_ready) for state in (STALE, NEVER_BUILT)}
    warned = sum(bool(r.findings) and r.ready for r in letters)
    print(f"{plural(len(letters), 'letter')} checked: {len(letters) - len(not_ready) - warned} ok, "
          f"{warned} with warnings, {len(not_ready) - sum(unbuilt.values())} with errors"
          + "".join(f", {n} {state}" for state, n in unbuilt.items() if n))
    hint = build_hint([(r.name, r.state) for r in letters], for_, batch.build_dir, "check")
    if hint:  # not indented: a line of its own, not a letter's
        print(hint)
    # `check merge` goes on to the merge only when check passes: with a letter not ready it
    # stops the chain (and the merge would refuse it), so it said a merge would follow that never did
    merge_follows = c.config.get("merge_follows") and not not_ready
    merge_writes_bundle = c.config.get("merge_writes_bundle") and not not_ready
    for r in bundle:  # the bundle: the file merge wrote, holding the letters as they are now
        if r.state == NEVER_MERGED:
            # check comes before merge (`invoke build check merge`): no bundle yet is no fault,
            # but the user is told there was none to check (a bundle.pdf off the record is
            # named next: "none yet" would deny it)
            if not any(other.kind == "stray bundle" for other in bundle):
                print(f"  bundle: none yet, not checked ({command('merge')} makes it)")
        elif r.state == STALE and merge_follows:
            print(f"  {r.line()} (this command's merge makes it again)")
        elif r.kind == "stray bundle" and merge_writes_bundle:
            # it said "run merge" and stopped `build check merge` before its merge could
            print(f"  bundle: {r.reason.split(': run ')[0]} (this command's merge writes it again)")
        elif verbose or not r.ready:
            print(f"  {r.line()}")
    # the signed copies send mails: one sign did not make as it is needs a person
    tampered = []
    if for_ == "print":
        from .build import batch_status

        found = batch_status(batch.recipients, batch.build_dir)
        tampered = [note for note in [*found.signed_letters.values(), found.signed_bundle] if note and note.changed]
        for note in tampered:
            print(f"  {note}")
    if not_ready or tampered or any(not r.ready and not (r.state == STALE and merge_follows)
                                 and not (r.kind == "stray bundle" and merge_writes_bundle)
                                 for r in bundle):
        raise Exit(code=1)


@letter_task(help={**BATCH_HELP, **MEDIUM_HELP})
def status(c, recipients=None, build_dir=None, for_="print"):
    """List every recipient: ready, stale (and why), failed (first error), never built."""
    from .build import Layout, batch_status, signed_only
    from .compile import TexMissing
    from .problems import LoadError

    batch = batch_paths(c, recipients, build_dir)
    refuse_the_build_of_another_batch(batch)
    layout = Layout.of(batch.build_dir)
    try:
        found = batch_status(batch.recipients, batch.build_dir, medium_of(for_))
    except (LoadError, TexMissing, OSError) as exc:
        raise stopped(exc)
    states = found.letters
    from .files import shown_name
    from .ready import PREFLIGHT, finding_text, strays

    signed = found.signed_letters
    def addresses() -> dict[str, str | None]:  # (mail from another folder, or an address corrected since)
        from .build import addresses

        return addresses(batch.recipients, batch.build_dir)

    mailed = mail_notes(batch.build_dir, found.manifest, addresses) if for_ == "print" else {}
    present = {s.recipient for s in states}
    gone = [rid for rid in mailed if rid and rid not in present]
    if gone:  # a letter mailed under an id the batch no longer has: to whom is it now?
        from .send import sent_as_old_ids
        renamed = sent_as_old_ids(batch.recipients, batch.build_dir, gone)
    else:
        renamed = {}
    # a letter the record still has for a recipient the batch no longer has (removed,
    # renamed): it is in the folder to post or publish until a build deletes it
    left = [rid for rid, entry in found.manifest.letters.items() if rid not in present and not signed_only(entry)]
    # and one whose letter is deleted already, but whose signed copy is kept (only sign makes one)
    kept = {rid: layout.signed_pdf(rid) for rid, entry in found.manifest.letters.items()
            if rid not in present and signed_only(entry) and layout.signed_pdf(rid).is_file()}
    # files in letters/ (or signed/) that are no letter of the batch (a PDF copied there by hand)
    # (or in web/ that is no web copy of the batch: a page edited by hand and saved there)
    stray = strays(Layout.of(batch.build_dir, "web") if for_ == "web" else layout, found.manifest,
                   [s.recipient for s in states])
    width = max([len(s.recipient) for s in states] + [len(rid) for rid in left + gone + list(kept)] +
                [len(shown_name(layout.relative(path))) for path in stray] +
                ([len(found.bundle_name)] if found.bundle else []), default=0)
    # "never merged" (12) is the longest state: the column grows to leave it a gap
    column = max([11] + ([len(found.bundle.state) + 1] if found.bundle else []))
    for s in states:
        print(f"  {s.recipient:<{width}}  {s.state:<{column}} {s.reason}".rstrip())
        for finding in s.findings:
            if s.state == PREFLIGHT and finding in s.errors:
                continue  # the reason just said it
            note = " (accepted)" if finding.get("code") in s.accepted else ""
            print(f"  {'':<{width}}    {finding_text(finding)}{note}")
        if s.recipient in signed:
            print(f"  {'':<{width}}  {signed[s.recipient]}")
        if s.recipient in found.clearances:  # (a clearance is given for one copy: a rebuild drops it)
            mark, cleared = found.clearances[s.recipient]
            by = (found.manifest.letters[s.recipient].get("cleared") or {}).get("by") if cleared else None
            print(f"  {'':<{width}}  " + (f"cleared for publication, marked {mark}" + (f" ({by})" if by else "")
                                          if cleared else f"marked {mark}: publish leaves it out until a person "
                                          "clears it for publication (publish --cleared)"))
        if s.recipient in mailed:
            print(f"  {'':<{width}}  {mailed[s.recipient][0]}")
        elif s.recipient in renamed:  # as send says it: never mailed twice by itself
            old = renamed[s.recipient]
            print(f"  {'':<{width}}  sent as '{old}' (an id no longer in the batch: renamed?): {mailed[old][0]}; "
                  f"{command(f'send --resend {s.recipient} --yes')} sends it to them again")
    if "" in mailed:  # the send log itself is unreadable
        print(f"  {mailed[''][0]}")
    if found.manifest.unreadable:  # it said "never built" of every letter in the folder, and no more
        print(f"  {lost_record(found.manifest)}, so its letters read as never built; "
              f"{command('build' + (' --for web' if for_ == 'web' else ''))} builds them again and records them")
    copy = "web copy" if for_ == "web" else "letter"
    deletes = f"its {copy} is still in the build folder: {command('build' + (' --for web' if for_ == 'web' else ''))} deletes it"
    for rid in dict.fromkeys(left + gone + list(kept)):  # mailed under an id the batch no longer has (renamed?)
        notes = [mailed[rid][0]] if rid in mailed else []
        if rid in kept:
            notes.append(f"its letter is deleted; its signed copy {show(kept[rid])} is kept (only "
                         f"{command('sign', to_run=False)} makes one): delete it yourself once it is not needed")
        print(f"  {rid:<{width}}  {'(gone)':<{column}} " +
              "; ".join(["no longer in the batch", *notes, *([deletes] if rid in left else [])]))
    for path in stray:  # no task makes, merges, signs or sends it: not one of the batch's letters
        what = ("not a web copy of this batch (no task made it)" if for_ == "web" else
                "not a letter of this batch (no task made it, and none merges, signs or sends it)")
        print(f"  {shown_name(layout.relative(path)):<{width}}  {'(not ours)':<{column}} {what}: move it out of "
              f"{show(path.parent)}")
    if found.bundle is not None:  # the file's name: no recipient id has a dot
        print(f"  {found.bundle_name:<{width}}  {found.bundle.state:<{column}} {found.bundle.reason}".rstrip())
        for note in (found.signed_bundle, found.stray_bundle):
            if note:
                print(f"  {'':<{width}}  {note}")
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    print(", ".join(f"{n} {state}" for state, n in counts.items()) or "no recipients")
    hint = build_hint([(s.recipient, s.state) for s in states], for_, batch.build_dir, mailed=mailed)
    if hint:  # not indented: a line of its own, not a letter's
        print(hint)
    acting = sum(1 for rid, (_, act) in mailed.items() if act and rid)
    if acting:  # the summary counted them ready, and the command exited 1 with no word on why
        print(f"{acting} letter{' needs' if acting == 1 else 's need'} a person about "
              f"{'its' if acting == 1 else 'their'} mail: the line under each says what to do")
    # a letter that needs a person (not only a build) makes the exit code say so: its
    # build, its mail (failed, unknown, or a recipient holding an older letter), a
    # bundle changed since its merge (as a letter changed since its build), or a signed
    # copy sign did not make as it is (edited, or put there by hand)
    if any(s.state in ("preflight", "failed", "changed", "invalid") for s in states) or \
            any(act for _, act in mailed.values()) or (found.bundle and found.bundle.state == "changed") or \
            found.stray_bundle or stray or any(note.changed for note in [*signed.values(), found.signed_bundle] if note):
        raise Exit(code=1)


def mail_notes(build_dir: Path, manifest=None, addresses=None) -> dict[str, tuple[str, bool]]:
    """What the send log says per letter, and whether a person must act (none
    when nothing was sent). ``manifest``: the print record, read here when not given;
    ``addresses``: what gives each recipient's e-mail address now (the batch is read only if asked)."""
    from .build import Layout

    layout = Layout.of(build_dir)
    # (no send log: the user's record of mail from any folder may still name its letters)
    from .manifest import Manifest
    from .send import mail_notes as notes

    return notes(layout, manifest if manifest is not None else Manifest.read(layout.root), addresses)


@letter_task(help={"recipients": BATCH_HELP["recipients"], "only": "ID[,ID...], recipient ids (or the flag again: -o a -o b): just these"})
def diff(c, recipients=None, only=None):
    """Show, per recipient, what differs from the shared letter (to review only what is personal)."""
    from .diff import personal
    from .load import LoadError, load

    batch = batch_paths(c, recipients, None)
    only = joined(only)
    try:
        loaded = load(batch.recipients)
    except (LoadError, OSError) as exc:
        raise stopped(exc)
    wanted = ids_of(only)
    # a recipient that is not valid has no letter to review: said, as build says it (it was
    # left out without a word, and `-o` naming it suggested another recipient)
    invalid = {problems[0].recipient or f"recipients[{index}]": problems
               for index, problems in sorted(loaded.rejected.items())}
    if wanted:
        from .ready import no_such_ids

        unknown = no_such_ids([rid for rid in wanted if rid not in invalid], [r.id for r in loaded.batch.recipients])
        if unknown:
            raise Exit(f"nothing to show: {unknown}", code=2)
    for recipient in loaded.batch.recipients:
        if wanted is None or recipient.id in wanted:
            print(recipient.id)
            for line in personal(loaded.batch, recipient):
                print(f"  {line}")
            print()
    shown = [label for label in invalid if wanted is None or label in wanted]
    for label in shown:
        for problem in invalid[label]:
            print(problem, file=sys.stderr)
    if shown:
        raise Exit(f"not shown, as not valid: {', '.join(shown)} (fix what is said above)", code=1)


# ---------------------------------------------------------------- merge, sign

@letter_task(help={
    **BATCH_HELP,
    "output": "the bundle's path (default: <build>/bundle.pdf)",
    "cover": "start with a cover sheet listing every letter (default; --no-cover leaves it out)",
    "duplex": "pad each document with a blank page so every letter starts on a front side",
    "signature-fields": "add an empty signature field on each letter's signature block",
    "open": "open the bundle in the desktop's PDF viewer",
    "accept": "ID:CODE[,ID:CODE...] (or the flag again; for example essex:window): accept preflight "
              "findings on purpose, recorded in the manifest and printed on the cover sheet",
})
def merge(c, recipients=None, build_dir=None, output=None, cover=True, duplex=False,
          signature_fields=False, open=False, accept=None):
    """Merge every letter, in YAML order, into <build>/bundle.pdf (refuses any letter that is not ready)."""
    from .compile import TexMissing
    from .problems import LoadError
    from .build import Layout
    from .merge import (BundleNotRecorded, MergeRefused, NoSuchRecipient, OutputRefused, SharedPartFailed,
                        merge as merge_letters)

    if output is not None and not str(output).strip():
        # a script's empty variable (`--output "$OUT"`) wrote <build>/bundle.pdf, where the
        # bundle was not wanted, instead of saying so
        raise Exit(f"--output takes the bundle's file name, ending in .pdf, not {output!r}", code=2)
    batch = batch_paths(c, recipients, build_dir)
    refuse_the_build_of_another_batch(batch)
    accept = joined(accept)
    accepted = accepted_of(accept)
    c.config["merge_follows"] = False  # a check after this merge judges the bundle it made
    if accept and c.config.get("accepted_by_merge") == accept:
        # what this merge accepts counts for the tasks before it only: a build after it
        # (`merge --accept essex:window build -f`) may rebuild the letter, whose record then
        # holds no acceptance, and said "accepted by this command's merge --accept", exit 0
        c.config["accepted_by_merge"] = ""
    target = Path(output) if output else Layout.of(batch.build_dir).bundle
    had_bundle = target.is_file()
    try:
        report = merge_letters(batch.recipients, batch.build_dir, output, cover=cover, duplex=duplex,
                               signature_fields=signature_fields, accept=accepted)
    except (OutputRefused, NoSuchRecipient) as exc:  # a bad value
        raise stopped(exc, code=2)
    except SharedPartFailed as exc:  # the letterhead, not a letter: as build stops
        raise stopped(exc, code=2)
    except MergeRefused as exc:  # letters that are not ready: as check and sign say of them
        raise stopped(exc, code=1)
    except (LoadError, TexMissing, RuntimeError) as exc:  # nothing could be merged: as build stops
        raise stopped(exc, code=2)
    except BundleNotRecorded as exc:  # the bundle is in place: not "unchanged", nor "not written"
        raise stopped(exc, then=f" {show(target)} was written but is not on the record: no task uses it "
                                "until a merge records it.") from None
    except OSError as exc:
        raise Exit(f"could not write the bundle: {exc.strerror or exc}"
                   + (f" ({exc.filename})" if exc.filename else "")
                   + ("; the previous bundle is unchanged" if had_bundle else "; no bundle was written"),
                   code=2)
    extras = [f"{report.cover_pages}-page cover"] if report.cover_pages else []
    extras += [f"{plural(report.blank_pages, 'blank page')} for duplex"] if duplex else []
    saved = report.inputs_size - report.size
    print(f"{show(Path(report.path))}: " + ("up to date, " if report.up_to_date else "")
          + f"{plural(report.letters, 'letter')}, {plural(report.pages, 'page')}"
          + (f" ({', '.join(extras)})" if extras else "")
          + f"; {report.size / 1024:.0f} KiB; the letters' own files add up to {report.inputs_size / 1024:.0f} KiB"
          + (f" ({saved / 1024:.0f} KiB saved: fonts and letterhead stored once)" if saved > 0 else ""))
    for rid, codes in (report.accepted or {}).items():
        print(f"  accepted on the record: {rid}: {', '.join(codes)}")
    # an id:code whose letter has no such error accepts nothing: said, not silently dropped (a
    # rebuild may have cured it, so the merge goes on; an id or code that is none is exit 2)
    idle = [f"{rid}:{code}" for rid, codes in accepted.items() for code in dict.fromkeys(codes)
            if code not in (report.accepted or {}).get(rid, {})]
    if idle:
        print(f"warning: --accept {','.join(idle)}: no such preflight error in "
              f"{'that letter' if len(idle) == 1 else 'those letters'}, so nothing was accepted for "
              f"{'it' if len(idle) == 1 else 'them'}", file=sys.stderr)
    if open:
        open_in_viewer([Path(report.path)])


@letter_task(help={
    **BATCH_HELP,
    "p12": "PKCS#12 file (.p12/.pfx) holding the signing key and certificate "
           "(password: $LETTERBATCH_P12_PASSWORD or a prompt)",
    "pkcs11-lib": "PKCS#11 module of a smartcard or HSM, e.g. /usr/lib/softhsm/libsofthsm2.so "
                  "(PIN: $LETTERBATCH_PKCS11_PIN or a prompt)",
    "token": "the token's label (with --pkcs11-lib)",
    "key": "the label of the key on the token; its certificate has the same label (with --pkcs11-lib)",
    "reason": "the reason recorded in the signatures",
    "force": "sign again letters whose signed copy is already current",
})
def sign(c, recipients=None, build_dir=None, p12=None, pkcs11_lib=None, token=None, key=None,
         reason="Approved for dispatch", force=False):
    """Sign every ready letter (<build>/signed/<id>.pdf, visible in its signature block) and the bundle."""
    from .compile import TexMissing
    from .problems import LoadError
    from .sign import Key, SigningError, check_key_files, sign_batch

    batch = batch_paths(c, recipients, build_dir)
    refuse_the_build_of_another_batch(batch)
    if bool(p12) == bool(pkcs11_lib):
        raise Exit("give either --p12 FILE or --pkcs11-lib PATH --token LABEL --key LABEL", code=2)
    # the key's file before its password or PIN: a path mistyped was "set
    # LETTERBATCH_P12_PASSWORD", or at a terminal a prompt for the password of no file
    try:
        check_key_files(p12, pkcs11_lib)
    except SigningError as exc:
        raise Exit(f"could not sign: {exc}", code=2)
    if p12:
        signing_key = Key(p12=Path(p12), password=secret("LETTERBATCH_P12_PASSWORD", f"Password for {p12}: ").encode())
    else:
        if not (token and key):
            raise Exit("--pkcs11-lib needs --token LABEL and --key LABEL", code=2)
        signing_key = Key(pkcs11_lib=Path(pkcs11_lib), token=token, key=key,
                          pin=secret("LETTERBATCH_PKCS11_PIN", f"PIN for token '{token}': "))
    try:
        report = sign_batch(batch.recipients, batch.build_dir, signing_key, reason=reason, force=force)
    except (LoadError, TexMissing, RuntimeError, OSError) as exc:
        raise stopped(exc)
    except SigningError as exc:
        raise Exit(f"could not sign: {exc}", code=2)
    for path in report.signed:
        print(f"  signed   {show(path)}")
    for rid in report.current:
        print(f"  current  {rid} (its signed copy is of the current letter; --force signs again)")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.bundle:
        print(f"  signed   {show(report.bundle)}")
    elif not report.bundle_refused:
        print(f"  {report.bundle_note}")
    problems = [report.bundle_note] if report.bundle_refused else []
    if report.refused:
        problems.append("not signed; these letters are not ready:\n  " + "\n  ".join(report.refused)
                        + f"\n{report.refused_fix}")
    if report.failed:
        problems.append("could not sign:\n  " + "\n  ".join(report.failed))
    if problems:
        raise Exit("\n".join(problems), code=1)


def secret(variable: str, prompt: str) -> str:
    """A password or PIN: from the environment, or asked on the terminal; never a flag."""
    import getpass

    value = os.environ.get(variable)
    if value is None:
        if not sys.stdin.isatty():
            raise Exit(f"set {variable} (no terminal to ask)", code=2)
        value = getpass.getpass(prompt)
    return value


# ---------------------------------------------------------------- send

@letter_task(help={
    **BATCH_HELP,
    "yes": "really send (without it: a dry run that prints who would get what)",
    "resend": "ID[,ID...] (or the flag again): send these again on purpose (already sent, or unknown), and nothing else",
    "mark-sent": "ID[,ID...] (or the flag again): record that these arrived (after checking the mailbox)",
})
def send(c, recipients=None, build_dir=None, yes=False, resend=None, mark_sent=None):
    """E-mail each ready letter to its recipient, once (SMTP settings: letterbatch.smtp.*)."""
    from .compile import TexMissing
    from .problems import LoadError
    from .send import SendError, SmtpSettings, mark_sent as mark, send as send_letters

    batch = batch_paths(c, recipients, build_dir)
    refuse_the_build_of_another_batch(batch)
    resend, mark_sent = joined(resend), joined(mark_sent)
    for flag, value in (("mark-sent", mark_sent), ("resend", resend)):
        # `--mark-sent "$ID"` with ID empty was a plain send: every letter not yet sent mailed
        if value is not None and not str(value).replace(",", "").strip():
            raise Exit(f"--{flag} takes the ids of the letters to {flag.replace('-', ' ')} "
                       f"(--{flag} london,essex), not {value!r}; nothing was sent", code=2)
    if mark_sent is not None and resend is not None:  # one of them was silently dropped
        raise Exit("--mark-sent records letters as arrived and --resend mails them again: give one "
                   "of them; nothing was sent", code=2)
    width = 0

    def begin(ids):  # every id is known before the first line: one column for all
        nonlocal width
        width = max(map(len, ids), default=0)

    def report(outcome):
        nonlocal width
        width = max(width, len(outcome.recipient))
        print(f"  {outcome.recipient:<{width}}  {outcome.status:<12} {outcome.detail}", flush=True)

    try:
        if mark_sent is not None:
            begin(ids_of(mark_sent))
            for outcome in mark(batch.recipients, batch.build_dir, ids_of(mark_sent)):
                report(outcome)
            return
        cfg = c.config.letterbatch.smtp
        # (a timeout of 0 or less was a traceback from the socket; an empty host, smtplib's
        # "please run connect() first")
        if not isinstance(cfg.timeout, (int, float)) or isinstance(cfg.timeout, bool) or not 0 < cfg.timeout <= 3600:
            raise Exit(f"the SMTP timeout is {cfg.timeout!r}: give the seconds to wait for the mail server, "
                       "more than 0 and at most 3600 (letterbatch.smtp.timeout)", code=2)
        if yes and not str(cfg.host or "").strip():
            raise Exit("no mail server: set letterbatch.smtp.host (or INVOKE_LETTERBATCH_SMTP_HOST)", code=2)
        settings = SmtpSettings(host=cfg.host, port=cfg.port, security=cfg.security, user=cfg.user,
                                sender=cfg["from"], timeout=float(cfg.timeout))
        if yes and settings.user:
            settings.password = secret("LETTERBATCH_SMTP_PASSWORD",
                                       f"SMTP password for {settings.user} at {settings.host}: ")
        if not yes:
            print(f"dry run (nothing is sent; add --yes to send) via {settings.describe()}:")
        outcomes = send_letters(batch.recipients, batch.build_dir, settings, yes=yes,
                                resend=ids_of(resend) or [], report=report, begin=begin,
                                warn=lambda text: print(f"warning: {text}", file=sys.stderr, flush=True))
    except BrokenPipeError:  # the reader of the report has gone (`send | head`): stop quietly (BatchExecutor)
        raise
    except (LoadError, TexMissing, RuntimeError, OSError, SendError) as exc:
        raise stopped(exc)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no letters"
    hint = build_hint([(o.recipient, o.state) for o in outcomes if o.state], "print", batch.build_dir,
                      "send")  # as status and check say it
    if not all(o.ok for o in outcomes):
        raise Exit(summary + (f"\n{hint}" if hint else ""), code=1)
    print(summary)


# ---------------------------------------------------------------- publish

@letter_task(help={
    **BATCH_HELP,
    "to": "DIR: the website's folder to copy the ready web copies into",
    "cleared": "ID[,ID...] (or the flag again): letters marked more than OFFICIAL that a person cleared for "
               "publication",
})
def publish(c, recipients=None, build_dir=None, to=None, cleared=None):
    """Copy each ready web copy (PDF and HTML page) into the website's folder (--to DIR)."""
    from .compile import TexMissing
    from .problems import LoadError
    from .publish import PublishRefused, PublishStopped, publish as publish_copies

    batch = batch_paths(c, recipients, build_dir)
    refuse_the_build_of_another_batch(batch)
    if not str(to or "").strip():
        raise Exit("give the website's folder to publish into: --to DIR", code=2)
    cleared = joined(cleared)
    if cleared is not None and not str(cleared).replace(",", "").strip():
        # a script's empty variable: it said "--only takes the ids of letters", a flag publish has not
        raise Exit(f"--cleared takes the ids of the letters a person cleared for publication (--cleared "
                   f"london,essex), not {cleared!r}; nothing was published", code=2)
    cleared = ids_of(cleared) or []
    try:
        report = publish_copies(batch.recipients, batch.build_dir, Path(to), cleared)
    except PublishRefused as exc:
        raise Exit(str(exc), code=2)
    except PublishStopped as stop:
        for path in stop.report.published:
            print(f"  published  {show(path)}")
        done = len(stop.report.published)
        raise stopped(stop.error, then=f" {plural(done, 'file')} published before it (above); publishing again "
                                       "copies the rest." if done else " Nothing was published.")
    except (LoadError, TexMissing, RuntimeError, OSError) as exc:
        raise stopped(exc)
    for path in report.published:
        print(f"  published  {show(path)}")
    for rid in report.current:
        print(f"  current    {rid} (its copies in {show(Path(to))} are these already)")
    for rid, marking in report.cleared.items():  # (a rebuilt letter is cleared again)
        print(f"  cleared    {rid} ({marking}): on the record for this copy ({command('status --for web')})")
    for rid, why in report.not_cleared.items():  # (it was taken silently)
        print(f"note: --cleared {rid}: not recorded, {why}", file=sys.stderr)
    problems = []
    if report.marked:
        problems.append("not published, marked more than OFFICIAL: "
                        + ", ".join(f"{rid} ({marking})" for rid, marking in report.marked.items())
                        + f"\nOnce a person has cleared {'it' if len(report.marked) == 1 else 'them'} for publication: "
                        + command(f"publish --to {shlex.quote(str(to))} --cleared {','.join(report.marked)}"))
    if report.refused:
        problems.append("not published; these web copies are not ready:\n  " + "\n  ".join(report.refused)
                        + f"\n{report.refused_fix}")
    if report.failed:
        problems.append(f"could not publish into {show(Path(to))}:\n  " + "\n  ".join(report.failed)
                        + "\nMake each writable (or move what is in its place), then publish again.")
    if problems:
        raise Exit("\n".join(problems), code=1)


# ---------------------------------------------------------------- new, watch

@letter_task(help={"name": "the new batch's name: writes NAME.yaml (a path may lead to another folder)"})
def new(c, name):
    """Start a batch: a commented NAME.yaml that builds as it stands, and an images/ folder."""
    from .files import write_atomic
    from .schema import SCHEMA_FILE, json_schema_text

    if Path(name.strip()).name in ("", ".", ".."):
        raise Exit(f"{command('new')} takes a name for the batch (for example {command('new october')}), "
                   f"not {name!r}", code=2)
    target = Path(name.strip()).expanduser()
    if target.suffix.lower() in SPREADSHEET_SUFFIXES:  # it wrote people.xlsx.yaml
        stem = shlex.quote(str(target.with_suffix("")))
        raise Exit(f"{command('new')} starts a batch file (.yaml), not a spreadsheet: {command('new ' + stem)}, "
                   f"then write `recipients: {{from: {target.name}}}` in it to read the recipients from "
                   f"{target.name} (README, \"From a spreadsheet\"); nothing was written", code=2)
    if target.suffix.lower() not in BATCH_SUFFIXES:  # (`new Oct.YAML` wrote Oct.YAML.yaml)
        target = target.with_name(target.name + ".yaml")
    # a link of that name (even one to nowhere) exists too: resolved, `new z` wrote the batch
    # and an images/ folder wherever z.yaml pointed
    if target.exists() or target.is_symlink():
        raise Exit(f"{show(target.absolute())} already exists: choose another name, or edit it", code=2)
    target = target.parent.resolve() / target.name
    # `new x,y` (or in a folder "Letters, 2021"): its next step, the build it prints, failed with
    # "TeX cannot find files in build/x,y": a path kpathsea reads as its own syntax, which the
    # build folder named after the batch would hold; a control character would be in every message
    from .compile import TexCannotSearch, check_searchable
    if any(ord(char) < 32 or ord(char) == 127 for char in target.name):
        raise Exit(f"{command('new')} takes a name without control characters, not {name!r}", code=2)
    builds_in = (project_dir(c) or target.parent) / "build"  # as batch_paths makes it
    try:
        check_searchable(builds_in, "start the batch in another folder")
        check_searchable(builds_in / target.stem, "choose a name for the batch without it")
    except TexCannotSearch as exc:
        raise Exit(f"{exc}; nothing was written", code=2) from None
    # Oct.YAML there (a batch too): `new Oct` wrote Oct.yaml, and the two shared build/Oct,
    # where the second is refused as another batch of the same name
    twin = next((entry for entry in sorted(target.parent.iterdir()) if entry.stem == target.stem
                 and entry.name != target.name and is_batch_file(entry)), None) if target.parent.is_dir() else None
    if twin is not None:
        raise Exit(f"{show(twin)} is a batch of that name already: both would build into build/{target.stem}/; "
                   "choose another name, or edit it", code=2)
    images = target.parent / "images"
    if images.exists() and not images.is_dir():  # it wrote the batch, then stopped with "File exists (images)"
        raise Exit(f"{show(images)} is a file, not a folder: {command('new')} makes an images/ folder beside the "
                   "batch for its logo or signature; rename that file, or start the batch in another folder",
                   code=2)
    schema = target.parent / SCHEMA_FILE
    # the file's own first lines say how to build it, with the command this person runs
    # (outside a checkout `invoke` finds no tasks) and the file's name
    build_it = command(f"build merge -r {shlex.quote(show(target))}", to_run=False)
    starter = STARTER.read_text(encoding="utf-8").replace("`invoke new`", command("new", to_run=False))
    made_images = False
    try:  # a folder that is a file, or one that cannot be written: one line, not a traceback
        target.parent.mkdir(parents=True, exist_ok=True)
        if not schema.exists():  # the YAML's first line points editors at it
            write_atomic(schema, json_schema_text().encode("utf-8"))
        made_images = not images.is_dir()
        images.mkdir(exist_ok=True)
        # the batch file last: a full disk stopped `new` after it, and the "try again" the
        # message gave was refused, "NAME.yaml already exists" (a batch without its schema)
        write_atomic(target, starter.replace("`invoke build merge -r THIS-FILE.yaml`", build_it).encode("utf-8"))
    except OSError as exc:
        if made_images:
            with contextlib.suppress(OSError):
                images.rmdir()
        raise stopped(exc)
    print(f"wrote {show(target)} (and {show(target.parent / 'images')}/ for its logo or signature)")
    print(f"next: fill it in, then {build_it}")


@letter_task(help={
    **BATCH_HELP,
    "jobs": "parallel pdflatex runs (default: one per core)",
    "for": "print (default) or web",
    "interval": "seconds between looks at the files (default 0.5)",
})
def watch(c, recipients=None, build_dir=None, jobs=None, for_="print", interval="0.5"):
    """Rebuild on every save of the batch file (and its spreadsheet), the letterhead or an image; one line per rebuild."""
    from .build import LETTERHEAD, FolderBusy
    from .load import LoadError, load

    batch = batch_paths(c, recipients, build_dir)
    medium = medium_of(for_)
    # before watching: a bad --jobs was said at every save, and watch went on watching
    jobs = jobs_of(jobs if jobs is not None else c.config.letterbatch.jobs)
    try:
        pause = float(interval)
    except ValueError:
        pause = -1
    if not 0 < pause <= 60:
        raise Exit(f"--interval takes seconds between 0 and 60, not {interval!r}", code=2)
    from .load import not_text, not_text_message

    kind = not_text(batch.recipients)
    if kind:  # `watch -r logo.png`: said once, then it watched the image for good (build exits 2)
        raise Exit(f"{show(batch.recipients)}: {not_text_message(kind)}; nothing to watch", code=2)
    try:  # before watching: it said so at every save, and went on watching
        refuse_to_build_in_another_batch_s_folder(batch)
    except FolderOfAnotherBatch as exc:
        raise stopped(exc, then="\nNothing was built.")

    tables: list[Path] = []  # the spreadsheet the recipients come from, if any
    read_too: list[Path] = []  # the spreadsheet and images, as the batch last named them

    def watched() -> list[Path]:
        files = [batch.recipients, *sorted(p for p in LETTERHEAD.rglob("*") if p.is_file())]
        try:
            loaded = load(batch.recipients)
            letter = loaded.batch.letter
            tables[:] = [Path(p) for p in loaded.inputs]
            read_too[:] = tables + [batch.recipients.parent / rel for rel in
                                    (letter.sender.logo, letter.signatory.image, letter.letterhead) if rel]
        except (LoadError, OSError):
            # the build says what is wrong; keep watching the files, the spreadsheet (its fault, maybe)
            # too, and the files the batch now names: a logo named before it was copied in was
            # never watched, and its letters stayed stale once it was there
            read_too[:] = list(dict.fromkeys(read_too + named_files(batch.recipients)))
        return files + read_too

    def rebuild(reason: str, again: bool = False) -> bool:
        """Build; False when another build, merge or send held the folder (said once, not
        ``again``: the build is tried on each interval until it runs)."""
        # the time and reason go with the summary: printed first, a warning of the batch
        # (stderr) ended that line, and the summary stood on the next without them
        prefix = f"{time.strftime('%H:%M:%S')} {reason}: "
        try:
            run_build(c, batch, jobs=jobs, medium=medium, quiet=True, started=time.perf_counter(), prefix=prefix)
        except Exit as exc:
            busy = isinstance(exc.__context__, FolderBusy)
            if not (busy and again):
                print(prefix + (str(exc.message or "").splitlines()[0] if exc.message else "stopped")
                      + ("; the build follows when it has finished" if busy else ""), flush=True)
            if exc.code == STOPPED:  # Ctrl-C while it built: it stops watching too
                raise KeyboardInterrupt from None
            return not busy
        return True

    files = watched()
    print(f"watching {', '.join(show(p) for p in [batch.recipients, *tables])}, the letterhead and its images "
          "(Ctrl-C stops)", flush=True)
    try:
        seen = watch_stamps(files)
        waiting = "" if rebuild("start") else "start"  # a build refused for the lock, to try again
        while True:
            time.sleep(pause)
            now = watch_stamps(files)
            if now == seen and not waiting:
                continue
            while now != seen:  # a save under way (an editor empties a file, then writes it): until it holds still
                time.sleep(pause)
                settled = watch_stamps(files)
                if settled == now:
                    break
                now = settled
            changed = [show(p) for p in files if now.get(p) != seen.get(p)]
            reason = ", ".join(changed) + " changed" if changed else waiting
            if not reason:  # gone and back as it was (between two looks): nothing to build, no line saying ": "
                seen = now
                continue
            # as they were before this build read them: a save while it runs is the next build's
            seen = now
            built = rebuild(reason, again=bool(waiting) and not changed)
            waiting = "" if built else reason
            files = watched()
            seen = {**watch_stamps(files), **{p: seen[p] for p in files if p in seen}}
    except KeyboardInterrupt:
        print("stopped watching", flush=True)
        raise Exit(code=STOPPED) from None


def named_files(recipients: Path) -> list[Path]:
    """The spreadsheet, images and house letterhead a batch file names, read from its YAML
    alone (the batch need not be valid: one of them may be missing); none if it is not YAML."""
    from .load import _parse_yaml, read_text

    try:
        data = _parse_yaml(read_text(recipients)).data
    except Exception:  # not YAML (yet): the build says why
        return []
    data = data if isinstance(data, dict) else {}
    letter = data.get("letter") if isinstance(data.get("letter"), dict) else {}
    found = [(letter.get("sender") or {}).get("logo") if isinstance(letter.get("sender"), dict) else None,
             (letter.get("signatory") or {}).get("image") if isinstance(letter.get("signatory"), dict) else None,
             letter.get("letterhead"),
             data["recipients"].get("from") if isinstance(data.get("recipients"), dict) else None]
    return [recipients.parent / name for name in found if isinstance(name, str) and name.strip()]


def watch_stamps(files: list[Path]) -> dict:
    """What watch compares between looks: each file's modification time and size, None when it is not there."""
    def stamp(path: Path):
        try:  # one stat: a file deleted between `exists()` and `stat()` (an editor writing it anew) was a traceback
            found = path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    return {p: stamp(p) for p in files}


# ---------------------------------------------------------------- project chores

def checkout(c, what: str) -> Path:
    project = project_dir(c)
    if project is None:
        raise Exit(f"{what} runs in a letterbatch checkout (`invoke {what}` there)", code=2)
    return project


@letter_task(help={
    "letters": "how many synthetic letters (default 500)",
    "jobs": "parallel workers for the in-process stages (default: one per core)",
    "baseline-sample": "raw pdflatex is timed on at most this many letters and scaled up (0: all)",
    "repeat": "run each command this many times and report medians (default 1)",
    "engine-letters": "batch sizes to compare the merge engines at (default 500,1000; '' skips)",
    "stages": "also time each stage inside one process (default; --no-stages for a very large N)",
    "web": "also time web copies against print (default; --no-web skips)",
    "cold-only": "of the commands, only the cold build + merge: its time and peak memory (for 10,000 letters)",
    "table-rows": "recipients for the loading figures: YAML, CSV, .xlsx (default 10000; 0 skips)",
})
def bench(c, letters="500", jobs="0", baseline_sample="60", repeat="1", engine_letters="500,1000",
          stages=True, web=True, cold_only=False, table_rows="10000"):
    """Benchmark N synthetic letters: the whole command as a user runs it, beside each stage."""
    project = checkout(c, "bench")
    sizes = [str(whole_number(size, "engine-letters", 1)) for size in engine_letters.split(",") if size.strip()]
    command = [sys.executable, str(project / "benchmarks" / "bench.py"),
               "--letters", str(whole_number(letters, "letters", 1)), "--jobs", str(whole_number(jobs, "jobs")),
               "--baseline-sample", str(whole_number(baseline_sample, "baseline-sample")),
               "--repeat", str(whole_number(repeat, "repeat", 1)), "--engine-letters", ",".join(sizes),
               "--table-rows", str(whole_number(table_rows, "table-rows"))]
    command += [] if stages else ["--no-stages"]
    command += [] if web else ["--no-web"]
    command += ["--cold-only"] if cold_only else []
    code = subprocess.run(command, cwd=project).returncode
    if code:
        raise Exit(code=code)


@letter_task(help={"recipients": "the batch whose folder gets the schema (default: the project)"})
def schema(c, recipients=None):
    """Write recipients.schema.json (JSON Schema for editors) from the builder's models."""
    from .files import write_atomic
    from .schema import SCHEMA_FILE, json_schema_text

    # a batch given with -r is read as every task reads it: `schema -r lettres` (the folder) wrote
    # the schema beside the folder, and `-r octobr.yaml` beside no batch, each saying "wrote"
    batch = batch_paths(c, recipients, None, read=bool(recipients))
    folder = batch.project if batch.project and not recipients else batch.recipients.parent
    target = folder / SCHEMA_FILE
    write_atomic(target, json_schema_text().encode("utf-8"))
    print(f"wrote {show(target)}")


@letter_task(help={**BATCH_HELP})
def clean(c, recipients=None, build_dir=None):
    """Remove the batch's build folder (build/<batch>/): everything the build made for it.
    The send log stays: it is the record of who was mailed, not something a build makes."""
    from .build import Layout, lock

    batch = batch_paths(c, recipients, build_dir, read=False)
    target = batch.build_dir
    sent = Layout.of(target).sent
    if not target.exists():
        # `clean` with no -r where the batches are november.yaml and october.yaml said "nothing
        # to remove: build/recipients does not exist" (exit 0), as if theirs were clean
        if not recipients and not batch.recipients.exists() and any(
                is_batch_file(p) for p in batch.recipients.parent.iterdir()):
            raise Exit(no_batch_here(batch.recipients), code=2)
        print(f"nothing to remove: {show(target)} does not exist")
        return
    try:
        refused = _not_a_build_folder(target, batch)
        if refused:
            raise Exit(f"{show(target)} is not a build folder to remove: it {refused}; give --build-dir "
                       "the batch's own build folder (build/<batch>/). Nothing was removed.", code=2)
        # the batch's own folder, with a file of the person's in letters/ or signed/ (a PDF
        # copied there by hand, which status lists as not ours): the folder went with it
        stray = _strays_of(target, batch)
        if stray:
            raise Exit(f"{show(target)} holds files no build makes ({', '.join(stray[:3])}"
                       f"{', …' if len(stray) > 3 else ''}): files of your own, no letter of "
                       f"{show(batch.recipients)}; move them out of it, then clean again. Nothing was removed.",
                       code=2)
        # never the folder of a build, merge or send that runs, nor of a web build (its own lock)
        with lock(Layout.of(target)), lock(Layout.of(target, "web")):
            _clean(target, sent)
    except RuntimeError as exc:
        raise stopped(exc, then="\nNothing was removed.")
    except OSError as exc:  # a read-only folder
        raise stopped(exc)


def _not_a_build_folder(target: Path, batch: BatchPaths) -> str | None:
    """Why ``target`` is not this batch's build folder to remove ("holds ..."), or None. `clean -b .`
    or `clean -b build` (the folder of every batch) would otherwise delete the batch
    file, the project, or other batches' folders and their send logs; `clean -b images`
    the batch's logo, and `-b` naming another batch's build folder its signed copies."""
    holds = [(batch.recipients, f"holds the batch file {show(batch.recipients)}"),
             (Path.cwd().resolve(), "holds the folder you are in")]
    if batch.project:
        holds.append((batch.project.resolve(), f"holds the project {show(batch.project)}"))
    for path, what in holds:
        if path.is_relative_to(target):
            return what
    # a folder inside a build folder (its web/, letters/): it said the web copies were
    # "files no build makes"
    # (a batch built only for the web has its record in web/ alone)
    around = build_folder_around(target)
    if around is not None:
        return f"is part of the build folder {show(around)}, not a build folder of its own"
    # a build folder of its own (another batch's, or a web build's beside a print build's)
    others = [entry for entry in target.iterdir() if entry.name != "web" and entry.is_dir()
              and not entry.is_symlink() and ((entry / "manifest.json").exists() or (entry / "sent.json").exists())]
    if others:
        return f"holds another batch's build folder ({show(others[0])})"
    # a folder no build made (the batch's images, a data folder): no record and no lock
    # (or of a batch built only --for web, whose record and lock are in web/: its folder was refused)
    made = ("manifest.json", ".lock", "sent.json", "web/manifest.json", "web/.lock")
    if not any((target / name).exists() for name in made):
        if any(target.iterdir()):
            return "holds no build (no manifest.json): files of your own"
        # an empty folder given with -b (`clean -b images` before the logo is copied in): it was
        # removed, and `cp logo.png images` then made a file called images. Only the batch's own
        # build/<name>/, left empty, is its to remove
        if not batch.named_after_file:
            return "holds no build (no manifest.json): an empty folder of your own"
    # nor one that merely has a file of one of those names (a web app's manifest.json, a
    # .lock of its own): the whole folder was removed. A build folder holds what builds
    # make, nothing else (its record may be damaged: clean is how to start again)
    own = _not_made_by_a_build(target)
    if own:
        return f"holds files no build makes ({', '.join(own[:3])}{', …' if len(own) > 3 else ''}): files of your own"
    # the build folder of another batch file, given with -b: its letters, and signed copies
    # that cannot be made again (a copy of the project names its own file, as it was)
    other = other_batch_in(target, batch.recipients)
    return f"holds the letters of another batch, {show(other)}" if other else None


# what build, merge, sign and send write at the top of a build folder
_MADE_BY_A_BUILD = {"letters", "tex", "work", "web", "signed", "manifest.json", "bundle.pdf", "cover.pdf",
                    "bundle-signed.pdf", "sent.json", ".lock"}


def _not_made_by_a_build(target: Path) -> list[str]:
    """The names in ``target`` (and its web/) that no build, merge, sign or send makes:
    not theirs, not their temporary files, not a bundle ``merge --output`` wrote there."""
    from .files import is_temporary, shown_name
    from .manifest import Manifest

    try:
        bundle = Manifest.read(target).bundle or {}  # (a damaged record names none)
    except OSError:
        bundle = {}
    own = [entry.name for entry in target.iterdir() if entry.name not in _MADE_BY_A_BUILD
           and entry.name != bundle.get("file") and not is_temporary(entry.name)]
    web = target / "web"
    if web.is_dir() and not web.is_symlink():
        own += [f"web/{entry.name}" for entry in web.iterdir()
                if entry.name not in ("manifest.json", ".lock", "tex", "work") and not is_temporary(entry.name)
                and not re.fullmatch(r"\d{4}-\d{2}-\d{2}-.+\.(pdf|html)", entry.name)]
    return [shown_name(name) for name in sorted(own)]


def _strays_of(target: Path, batch: BatchPaths) -> list[str]:
    """The files in ``target``'s letters/ and signed/ that are no letter of the batch (and in
    its web/ no web copy of it), as
    status names them (`ready.strays`): a PDF copied there by hand went with the folder.
    A letter a build killed before it recorded it is one of the batch's: its LaTeX is in
    tex/, or, failing that, its id in the batch file, read only when one is in doubt (the
    batch file may be invalid or gone: clean is how to start again)."""
    from .build import Layout
    from .files import shown_name
    from .manifest import Manifest
    from .problems import LoadError
    from .ready import strays

    layout, web = Layout.of(target), Layout.of(target, "web")
    manifest, web_manifest = Manifest.read(target), Manifest.read(web.root)
    compiled = [source.stem for source in layout.tex.glob("*.tex")] if layout.tex.is_dir() else []
    compiled += [source.stem for source in web.tex.glob("*.tex")] if web.tex.is_dir() else []
    found = strays(layout, manifest, compiled) + strays(web, web_manifest, compiled)
    if found:
        from .load import load

        try:
            loaded = load(batch.recipients)
        except (LoadError, OSError):
            pass
        else:
            ids = [r.id for r in loaded.batch.recipients]
            ids += [problems[0].recipient for problems in loaded.rejected.values() if problems[0].recipient]
            found = strays(layout, manifest, compiled + ids) + strays(web, web_manifest, compiled + ids)
    return [shown_name(layout.relative(path)) for path in found]


def _clean(target: Path, sent: Path) -> None:
    if sent.exists():  # without it, the next `send --yes` would mail everyone again
        for entry in target.iterdir():
            if entry == sent:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        print(f"removed what {show(target)} held, but kept {show(sent)}: the record of who was mailed "
              "(so nobody is mailed twice); delete it yourself only if no letter of this batch was sent")
    else:
        shutil.rmtree(target)
        print(f"removed {show(target)}")


@letter_task(help={"k": "only tests matching this pytest -k expression"})
def test(c, k=None):
    """Run the test suite (real pdflatex, PDFs read back)."""
    project = checkout(c, "test")
    command = [sys.executable, "-m", "pytest", "-q"] + (["-k", k] if k else [])
    # The tools the test extras install (pdfua ...) sit beside this Python: put them on PATH,
    # as an activated virtual environment would (`.venv/bin/invoke test` activates nothing).
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    # pytest exits 5 when it collected no tests: that is a failure too
    code = subprocess.run(command, cwd=project, env=env).returncode
    if code:
        raise Exit(code=code)


ns = Collection(new, build, watch, status, check, diff, merge, sign, send, publish, clean, schema, bench, test)
ns.configure({
    "letterbatch": {
        "recipients": "recipients.yaml", "build_dir": None, "jobs": 0, "project": None,
        # invoke send: INVOKE_LETTERBATCH_SMTP_HOST and so on; the password is never here
        "smtp": {"host": "localhost", "port": 0, "security": "starttls", "user": "", "from": "", "timeout": 60.0},
    },
})
