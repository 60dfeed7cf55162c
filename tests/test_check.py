"""Preflight: each check catches a letter made to fail it, and passes the real batch."""
from __future__ import annotations

import re

from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject

from builder.build import build
from builder.check import check, pdf_problems
from conftest import MINIMAL_LETTER, SAMPLE, write_yaml


def findings(results, name):
    return [f"{f['level']}: {f['message']}" for r in results if r.name == name for f in r.findings]


def test_the_real_batch_passes_every_check(real_batch):
    out, _, _ = real_batch
    results = check(SAMPLE, out)
    assert {r.name: r.findings for r in results} == {r.name: [] for r in results}
    assert all(r.ready for r in results)
    assert [r.name for r in results][-1] == "bundle"


def recipient(rid, address=("1 Road",), salutation="Dear Reader,", text=None):
    lines = "\n".join(f"      - {a}" for a in address)
    body = f"    text: {{main: {text!r}}}\n" if text else ""
    return f"""  - id: {rid}
    name: Reader {rid}
    address:
{lines}
    salutation: {salutation}
{body}"""


def test_address_outside_the_window_overfull_line_and_long_letter(tmp_path):
    long_text = " ".join(["A sentence of the letter that goes on."] * 180)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + recipient("fine") + recipient("fine2")
                        + recipient("tall", address=[f"Line {n}" for n in range(1, 13)])
                        + recipient("wide", address=["Unbreakable" * 12])
                        + recipient("long", text=long_text)
                        + recipient("cited", text="As the source says[^src].")
                        + "references:\n  src:\n    author: An Author\n    year: 2024\n    title: A source\n"
                        + "    url: https://example.org/" + "NothingToBreakAt" * 10 + "\n")
    out = tmp_path / "build"
    assert build(source, out).ok
    results = check(source, out)
    assert findings(results, "fine") == []
    (tall,) = findings(results, "tall")
    assert tall.startswith("error: the address is not inside the envelope window")
    # and what to do (it said only where the address and the window were): name + 12 lines
    assert tall.endswith("; the window holds 8 lines and the address takes 13: leave out 5 lines (the role, "
                         "or the country for a UK address) or join short ones"), tall
    wide = findings(results, "wide")
    assert any(f.startswith("error: overfull line: 'UnbreakableUnbreakable") for f in wide), wide
    # what it is and what to do, not only its text (a long web address named no field and no fix)
    assert any("mm into the margin: it is part of address line 1, a word too long for a line; shorten it" in f
               for f in wide), wide
    (cited,) = findings(results, "cited")
    assert cited.startswith("error: overfull line: 'NothingToBreakAt") and (
        "mm into the margin: it is part of the web address of the reference 'src' (references.src.url), with no "
        "/ . or - to break it at; give a shorter address for the same page, or accept the finding") in cited, cited
    assert findings(results, "long") == ["warning: 2 pages, longer than the batch's typical 1"]
    # "typical" is the batch's, whatever --only asks about: `check -o long` alone was its own
    # typical (no warning), and beside one short letter the typical was their mean, 1.5
    for only in (["long"], ["long", "fine"]):
        assert findings(check(source, out, only=only), "long") == [
            "warning: 2 pages, longer than the batch's typical 1"], only



def test_an_overfull_letterhead_web_address_is_named_with_its_fix(tmp_path):
    """The sender's long web address runs out of the letterhead's column on every letter:
    it was "a word too long for its line, with nothing to break it at; shorten it or put a
    space in it", naming no field, for an address full of slashes (a space breaks a URL)."""
    letter = MINIMAL_LETTER.replace("    address: [1 High Street, Town]\n", "    address: [1 High Street, Town]\n"
                                    "    web: https://example.org/a-very-long-path/that-keeps-going/and-going/\n")
    source = write_yaml(tmp_path / "recipients.yaml", letter + "recipients:\n" + recipient("one"))
    out = tmp_path / "build"
    assert build(source, out).ok
    (found,) = findings(check(source, out), "one")
    assert found.startswith("error: overfull line: 'example.org/a-very-long-path/that-keeps-going/and-going'")
    assert found.endswith("mm into the margin: it is part of the sender's web address in the letterhead "
                          "(letter.sender.web), too long for its column; give a shorter address (the site's "
                          "home page), or accept the finding"), found


def test_a_return_address_shrunk_past_reading_to_fit_the_window_is_caught(tmp_path):
    """The class scales a long return address down to the window's width: one of 124
    characters printed at 3.8 pt on a C4 window, with no finding. The sample's (the
    sender's address, 7.95 pt) passes (``test_the_real_batch_passes_every_check``)."""
    long = ("If undelivered please return to: Newtown Town Council, Town Hall, High Street, Newtown, "
            "Countyshire, NT1 1AA, United Kingdom")
    letter = MINIMAL_LETTER.replace("  date: 2021-03-04\n", f"  date: 2021-03-04\n  envelope: C4\n"
                                                         f"  return_address: '{long}'\n")
    source = write_yaml(tmp_path / "recipients.yaml", letter + "recipients:\n" + recipient("one"))
    out = tmp_path / "build"
    assert build(source, out).ok
    (found,) = findings(check(source, out), "one")
    size = float(found.split(" prints at ")[1].split(" pt")[0])
    fit = int(found.split("; about ")[1].split(" fit")[0])
    assert 3 < size < 6 and found == (
        f"error: the return address prints at {size:.1f} pt to fit the envelope window's width (at least 6 pt "
        f"reads): shorten letter.return_address ({len(long)} characters; about {fit} fit), or set it to false for "
        "none"), found
    # what it says fits does: a text of that many characters (of the same kind) passes; a few more do not
    assert abs(fit - len(long) * size / 6) <= len(long) * 0.05 / 6 + 1
    for length, passes in ((fit - 2, True), (fit + 8, False)):
        source.write_text(source.read_text().replace(f"'{long}'", f"'{long[:length]}'"))
        assert build(source, out).ok
        assert (findings(check(source, out), "one") == []) is passes, (length, findings(check(source, out), "one"))
        source.write_text(source.read_text().replace(f"'{long[:length]}'", f"'{long}'"))
    # the sender's address (return_address: true), too long for the line: a text of its own is the fix
    source.write_text(letter.replace(f"'{long}'", "true").replace(
        "address: [1 High Street, Town]", f"address: [{long[34:]}]") + "recipients:\n" + recipient("one"))
    assert build(source, out).ok
    (found,) = findings(check(source, out), "one")
    assert re.search(r"\(at least 6 pt reads\): the sender's address \(return_address: true, 90 characters; about "
                     r"\d\d fit\) is too long for one line there: give a shorter text as letter.return_address, or "
                     r"set it to false for none$", found), found
    # accepted on purpose, it is a letter like any other
    source.write_text(source.read_text() + "    accept: [return_address]\n")
    assert build(source, out).ok
    assert [r.ready for r in check(source, out) if r.name == "one"] == [True]


def test_an_overfull_word_of_the_letters_own_text_is_named_by_its_field(tmp_path):
    """A word or web address too long for a line in a body part, the salutation, a cc or the PS
    was "a word too long for its line ... shorten it or put a space in it", naming no field,
    and for a web address (a space breaks the link) the wrong fix."""
    link = "https://example.org/" + "NothingToBreakAt" * 10
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + recipient("linked", text=f"Apply at <{link}> soon.")
                        + recipient("worded", salutation="Dear " + "Unbreakable" * 12 + ",")
                        + recipient("noted", text="Fine.") + "    ps: " + "Postscriptum" * 12 + "\n"
                        + recipient("bare", text="See https://www.gov.uk/government/publications/community-ownership-"
                                                 "fund-prospectus/community-ownership-fund-prospectus-round-3 now."))
    out = tmp_path / "build"
    assert build(source, out).ok
    results = check(source, out)
    (linked,) = findings(results, "linked")
    assert linked.startswith("error: overfull line: 'NothingToBreakAt") and linked.endswith(
        "mm into the margin: it is part of a web or e-mail address in text.main, with no / . or - to break it at; "
        "link a few words to it instead ([the form](https://…)), or accept the finding"), linked
    (worded,) = findings(results, "worded")
    assert worded.endswith("mm into the margin: it is a word of salutation, too long for its line; shorten it or "
                           "put a space in it"), worded
    # a web address typed without <>: to TeX a word with nothing to break at, whatever its slashes
    (bare,) = findings(results, "bare")
    assert bare.endswith("mm into the margin: it is a web or e-mail address typed bare in text.main, which breaks "
                         "nowhere; write it in angle brackets (<https://…>) so it breaks after a slash or dot, or "
                         "link a few words to it ([the form](https://…))"), bare
    (noted,) = findings(results, "noted")  # printed after the label "PS", glued to it in TeX's log
    assert noted.endswith("mm into the margin: it is a word of ps, too long for its line; shorten it or put a "
                          "space in it"), noted


def test_closing_alone_at_the_top_of_a_page_is_caught(tmp_path, inject_latex):
    # The class never lets this happen, so force it: a page break before \closing.
    inject_latex({"pushed": "\\newpage"}, before_closing=True)
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + recipient("pushed") + recipient("normal"))
    out = tmp_path / "build"
    assert build(source, out).ok
    results = check(source, out)
    assert "error: the closing stands alone at the top of page 2, away from the letter it closes" in findings(
        results, "pushed")
    assert {r.name: r.state for r in results} == {"pushed": "preflight", "normal": "ready", "bundle": "never merged"}


def test_the_class_keeps_the_closing_with_the_letter_at_every_length(tmp_path):
    # Letters whose body ends at every height of page 1 (and onto page 2).
    sentence = "This sentence fills part of a line in the letter."
    people = "".join(recipient(f"len{n}", text=" ".join([sentence] * n)) for n in range(36, 60, 3))
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + people)
    out = tmp_path / "build"
    assert build(source, out).ok
    for result in check(source, out):
        assert not any("closing stands alone" in str(f) for f in result.findings), result.line()


def test_pdf_checks_catch_letter_paper_and_fonts_that_are_not_embedded(tmp_path):
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    fonts = DictionaryObject({
        NameObject("/F1"): DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                             NameObject("/Subtype"): NameObject("/Type1"),
                                             NameObject("/BaseFont"): NameObject("/Helvetica")}),
        NameObject("/F2"): DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                             NameObject("/Subtype"): NameObject("/Type3"),
                                             NameObject("/BaseFont"): NameObject("/Bitmap")}),
    })
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    pdf = tmp_path / "bad.pdf"
    writer.write(pdf)
    assert pdf_problems(pdf) == [
        "page 1 is 612x792 pt, not A4 portrait",
        "page 1: font /Helvetica is not embedded",
        "page 1: Type 3 (bitmap) font /Bitmap",
    ]


def test_a_file_changed_after_the_build_no_longer_matches_the_manifest(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n" + recipient("one"))
    out = tmp_path / "build"
    assert build(source, out).ok
    pdf = out / "letters" / "one.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pdf.write_bytes(bytes(data))
    (result, bundle) = check(source, out)
    assert (result.state, result.reason) == ("changed", "letters/one.pdf changed since it was built")
    assert not result.ready and bundle.state == "never merged"


def test_a_letter_never_built_is_one_clean_line(tmp_path):
    """`invoke check` before any build (or after `invoke clean`): each letter's line says
    "never built", not "never built; " with an empty reason after it."""
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + """recipients:
  - id: one
    name: One
    address: [1 Road]
    salutation: Dear One,
""")
    (letter,) = [r for r in check(source, tmp_path / "build") if r.kind == "letter"]
    assert not letter.ready and letter.line() == "one: never built"


def test_an_overfull_line_is_quoted_as_it_was_typed(tmp_path):
    """repr() doubled each backslash: a path typed C:\\Shares\\… was quoted as C:\\\\Shares\\\\…,
    a value nobody typed (on the cover sheet's record of findings too)."""
    typed = "C:\\Shares\\" + "Unbreakable" * 7
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + recipient("wide", address=[typed]))
    out = tmp_path / "build"
    assert build(source, out).ok
    wide = findings(check(source, out), "wide")
    assert any(f.startswith("error: overfull line: 'C:\\Shares\\UnbreakableUnbreakable") for f in wide), wide


def test_an_overfull_line_with_accented_letters_is_quoted_as_typed_and_named(tmp_path):
    """TeX logs an overfull line's glyphs one byte each in the fonts' T1 encoding, which was
    read as UTF-8: 'Konstantynopolitańczyk…' was quoted 'Konstantynopolita\ufffdczyk…' and named no
    field; a letter drawn with its accent (ŵ) is logged bare, and its line was named by nothing."""
    polish = "Konstantynopolitańczykowianeczkowskiegoprzedsiębiorstwowielobranżowego"
    welsh = "Tŷ" + "Caerdyddŵ" * 8
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + "recipients:\n"
                        + recipient("wide", address=["1 Road", polish, welsh]))
    out = tmp_path / "build"
    assert build(source, out).ok
    wide = [f for f in findings(check(source, out), "wide") if "overfull" in f]
    assert len(wide) == 2 and not any("\ufffd" in f for f in wide), wide
    assert wide[0].startswith(f"error: overfull line: '{polish}' runs "), wide
    assert wide[0].endswith("it is part of address line 2, a word too long for a line; shorten it or put a space in it")
    assert wide[1].endswith("it is part of address line 3, a word too long for a line; shorten it or put a space in it")
    # and quoted as typed, ŵ and ŷ with their accents (the log has them bare: "TyCaerdyddw…")
    assert wide[1].startswith(f"error: overfull line: '{welsh}' runs "), wide
