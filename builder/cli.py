"""The `letterbatch` command: invoke's CLI as a program of its own, running the
task collection in builder/tasks.py (as invoke documents for distributing a
collection), so an installed package works from any folder."""
from invoke import Program

from . import __version__
from .tasks import BatchExecutor, ns

# BatchExecutor: -r/-b given to any task of a chain apply to all of them (invoke.yaml does
# the same for `invoke` in the checkout)
program = Program(namespace=ns, version=__version__, name="letterbatch", binary="letterbatch",
                  executor_class=BatchExecutor)


def main() -> None:
    import builder

    builder.COMMAND = "letterbatch"  # the commands its messages suggest
    program.run()
