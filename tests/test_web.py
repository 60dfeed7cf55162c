"""Web copies: readable file names, metadata, visible links, PDF/A-2b metadata, same bytes;
tagged PDFs that independent tools (poppler's pdfinfo, pdfua, pdfminer) read as the letter."""
from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pikepdf
import yaml
import pytest
from pypdf import PdfReader

from builder.build import build, status
from builder.html import letter_page
from builder.load import load
from conftest import MINIMAL_LETTER, ROOT, SAMPLE, UNDEFINED, pdf_text, write_yaml

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


def recorded_marks(work: Path, rid: str) -> dict:
    """Where the class recorded a letter's marks (letterhead, address, date,
    salutation, closing): page and points from the top left, from its .aux."""
    from builder.compile import _read_aux

    for aux in work.rglob("*.aux"):
        letters, _, _ = _read_aux(aux.read_text(errors="replace"))
        if rid in letters:
            return letters[rid].marks
    raise AssertionError(f"no .aux under {work} records {rid}")


def test_a_web_copy_is_laid_out_as_the_printed_letter(web_batch):
    """Tagging marks the letterhead as an artifact; that mark must not move it
    (it once started a paragraph below it: the letterhead sat a parskip lower
    in web copies and, with a logo, ran into the envelope window)."""
    printed = recorded_marks(web_batch / "work", "web-one")
    web = recorded_marks(web_batch / "web" / "work", "web-one")
    assert {"head", "addrfirst", "date", "salutation", "closing"} <= set(printed)
    assert web == printed


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
    # a build killed (kill -9) while pdflatex wrote the .aux leaves it cut short (at 4096 bytes,
    # a buffer's end, for the sample's letters): the structure tree of the next build was made
    # from it (page 2's text tagged with page 1's numbers), so an unfinished run's .aux is not read
    (aux,) = (tmp_path / "build" / "web" / "work").glob("web-one/*.aux")
    aux.write_bytes(aux.read_bytes()[:len(aux.read_bytes()) // 2])
    assert build(source, tmp_path / "build", medium="web", only=["web-one"], force=True).ok
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
    check = subprocess.run([shutil.which("pdfua"), "check", str(web_batch / "letters" / "web-one.pdf")],
                           capture_output=True, text=True)
    assert check.returncode == 3 and "UA-01-005" in check.stdout


def test_structure_tree_read_in_order_is_the_letter(web_batch):
    tree, texts = structure(web_batch / WEB_PDF)
    kinds = [kind for kind, _ in tree]
    assert kinds[0] == "/Document" and "/P" in kinds
    letter = ("Siân O'Brien, Ŵyn & Co Clerk 1 Road" "4 March 2021" "Dear Siân,"
              "See https://example.org/a_b for more." + LONG.split(": ", 1)[1].replace("[^report]", "").strip()
              + "1" "1 A. Author (2020) A report (final)."  # the mark, then the note (its full stop as on paper)
              "Yours sincerely," "Clerk")
    assert squeeze(structure_text(tree, texts)) == squeeze(letter)
    # the letterhead, the return address in the envelope window (it read "1 High Street,
    # TownSiân …" as one paragraph), the running header and page numbers are artifacts
    assert squeeze(texts[0, "Artifact"]) == squeeze("Ann Sender Clerk 1 High Street Town"
                                                    "1 High Street, Town" "Page 1 of 2")
    assert squeeze(texts[1, "Artifact"]) == squeeze("Siân O'Brien, Ŵyn & Co 4 March 2021 Page 2 of 2")
    assert not any(key[1] == "untagged" for key in texts), texts
    # each footnote is a note, inside the paragraph that cites it
    notes = [(depth, kind) for kind, depth in tree if kind in ("/Note", "/FENote")]
    assert len(notes) == 1 and notes[0][0] > 1
    # no marked content inside another's: the paragraph that places the recipient block
    # and the date held theirs (an empty paragraph in the tree, the return address in it)
    assert not nested_marked_content(web_batch / WEB_PDF)


def nested_marked_content(pdf_path) -> list[str]:
    """The marked-content sequences of the structure tree (with an MCID) or artifacts
    begun inside one of the tree's, as "page n: /P in /P". (A /Span that only carries
    the /ActualText of a character may sit inside anything.)"""
    found = []
    with pikepdf.open(pdf_path) as pdf:
        for number, page in enumerate(pdf.pages, 1):
            properties = page.Resources.get("/Properties") or {}
            open_tags: list[tuple[str, bool]] = []  # (tag, in the tree)
            for operands, operator in pikepdf.parse_content_stream(page):
                if str(operator) in ("BDC", "BMC"):
                    tag = str(operands[0])
                    listed = operands[1] if len(operands) > 1 else {}
                    if isinstance(listed, pikepdf.Name):
                        listed = properties.get(str(listed), {})
                    in_tree = "/MCID" in listed
                    if (in_tree or tag == "/Artifact") and any(tree for _, tree in open_tags):
                        found.append(f"page {number}: {tag} in {next(t for t, tree in reversed(open_tags) if tree)}")
                    open_tags.append((tag, in_tree))
                elif str(operator) == "EMC" and open_tags:
                    open_tags.pop()
    return found


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


def walk_structure(pdf) -> list:
    """The structure tree of an open pikepdf ``pdf`` in reading order: (element, depth,
    None) for each element, (its parent element, depth, (page, MCID)) for each marked
    content it holds."""
    pages = {p.objgen: i for i, p in enumerate(pdf.pages)}
    found = []

    def visit(node, parent, page, depth):
        if isinstance(node, pikepdf.Array):
            for kid in node:
                visit(kid, parent, page, depth)
        elif isinstance(node, pikepdf.Dictionary):
            if node.get("/Type") == "/OBJR":
                return
            page = pages[node.Pg.objgen] if "/Pg" in node else page
            if node.get("/Type") == "/MCR":
                found.append((parent, depth, (page, int(node.MCID))))
                return
            found.append((node, depth, None))
            if "/K" in node:
                visit(node.K, node, page, depth + 1)
        else:
            found.append((parent, depth, (page, int(node))))

    visit(pdf.Root.StructTreeRoot.K, None, None, 0)
    return found


def structure(pdf_path):
    """The structure tree as (kind, depth) in reading order, with ("mcid", page, id)
    leaves, and the text drawn in each marked-content sequence."""
    texts = marked_text(pdf_path)
    with pikepdf.open(pdf_path) as pdf:
        tree = [(("mcid", *marked) if marked else str(element.S), depth)
                for element, depth, marked in walk_structure(pdf)]
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


# ---- the HTML page beside each web copy --------------------------------------------

AXE_CACHE = Path(os.environ.get("LETTERBATCH_AXE_DIR", Path.home() / ".cache" / "letterbatch" / "axe"))


@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe-core's axe.min.js, which scripts/install fetches with npm into a
    cache folder (tests touch no network)."""
    path = AXE_CACHE / "node_modules" / "axe-core" / "axe.min.js"
    assert path.exists(), f"axe-core is missing ({path}): run scripts/install"
    return path


AXE_PROBE = """<script src="axe.min.js"></script>
<script>
axe.run(document).then(function (r) {
  var out = document.createElement("pre"); out.id = "axe-result";
  out.textContent = JSON.stringify({violations: r.violations.map(function (v) {
    return {id: v.id, impact: v.impact, nodes: v.nodes.map(function (n) { return n.html; })}; }),
    passes: r.passes.map(function (v) { return v.id; })});
  document.body.appendChild(out);
}, function (e) { var out = document.createElement("pre"); out.id = "axe-result"; out.textContent = "" + e;
  document.body.appendChild(out); });
</script>
"""


def browse(page: Path, folder: Path, *options: str) -> str:
    """The page's DOM after its scripts ran, from headless chromium (file:// only)."""
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: run scripts/install"
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run", f"--user-data-dir={folder / 'profile'}",
                          "--virtual-time-budget=20000", *options, "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def axe(page_html: str, folder: Path, axe_js: Path) -> dict:
    """axe-core's verdict on ``page_html``, run in chromium."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(axe_js, folder / "axe.min.js")
    probe = folder / "page.html"
    assert page_html.count("</body>") == 1
    probe.write_text(page_html.replace("</body>", AXE_PROBE + "</body>"), encoding="utf-8")
    found = re.search(r'<pre id="axe-result">(.*?)</pre>', browse(probe, folder), re.S)
    assert found, "axe did not report"
    return json.loads(html.unescape(found.group(1)))


def test_html_page_beside_each_web_copy_has_no_axe_violations(web_batch, tmp_path, axe_js):
    page = (web_batch / "web" / "2021-03-04-web-one.html").read_text(encoding="utf-8")
    result = axe(page, tmp_path / "axe", axe_js)
    assert result["violations"] == [], result["violations"]
    # axe did look: the rules that matter for a letter ran and passed
    assert {"html-has-lang", "document-title", "landmark-one-main", "region", "color-contrast",
            "link-name", "list", "heading-order"} <= set(result["passes"])


def test_axe_finds_violations_on_a_broken_page(web_batch, tmp_path, axe_js):
    """The check can fail: no language, no title, a link without a name."""
    page = (web_batch / "web" / "2021-03-04-web-one.html").read_text(encoding="utf-8")
    broken = re.sub(r"<title>.*?</title>", "", page.replace(' lang="en-GB"', "")).replace(
        "</main>", '<a href="https://example.org/x"></a></main>')
    found = {v["id"] for v in axe(broken, tmp_path / "axe", axe_js)["violations"]}
    assert {"html-has-lang", "document-title", "link-name"} <= found


class Outline(HTMLParser):
    """The elements of a page: (tag, attributes, text inside) in document order."""

    def __init__(self):
        super().__init__()
        self.elements, self.open = [], []

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), ""]
        self.elements.append(element)
        if tag not in ("br", "meta", "img"):
            self.open.append(element)

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for element in self.open:
            element[2] += data


def outline(page: str) -> list:
    parser = Outline()
    parser.feed(page)
    return parser.elements


def test_html_page_is_the_letter_in_semantic_html(web_batch):
    page = (web_batch / "web" / "2021-03-04-web-one.html").read_text(encoding="utf-8")
    elements = outline(page)
    tags = [tag for tag, _, _ in elements]
    assert elements[0][:2] == ["html", {"lang": "en-GB"}]
    assert next(text for tag, _, text in elements if tag == "title") == "Letter to Siân O'Brien, Ŵyn & Co, Clerk"
    assert tags.index("header") < tags.index("address") < tags.index("main")
    main = next(text for tag, _, text in elements if tag == "main")
    assert "Dear Siân," in main and "See https://example.org/a_b for more." in main
    paragraphs = [text for tag, _, text in elements if tag == "p"]
    assert any(p.startswith("Words that fill the page") and p.endswith("It cites a report.1") for p in paragraphs)
    # the footnote: a numbered list entry, its mark links to it and it links back
    mark = next(attrs for tag, attrs, _ in elements if tag == "a" and attrs.get("href") == "#en-note-1")
    note = next((attrs, text) for tag, attrs, text in elements if tag == "li")
    assert mark["id"] == "en-mark-1" and note[0]["id"] == "en-note-1"
    assert note[1].startswith("A. Author (2020) A report (final)")
    assert any(attrs.get("href") == "#en-mark-1" for tag, attrs, _ in elements if tag == "a")
    assert tags.index("li") == tags.index("ol") + 1  # the note is an entry of an ordered list



def test_a_footnote_mark_is_named_as_a_footnote_as_in_the_pdf(web_batch, parts_web):
    """A footnote mark is a link whose text is its number: a screen reader said "link, 1",
    where the PDF's link says "Footnote 1" (/Contents). Its name says what it is, in the
    page's language, and keeps the number that shows (WCAG 2.4.4, 2.5.3)."""
    page = (web_batch / "web" / "2021-03-04-web-one.html").read_text(encoding="utf-8")
    mark = next(attrs for tag, attrs, _ in outline(page) if tag == "a" and attrs.get("href") == "#en-note-1")
    assert mark["aria-label"] == "Footnote 1"
    welsh = parts_web["south-wales"].with_suffix(".html").read_text(encoding="utf-8")
    marks = [attrs for tag, attrs, _ in outline(welsh) if tag == "a" and attrs.get("href", "").startswith("#cy-note-")]
    assert marks and all(attrs["aria-label"] == f"Nodyn {n}" for n, attrs in enumerate(marks, 1))


HOSTILE = "<script>document.title='owned'</script><img src=x onerror=alert(1)> {{ name }} ${x} & </main>"


def test_html_page_prints_every_value_as_typed(tmp_path):
    """Data is data: markup in a value is shown, never run or parsed."""
    source = write_yaml(tmp_path / "recipients.yaml", WEB.replace(
        "    name: \"Siân O'Brien, Ŵyn & Co\"", "    name: " + json.dumps(HOSTILE)).replace(
        "salutation: Dear Siân,", "salutation: " + json.dumps("Dear " + HOSTILE)))
    loaded = load(source)
    page = letter_page(loaded.batch, loaded.batch.recipients[0])
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    dom = browse(tmp_path / "page.html", tmp_path)
    assert "<script>document" not in dom and "<img" not in dom
    elements = outline(dom)
    assert next(text for tag, _, text in elements if tag == "title") == f"Letter to {HOSTILE}, Clerk"
    assert any(text == "Dear " + HOSTILE for tag, _, text in elements if tag == "p")


@pytest.mark.slow
def test_every_web_copy_of_the_sample_is_tagged_pdfua_clean_and_has_its_page(tmp_path):
    report = build(SAMPLE, tmp_path / "build", medium="web")
    assert report.ok and len(report.outcomes) == 5
    for outcome in report.outcomes:
        info = subprocess.run(["pdfinfo", str(outcome.pdf)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"^Tagged:\s+yes$", info, re.M), outcome.pdf
        check = subprocess.run([shutil.which("pdfua"), "check", str(outcome.pdf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        tree, texts = structure(outcome.pdf)
        assert not any(key[1] == "untagged" for key in texts), outcome.pdf
        assert outcome.pdf.with_suffix(".html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ---- every letter part, Welsh and bilingual letters, as web copies ---------------------

@pytest.fixture(scope="module")
def parts_web(tmp_path_factory):
    """test_parts' batch (marking, refs, cc, enclosures, PS; a Welsh and a
    bilingual letter) built as web copies, with a logo."""
    from test_bundle import tiny_png
    from test_parts import parts_batch_yaml

    folder = tmp_path_factory.mktemp("parts-web")
    (folder / "images").mkdir()
    tiny_png(folder / "images" / "logo.png", width=240, height=80)
    data = parts_batch_yaml()
    data["letter"]["sender"]["logo"] = "images/logo.png"
    source = folder / "recipients.yaml"
    source.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    report = build(source, folder / "build", medium="web")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    return {o.recipient: o.pdf for o in report.outcomes}


def test_every_letter_part_is_tagged_or_an_artifact(parts_web):
    for rid, pdf in parts_web.items():
        check = subprocess.run([shutil.which("pdfua"), "check", str(pdf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        tree, texts = structure(pdf)
        assert not any(key[1] == "untagged" for key in texts), (rid, texts)
        # the protective marking, on every page, is an artifact
        assert all(texts[page, "Artifact"].count("OFFICIAL") == 2 for page in {p for p, _ in texts}), rid
        text = squeeze(structure_text(tree, texts))
        assert squeeze("Our ref: IASC/2020/117") in text or squeeze("Ein cyf: IASC/2020/117") in text
    london = squeeze(structure_text(*structure(parts_web["london"])))
    assert squeeze("cc: April McCoig, IASC Chief Constable") in london and squeeze("Yours faithfully,") in london


def test_a_bilingual_web_copy_tags_its_english_half_in_english(parts_web):
    pdf = parts_web["essex"]
    with pikepdf.open(pdf) as document:
        assert str(document.Root.Lang) == "cy"
        sections = [kid for kid in document.Root.StructTreeRoot.K.K if kid.get("/S") == "/Sect"]
        assert [str(s.Lang) for s in sections] == ["en-GB"]
    tree, texts = structure(pdf)
    start = next(i for i, (kind, depth) in enumerate(tree) if kind == "/Sect")
    welsh, english = structure_text(tree[:start], texts), structure_text(tree[start:], texts)
    assert "Annwyl Roger," in welsh and "Dear Roger," not in welsh
    assert "Dear Roger," in english and "Annwyl Roger," not in english
    # a footnote mark's text alternative is in its half's language (it was "Footnote 1" in Welsh)
    with pikepdf.open(pdf) as document:
        alternatives = [str(a.Contents) for page in document.pages for a in page.get("/Annots", [])
                        if a.Subtype == "/Link" and "/D" in a.A]
    assert alternatives, "no footnote links"
    half = range(1, len(alternatives) // 2 + 1)  # each half numbers its notes from 1
    assert alternatives == [f"Nodyn {n}" for n in half] + [f"Footnote {n}" for n in half], alternatives


def test_welsh_and_bilingual_html_pages_declare_their_languages(parts_web, tmp_path, axe_js):
    for rid, pdf in parts_web.items():
        page = pdf.with_suffix(".html").read_text(encoding="utf-8")
        result = axe(page, tmp_path / rid, axe_js)
        assert result["violations"] == [], (rid, result["violations"])
        elements = outline(page)
        langs = [attrs["lang"] for tag, attrs, _ in elements if "lang" in attrs]
        # the heading, the batch's English title, is marked English on a Welsh page; on the
        # bilingual one, the sender's English role too (then the English half)
        assert langs == {"london": ["en-GB"], "south-wales": ["cy", "en-GB"],
                         "essex": ["cy", "en-GB", "en-GB", "en-GB"]}[rid]
        assert next(attrs for tag, attrs, _ in elements if tag == "h1").get("lang") == (
            None if rid == "london" else "en-GB")
        assert "OFFICIAL" in page
        # the letterhead's logo, in the page itself (one file to publish), decorative
        [(_, logo, _)] = [element for element in elements if element[0] == "img"]
        assert logo["alt"] == "" and logo["src"].startswith("data:image/png;base64,")
        logo_file = pdf.parent.parent.parent / "images" / "logo.png"
        assert base64.b64decode(logo["src"].split(",", 1)[1]) == logo_file.read_bytes()


# Headless chromium's window is at least 500 px wide: zoomed by 500/320 it is 320 CSS px,
# the width WCAG's Reflow (1.4.10) asks a page to fit without scrolling sideways.
REFLOW_PROBE = """<script>
document.documentElement.style.zoom = 500 / 320;
document.body.setAttribute("data-widths",
  document.documentElement.scrollWidth + " " + document.documentElement.clientWidth + " " +
  document.images[0].naturalWidth + " " + document.images[0].getBoundingClientRect().right);
</script>"""


def test_html_pages_fit_a_phone_without_scrolling_sideways(parts_web, tmp_path):
    """The sample's letterhead (a long e-mail and web address beside the
    sender's name) once ran off a phone's screen, and a long address typed in
    a letter would too: the page reflows at 320 CSS px."""
    for rid, pdf in parts_web.items():
        page = pdf.with_suffix(".html").read_text(encoding="utf-8")
        page = page.replace("</p>", " <a href=\"https://example.org/\">example.org/" + "-".join(["long"] * 30)
                            + "</a></p>", 1)  # a long address in the letter (as typed)
        probe = tmp_path / rid / "page.html"
        probe.parent.mkdir()
        probe.write_text(page.replace("</body>", REFLOW_PROBE + "</body>"), encoding="utf-8")
        widths = re.search(r'data-widths="(\d+) (\d+) (\d+) ([\d.]+)"',
                           browse(probe, tmp_path / rid, "--window-size=500,900"))
        assert widths, "the probe did not run"
        scroll, client, logo_width, logo_right = map(float, widths.groups())
        assert 300 < client / (500 / 320) < 320 and scroll <= client, (rid, scroll, client)
        assert logo_width == 240 and 0 < logo_right <= client  # the logo was shown, and fits


# The sender's address's width as laid out, and the width its lines take unwrapped (max-content)
ADDRESS_PROBE = """<script>
const address = document.querySelector("header address");
const alone = address.cloneNode(true);
alone.style.cssText = "position: absolute; width: max-content; visibility: hidden";
document.body.appendChild(alone);
document.body.setAttribute("data-address", Math.round(address.getBoundingClientRect().width) + " "
  + Math.round(alone.getBoundingClientRect().width));
</script>"""


def test_a_long_sender_name_leaves_the_letterhead_address_its_lines(parts_web, tmp_path):
    """Side by side, the name's column and the address's shrank alike: a long sender name
    squeezed the address at a desktop's width, its phone number and e-mail address broken
    mid-word ("office@exam / ple.org"). The address keeps its lines whole; the name wraps."""
    rid, pdf = next(iter(parts_web.items()))
    page = pdf.with_suffix(".html").read_text(encoding="utf-8")
    name = "Office of the Commissioner for Extremely Long Organisational Names and Titles"
    page, count = re.subn(r'(<p class="sender-name">)[^<]*', lambda m: m.group(1) + name, page)
    assert count == 1
    probe = tmp_path / "page.html"
    probe.write_text(page.replace("</body>", ADDRESS_PROBE + "</body>"), encoding="utf-8")
    widths = re.search(r'data-address="(\d+) (\d+)"', browse(probe, tmp_path, "--window-size=1280,900"))
    assert widths, "the probe did not run"
    laid_out, unwrapped = map(int, widths.groups())
    assert laid_out >= unwrapped - 1, (laid_out, unwrapped)  # (to a pixel: sub-pixel layout)


# ---- the preamble loaded once: a format, and the same bytes as without it -------------

def compiled_without_format(build_dir: Path, recipient_yaml: Path, rid: str, folder: Path) -> bytes:
    """The letter's own .tex, compiled as a user would by hand: no format."""
    from builder.build import prepare
    from builder.compile import compile_batch

    prepared = prepare(recipient_yaml, build_dir, "web")
    result = compile_batch(build_dir / "web" / "tex" / f"{rid}.tex", folder / rid, prepared.env)
    assert result.ok, result.first_error
    return result.pdf.read_bytes()


def started_from_format(build_dir: Path, rid: str) -> bool:
    log = (build_dir / "web" / "work" / rid / f"{rid}.log").read_text(encoding="utf-8", errors="replace")
    return re.search(r"\(preloaded format=preamble-\w+ ", log) is not None


def test_a_web_copy_from_the_preloaded_preamble_has_the_bytes_it_has_without(web_batch, parts_web, tmp_path):
    """pdfTeX keeps some state outside a format (colour stacks, the font map,
    page object numbers): letterbatch-preload.tex puts it back. A letter with
    two pages, footnotes and Welsh letters, one with every part, a Welsh and a
    bilingual one (each language its own format) come out byte for byte as
    their .tex compiled by hand."""
    cases = [(web_batch, web_batch.parent / "recipients.yaml", "web-one", web_batch / WEB_PDF)]
    parts_build = next(iter(parts_web.values())).parent.parent
    cases += [(parts_build, parts_build.parent / "recipients.yaml", rid, pdf) for rid, pdf in parts_web.items()]
    for build_dir, _, rid, _ in cases:
        assert started_from_format(build_dir, rid), rid
    with ThreadPoolExecutor(2) as pool:  # (tagged letters compile slowly: two at a time)
        by_hand = [pool.submit(compiled_without_format, build_dir, source, rid, tmp_path)
                   for build_dir, source, rid, _ in cases]
        for (_, _, rid, pdf), made in zip(cases, by_hand):
            assert made.result() == pdf.read_bytes(), rid
    formats = sorted((parts_build / "web" / "work" / "_preamble").glob("*.fmt"))
    assert len(formats) == 2  # English, and Welsh with babel: lang=cy


def test_a_broken_format_is_made_again_and_costs_no_letter(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", WEB)
    assert build(source, tmp_path / "build", medium="web").ok
    good = (tmp_path / "build" / WEB_PDF).read_bytes()
    [fmt] = (tmp_path / "build" / "web" / "work" / "_preamble").glob("*.fmt")
    made = fmt.stat().st_mtime_ns
    fmt.write_bytes(b"not a format")  # the files it was made from are unchanged: it looks current
    report = build(source, tmp_path / "build", medium="web", force=True)
    assert report.ok and (tmp_path / "build" / WEB_PDF).read_bytes() == good
    assert not fmt.exists()  # a format a letter could not start from is thrown away
    from builder import compile as tex

    tex._unmakeable.clear()  # (not tried again by the same process:) a later command
    assert build(source, tmp_path / "build", medium="web", force=True).ok  # makes it again
    assert fmt.exists() and fmt.stat().st_mtime_ns != made and fmt.read_bytes() != b"not a format"
    assert started_from_format(tmp_path / "build", "web-one")


def test_a_format_is_made_again_when_a_file_it_was_made_from_changes(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", WEB)
    assert build(source, tmp_path / "build", medium="web").ok
    [fmt] = (tmp_path / "build" / "web" / "work" / "_preamble").glob("*.fmt")
    record = json.loads(fmt.with_suffix(".json").read_text())
    assert any(path.endswith("/letterbatch.cls") for path in record)  # the class, tagpdf ...
    assert any(path.endswith("/tagpdf.sty") for path in record)
    made = fmt.stat().st_ino  # (a format made again is a new file; one reused is touched)
    assert build(source, tmp_path / "build", medium="web", force=True).ok
    assert fmt.stat().st_ino == made  # reused
    # as if TeX Live had been updated: one of them is not as it was
    path = next(p for p in record if p.endswith("/tagpdf.sty"))
    record[path] = [record[path][0], record[path][1] + 1]
    fmt.with_suffix(".json").write_text(json.dumps(record))
    assert build(source, tmp_path / "build", medium="web", force=True).ok
    assert fmt.stat().st_ino != made


def test_a_recipient_made_invalid_keeps_its_web_copy_and_publishes_none(tmp_path):
    two = WEB + "  - {id: web-two, name: Bo, address: [2 Road], salutation: 'Dear Bo,'}\n"
    source = write_yaml(tmp_path / "recipients.yaml", two)
    assert build(source, tmp_path / "build", medium="web").ok
    pdf = tmp_path / "build" / WEB_PDF
    assert pdf.exists() and pdf.with_suffix(".html").exists()

    def status(medium):
        return subprocess.run([sys.executable, "-m", "invoke", "status", "--for", medium, "-r", str(source),
                               "-b", str(tmp_path / "build")], cwd=ROOT, capture_output=True, text=True)

    def states(done):
        return {line.split()[0]: " ".join(line.split()[1:3]) for line in done.stdout.splitlines()
                if line.startswith("  ")}

    web, printed = status("web"), status("print")  # `status --for web`: the web copies, not the letters
    assert web.returncode == 0 and states(web) == {"web-one": "ready", "web-two": "ready"}, web.stdout
    assert printed.returncode == 0 and states(printed) == {"web-one": "never built", "web-two": "never built",
                                                           "bundle.pdf": "never merged"}
    # one copy the website's folder does not take (a folder of its name there) is said, and the
    # other letter is published all the same: it stopped them all, "could not go on" (exit 2)
    site = tmp_path / "site"
    (site / pdf.name).mkdir(parents=True)
    publish = lambda: subprocess.run([sys.executable, "-m", "invoke", "publish", "-r", str(source), "-b",
                                      str(tmp_path / "build"), "--to", str(site)], cwd=ROOT, capture_output=True,
                                     text=True)
    blocked = publish()
    assert blocked.returncode == 1 and blocked.stderr == (
        f"could not publish into {site}:\n  web-one: {pdf.name}: Is a directory\nMake each writable (or move what "
        "is in its place), then publish again.\n"), blocked.stderr
    assert sorted(p.name for p in site.iterdir()) == sorted([pdf.name, *(n.replace("one", "two") for n in (
        pdf.name, pdf.with_suffix(".html").name))]), list(site.iterdir())
    (site / pdf.name).rmdir()
    assert publish().returncode == 0 and (site / pdf.name).read_bytes() == pdf.read_bytes()
    # a page edited by hand is held back, with what to do about it: not to accept a preflight
    # finding, which nothing here is about
    page = pdf.with_suffix(".html")
    kept = page.read_bytes()
    page.write_bytes(kept + b"<!-- edited -->\n")
    edited = publish()
    assert edited.returncode == 1 and "  web-one: changed: " in edited.stderr, edited.stderr
    assert edited.stderr.rstrip().endswith("and fix what it reports.") and "accept" not in edited.stderr, edited.stderr
    page.write_bytes(kept)
    source.write_text(two.replace("    salutation: Dear Siân,\n", ""), encoding="utf-8")
    web = status("web")
    assert web.returncode == 1 and states(web)["web-one"].startswith("invalid"), web.stdout
    report = build(source, tmp_path / "build", medium="web")
    assert [o.status for o in report.outcomes] == ["invalid", "up to date"]
    # its web copy of before is kept (bad input loses nothing), and publish leaves it out
    assert pdf.exists() and pdf.with_suffix(".html").read_bytes() == kept
    (site / pdf.name).unlink()
    held = publish()
    assert held.returncode == 1 and "  web-one: invalid: in recipients.yaml:" in held.stderr, held.stderr
    assert not (site / pdf.name).exists()
    # nor one named by the letter's old date: its copy of the new date replaces it
    source.write_text(two.replace("date: 2021-03-04", "date: 2021-03-05"), encoding="utf-8")
    assert build(source, tmp_path / "build", medium="web").ok
    assert sorted(p.name for p in (tmp_path / "build" / "web").glob("*-web-*")) == [
        "2021-03-05-web-one.html", "2021-03-05-web-one.pdf", "2021-03-05-web-two.html", "2021-03-05-web-two.pdf"]


SHORT_WEB = MINIMAL_LETTER + "recipients:\n  - {id: web-one, name: Bo, address: [2 Road], salutation: 'Dear Bo,'}\n"


def test_a_format_is_made_again_when_tex_would_find_another_file_of_the_same_name(tmp_path, monkeypatch):
    """A package installed since in a folder TeX searches first (~/texmf)
    shadows the one the format holds: the format is made again, and the web
    copy is what the letter's .tex compiled by hand gives."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TEXMFHOME", raising=False)
    source = write_yaml(tmp_path / "recipients.yaml", SHORT_WEB)
    assert build(source, tmp_path / "build", medium="web").ok
    [fmt] = (tmp_path / "build" / "web" / "work" / "_preamble").glob("*.fmt")
    made = fmt.stat().st_ino
    system = subprocess.run(["kpsewhich", "xcolor.sty"], capture_output=True, text=True, check=True).stdout.strip()
    mine = home / "texmf" / "tex" / "latex" / "xcolor" / "xcolor.sty"
    mine.parent.mkdir(parents=True)
    mine.write_text(Path(system).read_text(encoding="utf-8").replace(
        "\\endinput", "\\AtEndDocument{\\par SHADOWEDTEXT\\par}\\endinput", 1), encoding="utf-8")
    assert build(source, tmp_path / "build", medium="web", force=True).ok
    assert fmt.stat().st_ino != made
    assert "SHADOWEDTEXT" in pdf_text(tmp_path / "build" / WEB_PDF)
    assert compiled_without_format(tmp_path / "build", source, "web-one", tmp_path / "hand") == \
        (tmp_path / "build" / WEB_PDF).read_bytes()


def test_no_format_where_none_can_be_made_and_the_letters_build_as_ever(tmp_path, monkeypatch):
    """A format is a saving, never a cause of failure: a folder that cannot
    hold it (here `_preamble` is a file), or too little free space, and the
    letters compile without one, with the same bytes."""
    from builder import compile as tex

    source = write_yaml(tmp_path / "recipients.yaml", SHORT_WEB)
    assert build(source, tmp_path / "with", medium="web").ok
    expected = (tmp_path / "with" / WEB_PDF).read_bytes()
    (tmp_path / "file" / "web" / "work").mkdir(parents=True)
    (tmp_path / "file" / "web" / "work" / "_preamble").write_text("not a folder")
    monkeypatch.setattr(tex, "ROOM_NEEDED", 2 ** 62)  # more than any disk has free
    for where in ("file", "full"):
        report = build(source, tmp_path / where, medium="web")
        assert report.ok, [o.message for o in report.failed]
        assert (tmp_path / where / WEB_PDF).read_bytes() == expected
        assert not started_from_format(tmp_path / where, "web-one")
    assert not list((tmp_path / "full" / "web" / "work" / "_preamble").glob("*.fmt"))


def test_only_the_formats_used_last_are_kept(tmp_path, monkeypatch):
    from builder import compile as tex

    monkeypatch.setattr(tex, "KEEP_FORMATS", 1)
    source = write_yaml(tmp_path / "recipients.yaml", SHORT_WEB)
    assert build(source, tmp_path / "build", medium="web").ok
    [first] = (tmp_path / "build" / "web" / "work" / "_preamble").glob("*.fmt")
    write_yaml(source, SHORT_WEB.replace("  body:\n", "  envelope: C5\n  body:\n"))  # another preamble
    assert build(source, tmp_path / "build", medium="web").ok
    [second] = (tmp_path / "build" / "web" / "work" / "_preamble").glob("*.fmt")
    assert second != first and not first.with_suffix(".json").exists()
    assert not list((tmp_path / "build" / "web" / "work" / "_preamble").glob("making-*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_web_copies_build_on_a_disk_too_small_for_a_format(tmp_path):
    """6 MB free (a format takes 7.6): the letters compile without one, as
    before formats existed, with the same bytes."""
    source = write_yaml(tmp_path / "recipients.yaml", SHORT_WEB)
    assert build(source, tmp_path / "roomy", medium="web").ok
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], check=True)
    try:
        report = build(source, disk / "build", medium="web")
        assert report.ok, [o.message for o in report.failed]
        assert (disk / "build" / WEB_PDF).read_bytes() == (tmp_path / "roomy" / WEB_PDF).read_bytes()
        assert not list((disk / "build" / "web" / "work" / "_preamble").glob("*.fmt"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_failed_web_rebuild_keeps_the_page_of_its_last_good_copy(tmp_path, inject_latex):
    """A web copy whose rebuild fails keeps its last good PDF, and the HTML page
    beside it stays that letter's page: it is not replaced by a page of the new
    wording, which no PDF of the letter holds."""
    source = write_yaml(tmp_path / "recipients.yaml", SHORT_WEB)
    assert build(source, tmp_path / "build", medium="web").ok
    pdf = tmp_path / "build" / "web" / "2021-03-04-web-one.pdf"
    page, good = pdf.with_suffix(".html").read_bytes(), pdf.read_bytes()
    source.write_text(SHORT_WEB.replace("This is the shared text.", "This is the new wording."), encoding="utf-8")
    inject_latex({"web-one": UNDEFINED})
    report = build(source, tmp_path / "build", medium="web")
    assert [o.status for o in report.outcomes] == ["failed"]
    assert pdf.read_bytes() == good and pdf.with_suffix(".html").read_bytes() == page
    inject_latex({})
    assert build(source, tmp_path / "build", medium="web").ok
    page = pdf.with_suffix(".html")
    assert "This is the new wording." in page.read_text(encoding="utf-8")
    # the page is judged with its PDF: one changed or gone since the build is not the page built
    good = page.read_bytes()
    page.write_bytes(good.replace(b"new wording", b"odd wording"))  # the same size
    (state,) = status(source, tmp_path / "build", "web")
    assert state.line() == "web-one: changed: 2021-03-04-web-one.html changed since it was built"
    assert [o.status for o in build(source, tmp_path / "build", medium="web").outcomes] == ["built"]
    assert page.read_bytes() == good
    page.unlink()
    (state,) = status(source, tmp_path / "build", "web")
    assert state.line() == "web-one: changed: 2021-03-04-web-one.html is missing"
    assert build(source, tmp_path / "build", medium="web").ok and page.read_bytes() == good


def test_html_signature_block_is_the_printed_one(tmp_path):
    """The printed block: the title in bold, the name (show_name) plain above it."""
    source = write_yaml(tmp_path / "recipients.yaml", WEB.replace(
        "signatory: {name: Ann Sender, title: Clerk}",
        "signatory: {name: Ann Sender, title: Chief Clerk, show_name: true}"))
    loaded = load(source)
    page = letter_page(loaded.batch, loaded.batch.recipients[0])
    assert '<p class="signatory">Ann Sender<br><strong>Chief Clerk</strong></p>' in page


# a signatory with a signature image, in English, Welsh and both
SIGNED = MINIMAL_LETTER.replace("    role: Clerk\n", "    role: {en: Clerk, cy: Clerc}\n").replace(
    "signatory: {name: Ann Sender, title: Clerk}",
    "signatory: {name: \"Ann O'Sender & Co\", title: {en: Clerk, cy: Clerc}, image: signature.png}").replace(
    "main: This is the shared text.", "main: {en: This is the shared text., cy: Dyma'r testun.}") + """\
recipients:
  - {id: en, name: Bo, address: [1 Road], salutation: 'Dear Bo,'}
  - {id: cy, name: Bo, address: [1 Road], salutation: 'Annwyl Bo,', language: cy}
  - {id: both, name: Bo, address: [1 Road], salutation: {cy: 'Annwyl Bo,', en: 'Dear Bo,'}, language: cy-en}
"""


@pytest.fixture(scope="module")
def signed_web(tmp_path_factory):
    from test_bundle import tiny_png

    folder = tmp_path_factory.mktemp("signed")
    tiny_png(folder / "signature.png")
    assert build(write_yaml(folder / "recipients.yaml", SIGNED), folder / "build", medium="web").ok
    return folder / "build" / "web"


def image_figures(pdf_path) -> list[tuple[str, str | None]]:
    """For each image a page draws, the structure element its marked content
    belongs to and that element's /Alt: ("/Figure", "Signature of ..."); ("/P",
    None) for an image drawn in a paragraph's text, ("Artifact", None) outside the tree."""
    found = []
    with pikepdf.open(pdf_path) as pdf:
        # (page, MCID) -> the structure element holding it
        owner = {marked: element for element, _, marked in walk_structure(pdf) if marked}
        for number, page in enumerate(pdf.pages):
            properties = page.Resources.get("/Properties") or {}
            open_mcids: list = []
            for operands, operator in pikepdf.parse_content_stream(page):
                if str(operator) in ("BDC", "BMC"):
                    listed = operands[1] if len(operands) > 1 else {}
                    if isinstance(listed, pikepdf.Name):
                        listed = properties.get(str(listed), {})
                    open_mcids.append(str(operands[0]) if "/MCID" not in listed else int(listed.MCID))
                elif str(operator) == "EMC" and open_mcids:
                    open_mcids.pop()
                elif str(operator) == "Do" and page.Resources.XObject[operands[0]].Subtype == "/Image":
                    mcid = next((m for m in reversed(open_mcids) if isinstance(m, int)), None)
                    element = owner.get((number, mcid)) if mcid is not None else None
                    found.append((str(element.S), str(element.Alt) if "/Alt" in element else None)
                                 if element is not None else ("Artifact", None))
    return found


def test_a_signature_image_is_a_figure_with_its_alternative_text(signed_web):
    """The signature image was drawn inside the signature block's paragraph: neither an
    artifact nor a figure, so a screen reader said nothing of it (pdfua passed anyway).
    It says the letter is signed: a Figure whose /Alt names the signatory, in the
    language of the half it is in."""
    expected = {"en": ["Signature of Ann O'Sender & Co"], "cy": ["Llofnod Ann O'Sender & Co"],
                "both": ["Llofnod Ann O'Sender & Co", "Signature of Ann O'Sender & Co"]}
    for rid, alts in expected.items():
        pdf = signed_web / f"2021-03-04-{rid}.pdf"
        assert image_figures(pdf) == [("/Figure", alt) for alt in alts]
        check = subprocess.run([shutil.which("pdfua"), "check", str(pdf)], capture_output=True, text=True)
        assert check.returncode == 0 and "errors=0 warnings=0" in check.stdout, check.stdout
        assert not nested_marked_content(pdf)
        tree, texts = structure(pdf)
        assert not any(key[1] == "untagged" for key in texts), texts


def test_a_folder_built_only_for_the_web_is_told_apart_from_another_batch_s(signed_web, tmp_path):
    """A folder a batch built only --for web had no record of its batch file: status of
    another batch there called its copies "(gone)" and suggested the build that deletes
    them, exit 0. Refused now as a print build's folder is, naming its status --for web."""
    folder = signed_web.parent.parent
    other = tmp_path / "other.yaml"
    other.write_text((folder / "recipients.yaml").read_text())
    made = {p.name: p.read_bytes() for p in signed_web.iterdir() if p.is_file()}
    for task in ("status", "build"):
        refused = subprocess.run([sys.executable, "-m", "invoke", task, "--for", "web", "-r", str(other),
                                  "-b", str(folder / "build")], cwd=ROOT, capture_output=True, text=True)
        assert refused.returncode == 2 and "holds the build of another batch" in refused.stderr, refused.stderr
        assert "(gone)" not in refused.stdout, refused.stdout
        if task == "status":
            assert f"status --for web -r {folder / 'recipients.yaml'} -b {folder / 'build'}`" in refused.stderr
    assert {p.name: p.read_bytes() for p in signed_web.iterdir() if p.is_file()} == made


def test_the_html_page_shows_the_signature_image_with_the_pdfs_alternative_text(signed_web, tmp_path, axe_js):
    """The page left the signature out: the signature block read as if unsigned. It
    shows the image in each signature block, inside the page as the logo is, with
    the text alternative of the PDF's Figure, in that half's language."""
    png = base64.b64encode((signed_web.parent.parent / "signature.png").read_bytes()).decode()
    expected = {"en": ["Signature of Ann O'Sender & Co"], "cy": ["Llofnod Ann O'Sender & Co"],
                "both": ["Llofnod Ann O'Sender & Co", "Signature of Ann O'Sender & Co"]}
    for rid, alts in expected.items():
        page = (signed_web / f"2021-03-04-{rid}.html").read_text(encoding="utf-8")
        images = [attrs for tag, attrs, _ in outline(page) if tag == "img"]
        assert [attrs["alt"] for attrs in images] == alts
        assert all(attrs["src"] == f"data:image/png;base64,{png}" for attrs in images)
        assert page.count('<p class="signatory"><img class="signature" ') == len(alts)  # in the block
    result = axe(page, tmp_path / "axe", axe_js)
    assert result["violations"] == [] and "image-alt" in result["passes"], result


def test_a_stopped_or_redated_web_build_leaves_each_page_beside_its_own_pdf(tmp_path):
    """Ctrl-C while pdflatex compiles the new wording: the build wrote the HTML page of
    the new wording for every letter, beside PDFs that still held the old one, and the
    next status called them merely stale. Now a letter not built keeps its page. And a
    change of letter.date (the copies are named by it) made every web copy read
    "changed: 2021-03-05-….pdf is missing" (exit 1, as if a person had deleted it):
    each is stale, and the next build replaces it under the new date."""
    import signal
    import time

    from test_build import _pdflatex_running_under

    people = "".join(f"  - {{id: w{n}, name: Bo {n}, address: [{n} Road], salutation: 'Dear Bo,'}}\n"
                     for n in range(1, 4))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + people)
    out = tmp_path / "build"
    assert build(source, out, medium="web").ok
    source.write_text(source.read_text(encoding="utf-8").replace("the shared text", "the new wording"),
                      encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "build", "--for", "web", "--jobs", "1",
                             "--recipients", str(source), "--build-dir", str(out)], cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _pdflatex_running_under(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.startswith("stopped: "), err
    web = out / "web"
    for n in range(1, 4):
        pdf = web / f"2021-03-04-w{n}.pdf"
        page = pdf.with_suffix(".html").read_text(encoding="utf-8")
        new = "the new wording" in pdf_text(pdf)
        assert ("the new wording" in page) == new and ("the shared text" in page) != new, (n, err)
    assert {s.state for s in status(source, out, "web")} <= {"ready", "stale"}
    assert build(source, out, medium="web").ok
    source.write_text(source.read_text(encoding="utf-8").replace("date: 2021-03-04", "date: 2021-03-05"),
                      encoding="utf-8")
    states = status(source, out, "web")
    assert [(s.state, s.reason.split(";")[0]) for s in states] == [("stale", "older than its inputs")] * 3, \
        [s.line() for s in states]
    assert build(source, out, medium="web").ok
    assert sorted(p.name for p in web.glob("*-w*")) == sorted(f"2021-03-05-w{n}.{kind}" for n in range(1, 4)
                                                             for kind in ("pdf", "html"))
    assert {s.state for s in status(source, out, "web")} == {"ready"}


# ---- a bilingual letter's page, read against its PDF -----------------------------------

# One cy-en letter for what a tester found: marks after emphasis that ends in one,
# accents typed decomposed (e + U+0301), a sender with a logo and long contact details.
BILINGUAL = """\
letter:
  date: 2021-03-04
  our_ref: OR/1
  sender:
    name: Department for Levelling Up, Housing and Communities
    role: {en: Clerk, cy: Clerc}
    logo: images/logo.png
    address: ["Ty\\u0302 Glas", Town]
    phone: 01234 567890
    email: correspondence.unit@levellingup-housing-communities.gov.uk
    web: https://www.gov.uk/government/organisations/department-for-levelling-up-housing-and-communities
  signatory: {name: Ann Sender, title: {en: Clerk, cy: Clerc}}
  subject: {en: "About Jose\\u0301", cy: "Ynghylch Jose\\u0301"}
  cc: ["Jose\\u0301 Copy"]
  body:
    - main:
        en: "Emphasised *claim[^a]*[^b] here, **strong[^a]**[^b], *nested **deep[^a]***[^b], [^a]*[^b] first*. Cafe\\u0301, 10 \\u2126."
        cy: "Pwysleisiwyd *honiad[^a]*[^b] yma. Cafe\\u0301."
references:
  a: {author: A. Author, year: 2020, title: "Report A", url: "https://example.org/a"}
  b: {author: B. Author, year: 2021, title: "Report B", url: "https://example.org/b"}
recipients:
  - id: rhys
    language: cy-en
    name: "Jose\\u0301 Rhys"
    your_ref: YR/2
    address: [2 Road]
    salutation: {cy: "Annwyl Rhys,", en: "Dear Rhys,"}
"""


@pytest.fixture(scope="module")
def bilingual_web(tmp_path_factory):
    """The BILINGUAL letter's web copy (its PDF) and its page, as text."""
    from test_bundle import tiny_png

    folder = tmp_path_factory.mktemp("bilingual-web")
    (folder / "images").mkdir()
    tiny_png(folder / "images" / "logo.png", width=240, height=80)
    source = write_yaml(folder / "recipients.yaml", BILINGUAL)
    report = build(source, folder / "build", medium="web")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    (outcome,) = report.outcomes
    return outcome.pdf, outcome.pdf.with_suffix(".html").read_text(encoding="utf-8")


def test_a_mark_after_emphasis_that_ends_in_one_is_kept_apart_by_a_comma(bilingual_web):
    """*claim[^a]*[^b] read "claim12", on paper and on the page: the comma
    between two marks was put only after a bare citation."""
    pdf, page = bilingual_web
    printed = pdf_text(pdf).replace(" ,", ",")  # (pdftotext puts a space before a comma after a mark)
    shown = " ".join(text for tag, _, text in outline(page) if tag == "p")
    for text in (printed, shown):
        assert "honiad1,2 yma" in text
        for words in ("claim1,2 here", "strong3,4,", "deep5,6,", "7,8 first"):
            assert words in text, (words, text)


def test_a_bilingual_pages_english_half_starts_at_the_salutation_as_on_paper(bilingual_web):
    """The letterhead, references, date and recipient block are printed once:
    the page repeated them at the top of its English half."""
    pdf, page = bilingual_web
    halves = page.split('<section lang="en-GB"')
    assert len(halves) == 2
    welsh, english = outline(halves[0].split("<main>")[1]), outline('<section lang="en-GB"' + halves[1])
    assert [attrs.get("class") for tag, attrs, _ in welsh if tag == "p"][:3] == ["date", "recipient", None]
    assert "Ein cyf: OR/1Eich cyf: YR/2" in next(text for _, attrs, text in welsh if attrs.get("class") == "date")
    first = next(text for tag, _, text in english if tag == "p")
    assert first == "Dear Rhys,", first
    assert not any(attrs.get("class") in ("date", "recipient", "marking") for _, attrs, _ in english)
    assert "<time" not in halves[1] and "Our ref" not in halves[1]
    # as on paper: the English half's first page starts at "Dear Rhys," (its running header aside)
    english_pages = pdf_text(pdf).split("Tudalen 1 o 2", 1)[1]
    assert "Our ref" not in english_pages and "Dear Rhys," in english_pages


def test_html_page_joins_accents_as_the_pdf_does(bilingual_web):
    """e + U+0301 typed in a name, subject, cc or body is é (U+00E9) in the
    PDF's text and metadata: the page printed it decomposed. Joined as the
    PDF joins them (``compose_marks``), not NFC: the ohm sign stays itself."""
    pdf, page = bilingual_web
    assert "\u0301" not in page
    elements = outline(page)
    title = next(text for tag, _, text in elements if tag == "title")
    assert title == PdfReader(pdf).metadata.title == "Llythyr at Jos\u00e9 Rhys / Letter to Jos\u00e9 Rhys"
    assert next(text for tag, _, text in elements if tag == "address").startswith("T\u0177 Glas")
    assert next(text for _, attrs, text in elements if attrs.get("class") == "recipient").startswith("Jos\u00e9 Rhys")
    texts = [text for tag, _, text in elements if tag in ("h2", "p")]
    for shown in ("Ynghylch Jos\u00e9", "About Jos\u00e9", "Copïau: Jos\u00e9 Copy", "cc: Jos\u00e9 Copy"):
        assert shown in texts, (shown, texts)
    assert any(text.endswith("Caf\u00e9, 10 \u2126.") for text in texts)
    assert 'aria-label="Letter to Jos\u00e9 Rhys"' in page
    # the PDF's own text, not pdf_text's (NFC: it would make the ohm sign an omega)
    printed = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                             text=True, check=True).stdout
    assert "About Jos\u00e9\n" in printed and "Caf\u00e9, 10 \u2126." in printed


# each width in an iframe of its own: one chromium run measures them all (a srcdoc
# frame is the probe's own origin, so its document can be read from file://)
WIDTHS_PROBE = """<!DOCTYPE html><html><body style="margin:0">{frames}
<script>
window.addEventListener("load", function () {{
  document.body.setAttribute("data-widths", Array.prototype.map.call(document.querySelectorAll("iframe"),
    function (f) {{ var d = f.contentDocument.documentElement;
                    return f.width + ":" + d.scrollWidth + ":" + d.clientWidth; }}).join(" "));
}});
</script></body></html>"""


def assert_no_sideways_scroll(page: str, widths: tuple[int, ...], tmp_path) -> None:
    """``page`` in chromium, in a frame of each width: never wider than its frame."""
    frames = "".join(f'<iframe width="{w}" height="400" style="display:block;border:0" srcdoc="{html.escape(page)}">'
                     "</iframe>" for w in widths)
    probe = tmp_path / "widths.html"
    probe.write_text(WIDTHS_PROBE.format(frames=frames), encoding="utf-8")
    found = re.search(r'data-widths="([\d: ]+)"', browse(probe, tmp_path, "--window-size=1100,900"))
    assert found, "the probe did not run"
    measured = [tuple(map(int, each.split(":"))) for each in found.group(1).split()]
    assert [w for w, _, _ in measured] == list(widths)
    assert all(scroll <= client for _, scroll, client in measured), measured


def test_html_header_never_scrolls_sideways(bilingual_web, tmp_path):
    """A sender with a long e-mail and web address: the header's address column
    did not shrink below its longest piece, and between 577 and 649 px (the
    two columns side by side) the page scrolled sideways (630 px wide at 580-620)."""
    _, page = bilingual_web
    widths = (320, 400, 500, 577, 580, 600, 620, 649, 700, 800, 1000)
    assert_no_sideways_scroll(page, widths, tmp_path)


def test_a_sender_name_of_one_long_word_never_scrolls_sideways(tmp_path):
    """A sender's name of one 60-letter word held the header's name column at the
    word's width, so with the columns side by side (577 px and up) the page scrolled
    sideways (873 px wide at 577-700). The column may be narrower, and the name breaks."""
    name = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogochxx"
    source = write_yaml(tmp_path / "recipients.yaml", WEB.replace("    name: Ann Sender\n", f"    name: {name}\n"))
    loaded = load(source)
    page = letter_page(loaded.batch, loaded.batch.recipients[0])
    assert f'<p class="sender-name">{name}</p>' in page
    widths = (320, 400, 577, 600, 700, 800, 1000)
    assert_no_sideways_scroll(page, widths, tmp_path)


def test_a_bilingual_pages_english_words_are_marked_english(bilingual_web, tmp_path, axe_js):
    """A bilingual page is Welsh (lang="cy"): its footnotes, labels and Welsh half
    are Welsh, and what it prints in English outside the English half (the
    sender's English role, the English half of the heading "Llythyr at ... /
    Letter to ...") was unmarked, so a screen reader read it as Welsh."""
    _, page = bilingual_web
    assert '<p>Clerc<br><span lang="en-GB">Clerk</span></p>' in page
    assert '<h1>Llythyr at Jos\u00e9 Rhys / <span lang="en-GB">Letter to Jos\u00e9 Rhys</span></h1>' in page
    # (the <title>, text only, says both as the PDF's title does: README, "Web copies")
    welsh = page.split("<body>")[1].split('<section lang="en-GB"')[0]
    for english in ("Our ref", "Your ref", "cc:", "Enc:", "Tel:", "Notes", "Note ", "Back to text", "Letter to",
                    "March", "Yours", "Clerk"):
        unmarked = re.sub(r'<span lang="en-GB">.*?</span>', "", welsh)
        assert english not in unmarked, english
    result = axe(page, tmp_path / "axe", axe_js)
    assert result["violations"] == [] and "valid-lang" in result["passes"], result


def test_a_web_copy_s_preflight_error_is_told_how_it_can_be_accepted(tmp_path):
    """`build --for web` said of a web copy with a preflight error "merge refuses them ...
    (`invoke merge --accept one:window`)": merge makes no web copy, and that command, run,
    merged the printed letters (or was refused, none being built) and put an acceptance
    on the printed letter's record, while the web copy stayed not ready. Only the batch
    file's `accept:` accepts a web copy's finding, so that is what it now says."""
    tall = "\n".join(f"      - Line {n}" for n in range(1, 13))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + f"""recipients:
  - id: tall
    name: A Person
    address:
{tall}
    salutation: Dear Sir or Madam,
""")
    run = lambda *args: subprocess.run([sys.executable, "-m", "invoke", *args, "-r", str(source), "-b",
                                        str(tmp_path / "build")], cwd=ROOT, capture_output=True, text=True,
                                       stdin=subprocess.DEVNULL)
    built = run("build", "--for", "web")
    assert built.returncode == 1, built.stderr
    assert "merge" not in built.stdout, built.stdout
    assert ("not ready (preflight errors): tall; `invoke publish` leaves them out: fix them, or accept "
            "a finding on purpose with the recipient's accept (in the YAML `accept: [window]`, in a spreadsheet "
            "an accept column): tall: window") in built.stdout
    site = tmp_path / "site"
    held = run("publish", "--to", str(site))
    assert held.returncode == 1 and held.stderr.startswith(
        "not published; these web copies are not ready:\n  tall: preflight: window:"), held.stderr
    assert "accept: [CODE]" in held.stderr and not site.exists()
    write_yaml(source, source.read_text().replace("    salutation:", "    accept: [window]\n    salutation:"))
    assert run("status", "--for", "web").returncode == 0  # what it says to write does accept it
    # and publish takes it then, byte for byte; a page changed since it was built is refused
    assert run("publish", "--to", str(site)).returncode == 0
    web = tmp_path / "build" / "web"
    for name in ("2021-03-04-tall.pdf", "2021-03-04-tall.html"):
        assert (site / name).read_bytes() == (web / name).read_bytes()
    assert sorted(p.name for p in site.iterdir()) == ["2021-03-04-tall.html", "2021-03-04-tall.pdf"]
    page = web / "2021-03-04-tall.html"
    page.write_text(page.read_text().replace("A Person", "A Person edited"))
    refused = run("publish", "--to", str(site))
    assert refused.returncode == 1 and "tall: changed: 2021-03-04-tall.html changed since it was built" in \
        refused.stderr, refused.stderr
    assert "edited" not in (site / "2021-03-04-tall.html").read_text()
