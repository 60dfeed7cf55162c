"""Web copies: readable file names, metadata, visible links, PDF/A-2b metadata, same bytes."""
from __future__ import annotations

import re

import pytest
from pypdf import PdfReader

from builder.build import build
from conftest import MINIMAL_LETTER, pdf_text, write_yaml

LINK_COLOUR = b"0 0.27 0.6 rg"  # lblink in the letterhead class

WEB = MINIMAL_LETTER.replace("  body:\n", "  title: Notice & \"quotes\", commas\n  keywords: [notice, test]\n  body:\n").replace(
    "This is the shared text.", "See <https://example.org/a_b> for more.") + """\
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
    web, printed = web_batch / "web" / "2021-03-04-web-one.pdf", web_batch / "letters" / "web-one.pdf"
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
