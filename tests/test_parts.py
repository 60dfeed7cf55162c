"""The letter parts UK offices use, letters in Welsh, and a letterhead of one's own.

One copy of the sample batch carries every part: the shared subject, our
reference and marking; on london your_ref, cc, enclosures, a PS and "Yours
faithfully,"; south-wales in Welsh (Welsh text for every part); essex
bilingual (Welsh, then English). It is built and merged once, with the real
pdflatex, and read back with poppler's pdftotext -bbox.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pikepdf
import pytest
import yaml

from builder import compose
from builder.build import Layout, build
from builder.compose import closing, is_nameless
from builder.html import letter_page
from builder.load import load
from builder.merge import merge
from conftest import MINIMAL_LETTER, ROOT, SAMPLE, normalise, pdf_text, write_yaml

MM = 72 / 25.4

# Welsh for every shared part of the sample (test data, citations kept).
WELSH = {
    "intro": "Fel Comisiynydd Annibynnol Gwrth-Gaethwasiaeth, rwy\u2019n ysgrifennu ynghylch fy "
             "nghyfrifoldeb statudol.",
    "office": "Mae fy swyddfa yn d\u00eem bach.",
    "funding": "Roeddwn yn falch o weld y cyhoeddiad[^vru-funding] ar ddiwedd 2019 am gyllid i "
               "Gomisiynwyr Heddlu a Throseddu ledled Cymru a Lloegr.",
    "public-health": "Eleni dechreuais weithio gydag Iechyd Cyhoeddus Lloegr ar ddull iechyd "
                     "cyhoeddus o ymdrin \u00e2 chaethwasiaeth fodern[^public-health].",
    "overlap": "O ystyried y gorgyffwrdd sylweddol rhwng caethwasiaeth fodern a thrais difrifol, "
               "hoffwn ddeall mwy am yr Unedau Lleihau Trais.",
    "request": "Byddwn yn ddiolchgar pe baech yn rhannu copi o\u2019ch Asesiad o Anghenion Strategol.",
    "contact": "Bydd April McCoig yn cydlynu\u2019r ymatebion.",
    "finally": "Yn olaf, rwyf wedi cyhoeddi dau adolygiad.",
    "reviews": "Y cyntaf yw adroddiad o ganfyddiadau[^statutory-defence]; yr ail yw adolygiad ar y "
               "cyd[^multi-agency].",
    "response": "Edrychaf ymlaen at dderbyn eich ymateb.",
}
SIGNATORY_CY = "Comisiynydd Annibynnol Gwrth-Gaethwasiaeth"
HIGHLIGHT_CY = "Rwyf wedi darllen adroddiad Unedau Lleihau Trais dan Sylw[^apcc-vru]."


def parts_batch_yaml() -> dict:
    data = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    letter = data["letter"]
    letter["subject"] = {"en": "Violence Reduction Units and modern slavery",
                         "cy": "Unedau Lleihau Trais a chaethwasiaeth fodern"}
    letter["our_ref"] = "IASC/2020/117"
    letter["signatory"]["title"] = {"en": letter["signatory"]["title"], "cy": SIGNATORY_CY}
    letter["sender"]["role"] = {"en": letter["sender"]["role"], "cy": SIGNATORY_CY}
    letter["marking"] = "OFFICIAL"
    letter.pop("closing", None)  # each letter follows the rule, in its language
    for paragraph in letter["body"]:
        for name, text in paragraph.items():
            if text is not None:
                paragraph[name] = {"en": text, "cy": WELSH[name]}
    by_id = {r["id"]: r for r in data["recipients"]}
    by_id["london"].update({
        "your_ref": "MOPAC/88", "closing": "Yours faithfully,", "email": "sophie@example.org",
        "cc": ["April McCoig, IASC", "Chief Constable"], "enclosures": ["Strategic Plan 2019-2021", "Annual Report"],
        "ps": "Please reply by *30 November*.",
    })
    wales = by_id["south-wales"]
    wales.update({"language": "cy", "salutation": "Annwyl Alun,", "your_ref": "CHTh/12",
                  "ps": "Atebwch erbyn 30 Tachwedd.", "enclosures": ["Cynllun Strategol"],
                  "cc": ["April McCoig"]})
    wales["text"] = {"highlight": HIGHLIGHT_CY, "request": WELSH["request"]}
    essex = by_id["essex"]
    essex.update({"language": "cy-en", "salutation": {"cy": "Annwyl Roger,", "en": "Dear Roger,"}})
    essex["text"] = {name: {"cy": HIGHLIGHT_CY if name == "highlight" else WELSH[name], "en": text}
                     for name, text in essex["text"].items()}
    data["recipients"] = [by_id[i] for i in ("london", "south-wales", "essex")]
    return data


@pytest.fixture(scope="session")
def parts_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    source = folder / "recipients.yaml"
    source.write_text(yaml.safe_dump(parts_batch_yaml(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = folder / "build"
    report = build(source, out)
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    bundle = merge(source, out)
    return source, out, bundle


@dataclass
class Line:
    page: int
    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.left + self.right) / 2


def lines(pdf: Path) -> list[Line]:
    """Every line of text with its box (points from the page's top left)."""
    out = subprocess.run([shutil.which("pdftotext"), "-bbox-layout", str(pdf), "-"], capture_output=True,
                         check=True).stdout.decode()
    found, page = [], 0
    for match in re.finditer(r'<page |<line xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                             r"(.*?)</line>", out, re.S):
        if match.group(0) == "<page ":
            page += 1
            continue
        words = " ".join(html.unescape(w) for w in re.findall(r"<word [^>]*>(.*?)</word>", match.group(5)))
        found.append(Line(page, normalise(words), *(float(match.group(i)) for i in range(1, 5))))
    return found


def find(found: list[Line], text: str, page: int | None = None) -> Line:
    hits = [l for l in found if l.text.startswith(text) and (page is None or l.page == page)]
    assert hits, f"no line starting {text!r}: {[l.text for l in found]}"
    return hits[0]


def before(a: Line, b: Line) -> bool:
    return (a.page, a.top) < (b.page, b.top)


def test_every_part_prints_where_a_uk_reader_expects_it(parts_batch):
    _, out, _ = parts_batch
    found = lines(Layout.of(out).pdf("london"))
    date = find(found, "13 October 2020", 1)
    ours, yours = find(found, "Our ref: IASC/2020/117", 1), find(found, "Your ref: MOPAC/88", 1)
    # the references stand above the date, right-aligned with it
    assert before(ours, yours) and before(yours, date) and date.top - ours.top < 40
    assert abs(ours.right - date.right) < 1 and abs(yours.right - date.right) < 1
    # the return address, small, at the top of the window, above the recipient (line boxes
    # include ascenders and descenders, so the two boxes may touch; the glyphs do not)
    back = find(found, "5th Floor, Globe House, 89 Eccleston Square", 1)
    name = find(found, "Sophie Linden", 1)
    assert 50 * MM <= back.top and back.bottom < (name.top + name.bottom) / 2 and back.bottom - back.top < name.bottom - name.top
    # the references and the date beside the recipient block, level with its first line
    assert abs(ours.top - name.top) < 3 and ours.left > back.right
    # salutation, then the subject, then the body
    salutation = find(found, "Dear Sophie,")
    subject = find(found, "Violence Reduction Units and modern slavery")
    first = find(found, "As Independent Anti-Slavery Commissioner")
    assert before(salutation, subject) and before(subject, first)
    # closing, the signatory's title, cc, Enc, PS: in that order, at the end
    closing_line = find(found, "Yours faithfully,")
    title = [l for l in found if l.text == "Independent Anti-Slavery Commissioner"][-1]
    cc, cc2 = find(found, "cc: April McCoig, IASC"), find(found, "Chief Constable")
    enc, enc2 = find(found, "Enc: Strategic Plan 2019-2021"), find(found, "Annual Report")
    ps = find(found, "PS Please reply by 30 November.")
    order = [closing_line, title, cc, cc2, enc, enc2, ps]
    assert all(before(a, b) for a, b in zip(order, order[1:])), [l.text for l in order]
    assert title.top - closing_line.bottom > 15 * MM  # room to sign
    assert cc2.left > cc.left + 5 and enc2.left > enc.left + 5  # later lines hang under the first's text
    assert "sophie@example.org" not in " ".join(l.text for l in found)  # email: printed nowhere


def test_a_long_reference_wraps_beside_the_address_every_character_kept(tmp_path):
    """Our and your references stand right-aligned in a column beside the
    recipient block. A reference longer than that column, with no space in it,
    ran off the right edge of the paper: "…/ANNEX-C/PART-2" printed as
    "…/ANNEX-", the rest past the page. It wraps inside the column (as a
    cover sheet's long name does), every character on the page."""
    ours, yours = "IASC/2025/LONG-REFERENCE/0000123456789/ANNEX-C/PART-2", "MOPAC/2025/LONGREFERENCE0000123456ANNEXB"
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  body:\n", f"  our_ref: {ours}\n  body:\n") +
        f"recipients:\n  - {{id: one, name: A Person, address: [1 Road, Town], salutation: 'Dear Ann,', "
        f"your_ref: {yours}}}\n")
    report = build(source, tmp_path / "build")
    assert [f["code"] for o in report.outcomes for f in o.findings] == []  # no overfull line
    found = [l for l in lines(Layout.of(tmp_path / "build").pdf("one")) if l.page == 1]
    date = find(found, "4 March 2021")
    column = [l for l in found if 45 * MM < l.top < date.top and l.left > 100 * MM]  # below the letterhead
    assert "".join(l.text.replace(" ", "") for l in column) == f"Ourref:{ours}Yourref:{yours}"
    assert all(l.right <= 185 * MM + 1 for l in column), [(l.text, l.right / MM) for l in column]
    assert all(abs(l.right - date.right) < 1 for l in column)  # right-aligned with the date
    assert column[0].text.endswith("/")  # after a slash where one will do ("LONG-REFEREN / CE" read badly)


def test_the_ps_is_never_stranded_and_footnotes_stay_at_the_foot(tmp_path):
    """A PS belongs under the signature: where the signature block just fits
    at the foot of a page, the PS once went alone onto a last page. And
    footnotes stand at the foot of the page: on a page the closing left short
    they once hung right under the text, halfway down. A sweep of letters
    whose last paragraph grows a few words at a time crosses the foot of
    page 1; in every one the PS is on the signature's page and page 1's
    footnote at the foot of the text area."""
    filler = "Plain words fill this paragraph so that the letter grows line by line, as letters do. " * 3
    body = "".join(f"    - fill{i}: {filler}\n" for i in range(5)) + "    - last: ~\n"
    body = body.replace("as letters do. \n", "as letters do.[^note]\n", 1)
    words = ("alpha beta gamma delta epsilon zeta eta theta iota kappa " * 20).split()
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    - main: This is the shared text.\n", body).replace(
        "  body:\n", "  cc: [April McCoig]\n  ps: Please reply by 30 November.\n  body:\n") + "recipients:\n" + "".join(
        f"  - {{id: w{n:03d}, name: A Person, address: [1 Road, Town, AB1 2CD], salutation: 'Dear Ann,', "
        f"text: {{last: {' '.join(words[:1 + n])}.}}}}\n" for n in range(0, 190, 6))
        + "references:\n  note: {author: A, year: 2020, title: A note, url: 'https://example.org/note'}\n")
    report = build(source, tmp_path / "build")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    signature_pages = set()
    for outcome in report.outcomes:
        found = lines(outcome.pdf)
        title = [l for l in found if l.text == "Clerk"][-1]  # the signatory's (the first: the letterhead's)
        ps = find(found, "PS Please reply by 30 November.")
        assert ps.page == title.page, (outcome.recipient, title, ps)
        signature_pages.add(title.page)
        # the footnote at the foot of page 1, as on any page, however much text is above it
        note = find(found, "1 A (2020) A note.", 1)
        assert note.bottom > 297 * MM - 22 * MM - 3, (outcome.recipient, note.bottom / MM)
    assert signature_pages == {1, 2}  # the sweep crosses the foot of page 1


def test_the_subject_is_markup_like_a_body_part(tmp_path):
    """The subject reads as a body part does: emphasis in italics (stars not
    printed), a citation a footnote."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  body:\n", "  subject: About *this* matter[^note]\n  body:\n") +
        "recipients:\n  - {id: one, name: A Person, address: [1 Road, Town], salutation: 'Dear Ann,'}\n"
        "references:\n  note: {author: A, year: 2020, title: A note, url: 'https://example.org/note'}\n")
    report = build(source, tmp_path / "build")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    found = lines(report.outcomes[0].pdf)
    assert find(found, "About this matter 1") and find(found, "1 A (2020) A note.")
    fonts = subprocess.run(["pdffonts", str(report.outcomes[0].pdf)], capture_output=True, text=True).stdout
    assert re.search(r"LMSans\S*Bold\S*Oblique|LMSans\S*Oblique", fonts), fonts


def test_marking_is_centred_at_top_and_bottom_of_every_page(parts_batch):
    _, out, bundle = parts_batch
    for pdf in [Layout.of(out).pdf("london"), Layout.of(out).pdf("south-wales"), Layout.of(out).pdf("essex"), bundle.path]:
        found = lines(pdf)
        with pikepdf.open(pdf) as document:
            width, height = (float(v) for v in document.pages[0].mediabox[2:])
            count = len(document.pages)
        for page in range(1, count + 1):
            marks = [l for l in found if l.page == page and l.text == "OFFICIAL"]
            assert len(marks) == 2, (pdf.name, page)
            assert all(abs(m.middle - width / 2) < 1 for m in marks)
            assert min(m.top for m in marks) < 12 * MM and max(m.bottom for m in marks) > height - 12 * MM


def test_a_blank_page_for_duplex_carries_the_marking_where_the_letters_do(parts_batch, tmp_path):
    """The class's blank page (merge --duplex puts one behind a letter of odd length):
    nothing but the marking, at the top and the bottom, where a letter's page has it."""
    from builder.build import prepare
    from builder.compose import compose_blank_pages
    from conftest import copy_batch

    source, out = copy_batch(parts_batch[:2], tmp_path / "batch")
    prepared = prepare(source, out)
    result = prepared.compile("blank", compose_blank_pages(prepared.loaded.batch,
                                                           ["OFFICIAL", "OFFICIAL-SENSITIVE"]).dumps())
    assert result.ok, result.first_error
    found = lines(result.pdf)
    assert [(l.page, l.text) for l in found] == [(1, "OFFICIAL"), (1, "OFFICIAL"), (2, "OFFICIAL-SENSITIVE"),
                                                 (2, "OFFICIAL-SENSITIVE")]
    on_letter = [l for l in lines(Layout.of(out).pdf("london")) if l.page == 2 and l.text == "OFFICIAL"]
    assert [(round(l.middle, 1), round(l.top, 1)) for l in found[:2]] == \
        [(round(l.middle, 1), round(l.top, 1)) for l in on_letter]
    assert [round(l.top, 1) for l in found[2:]] == [round(l.top, 1) for l in on_letter]


def test_a_duplex_bundle_marks_its_blank_pages_too(parts_batch, tmp_path):
    """merge --duplex: the blank back of an odd-length marked document (here the
    one-page cover) carries the marking, as every page of a marked document must."""
    from conftest import copy_batch

    source, out = copy_batch(parts_batch[:2], tmp_path / "batch")
    report = merge(source, out, duplex=True)
    assert report.blank_pages == 1 and report.cover_pages == 1
    found = lines(report.path)
    with pikepdf.open(report.path) as document:
        count = len(document.pages)
    assert [sum(l.text == "OFFICIAL" for l in found if l.page == page) for page in range(1, count + 1)] == [2] * count
    assert not [l for l in found if l.page == 2 and l.text != "OFFICIAL"]  # nothing else on it


def test_a_house_class_that_does_not_load_is_one_fault_of_the_class_found_without_compiling_each_letter(tmp_path):
    """A house class with a TeX error fails every letter before its text. Each batch that
    failed was halved until every letter was compiled alone (120 letters: 45 s), and each
    was told "<id>.tex:4: File ended while scanning use of \\renew@command", a line of the
    letter's preamble, not of the class. Now one letter of each failed batch is compiled
    alone, its fault is every letter's, and the message names the class."""
    recipients = "".join(f"""\
  - id: r{n:02d}
    name: Person {n}
    address: [{n} Road, Town]
    salutation: Dear Sir or Madam,
""" for n in range(12))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  body:\n", "  letterhead: house.cls\n  body:\n") + "recipients:\n" + recipients)
    head = "\\NeedsTeXFormat{LaTeX2e}\\ProvidesClass{house}\\LoadClassWithOptions{letterbatch}\n"
    for body, said in [("\\renewcommand{\\foo\n", "the letterhead class (house.cls), or what it loads, stops "
                        "every letter before its text: File ended while scanning use of \\renew@command. (near: "
                        "\\pdfinfo); fix the class"),
                       ("\\undefinedthing\n", "house.cls:2: Undefined control sequence. (near: \\undefinedthing); "
                        "every letter fails with it"),
                       # a package the class loads that fails as it loads: each letter was compiled
                       # alone (40 letters: 13 s), told of fontspec.sty:45 with no word of the class;
                       # the package's message goes on in lines of its own ("(fontspec)   LuaTeX.")
                       ("\\RequirePackage{fontspec}\n", "the letterhead class (house.cls), or what it loads, "
                        "stops every letter before its text: fontspec.sty:45: Fatal Package fontspec Error: The "
                        "fontspec package requires either XeTeX or LuaTeX. (near: \\msg_fatal:nn {fontspec} "
                        "{cannot-use-pdftex}); fix the class")]:
        (tmp_path / "house.cls").write_text(head + body, encoding="utf-8")
        out = tmp_path / f"build-{len(body)}"
        report = build(source, out, jobs=2)
        assert [(o.status, o.message) for o in report.outcomes] == [("failed", said)] * 12
        # one letter of each of the two runs compiled alone, not all twelve
        alone = [p.name for p in (out / "work").iterdir() if not p.name.startswith("_")]
        assert len(alone) == 2, alone
    # and the command says it once, with the letters it stops (it said it twelve times)
    shown = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(source), "-b", str(out)], cwd=ROOT,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert shown.returncode == 1 and shown.stdout.splitlines()[:2] == [
        "  r00, r01, r02, r03, r04, r05, r06, r07, r08, r09 and 2 more  failed (12 letters, the same fault)",
        f"      {said}"], shown.stdout
    (tmp_path / "house.cls").write_text(head, encoding="utf-8")  # mended: every letter builds
    assert build(source, out, jobs=2).ok


def test_a_house_marking_sep_never_prints_the_marking_over_the_letterhead_or_header(tmp_path):
    """A house class may set \\lbmarkingsep; set wider than the margin allows
    (10 mm), the marking stops 1 mm short of the letterhead, the running
    header and the page number instead of printing over them."""
    (tmp_path / "house.cls").write_text(
        "\\NeedsTeXFormat{LaTeX2e}\\ProvidesClass{house}\\LoadClassWithOptions{letterbatch}\n"
        "\\setlength\\lbmarkingsep{10mm}\n", encoding="utf-8")
    long_text = " ".join(["This sentence makes the letter run to a second page."] * 120)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace("  body:\n", """\
  letterhead: house.cls
  marking: OFFICIAL-SENSITIVE
  body:
""").replace("This is the shared text.", long_text) + """\
recipients:
  - id: two-pages
    name: A Person
    address: [1 Road, Town]
    salutation: Dear Sir or Madam,
""")
    report = build(source, tmp_path / "build")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    found = lines(Layout.of(tmp_path / "build").pdf("two-pages"))
    pages = sorted({l.page for l in found})
    assert len(pages) >= 2
    for page in pages:
        marks = sorted((l for l in found if l.page == page and l.text == "OFFICIAL-SENSITIVE"), key=lambda l: l.top)
        assert len(marks) == 2, page
        top, bottom = marks
        others = [l for l in found if l.page == page and l not in marks]
        first, last = min(others, key=lambda l: l.top), max(others, key=lambda l: l.bottom)
        # the letterhead's name on page 1, the running header ("A Person  4 March 2021  Page 2 of 2") later
        assert top.bottom < first.top, (page, first.text)
        assert bottom.top > last.bottom, (page, last.text)


def test_printed_footnotes_show_their_urls(parts_batch):
    _, out, _ = parts_batch
    text = "".join(l.text for l in lines(Layout.of(out).pdf("london"))).replace(" ", "")
    assert "announced.www.gov.uk/government/news/funding-for-violence-reduction-units-announced" in text
    assert "https://" not in text


def test_the_uk_closing_rule():
    batch = load_minimal("Dear Sir or Madam,").batch
    assert closing(batch, batch.recipients[0]) == "Yours faithfully,"
    for salutation in ("Dear Sir,", "Dear Sirs", "Dear Sir/Madam,", "To whom it may concern:", "Dear Sir Or Madam",
                       "Annwyl Syr neu Fadam,", "Annwyl Syr / Madam", "Annwyl bawb,", "Dear Colleagues,",
                       "At bwy bynnag y gall hyn berthyn iddo"):
        assert is_nameless(salutation), salutation
    # a name of one letter, or a name that is also a word of a nameless phrase, names someone
    for salutation in ("Dear Sophie,", "Dear Mr Madamson,", "Dear Chief Constable,", "Dear A,", "Annwyl A,",
                       "Dear May,", "Dear Y,", "Dear Or,", "Annwyl Gall,", "Dear Sir A,"):
        assert not is_nameless(salutation), salutation
    batch = load_minimal("Dear A,").batch
    assert closing(batch, batch.recipients[0]) == "Yours sincerely,"
    batch = load_minimal("Dear Ann,").batch
    assert closing(batch, batch.recipients[0]) == "Yours sincerely,"
    batch = load_minimal("Annwyl Syr/Fadam,", "language: cy").batch
    assert closing(batch, batch.recipients[0]) == "Yr eiddoch yn gywir,"


def load_minimal(salutation: str, extra: str = ""):
    import tempfile

    folder = Path(tempfile.mkdtemp())
    body = MINIMAL_LETTER.replace("This is the shared text.", "{en: Shared text., cy: Testun a rennir.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    return load(write_yaml(folder / "r.yaml", body + f"""\
recipients:
  - id: one
    name: A Person
    address: [1 Road]
    salutation: "{salutation}"
    {extra}
"""))


def test_welsh_letter_is_welsh(parts_batch):
    _, out, _ = parts_batch
    found = lines(Layout.of(out).pdf("south-wales"))
    text = " ".join(l.text for l in found)
    date = find(found, "13 Hydref 2020", 1)
    assert find(found, "Ein cyf: IASC/2020/117", 1).top < date.top
    assert find(found, "Eich cyf: CHTh/12", 1).top < date.top
    assert "Tudalen 1 o 2" in text and "Tudalen 2 o 2" in text
    assert "Yn gywir," in text and "Yours" not in text and "Page" not in text
    assert "Copïau: April McCoig" in text and "Amg: Cynllun Strategol" in text and "ON Atebwch erbyn 30 Tachwedd." in text
    assert before(find(found, "Annwyl Alun,"), find(found, "Unedau Lleihau Trais a chaethwasiaeth fodern"))
    assert "As Independent" not in text  # no English part slipped in
    # the letterhead's telephone label too ("Ffôn", as Welsh public bodies print it)
    assert "Ffôn: +44 (0) 20 3513 0477" in text and "Tel:" not in text
    # babel's Welsh, with Welsh hyphenation patterns in the format (texlive-lang-european)
    logs = [p.read_text(errors="replace") for p in (out / "work").rglob("*.log")]
    assert any("welsh.ldf" in log for log in logs)
    assert not any("No hyphenation patterns were preloaded" in log for log in logs)
    with pikepdf.open(Layout.of(out).pdf("south-wales")) as pdf:
        assert str(pdf.Root.Lang) == "cy"
    with pikepdf.open(Layout.of(out).pdf("london")) as pdf:
        assert str(pdf.Root.Lang) == "en-GB"


def test_bilingual_letter_is_welsh_then_english(parts_batch):
    _, out, _ = parts_batch
    found = lines(Layout.of(out).pdf("essex"))
    welsh, english = find(found, "Annwyl Roger,"), find(found, "Dear Roger,")
    assert before(welsh, english) and english.page > welsh.page  # English starts a new page
    assert before(find(found, "Yn gywir,"), english) and before(english, find(found, "Yours sincerely,"))
    assert before(find(found, "Fel Comisiynydd"), english)
    assert find(found, "Ffôn: +44", 1)  # the letterhead, printed once, is in Welsh like the references
    assert before(english, find(found, "As Independent Anti-Slavery Commissioner"))
    # each half numbers its footnotes from 1
    notes = [l.page for l in found if l.text.startswith("1 Home Office (2019)")]
    assert len(notes) == 2 and notes[1] >= english.page


def test_the_telephone_label_is_in_the_letters_language_on_paper_and_web(parts_batch):
    source, out, _ = parts_batch
    london = " ".join(l.text for l in lines(Layout.of(out).pdf("london")) if l.page == 1)
    assert "Tel: +44 (0) 20 3513 0477" in london and "Ffôn" not in london
    batch = load(source).batch
    pages = {r.id: letter_page(batch, r) for r in batch.recipients}
    assert "Ffôn: +44 (0) 20 3513 0477" in pages["south-wales"] and "Tel:" not in pages["south-wales"]
    assert "Tel: +44 (0) 20 3513 0477" in pages["london"] and "Ffôn" not in pages["london"]


def test_the_cover_letterhead_stands_where_the_letters_does(parts_batch):
    """Paging through the bundle, the letterhead does not jump between the
    cover and the first letter (it stood a \\parskip, 4.5 mm, lower on the cover)."""
    _, _, bundle = parts_batch
    found = lines(bundle.path)
    for text in ("Dame Sara Thornton DBE QPM", "Tel: +44", "5th Floor, Globe House"):
        cover, letter = find(found, text, 1), find(found, text, 2)
        assert abs(cover.top - letter.top) < 0.1 and abs(cover.left - letter.left) < 0.1, text


def test_cover_sheet_carries_the_marking_and_the_class_table(parts_batch):
    _, out, bundle = parts_batch
    found = [l for l in lines(bundle.path) if l.page == 1]
    assert [l.text for l in found if l.text == "OFFICIAL"] == ["OFFICIAL", "OFFICIAL"]
    header = [find(found, word) for word in ("No.", "Recipient", "Role", "Pages")]
    assert len({round(l.top) for l in header}) == 1  # one row, drawn by the class's covertable
    assert before(header[0], find(found, "Sophie Linden")) and find(found, "2\u20133")


def test_a_welsh_letter_needs_welsh_text_for_every_part(tmp_path):
    data = parts_batch_yaml()
    data["letter"]["body"][1]["funding"] = "English only."
    data["letter"]["ps"] = "An English PS."
    loaded = load(write_yaml(tmp_path / "r.yaml", yaml.safe_dump(data, allow_unicode=True)))
    assert [r.id for r in loaded.batch.recipients] == ["london"]  # the English letter is still built
    message = "\n".join(str(p) for ps in loaded.rejected.values() for p in ps)
    assert "recipient 'south-wales'" in message and "'funding'" in message and "letter.ps" in message
    assert "no Welsh text (cy)" in message
    # the fix keeps the English the English letters print: {cy: …} alone dropped it
    funding = [line for line in message.splitlines() if "recipient 'south-wales'" in line and "'funding'" in line]
    assert funding and all(line.endswith("write it as {en: …, cy: …}") for line in funding), funding
    assert "{cy: …}" not in message, message
    data["recipients"][2]["salutation"] = "Annwyl Roger,"  # a bilingual letter needs both
    data["letter"]["body"][1]["funding"] = {"en": "x", "cy": "y"}
    data["letter"]["ps"] = {"en": "x", "cy": "y"}
    data["recipients"][1]["language"] = "en"
    data["recipients"][1]["salutation"] = "Dear Alun,"
    data["recipients"][1]["ps"] = "PS."
    data["recipients"][1]["text"] = {"highlight": "My own sentence."}
    data["recipients"][1]["enclosures"] = []
    data["recipients"][1]["cc"] = []
    loaded = load(write_yaml(tmp_path / "r.yaml", yaml.safe_dump(data, allow_unicode=True)))
    [problems] = loaded.rejected.values()
    assert all("recipient 'essex', field 'salutation'" in str(p) for p in problems)
    assert "write it as {cy: …, en: …}" in str(problems[0])


HOUSE = r"""\NeedsTeXFormat{LaTeX2e}
\ProvidesClass{house}[2026/11/23 a house letterhead]
\LoadClassWithOptions{letterbatch}
\setlength\lbsigspace{30mm}
\hypersetup{pdfborder={0 0 1.5}}
\setlength\lbwindowleft{24mm}\setlength\lbwindowtop{98mm}
\AddToHook{shipout/foreground}{\put(0.5\paperwidth,-0.5\paperheight){\makebox[0pt]{HOUSE STYLE}}}
"""


@pytest.fixture(scope="session")
def house_batch(tmp_path_factory):
    """A letterhead of one's own, serif, for a C5 envelope whose window the
    house class moves, without fold marks, with a return address of its own:
    one letter, built once."""
    folder = tmp_path_factory.mktemp("house")
    (folder / "house.cls").write_text(HOUSE, encoding="utf-8")
    source = write_yaml(folder / "recipients.yaml", MINIMAL_LETTER.replace(
        "    role: Clerk\n", "    role: Clerk\n    email: post@house.example\n").replace("  body:\n", """\
  letterhead: house.cls
  font: serif
  envelope: C5
  fold_marks: false
  return_address: "Return to: PO Box 1 & {2}, The Long Building Name, Some Town, AB1 2CD"
  body:
""") + """\
recipients:
  - id: house-one
    name: A Person
    address: [1 Road, Town]
    salutation: Dear Sir or Madam,
""")
    report = build(source, folder / "build")
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    return source, folder / "build"


def test_a_house_letterhead_is_used_copied_and_hashed(house_batch):
    from builder.build import status

    source, out = house_batch
    pdf = Layout.of(out).pdf("house-one")
    found = lines(pdf)
    assert find(found, "HOUSE STYLE")  # the derived class drew it
    assert (out / "tex" / "house.cls").read_text() == HOUSE
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "LMRoman" in fonts and "LMSans" not in fonts  # font: serif
    # C5, with the window moved by the house class after loading letterbatch:
    # the address follows the window (inset 5 mm), the preflight's window is it
    left, top, width, height = recorded_window(out, "house-one")
    assert (round(left / MM), round(top / MM), round(width / MM), round(height / MM)) == (24, 98, 90, 45)
    name = find(found, "A Person", 1)
    assert top < name.top < top + height
    assert abs(name.left - (left + 5 * MM)) < 0.5, name
    [state] = status(source, out)
    assert state.ready, state.said()  # no window finding: the address is inside it
    back = find(found, "Return to: PO Box 1 & {2}, The Long Building Name", 1)  # the batch's own
    assert back.text.endswith("AB1 2CD")  # one line, scaled down to fit the window
    assert top <= back.top and back.bottom < (name.top + name.bottom) / 2
    assert left < back.left and back.right < left + width
    assert find(found, "Yours faithfully,")  # the UK rule: a salutation without a name
    with pikepdf.open(pdf) as letter:  # the border the house class asked for, as hyperref writes it
        [link] = letter.pages[0].Annots
        assert link.A.URI == "mailto:post@house.example" and not link.Border.is_indirect
        assert [float(width) for width in link.Border] == [0, 0, 1.5]
    logs = [p.read_text(errors="replace") for p in (out / "work").rglob("*.log")]
    assert logs and not any("babel.sty" in log for log in logs)  # no Welsh letter: no babel
    # the house class is an input of every letter: changing it makes the letter stale
    (source.parent / "house.cls").write_text(HOUSE + "% changed\n", encoding="utf-8")
    try:
        [state] = status(source, out)
        assert state.state == "stale" and "letterhead" in state.reason
    finally:
        (source.parent / "house.cls").write_text(HOUSE, encoding="utf-8")



def _house_batch(tmp_path, class_body: str, layout: str = "") -> Path:
    """A one-letter batch on a house letterhead, house.cls, of ``class_body`` after its
    two first lines; ``layout``: more letter: lines (the envelope, the font)."""
    (tmp_path / "house.cls").write_text("\\NeedsTeXFormat{LaTeX2e}\n\\ProvidesClass{house}\n" + class_body,
                                        encoding="utf-8")
    return write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  body:\n", f"  letterhead: house.cls\n{layout}  body:\n") + """\
recipients:
  - id: one
    name: A Person
    address: [1 Road, Town]
    salutation: Dear Sir or Madam,
""")


@pytest.mark.parametrize("loads, said", [
    ("\\LoadClass{letterbatch}", "'house.cls' loads letterbatch with \\LoadClass, which leaves out the options"),
    ("\\LoadClass[C5]{letterbatch}", "'house.cls' loads letterbatch with \\LoadClass, which leaves out the options"),
    # one fixed option handed on is not the batch's options: C5 and sans were dropped all the same
    ("\\PassOptionsToClass{serif}{letterbatch}\n\\LoadClass{letterbatch}",
     "'house.cls' loads letterbatch with \\LoadClass, which leaves out the options"),
    ("\\LoadClass{article}", "'house.cls' does not load letterbatch.cls"),
    ("% \\LoadClassWithOptions{letterbatch}\n\\LoadClass{article}", "'house.cls' does not load letterbatch.cls"),
])
def test_a_house_letterhead_that_drops_the_batch_s_options_is_refused(tmp_path, loads, said):
    """\\LoadClass{letterbatch} built a C5 batch with its address in the DL window, serif
    in sans, and the preflight checked the window the class wrote (DL) and passed; a class
    that loads no letterbatch failed in every letter's .tex, at \\hypersetup."""
    from builder.problems import LoadError

    source = _house_batch(tmp_path, f"{loads}\n", "  envelope: C5\n  font: serif\n")
    with pytest.raises(LoadError) as refused:
        load(source)
    (problem,) = refused.value.problems
    assert "field 'letter.letterhead': " + said in str(problem) and problem.line, str(problem)
    assert "write \\LoadClassWithOptions{letterbatch}" in str(problem)


def test_a_house_letterhead_that_hands_the_options_on_is_taken(tmp_path):
    """LaTeX's other idiom for a derived class, each option handed on before
    \\LoadClass{letterbatch}, gives the class the batch's options: it is not refused."""
    source = _house_batch(tmp_path, "\\DeclareOption*{\\PassOptionsToClass{\\CurrentOption}{letterbatch}}\n"
                          "\\ProcessOptions\\relax\n\\LoadClass{letterbatch}\n", "  envelope: C5\n")
    assert load(source).problems == []


@pytest.mark.parametrize("name", ["letterbatch", "article"])
def test_a_house_letterhead_named_as_a_class_tex_loads_under_it_is_refused(tmp_path, name):
    """A house class called article.cls (copied beside the letters' .tex, where TeX looks
    first) stood in for the article class letterbatch.cls loads: every letter failed with
    "letterbatch.cls:91: LaTeX Error: Option clash for document class article", which
    says nothing of the house class's name. Now it is refused at its line, as
    letterbatch.cls is."""
    from builder.problems import LoadError

    source = _house_batch(tmp_path, "\\LoadClassWithOptions{letterbatch}\n")
    (tmp_path / "house.cls").rename(tmp_path / f"{name}.cls")
    write_yaml(source, source.read_text(encoding="utf-8").replace("house.cls", f"{name}.cls"))
    with pytest.raises(LoadError) as refused:
        load(source)
    (problem,) = refused.value.problems
    assert "field 'letter.letterhead': a house letterhead needs a name of its own" in str(problem), str(problem)
    assert f"{name}.cls" in str(problem) and problem.line, str(problem)


def test_an_error_in_a_house_letterhead_names_it_once(tmp_path):
    # it read "house.cls (from house.cls):5: Undefined control sequence."
    source = _house_batch(tmp_path, "\\LoadClassWithOptions{letterbatch}\n\n\\nosuchmacro\n")
    (failed,) = build(source, tmp_path / "build").failed
    assert failed.message.startswith("house.cls:5: Undefined control sequence."), failed.message


def test_a_serif_batch_is_signed_in_its_own_typeface(house_batch, tmp_path):
    """The visible signature is in the letters' typeface: Roman for `font: serif`."""
    from builder.sign import Key, sign_batch
    from conftest import copy_batch
    from test_bundle import make_certificates

    source, out = copy_batch(house_batch, tmp_path / "batch")
    p12, _ = make_certificates(tmp_path)
    report = sign_batch(source, out, Key(p12=p12, password=b"secret"))
    assert report.signed == [Layout.of(out).signed_pdf("house-one")]
    fonts = subprocess.run(["pdffonts", str(report.signed[0])], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in fonts.splitlines()[2:]]
    assert len(names) > len(subprocess.run(["pdffonts", str(Layout.of(out).pdf("house-one"))], capture_output=True,
                                           text=True, check=True).stdout.splitlines()[2:])  # the signature's own
    assert all("LMRoman" in name for name in names) and "LMSans" not in fonts, fonts


def test_a_welsh_letter_is_signed_in_welsh(parts_batch, tmp_path):
    """The visible signature speaks the language of the block it is drawn on: Welsh
    on a Welsh letter, with a Welsh month, English under a bilingual letter's English
    half; in the letters and in the bundle's fields."""
    import json

    from builder.sign import Key, sign_batch, signature_box
    from conftest import copy_batch
    from test_bundle import make_certificates

    source, out = copy_batch(parts_batch[:2], tmp_path / "batch")
    merge(source, out, signature_fields=True)
    p12, _ = make_certificates(tmp_path)
    report = sign_batch(source, out, Key(p12=p12, password=b"secret"))
    assert not report.failed and report.bundle, report
    manifest = json.loads((out / "manifest.json").read_text())
    welsh, english = "|".join(compose.MONTHS["cy"]), "|".join(compose.MONTHS["en"])
    for rid, signed_by, months in [("south-wales", "Llofnodwyd yn ddigidol gan", welsh),
                                   ("london", "Digitally signed by", english),
                                   ("essex", "Digitally signed by", english)]:
        page, box = signature_box(manifest["letters"][rid]["signature"])
        text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-x", str(int(box[0])),
                               "-y", str(int(841.89 - box[3])), "-W", str(int(box[2] - box[0])),
                               "-H", str(int(box[3] - box[1])), str(Layout.of(out).signed_pdf(rid)), "-"],
                              capture_output=True, text=True, check=True).stdout
        assert re.fullmatch(rf"{signed_by} Signatory\s+[1-9]\d? ({months}) \d{{4}}, \d\d:\d\d UTC\s*", text), (rid, text)
    bundle = normalise(subprocess.run(["pdftotext", str(report.bundle), "-"], capture_output=True, text=True,
                                      check=True).stdout)
    assert bundle.count("Llofnodwyd yn ddigidol gan Signatory") == 1
    assert bundle.count("Digitally signed by Signatory") == 2


def dark_rows_at_left_edge(pdf: Path) -> list[float]:
    """Where (mm from the top) page 1 has ink in its leftmost 10 mm: rendered
    by poppler (pdftoppm, 100 dpi, grey)."""
    dpi = 100
    width = round(10 / 25.4 * dpi)
    pgm = subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", str(dpi), "-gray", "-x", "0", "-y", "0",
                          "-W", str(width), "-H", str(round(297 / 25.4 * dpi)), str(pdf)],
                         capture_output=True, check=True).stdout
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+255\s", pgm)
    cols, rows = int(header.group(1)), int(header.group(2))
    pixels = pgm[header.end():]
    return [row * 25.4 / dpi for row in range(rows) if min(pixels[row * cols:(row + 1) * cols]) < 128]


def test_fold_marks_follow_the_envelope(parts_batch, house_batch):
    """DL: marks on page 1 at 99 and 198 mm from the top, nothing else at the
    edge; none when fold_marks is false."""
    _, out, _ = parts_batch
    marks = dark_rows_at_left_edge(Layout.of(out).pdf("london"))
    assert marks and all(abs(y - 99) < 1 or abs(y - 198) < 1 for y in marks), marks
    assert any(abs(y - 99) < 1 for y in marks) and any(abs(y - 198) < 1 for y in marks)
    assert dark_rows_at_left_edge(Layout.of(house_batch[1]).pdf("house-one")) == []



@pytest.mark.parametrize("envelope, window_top, folds", [("C5", 102, [148.5]), ("C4", 50, [])])
def test_c5_and_c4_put_the_window_and_the_fold_marks_where_the_readme_says(tmp_path, envelope, window_top, folds):
    """The README's table: C5's window 102-147 mm from the top and one fold mark at
    148.5 mm (A4 folded in half); C4's window 50-95 mm and no fold marks (A4 flat).
    Only DL's were tested; a C5 batch printed in the DL window once."""
    source = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER.replace("  body:\n", f"  envelope: {envelope}\n  body:\n")
                        + "recipients:\n  - id: one\n    name: A Person\n    address: [1 Road, Town]\n"
                          "    salutation: Dear Ann,\n")
    assert build(source, tmp_path / "build").ok
    left, top, width, height = (value * 25.4 / 72 for value in recorded_window(tmp_path / "build", "one"))
    assert (round(left), round(top), round(width), round(height)) == (20, window_top, 90, 45)
    marks = dark_rows_at_left_edge(Layout.of(tmp_path / "build").pdf("one"))
    assert all(any(abs(y - fold) < 1 for fold in folds) for y in marks), marks
    assert all(any(abs(y - fold) < 1 for y in marks) for fold in folds), marks

def test_diff_shows_each_letters_own_parts(tmp_path):
    from builder.diff import personal

    batch = load(write_yaml(tmp_path / "r.yaml", yaml.safe_dump(parts_batch_yaml(), allow_unicode=True))).batch
    london, wales, essex = (personal(batch, r) for r in batch.recipients)
    for line in ("your_ref: MOPAC/88", "email (not printed): sophie@example.org", "closing: Yours faithfully,",
                 "cc: April McCoig, IASC / Chief Constable", "enclosures: Strategic Plan 2019-2021 / Annual Report",
                 "ps: Please reply by *30 November*."):
        assert line in london, line
    assert "language: cy" in wales and "closing: Yn gywir, (default)" in wales
    assert "salutation: [cy] Annwyl Roger, | [en] Dear Roger," in essex
    assert any(l.startswith("highlight [en] (own): Having reviewed") for l in essex)


GUIDANCE = "https://www.gov.uk/government/publications/modern-slavery-statutory-guidance-for-england-and-wales-and-non-statutory-guidance-for-scotland-and-northern-ireland"
PLAIN = MINIMAL_LETTER.replace("This is the shared text.", "See the source[^odd] and[^ask], and[^guidance][^report]. Typed in full, <" + GUIDANCE + ">.").replace(
    "  signatory: {name: Ann Sender, title: Clerk}",
    "  signatory: {name: Ann Signer, title: Clerk, show_name: true}").replace("  body:\n", """\
  envelope: none
  marking: "OFFICIAL-SENSITIVE & {x}"
  body:
""") + """\
references:
  odd: {author: A & B, year: 2020, title: Odd_title, url: "https://example.org/a%20b_c~d/e-f#frag"}
  ask: {author: C, year: 2021, title: Why?, url: "https://example.org/why/"}
  guidance: {author: Home Office, year: 2020, title: Modern Slavery statutory guidance, url: "https://www.gov.uk/government/publications/modern-slavery-statutory-guidance-for-england-and-wales-and-non-statutory-guidance-for-scotland-and-northern-ireland"}
  report: {author: D, year: 2022, title: Report, url: "https://example.org/publications/the-annual-report-of-the-independent-anti-slavery-commissioner-2022/attachments/files/report.pdf"}
recipients:
  - id: plain-one
    name: A Person
    address: [1 Road]
    salutation: Dear Ann,
"""


@pytest.fixture(scope="session")
def plain_batch(tmp_path_factory):
    """No envelope window; the signatory's name shown; a URL with % # ~ _;
    built for print and for the web."""
    folder = tmp_path_factory.mktemp("plain")
    source = write_yaml(folder / "recipients.yaml", PLAIN)
    for medium in ("print", "web"):
        report = build(source, folder / "build", medium=medium)
        assert report.ok, [(o.recipient, o.message) for o in report.failed]
    return folder / "build"


def test_footnote_urls_print_as_written_and_web_copies_link_the_title(plain_batch):
    printed = " ".join(l.text for l in lines(Layout.of(plain_batch).pdf("plain-one")))
    assert "A & B (2020) Odd_title. example.org/a%20b_c~d/e-f#frag" in printed
    assert "C (2021) Why? example.org/why" in printed  # no full stop after a question mark
    [web] = (plain_batch / "web").glob("*plain-one.pdf")
    text = " ".join(l.text for l in lines(web))
    assert "A & B (2020) Odd_title" in text and "example.org" not in text
    # the same sentence as on paper, full stop included (none after "Why?");
    # on the HTML page it also keeps the title's link apart from "Back to text"
    assert "A & B (2020) Odd_title. " in text + " " and "Why?." not in text
    page = web.with_suffix(".html").read_text(encoding="utf-8")
    assert "Odd_title</a>. <a href=\"#en-mark-1\"" in page and "Why?</a> <a href" in page
    with pikepdf.open(web) as pdf:
        uris = [str(a.A.URI) for a in pdf.pages[0].Annots if "/A" in a and "/URI" in a.A]
    assert "https://example.org/a%20b_c~d/e-f#frag" in uris


def recorded_window(build_dir, rid):
    """The envelope window the class recorded for a letter (points from the top left)."""
    from builder.compile import _read_aux

    for aux in (build_dir / "work").rglob("*.aux"):
        letters, _, _ = _read_aux(aux.read_text(errors="replace"))
        if rid in letters:
            return letters[rid].window
    raise AssertionError(f"no .aux records {rid}")


def test_a_long_hyphenated_url_breaks_at_its_hyphens(plain_batch):
    """gov.uk names its pages in long hyphenated slugs (this one is real and
    is wider than the line): the printed URL breaks at a hyphen rather than
    running into the margin (an overfull line, a preflight error no office
    could fix), and reads whole; so does the same address typed in the body."""
    report = build(plain_batch.parent / "recipients.yaml", plain_batch)
    (letter,) = report.outcomes
    assert letter.findings == [], letter.findings
    found = lines(Layout.of(plain_batch).pdf("plain-one"))
    text = "".join(l.text for l in found).replace(" ", "")
    assert ("www.gov.uk/government/publications/modern-slavery-statutory-guidance-for-england-and-wales-"
            "and-non-statutory-guidance-for-scotland-and-northern-ireland") in text
    end = next(i for i, l in enumerate(found) if l.text.endswith("northern-ireland"))
    assert found[end - 1].text.endswith("-") and "www.gov.uk" in found[end - 1].text, found[end - 1]
    assert max(l.right for l in found) <= (210 - 25) * MM + 0.5  # nothing in the right margin
    # typed in the body (<https://…>), the address breaks as in a footnote and reads whole
    assert "Typedinfull," + GUIDANCE + "." in text
    [web] = (plain_batch / "web").glob("*plain-one.pdf")
    with pikepdf.open(web) as pdf:  # the web copy's link says the address, not the break's penalty
        alternatives = {str(a.Contents) for a in pdf.pages[0].Annots if "/Contents" in a and "/URI" in a.get("/A", {})}
    assert {a for a in alternatives if "gov.uk" in a} == {GUIDANCE}, alternatives
    # where a slash will do, the URL breaks there, not after a hyphen
    end = next(i for i, l in enumerate(found) if l.text.endswith("files/report.pdf"))
    assert found[end - 1].text.endswith("/") and "example.org/publications/" in found[end - 1].text, found[end - 1]


def header_words(pdf: Path, page: int) -> list[tuple[str, float, float]]:
    """The words above the text on a page: (word, left, right) in points."""
    out = subprocess.run([shutil.which("pdftotext"), "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
                         capture_output=True, check=True).stdout.decode()
    return [(html.unescape(w), float(l), float(r)) for l, t, r, w in re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">(.*?)</word>', out)
        if float(t) < 25 * MM]


def test_a_long_name_in_the_running_header_never_overprints_the_date(tmp_path):
    """Later pages' header: the recipient's name left, the date centred, the
    page right. A long name (that of a Lord Mayor, with a long month) once ran
    through the date; it is set beside it, every word kept, on two lines, at the
    header's own size (scaled down on one line, it printed at under 5 pt)."""
    name = "The Right Honourable the Lord Mayor of London, Alderman Vincent Keaveny"
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace("2021-03-04", "2021-09-30").replace(
        "This is the shared text.", " ".join(["Words that fill the page so the letter runs onto a second one."] * 70))
        + f"recipients:\n  - {{id: mayor, name: '{name}', address: [Mansion House, London], salutation: 'Dear Lord Mayor,'}}\n")
    build(source, tmp_path / "build")
    words = header_words(Layout.of(tmp_path / "build").pdf("mayor"), 2)
    assert " ".join(w for w, _, _ in words) == f"{name} 30 September 2021 Page 2 of 2"
    count = len(name.split())
    name_right = max(r for _, _, r in words[:count])
    date_left, date_right = words[count][1], words[count + 2][2]
    assert name_right + 2 * MM <= date_left, (name_right, date_left)
    assert abs((date_left + date_right) / 2 - 105 * MM) < 1  # the date stays centred
    assert words[count + 3][1] >= date_right + 2 * MM
    out = subprocess.run([shutil.which("pdftotext"), "-bbox", "-f", "2", "-l", "2",
                          str(Layout.of(tmp_path / "build").pdf("mayor")), "-"], capture_output=True, check=True).stdout
    boxes = [(float(top), float(bottom)) for top, bottom, word in re.findall(
        rb'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">(.*?)</word>', out)
        if float(top) < 25 * MM][:count]
    assert len({bottom for _, bottom in boxes}) == 2  # two lines
    assert min(bottom - top for top, bottom in boxes) > 7  # pt: the date's own size (footnotesize)
    date_top, date_bottom = [(float(t), float(b)) for t, b, w in re.findall(
        rb'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">(.*?)</word>', out) if w == b"30"][0]
    assert max(bottom for _, bottom in boxes) == date_bottom  # the second line is the header's line


def test_no_envelope_no_window_and_the_name_when_asked(plain_batch):
    assert recorded_window(plain_batch, "plain-one")[3] == 0  # no window: nothing to check
    found = lines(Layout.of(plain_batch).pdf("plain-one"))
    assert dark_rows_at_left_edge(Layout.of(plain_batch).pdf("plain-one")) == []  # no fold marks
    assert not any("1 High Street, Town" in l.text for l in found)  # no return address
    name, title = find(found, "Ann Signer"), [l for l in found if l.text == "Clerk"][-1]
    assert before(find(found, "Yours sincerely,"), name) and before(name, title)
    assert [l.text for l in found if "OFFICIAL" in l.text] == ["OFFICIAL-SENSITIVE & {x}"] * 2


def test_without_a_window_an_address_line_that_wraps_is_still_found(tmp_path):
    """envelope: none turns the window check off, and took the check that no line of
    the recipient block wraps with it: a whole address typed in one spreadsheet cell
    printed over two lines, without a word."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace("  body:\n", "  envelope: none\n  body:\n")
                        + "recipients:\n  - {id: one, name: Ann One, salutation: 'Dear Ann,', address: "
                          "['Flat 3, Rose Court, 12 Mill Lane, Little Snoring, Fakenham, NR21 0AA']}\n"
                          "  - {id: two, name: Bob Two, salutation: 'Dear Bob,', address: [2 Mill Lane, Fakenham]}\n")
    report = build(source, tmp_path / "build")
    findings = {o.recipient: [(f["code"], f["message"]) for f in o.findings] for o in report.outcomes}
    assert findings["two"] == []
    (code, message), = findings["one"]
    assert code == "address" and message.startswith("a line of the recipient block is too long and wraps "
                                                    "(the address takes 3 lines, not 2): address line 1, 'Flat 3,")


def test_a_welsh_batch_has_a_welsh_cover(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace("  body:\n", "  language: cy\n  body:\n")
                        .replace("This is the shared text.", "Dyma\u2019r testun.") + """\
recipients:
  - id: cy-one
    name: Person
    address: [1 Ffordd]
    salutation: Annwyl Person,
""")
    assert build(source, tmp_path / "build").ok
    bundle = merge(source, tmp_path / "build")
    text = " ".join(l.text for l in lines(bundle.path) if l.page == 1)
    for words in ("4 Mawrth 2021", "Llythyrau i\u2019w llofnodi", "1 llythyr dyddiedig 4 Mawrth 2021",
                  "Rhif", "Derbynnydd", "Tudalennau", "Llythrennau blaen:", "Dyddiad:"):
        assert words in text, words
    assert "Yn gywir," in " ".join(l.text for l in lines(Layout.of(tmp_path / "build").pdf("cy-one")))
    # its PDF Title and /Lang too, the bundle's and the cover sheet's (they were English)
    for pdf in (bundle.path, Layout.of(tmp_path / "build").cover):
        with pikepdf.open(pdf) as opened:
            assert str(opened.docinfo["/Title"]) == "Llythyrau i\u2019w llofnodi: 4 Mawrth 2021", pdf
            assert str(opened.docinfo["/Subject"]) == "1 llythyr dyddiedig 4 Mawrth 2021", pdf
            assert str(opened.Root.Lang) == "cy", pdf


def test_a_mixed_batch_s_bundle_is_titled_in_the_batch_s_language(parts_batch):
    """An English batch with Welsh and bilingual letters in it: the bundle and its cover
    are titled in English, the cover's language; each letter keeps its own title."""
    _, out, bundle = parts_batch
    for pdf in (bundle.path, Layout.of(out).cover):
        with pikepdf.open(pdf) as opened:
            assert str(opened.docinfo["/Title"]) == "Letters for signature: Violence Reduction Units and modern slavery"
            assert str(opened.docinfo["/Subject"]) == "3 letters of 13 October 2020", pdf
            assert str(opened.Root.Lang) == "en-GB", pdf
    with pikepdf.open(Layout.of(out).pdf("south-wales")) as opened:
        assert str(opened.docinfo["/Title"]).startswith("Llythyr at ")


def test_return_address_can_be_switched_off(tmp_path):
    from builder.compose import letter_block

    recipients = """\
recipients:
  - {id: one, name: A Person, address: [1 Road], salutation: Dear Ann,}
"""
    for setting, expected in (("", r"\letterset{returnaddress}{1 High Street, Town}"),
                              ("  return_address: false\n", r"\letterset{returnaddress}{}")):
        text = MINIMAL_LETTER.replace("  body:\n", setting + "  body:\n") + recipients
        batch = load(write_yaml(tmp_path / "r.yaml", text)).batch
        assert expected in letter_block(batch, batch.recipients[0])
    # and on paper: the class could print the sender's address in the window whatever the
    # LaTeX says (the letterhead prints it too, but line by line, without the comma)
    out = tmp_path / "build"
    assert build(tmp_path / "r.yaml", out).ok
    assert "1 High Street, Town" not in pdf_text(Layout.of(out).pdf("one"))
    write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + recipients)
    assert build(tmp_path / "r.yaml", out).ok
    assert "1 High Street, Town" in pdf_text(Layout.of(out).pdf("one"))


def test_welsh_web_copy_declares_welsh(parts_batch):
    source, out, _ = parts_batch
    assert build(source, out, medium="web", only=["south-wales"]).ok
    [web] = (out / "web").glob("*-south-wales.pdf")
    with pikepdf.open(web) as pdf:
        assert str(pdf.Root.Lang) == "cy"
    text = " ".join(l.text for l in lines(web))
    assert "Tudalen 1 o 2" in text and "www.gov.uk" not in text  # web: the link is on the title


def test_a_letters_title_is_in_its_language_in_the_pdf_and_on_the_web(parts_batch):
    """The title a PDF reader shows in its window, and a browser's tab: Welsh
    for a Welsh letter, both (Welsh first) for a bilingual one."""
    source, out, _ = parts_batch
    titles = {}
    for rid in ("london", "south-wales", "essex"):
        with pikepdf.open(Layout.of(out).pdf(rid)) as pdf:
            titles[rid] = str(pdf.docinfo.Title)
    essex = "Roger Hirst, Police, Fire and Crime Commissioner for Essex"
    assert titles["london"].startswith("Letter to ")
    assert titles["south-wales"].startswith("Llythyr at ") and "Letter" not in titles["south-wales"]
    assert titles["essex"] == f"Llythyr at {essex} / Letter to {essex}"
    batch = load(source).batch
    pages = {r.id: letter_page(batch, r) for r in batch.recipients}
    assert re.search(r"<title>Llythyr at [^<]*</title>", pages["south-wales"]) and "Letter to" not in pages["south-wales"]
    assert f"<title>Llythyr at {essex} / Letter to {essex}</title>" in pages["essex"]
    assert f'<section aria-label="Llythyr at {essex}">' in pages["essex"]
    assert f'<section lang="en-GB" aria-label="Letter to {essex}">' in pages["essex"]


def test_the_signatory_s_title_is_printed_in_each_letter_s_language(parts_batch, tmp_path):
    """signatory.title by language ({en, cy}): the Welsh title under a Welsh
    closing, both under a bilingual letter's halves, on paper and on the web;
    a Welsh letter whose title has no Welsh is refused, as for any shared text."""
    source, out, bundle = parts_batch
    english = "Independent Anti-Slavery Commissioner"
    found = {rid: lines(Layout.of(out).pdf(rid)) for rid in ("london", "south-wales", "essex")}
    # the signature block and after (the letterhead above prints the sender's role)
    text = {rid: " ".join(l.text for l in f) for rid, f in found.items()}
    text = {rid: t[t.index("Yours" if rid == "london" else "Yn gywir,"):] for rid, t in text.items()}
    assert english in text["london"] and SIGNATORY_CY not in text["london"]
    assert SIGNATORY_CY in text["south-wales"] and english not in text["south-wales"]
    def after(found: list[Line], anchor: Line, text: str) -> Line:
        """The first line starting ``text`` below ``anchor`` (the letterhead's role is above)."""
        return next(l for l in found if l.text.startswith(text) and before(anchor, l))

    after(found["south-wales"], find(found["south-wales"], "Yn gywir,"), SIGNATORY_CY)
    essex = found["essex"]
    assert before(after(essex, find(essex, "Yn gywir,"), SIGNATORY_CY), find(essex, "Dear Roger,"))
    close = find(essex, "Yours sincerely,")
    assert find(essex, english, close.page).top > close.top  # the English half's own (the letterhead's is page 1)
    # the cover, in the letter's language (English), names who signs
    assert "for signature by Dame Sara Thornton DBE QPM" in " ".join(l.text for l in lines(bundle.path) if l.page == 1)
    batch = load(source).batch
    pages = {r.id: letter_page(batch, r) for r in batch.recipients}
    assert f"<strong>{SIGNATORY_CY}</strong>" in pages["south-wales"]
    assert f"<strong>{english}</strong>" not in pages["south-wales"]
    assert pages["essex"].index(f"<strong>{SIGNATORY_CY}</strong>") < pages["essex"].index(f"<strong>{english}</strong>")
    # a title in English alone: the Welsh letters are refused, and told the fix
    assert_english_alone_refuses_the_welsh_letters(tmp_path, ("signatory", "title"), english)


def assert_english_alone_refuses_the_welsh_letters(tmp_path, field: tuple[str, str], english: str) -> None:
    """``letter.<field>`` written in English alone: only the English letter (london)
    is built, and each Welsh one is told that the field has no Welsh text."""
    data = parts_batch_yaml()
    data["letter"][field[0]][field[1]] = english
    loaded = load(write_yaml(tmp_path / "r.yaml", yaml.safe_dump(data, allow_unicode=True)))
    assert [r.id for r in loaded.batch.recipients] == ["london"]
    messages = [str(p) for problems in loaded.rejected.values() for p in problems]
    said = f"letter.{'.'.join(field)} has no Welsh text (cy)"
    assert len(messages) == 2 and all(said in m for m in messages), messages


def test_shared_texts_without_welsh_are_one_message_for_a_welsh_letter(tmp_path):
    """A Welsh letter of an English batch was told each shared text lacking Welsh in a
    message of its own, all at its `language` line (twelve for the sample letter): one
    message names them all; its own text lacking a language is still told where it is."""
    data = parts_batch_yaml()
    data["letter"]["signatory"]["title"] = "Commissioner"
    data["letter"]["sender"]["role"] = "Commissioner"
    body = [dict(paragraph) for paragraph in data["letter"]["body"]]
    wales = next(r for r in data["recipients"] if r["id"] == "south-wales")
    names = [name for paragraph in body for name, text in paragraph.items() if text is not None
             and name not in (wales.get("text") or {}) and name not in (wales.get("omit") or [])]
    assert len(names) > 3
    for paragraph in body:
        for name, text in paragraph.items():
            if isinstance(text, dict):
                paragraph[name] = text["en"]
    data["letter"]["body"] = body
    loaded = load(write_yaml(tmp_path / "r.yaml", yaml.safe_dump(data, allow_unicode=True)))
    assert [r.id for r in loaded.batch.recipients] == ["london"]
    welsh = [str(p) for p in loaded.rejected[[r["id"] for r in data["recipients"]].index("south-wales")]]
    shared = [m for m in welsh if "field 'language'" in m]
    quoted = ", ".join(f"'{name}'" for name in names)
    assert len(shared) == 1 and shared[0].endswith(
        f"the shared part{'s' if len(names) > 1 else ''} {quoted} (letter.body), letter.signatory.title and "
        "letter.sender.role have no Welsh text (cy), and this letter is in Welsh: write each as {en: …, cy: …}"), welsh


def test_the_sender_s_role_is_printed_in_each_letter_s_language(parts_batch, tmp_path):
    """sender.role by language ({en, cy}), as signatory.title: the letterhead of a
    Welsh letter in an English batch gives the Welsh role (it printed the English),
    a bilingual letter's (printed once) both, Welsh first; the cover and the web
    page likewise; a role in English alone refuses the Welsh letters, with the fix."""
    source, out, bundle = parts_batch
    english = "Independent Anti-Slavery Commissioner"
    sender = "Dame Sara Thornton DBE QPM"

    def letterhead(found: list[Line]) -> list[str]:
        """The lines under the sender's name, down to the first line of the recipient block."""
        name = find(found, sender, 1)
        return [l.text for l in found if l.page == 1 and name.top < l.top < name.top + 40 and l.left < 200]

    found = {rid: lines(Layout.of(out).pdf(rid)) for rid in ("london", "south-wales", "essex")}
    assert letterhead(found["london"])[:1] == [english], letterhead(found["london"])
    assert letterhead(found["south-wales"])[:1] == [SIGNATORY_CY], letterhead(found["south-wales"])
    assert english not in letterhead(found["south-wales"])
    assert letterhead(found["essex"])[:2] == [SIGNATORY_CY, english], letterhead(found["essex"])
    assert letterhead(lines(bundle.path))[:1] == [english]  # the cover: the batch's language
    batch = load(source).batch
    pages = {r.id: letter_page(batch, r) for r in batch.recipients}
    assert f'<p class="sender-name">{sender}</p><p>{SIGNATORY_CY}</p>' in pages["south-wales"]
    # (the English role on a Welsh page is marked English: tests/test_web.py)
    assert f'<p class="sender-name">{sender}</p><p>{SIGNATORY_CY}<br><span lang="en-GB">{english}</span></p>' \
        in pages["essex"]
    assert f'<p class="sender-name">{sender}</p><p>{english}</p>' in pages["london"]
    # a role in English alone: the Welsh letters are refused, and told the fix
    assert_english_alone_refuses_the_welsh_letters(tmp_path, ("sender", "role"), english)


def test_the_cover_sheet_heads_the_accepted_findings_in_the_bundle_s_language(tmp_path):
    # a Welsh batch's cover said "Preflight findings accepted on the record:" in English
    from builder.compose import CoverRow, compose_cover

    for language, heading in (("en", "Preflight findings accepted on the record:"),
                              ("cy", "Canfyddiadau\u2019r rhag-wiriad a dderbyniwyd ar y cofnod:")):
        source = write_yaml(tmp_path / f"{language}.yaml", MINIMAL_LETTER.replace(
            "  body:\n", f"  language: {language}\n  body:\n") + (
            "recipients:\n  - {id: one, name: Un, address: [1 Ffordd], salutation: 'Annwyl Un,'}\n"))
        batch = load(source).batch
        cover = compose_cover(batch, [CoverRow(batch.recipients[0], 2, 3)], notes=["one: window accepted"]).dumps()
        assert r"\textbf{%s}\par%%" % heading + "\none: window accepted" in cover, cover[-600:]


def test_the_letter_s_title_by_language_is_shown_in_each_document_s_language(tmp_path):
    # letter.title was one text for every document: an English title on Welsh letters' PDFs,
    # a Welsh cover sheet, a Welsh web page's heading and a Welsh e-mail's subject
    from builder.compose import bundle_title, compose_cover, metadata, CoverRow
    from builder.html import letter_page
    from builder.send import _delivery
    from builder.build import Layout

    people = ("recipients:\n"
              "  - {id: english, name: Ann, address: [1 Road], salutation: 'Dear Ann,', email: a@example.test}\n"
              "  - {id: cymraeg, name: Bet, address: [2 Ffordd], salutation: 'Annwyl Bet,', language: cy,"
              " email: b@example.test}\n"
              "  - {id: y-ddwy, name: Cai, address: [3 Ffordd], salutation: {cy: 'Annwyl Cai,', en: 'Dear Cai,'},"
              " language: cy-en}\n")
    text = MINIMAL_LETTER.replace("This is the shared text.", "{en: Shared text., cy: Testun a rennir.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    titled = text.replace("  body:\n", "  title: {en: Police funding, cy: Cyllid yr heddlu}\n  body:\n", 1)
    batch = load(write_yaml(tmp_path / "r.yaml", titled + people)).batch
    english, welsh, both = batch.recipients
    subject = lambda r: metadata(batch, "t", batch.languages_of(r))["Subject"]
    assert (subject(english), subject(welsh), subject(both)) == (
        "Police funding", "Cyllid yr heddlu", "Cyllid yr heddlu / Police funding")
    assert bundle_title(batch) == "Letters for signature: Police funding"
    assert "\\textbf{Police funding}" in compose_cover(batch, [CoverRow(english, 2, 2)]).dumps()
    assert "<h1>Cyllid yr heddlu</h1>" in letter_page(batch, welsh)
    assert '<h1>Cyllid yr heddlu / <span lang="en-GB">Police funding</span></h1>' in letter_page(batch, both)
    assert "<h1>Police funding</h1>" in letter_page(batch, english)
    # the same in both languages: in the page's own, not marked English on a bilingual (Welsh-first) page
    same = load(write_yaml(tmp_path / "same.yaml", text.replace("  body:\n", "  title: {en: COVID-19, cy: COVID-19}\n"
                                                                 "  body:\n", 1) + people)).batch
    assert "<h1>COVID-19</h1>" in letter_page(same, same.recipients[2])
    layout = Layout.of(tmp_path / "build")
    manifest = type("Record", (), {"letters": {"cymraeg": {"sha256": "0"}}})()
    mail = _delivery(batch.letter, welsh, layout, manifest, layout.pdf("cymraeg"), "0", languages=("cy",))
    assert mail.subject == "Cyllid yr heddlu" and "subject" not in mail.other_language, mail
    # a Welsh batch's cover and bundle are Welsh: its title too
    welsh_batch = load(write_yaml(tmp_path / "cy.yaml", titled.replace("  body:\n", "  language: cy\n  body:\n", 1)
                                  + people)).batch
    assert bundle_title(welsh_batch) == "Llythyrau i\u2019w llofnodi: Cyllid yr heddlu"
    # written once, it is shown as written, marked as English on a Welsh page (WCAG 3.1.2)
    plain = load(write_yaml(tmp_path / "plain.yaml", text.replace("  body:\n", "  title: Police funding\n  body:\n", 1)
                            + people)).batch
    assert '<h1 lang="en-GB">Police funding</h1>' in letter_page(plain, plain.recipients[1])
    assert metadata(plain, "t", ("cy",))["Subject"] == "Police funding"
    # given by language, it must have the language of every letter: the Welsh ones are refused, said
    missing = load(write_yaml(tmp_path / "no-cy.yaml", text.replace("  body:\n", "  title: {en: Police funding}\n"
                                                                      "  body:\n", 1) + people))
    assert [r.id for r in missing.batch.recipients] == ["english"]
    said = [str(problem) for problems in missing.rejected.values() for problem in problems]
    assert len(said) == 2 and all("letter.title has no Welsh text (cy), and this letter is in Welsh: write it as "
                                  "{en: …, cy: …}" in line for line in said), said


def test_a_bilingual_letter_is_not_called_long_for_holding_two_languages(parts_batch):
    # each language of a bilingual letter starts on a page of its own: essex's two languages were
    # "longer than the batch's typical" length at every check, a warning nobody could act on
    from builder.check import check

    source, out, _ = parts_batch
    results = {r.name: r for r in check(source, out) if r.kind == "letter"}
    assert results["essex"].pages > max(r.pages for rid, r in results.items() if rid != "essex")
    assert [f for f in results["essex"].findings if f["code"] == "pages"] == [], results["essex"].findings
    assert json.loads((out / "manifest.json").read_text())["letters"]["essex"]["languages"] == 2


def test_a_text_without_letters_serves_every_language_of_a_bilingual_letter(tmp_path):
    # a bilingual row of a spreadsheet had to give its phone number twice, once a language
    # (text.phone.cy and text.phone.en); a text with words in it still needs both
    text = MINIMAL_LETTER.replace("This is the shared text.", "{en: Shared text., cy: Testun a rennir.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    text = text.replace("    - main: {en: Shared text., cy: Testun a rennir.}\n",
                        "    - main: {en: Shared text., cy: Testun a rennir.}\n    - phone: ~\n")
    people = ("recipients:\n"
              "  - {id: digits, name: Cai, address: [3 Ffordd], salutation: {cy: 'Annwyl Cai,', en: 'Dear Cai,'},"
              " language: cy-en, text: {phone: '01234 567 890'}}\n"
              "  - {id: words, name: Dai, address: [4 Ffordd], salutation: {cy: 'Annwyl Dai,', en: 'Dear Dai,'},"
              " language: cy-en, text: {phone: 'Call 01234'}}\n")
    loaded = load(write_yaml(tmp_path / "r.yaml", text + people))
    assert [r.id for r in loaded.batch.recipients] == ["digits"]
    digits = loaded.batch.recipients[0]
    for language in ("cy", "en"):
        assert ("phone", "01234 567 890") in loaded.batch.paragraphs_for(digits, language)[1]
    said = [str(problem) for problems in loaded.rejected.values() for problem in problems]
    # one message for the one text, with both languages it lacks (it was two at one line:
    # "has no Welsh text", then "has no English text")
    assert len(said) == 1 and said[0].endswith(
        "field 'text.phone': text.phone has no Welsh text (cy) or English text (en), and this letter is in Welsh "
        "and English: write it as {cy: …, en: …}"), said


def test_a_footnote_is_never_split_across_pages(tmp_path):
    """A reference's note that did not fit under the line citing it was split: its last lines
    stood under the next page's rule with no number, read as a note of that page's. Now the
    whole note goes with the line citing it (letters whose citation falls at each place
    near the foot of the first page)."""
    title = ("A report with a very long title, " * 9)[:290].strip()
    references = f"""references:
  big:
    author: Department for Levelling Up, Housing and Communities and the Ministry of Justice
    year: 2023
    title: {title}
    url: https://www.gov.uk/government/publications/{"very-long-slug-" * 12}end/file.pdf
"""
    line = "A line of text that fits on one line of the letter."
    entries = []
    for k in range(12, 26):
        paragraphs = [line] * k + ["This line cites the long report[^big] here.", "One more line.", "And another."]
        body = "\n".join("        " + p + "\n" for p in paragraphs)
        entries.append(f"  - id: r{k}\n    name: Reader {k}\n    address: [1 Road, Town]\n"
                       f"    salutation: Dear Reader,\n    text:\n      main: |-\n{body}")
    letter = MINIMAL_LETTER.replace("This is the shared text.", "~")
    source = write_yaml(tmp_path / "recipients.yaml", letter + references + "recipients:\n" + "".join(entries))
    out = tmp_path / "build"
    assert build(source, out).ok
    for k in range(12, 26):
        pdf = out / "letters" / f"r{k}.pdf"
        pages = [pdf_text_page(pdf, n) for n in (1, 2)]
        # the note's first words and its last are on one page, with the line that cites it
        together = [p for p in pages if "Department for Levelling Up" in p and "file.pdf" in p
                    and "cites the long report" in p]
        assert len(together) == 1, (k, pages)


def pdf_text_page(pdf: Path, page: int) -> str:
    out = subprocess.run(["pdftotext", "-raw", "-f", str(page), "-l", str(page), str(pdf), "-"],
                         capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


def test_an_address_taller_than_the_window_pushes_the_salutation_down(tmp_path):
    """The recipient block stood in a box of the window's height: a block taller than the
    window (the preflight's `window` finding, which a person may accept) ran over the
    salutation and the subject, printed on top of each other."""
    address = ", ".join(f"Line {n} of the address" for n in range(1, 10)) + ", ZZ9 9ZZ"
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + f"""recipients:
  - id: tall
    name: Reader
    address: [{address}]
    salutation: Dearest Reader,
    subject: The subject
""")
    out = tmp_path / "build"
    assert build(source, out).ok
    words = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(out / "letters" / "tall.pdf"), "-"],
                           capture_output=True, text=True, check=True).stdout
    tops = {word: (float(top), float(bottom)) for top, bottom, word in
            re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]+)</word>', words)}
    assert tops["9ZZ"][1] < tops["Dearest"][0], (tops["9ZZ"], tops["Dearest"])  # the salutation below
