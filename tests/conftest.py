"""Shared fixtures. Every PDF here is made by the real pdflatex; when TeX is
missing the build raises TexMissing and the tests fail (they never skip)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import pytest

from builder.build import build
from builder.merge import merge

ROOT = Path(__file__).resolve().parent.parent
# What send keeps for every build folder of a user (``send.MailedFromAnyFolder``, under
# XDG_STATE_HOME) is the tests' own, and each test's: never the real home's, and no test
# finds a letter another test mailed
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="letterbatch-state-")


@pytest.fixture(autouse=True)
def _own_state_folder(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
# The tests' own copy of the sample batch: the project's recipients.yaml is an example
# an office replaces with its own letters, so no test reads it.
SAMPLE = Path(__file__).resolve().parent / "sample" / "recipients.yaml"
SEEDS = SAMPLE.parent / "seeds"


@pytest.fixture(scope="session")
def real_batch(tmp_path_factory):
    """The sample batch (the tests' copy), built and merged once per session."""
    out = tmp_path_factory.mktemp("real") / "build"
    report = build(SAMPLE, out)
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    bundle = merge(SAMPLE, out)
    return out, report, bundle


@pytest.fixture(scope="session")
def mail_batch(tmp_path_factory):
    """A copy of the bundled batch with an e-mail address on each recipient
    (<id>@example.test), built and merged with signature fields once per
    session. Tests that change it work on a copy (``copy_batch``)."""
    folder = tmp_path_factory.mktemp("mail")
    text = re.sub(r"^(  - id: (\S+)\n)", r"\1    email: \2@example.test\n",
                  SAMPLE.read_text(encoding="utf-8"), flags=re.M)
    source = write_yaml(folder / "recipients.yaml", text)
    report = build(source, folder / "build")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    merge(source, folder / "build", signature_fields=True)
    return source, folder / "build"


def copy_batch(batch: tuple[Path, Path], dest: Path) -> tuple[Path, Path]:
    """A batch folder (recipients.yaml and its build) copied to ``dest``."""
    source, out = batch
    shutil.copytree(source.parent, dest)
    return dest / source.name, dest / out.name


def pdf_text(pdf: Path) -> str:
    """The PDF's text (poppler's pdftotext), whitespace collapsed. -raw keeps
    the content order and leaves a line that ends in '-' alone."""
    exe = shutil.which("pdftotext")
    assert exe, "pdftotext (poppler-utils) is missing: run scripts/install"
    out = subprocess.run([exe, "-raw", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                         text=True, check=True)
    return normalise(out.stdout)


def normalise(text: str) -> str:
    # T1 fonts build ŵ and ŷ from w/y and an accent: the PDF says "w\u0302",
    # canonically the same text, so compare in NFC.
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text).strip()
    # a footnote mark before punctuation comes out as "slavery2 ,"
    return re.sub(r" ([,.;:])", r"\1", text)


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL_LETTER = """\
letter:
  date: 2021-03-04
  sender:
    name: Ann Sender
    role: Clerk
    address: [1 High Street, Town]
  signatory: {name: Ann Sender, title: Clerk}
  body:
    - main: This is the shared text.
"""


UNDEFINED = r"\undefinedmacro"  # LaTeX that makes pdflatex fail


@pytest.fixture
def inject_latex(monkeypatch):
    """Put raw LaTeX into chosen letters after they are composed.

    Data cannot break TeX (that is the point), so a test that needs a letter
    to fail, or a page to break, puts the LaTeX in here; pdflatex stays real.
    ``inject({"id": latex}, before_closing=False)``; ``inject({})`` undoes it;
    ``at_start=True`` puts it before the opening (to change a layout length).
    """
    from pylatex import NoEscape

    from builder import compose as compose_module

    original = compose_module.compose

    def inject(latex_by_id: dict[str, str], before_closing: bool = False, at_start: bool = False) -> None:
        def compose(batch, recipient, **kw):
            letter = original(batch, recipient, **kw)
            if recipient.id in latex_by_id:
                at = 0 if at_start else len(letter.data) - 1 if before_closing else len(letter.data)
                letter.data.insert(at, NoEscape("\n" + latex_by_id[recipient.id] + "\n"))
            return letter
        monkeypatch.setattr(compose_module, "compose", compose if latex_by_id else original)

    return inject
