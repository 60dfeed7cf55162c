"""`invoke` in the checkout: the tasks live in the package (builder/tasks.py), so the
installed `letterbatch` command runs the very same ones. This folder is the project:
default paths (recipients.yaml, build/) are read from here, wherever invoke is run."""
from pathlib import Path

from builder.tasks import ns

ns.configure({"letterbatch": {"project": str(Path(__file__).resolve().parent)}})
