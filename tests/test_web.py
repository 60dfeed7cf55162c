"""Web copies: readable file names, metadata, visible links, PDF/A-2b metadata, same bytes;
tagged PDFs that independent tools (poppler's pdfinfo, pdfua, pdfminer) read as the letter."""
from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata

import pikepdf
import pytest
from pypdf import PdfReader

from builder.build import build
from conftest import MINIMAL_LETTER, pdf_text, write_yaml

LINK_COLOUR = b"0 0.27 0.6 rg"  # lblink in the letterhead class

# a second paragraph long enough for a second page (its running header), citing a source
LONG = "    - long: " + " ".join(["Words that fill the page so the letter runs onto a second one."] * 60) + \
    " It cites a report.[^report]\n"
REFERENCES = """\
references:
  report: {author: A. Author, year: 2020, title: "A report (final)", url: "https://example.org/report"}
"""
WEB = MINIMAL_LETTER.replace("  body:\n", "  title: Notice & \"quotes\", commas\n  keywords: [notice, test]\n  body:\n").replace(
    "This is the shared text.", "See <https://example.org/a_b> for more.") + LONG + REFERENCES + """\
recipients:
  - id: web-one
    name: "Siân O'Brien, Ŵyn & Co"
    role: Clerk
    address: [1 Road]
    salutation: Dear Siân,
"""


@pytest.fixture(scope="module")
def web_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    source = write_yaml(folder / "recipients.yaml", WEB)
    for medium in ("web", "print"):
        assert build(source, folder / "build", medium=medium).ok
    return folder / "build"


def content(pdf) -> bytes:
    return b"".join(page.get_contents().get_data() for page in PdfReader(pdf).pages)


def test_web_copy_is_named_by_date_and_id_and_carries_metadata(web_batch):
    pdf = web_batch / "web" / "2021-03-04-web-one.pdf"
    reader = PdfReader(pdf)
    meta = reader.metadata
    assert meta.title == "Letter to Siân O'Brien, Ŵyn & Co, Clerk"
    assert meta.author == "Ann Sender"
    assert meta.subject == 'Notice & "quotes", commas'
    assert meta["/Keywords"] == "notice, test"
    assert reader.trailer["/Root"]["/Lang"] == "en-GB"
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "Letter to Siân O&apos;Brien, Ŵyn &amp; Co, Clerk</rdf:li>" in xmp or \
        "Letter to Siân O'Brien, Ŵyn &amp; Co, Clerk</rdf:li>" in xmp
    assert "<xmp:CreateDate>2021-03-04T12:00:00Z</xmp:CreateDate>" in xmp
    # every date in the packet is the letter's, none the clock's
    assert set(re.findall(r"\d{4}-\d\d-\d\dT[\d:]+Z", xmp)) == {"2021-03-04T12:00:00Z"}
    assert "/OutputIntents" in reader.trailer["/Root"]
    assert "Dear Siân," in pdf_text(pdf)


def test_web_links_are_coloured_and_print_links_are_not(web_batch):
    web, printed = web_batch / "web" / "2021-03-04-web-one.pdf", web_batch / "web-one.pdf"
    assert LINK_COLOUR in content(web) and LINK_COLOUR not in content(printed)
    for pdf in (web, printed):
        uris = [a.get_object()["/A"]["/URI"] for p in PdfReader(pdf).pages for a in p.get("/Annots", [])
                if "/URI" in a.get_object().get("/A", {})]
        assert "https://example.org/a_b" in uris


def test_web_copies_are_reproducible(web_batch, tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", WEB)
    assert build(source, tmp_path / "build", medium="web").ok
    name = "web/2021-03-04-web-one.pdf"
    assert (tmp_path / "build" / name).read_bytes() == (web_batch / name).read_bytes()


# ---- tagged PDF --------------------------------------------------------------------

WEB_PDF = "web/2021-03-04-web-one.pdf"


def test_web_copy_is_tagged_and_pdfua_finds_nothing(web_batch):
    pdf = web_batch / WEB_PDF
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Tagged:\s+yes$", info, re.M) and re.search(r"^Pages:\s+2$", info, re.M)
    exe = shutil.which("pdfua")
    assert exe, "pdfua (PyPI) is missing: run scripts/install"
    check = subprocess.run([exe, "check", str(pdf)], capture_output=True, text=True)
    assert check.returncode == 0 and "errors=0 warnings=0" in check.stdout, check.stdout + check.stderr
    with pikepdf.open(pdf) as doc:
        assert doc.Root.MarkInfo.Marked is True and str(doc.Root.Lang) == "en-GB"
        assert doc.Root.ViewerPreferences.DisplayDocTitle is True  # the title, not the file name


def test_pdfua_does_find_an_untagged_letter(web_batch):
    """The checker is not blind: the printed letter, untagged, fails it."""
    check = subprocess.run([shutil.which("pdfua"), "check", str(web_batch / "web-one.pdf")],
                           capture_output=True, text=True)
    assert check.returncode == 3 and "UA-01-005" in check.stdout


def test_structure_tree_read_in_order_is_the_letter(web_batch):
    tree, texts = structure(web_batch / WEB_PDF)
    kinds = [kind for kind, _ in tree]
    assert kinds[0] == "/Document" and "/P" in kinds
    letter = ("4 March 2021" "Siân O'Brien, Ŵyn & Co Clerk 1 Road" "Dear Siân,"
              "See https://example.org/a_b for more." + LONG.split(": ", 1)[1].replace("[^report]", "").strip()
              + "1" "1 A. Author (2020) A report (final)"  # the mark, then the note
              "Yours sincerely," "Ann Sender" "Clerk")
    assert squeeze(structure_text(tree, texts)) == squeeze(letter)
    # the letterhead, the running header and page numbers are artifacts, outside the tree
    assert squeeze(texts[0, "Artifact"]) == squeeze("Ann Sender Clerk 1 High Street Town Page 1 of 2")
    assert squeeze(texts[1, "Artifact"]) == squeeze("Siân O'Brien, Ŵyn & Co 4 March 2021 Page 2 of 2")
    assert not any(key[1] == "untagged" for key in texts), texts
    # each footnote is a note, inside the paragraph that cites it
    notes = [(depth, kind) for kind, depth in tree if kind in ("/Note", "/FENote")]
    assert len(notes) == 1 and notes[0][0] > 1


def test_every_link_has_a_text_alternative(web_batch):
    with pikepdf.open(web_batch / WEB_PDF) as pdf:
        contents = {str(a.A.get("/URI", a.A.get("/D", ""))): str(a.Contents)
                    for page in pdf.pages for a in page.get("/Annots", []) if a.Subtype == "/Link"}
    assert contents.pop("https://example.org/a_b") == "https://example.org/a_b"
    assert contents.pop("https://example.org/report") == "A report (final)"
    assert list(contents.values()) == ["Footnote 1"]


def squeeze(text: str) -> str:
    """Text without whitespace, in NFC: pdfTeX writes no space where marked content
    starts or ends (before a link, say), so words are compared, not the gaps."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text))


def structure(pdf_path):
    """The structure tree as (kind, depth) in reading order, with ("mcid", page, id)
    leaves, and the text drawn in each marked-content sequence."""
    texts = marked_text(pdf_path)
    tree = []
    with pikepdf.open(pdf_path) as pdf:
        pages = {p.objgen: i for i, p in enumerate(pdf.pages)}

        def visit(node, page, depth):
            if isinstance(node, pikepdf.Array):
                for kid in node:
                    visit(kid, page, depth)
            elif isinstance(node, pikepdf.Dictionary):
                if node.get("/Type") == "/OBJR":
                    return
                page = pages[node.Pg.objgen] if "/Pg" in node else page
                if node.get("/Type") == "/MCR":
                    tree.append((("mcid", page, int(node.MCID)), depth))
                    return
                tree.append((str(node.S), depth))
                if "/K" in node:
                    visit(node.K, page, depth + 1)
            else:
                tree.append((("mcid", page, int(node)), depth))

        visit(pdf.Root.StructTreeRoot.K, None, 0)
    return tree, texts


def structure_text(tree, texts) -> str:
    return "".join(texts.get(kind[1:], "") for kind, _ in tree if isinstance(kind, tuple))


def marked_text(pdf_path) -> dict:
    """(page, MCID) -> the text drawn in it, by pdfminer.six; (page, "Artifact") and
    (page, "untagged") collect the rest."""
    from pdfminer.converter import PDFLayoutAnalyzer
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import resolve1
    from pdfminer.psparser import PSLiteral

    class MarkedText(PDFLayoutAnalyzer):
        def __init__(self, manager):
            super().__init__(manager)
            self.texts, self.stack, self.page, self.properties = {}, [], 0, {}

        def begin_tag(self, tag, props=None):
            if isinstance(props, PSLiteral):  # a name in the page's /Properties
                props = resolve1(self.properties.get(props.name))
            props = props if isinstance(props, dict) else {}
            actual = props.get("ActualText")  # its glyphs' text, as a reader reads them
            if isinstance(actual, bytes):
                actual = actual[2:].decode("utf-16-be") if actual[:2] == b"\xfe\xff" else actual.decode("latin-1")
            self.stack.append((tag.name, props.get("MCID"), actual))

        def end_tag(self):
            if self.stack:
                _, _, actual = self.stack.pop()
                if actual is not None and not any(a is not None for _, _, a in self.stack):
                    self.add(actual)

        def render_char(self, *args):
            advance = super().render_char(*args)
            if not any(a is not None for _, _, a in self.stack):
                self.add(self.cur_item._objs[-1].get_text())
            return advance

        def add(self, text):
            mcid = next((m for _, m, _ in reversed(self.stack) if m is not None), None)
            if mcid is None:
                mcid = "Artifact" if any(t == "Artifact" for t, _, _ in self.stack) else "untagged"
            self.texts[self.page, mcid] = self.texts.get((self.page, mcid), "") + text

    with open(pdf_path, "rb") as handle:
        manager = PDFResourceManager()
        device = MarkedText(manager)
        interpreter = PDFPageInterpreter(manager, device)
        for number, page in enumerate(PDFPage.create_pages(PDFDocument(PDFParser(handle)))):
            device.page = number
            device.properties = resolve1(resolve1(page.resources).get("Properties", {})) or {}
            interpreter.process_page(page)
    return device.texts
