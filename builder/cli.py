"""The `letterbatch` command: invoke's CLI as a program of its own, running the
task collection in builder/tasks.py (as invoke documents for distributing a
collection), so an installed package works from any folder."""
import os
import re
import shlex
import sys

from invoke import Exit, ParseError, Program

from . import __version__
from .tasks import BatchExecutor, ns

# BatchExecutor: -r/-b given to any task of a chain apply to all of them (invoke.yaml does
# the same for `invoke` in the checkout)
class LetterbatchProgram(Program):
    """invoke reads a project's invoke.yaml from the folder it found tasks.py in; with its
    collection built in, it read none, so the settings an office wrote beside its batch
    (its SMTP server, as the README says) were silently not used. The project of the
    `letterbatch` command is the current folder: its invoke.yaml is read, as invoke's is."""

    def parse_collection(self) -> None:
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()

    def parse_tasks(self) -> None:
        typed = self.argv[1:]
        rest = _as_typed(typed, list(self.core.unparsed))
        # invoke's own flags before it (`letterbatch --echo build merge -j 2`) stay in the command given
        binary = shlex.join([self.binary, *typed[:len(typed) - len(rest)]])
        misplaced = misplaced_flag(rest, self._make_parser().contexts, binary, core=self.initial_context)
        if misplaced:
            raise Exit(misplaced, code=2)
        try:
            super().parse_tasks()
        except ParseError as exc:  # `build -j` (no value), `build -r -o x`: invoke's words for it
            missing = _NO_VALUE_RE.fullmatch(str(exc))
            words = _NO_WORDS_RE.fullmatch(str(exc))
            if words:  # `letterbatch new`: invoke's "'new' did not receive required positional arguments"
                task, names = words.group(1), re.findall(r"'(\w+)'", words.group(2))
                raise Exit(f"{task} takes a {' and a '.join(names)} after it: `{self.binary} {task} "
                           f"{' '.join(name.upper() for name in names)}`", code=2)
            if not missing:
                raise
            name, short = missing.groups()
            long = ("-" if len(name) == 1 else "--") + name.replace("_", "-")
            names = f"-{short} ({long})" if short else long
            task = exc.context.name if exc.context is not None and exc.context.name else self.binary
            # (invoke takes a value starting with - for a flag: given as --jobs=VALUE it is a value)
            hint = f" (one that starts with - as {long}=VALUE)" if long.startswith("--") else ""
            raise Exit(f"{task}: {names} needs a value after it{hint}", code=2)


# invoke's message for a flag given without its value ("Flag <Argument: jobs (j)> needed value ...")
_NO_VALUE_RE = re.compile(r"Flag <Argument: (\w+)(?: \((\w)\))?> needed value and was not given one!")


# invoke's message for a task given without its words ("'new' did not receive required positional arguments: 'name'")
_NO_WORDS_RE = re.compile(r"'(\w+)' did not receive required positional arguments: (.+)")


def _as_typed(typed: list[str], unparsed: list[str]) -> list[str]:
    """What invoke left to parse as the person typed it: a flag it does not know before any
    task it splits (`-j2` into -j -2, `-r=a.yaml` into -r a.yaml); the tokens after it it keeps."""
    kept = 0
    while kept < min(len(typed), len(unparsed)) and typed[-1 - kept] == unparsed[-1 - kept]:
        kept += 1
    return typed[len(typed) - kept - (kept < len(unparsed)):]


def misplaced_flag(argv: list[str], contexts, binary: str, core=None) -> str | None:
    """A task's flag given after a task that lacks it (`build merge -j 2`, `status -j 2`):
    invoke said "No idea what '-j' is!", or, for `-f`, took it for its own --config
    ("Flag <Argument: config (f)> needed value"), exit 1. One line instead (exit 2): which
    task takes it, and, when one of the chain does, the command with the flag after it.
    So too a task misspelt (`biuld`), a flag no task has (`build --froce`) and a flag given
    twice to one task (`build -r a.yaml -r b.yaml`): invoke said "No idea what 'b.yaml' is!"."""
    tasks = {context.name: context for context in contexts.values()}  # (contexts has aliases too)
    chain = []  # (position in argv, task) of each task named
    current = None
    waiting = False  # the flag before takes a value: this token is it
    given = {}  # (task, flag's name) -> the value it was given
    words = 0  # the words given to the current task (`new NAME`)
    for index, token in enumerate(argv):
        if token == "--":
            break
        if waiting:
            waiting = False
            # (a flag of the task is no value: `status -r -b out`, which invoke says lacks one)
            if not (_flag(token) in current.flags or _flag(token) in current.inverse_flags):
                continue
        if token in contexts:
            current, words = contexts[token], 0
            chain.append((index, current))
            continue
        if not token.startswith("-") or token == "-":
            words += 1
            if current is None or words > len(current.positional_args):
                return _no_such_task(token, tasks, binary)
            continue
        if current is None:  # before any task (`-r oct.yaml build`): what invoke's own parse left
            return _before_any_task(argv, index, contexts, tasks, binary)
        flag = _flag(token)
        if flag in current.flags or flag in current.inverse_flags:
            waiting = flag == token and flag in current.flags and current.flags[flag].takes_value
            argument = current.flags[flag] if flag in current.flags else None  # (a Lexicon: .get misses -r)
            if argument is not None and argument.takes_value and argument.kind is not list:
                value = argv[index + 1] if waiting and index + 1 < len(argv) else token[len(flag):].lstrip("=")
                first = given.get((current.name, argument.name))
                given[current.name, argument.name] = value
                if first is not None:
                    long = "--" + argument.name.replace("_", "-")
                    names = long if flag == long else f"{flag} ({long})"
                    return (f"{current.name}: {names} is given twice ({shlex.quote(first)} and "
                            f"{shlex.quote(value)}): give it once")
            continue
        owned = _owners(token, tasks)
        if owned is None:
            if core is not None and (flag in core.flags or flag in core.inverse_flags):
                continue  # invoke's own (--help)
            return _no_such_flag(token, current, binary)
        owners, names, width = owned
        in_chain = [(at, context) for at, context in chain if context in owners]
        if not in_chain:
            return f"{current.name} takes no {names}: it is a flag of {listed(sorted(o.name for o in owners))}"
        at, owner = in_chain[0]
        whose = listed(list(dict.fromkeys(f"{context.name}'s" for _, context in in_chain)))
        return (f"{current.name} takes no {names}: it is {whose}; put it after {owner.name}: "
                f"`{binary} {shlex.join(_moved(argv, index, width, at))}`")
    return None


def _before_any_task(argv: list[str], index: int, contexts, tasks: dict, binary: str) -> str | None:
    """A task's flag before the first task (`letterbatch -r oct.yaml build`, `-j 2 build`): invoke
    said "No idea what '-r' is!", exit 1. One line instead: the command with it after the first
    task that takes it; None for a flag no task has (invoke says so)."""
    owned = _owners(argv[index], tasks)
    if owned is None:
        return None
    owners, names, width = owned
    after = argv[index + width:]  # (the tasks all come after it)
    at = next((index + at for at, name in enumerate(after) if name in contexts and contexts[name] in owners), None)
    if at is None:
        return f"{names} goes after the task that takes it: it is a flag of {listed(sorted(o.name for o in owners))}"
    return f"{names} goes after the task that takes it: `{binary} {shlex.join(_moved(argv, index, width, at))}`"


def _no_such_task(word: str, tasks: dict, binary: str) -> str:
    """`letterbatch biuld`: invoke said "No idea what 'biuld' is!" (exit 1), and `biuld -r x.yaml`
    that -r "goes after the task that takes it"."""
    import difflib

    close = difflib.get_close_matches(word.lower(), sorted(tasks), n=1, cutoff=0.6)
    meant = f"did you mean {close[0]}? " if close else ""
    return f"{word!r} is no task of {binary.split()[0]}: {meant}`{binary.split()[0]} --list` lists the tasks"


def _no_such_flag(token: str, task, binary: str) -> str:
    """`build --froce`: invoke said "No idea what '--froce' is!" (exit 1), with no word of --force."""
    import difflib

    flag = _flag(token)
    names = sorted({*task.flags, *task.inverse_flags})
    close = difflib.get_close_matches(flag, [name for name in names if name.startswith("--")], n=1, cutoff=0.6)
    meant = f"did you mean {close[0]}? " if close else ""
    return f"{task.name} takes no {flag}: {meant}`{binary.split()[0]} {task.name} --help` lists its flags"


def _flag(token: str) -> str:
    """The flag a token gives: `-j2` and `--jobs=2` give -j and --jobs."""
    flag = token.partition("=")[0]
    return flag[:2] if not flag.startswith("--") and len(flag) > 2 else flag


def _owners(token: str, tasks: dict) -> tuple[list, str, int] | None:
    """The tasks that take the flag ``token`` gives (an inverse one, --no-cover, too), the flag
    as a message names it (`-j (--jobs)`), and how many tokens it takes (with its value: 2);
    None when no task takes it."""
    flag = _flag(token)
    owners = [context for context in tasks.values() if flag in context.flags or flag in context.inverse_flags]
    if not owners:
        return None
    argument = owners[0].flags[owners[0].inverse_flags.get(flag, flag)]
    long = "--" + argument.name.replace("_", "-")
    names = flag if flag in (long, f"--no-{long[2:]}") else f"{flag} ({long})"
    return owners, names, 2 if flag == token and argument.takes_value else 1


def _moved(argv: list[str], index: int, width: int, at: int) -> list[str]:
    """``argv`` with the ``width`` tokens at ``index`` (a flag, and its value) put after the
    task at ``at``: ``at`` counted in ``argv`` without them."""
    given, rest = argv[index:index + width], argv[:index] + argv[index + width:]
    return rest[:at + 1] + given + rest[at + 1:]


def listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


program = LetterbatchProgram(namespace=ns, version=__version__, name="letterbatch", binary="letterbatch",
                  executor_class=BatchExecutor)


def main() -> None:
    import builder

    builder.COMMAND = "letterbatch"  # the commands its messages suggest
    try:
        os.getcwd()
    except FileNotFoundError:  # invoke's first look at the folder was a traceback
        print("the folder this command was run in no longer exists (deleted, or moved away): "
              "cd to a folder that does, then run it again", file=sys.stderr)
        sys.exit(2)
    try:
        program.run()
    except BrokenPipeError:
        # the reader has gone (`letterbatch --list | head -1`): invoke's own help and list
        # ended in a traceback (a task's output stops quietly: BatchExecutor); nothing more
        # is written, not even Python's flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
