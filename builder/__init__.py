"""letterbatch: recipients.yaml -> footnoted letters on a shared letterhead.

The pipeline, one module per stage: ``load`` (YAML -> validated batch),
``compose`` (batch -> each letter's LaTeX, via ``markup`` and ``latex``),
``compile`` (LaTeX -> PDF with pdflatex), ``merge`` (PDFs -> bundle).
``build`` runs the stages for a whole batch.
"""
import os

__version__ = "0.1.0"

# A recipient id names files (build/<id>.pdf) and TeX link targets, so it is kept to
# characters that are safe in both: the ids a batch may give (schema) and the letters a
# build's record may name (manifest: a record edited to name "../x" names no file of ours).
RECIPIENT_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"

# The program a person runs, in the commands messages suggest: `invoke` in a checkout;
# the `letterbatch` command (builder/cli.py) sets its own name, as `invoke` finds no
# tasks outside a checkout.
COMMAND = "invoke"
# The batch flags the person typed (` -r october.yaml`, ` -b out`), shell-quoted, set by
# the tasks: a suggested command then works on the same batch when copied. Without them
# `invoke sign`, suggested while working on october.yaml, signed recipients.yaml.
BATCH_FLAGS = ""


def command(words: str, *, to_run: bool = True) -> str:
    """A command to suggest, quoted: ``command("merge")`` is "`invoke merge`" (with the
    batch's ``-r``/``-b`` as typed, when they were; ``to_run=False``: a task named, not
    a command to run, as in "only `invoke sign` makes them")."""
    return f"`{COMMAND} {words}{BATCH_FLAGS if to_run else ''}`"


def cores() -> int:
    """The cores this process may run on: one pdflatex each by default, and what bounds
    --jobs. Not ``os.cpu_count()``, the machine's: under ``taskset`` or a container's CPU
    set, runs past the cores it may use only wait, each holding its memory."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this system (macOS)
        return os.cpu_count() or 1
