"""The `letterbatch` command: invoke's CLI as a program of its own, running the
task collection in builder/tasks.py (as invoke documents for distributing a
collection), so an installed package works from any folder."""
import os

from invoke import Program

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


program = LetterbatchProgram(namespace=ns, version=__version__, name="letterbatch", binary="letterbatch",
                  executor_class=BatchExecutor)


def main() -> None:
    import builder

    builder.COMMAND = "letterbatch"  # the commands its messages suggest
    program.run()
