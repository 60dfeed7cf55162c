"""`invoke` in the checkout: the tasks live in the package (builder/tasks.py), so the
installed `letterbatch` command runs the very same ones."""
from builder.tasks import ns  # noqa: F401  (invoke looks for `ns`)
