"""letterbatch: recipients.yaml -> footnoted letters on a shared letterhead.

The pipeline, one module per stage: ``load`` (YAML -> validated batch),
``compose`` (batch -> each letter's LaTeX, via ``markup`` and ``latex``),
``compile`` (LaTeX -> PDF with pdflatex), ``merge`` (PDFs -> bundle).
``build`` runs the stages for a whole batch.
"""
__version__ = "0.1.0"

# The program a person runs, in the commands messages suggest: `invoke` in a checkout;
# the `letterbatch` command (builder/cli.py) sets its own name, as `invoke` finds no
# tasks outside a checkout.
COMMAND = "invoke"


def command(words: str) -> str:
    """A command to suggest, quoted: ``command("merge")`` is "`invoke merge`"."""
    return f"`{COMMAND} {words}`"
