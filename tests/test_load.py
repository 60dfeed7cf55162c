"""Validation: one clear message per problem, naming file, line, recipient and field."""
from __future__ import annotations

import pytest

from builder.load import LoadError, load
from builder import markup
from conftest import MINIMAL_LETTER, ROOT, SAMPLE, write_yaml

GOOD = """\
  - id: good
    name: Good Person
    address: [1 Road]
    salutation: Dear Good,
"""


def messages(path):
    with pytest.raises(LoadError) as caught:
        load(path)
    return [str(p) for p in caught.value.problems]


def test_bundled_batch_is_valid_without_warnings():
    loaded = load(SAMPLE)
    assert [r.id for r in loaded.batch.recipients] == [
        "avon-and-somerset", "sussex", "london", "south-wales", "essex"]
    assert loaded.warnings == [] and loaded.rejected == {}


def test_missing_field_names_recipient_field_and_line(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD + """\
  - id: nosalute
    name: No Salutation
    address: [2 Road]
""")
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["good"]
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{path}:15:5: error: recipient 'nosalute', field 'salutation': required field is missing"]


def test_typo_gets_did_you_mean_and_other_recipients_survive(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD + """\
  - id: typo
    name: T
    adress: [x]
    salutation: Dear T,
""")
    loaded = load(path)
    text = [str(p) for ps in loaded.rejected.values() for p in ps]
    # one slip, one message: not also "field 'address': required field is missing"
    assert text == [f"{path}:17:5: error: recipient 'typo', field 'adress': unknown key; did you mean 'address'?"]
    assert [r.id for r in loaded.batch.recipients] == ["good"]


@pytest.mark.parametrize("old, new, said", [
    ("recipients:", "recipient:", "field 'recipient': unknown key; did you mean 'recipients'?"),
    ("letter:", "lettre:", "field 'lettre': unknown key; did you mean 'letter'?"),
    ("  body:", "  bdy:", "field 'letter.bdy': unknown key; did you mean 'body'?"),
])
def test_a_misspelt_required_key_is_one_message_not_also_missing(tmp_path, old, new, said):
    text = MINIMAL_LETTER + "recipients:\n" + GOOD
    assert old in text
    path = write_yaml(tmp_path / "r.yaml", text.replace(old, new, 1))
    with pytest.raises(LoadError) as refused:
        load(path)
    (problem,) = refused.value.problems
    assert said in str(problem), str(problem)


def test_unknown_reference_and_part(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD + """\
  - id: cites
    name: C
    address: [x]
    salutation: Dear C,
    text:
      main: See this[^nosuch].
      mian: typo part
""")
    text = [str(p) for ps in load(path).rejected.values() for p in ps]
    assert any("recipient 'cites', field 'text.main': cites [^nosuch], but references has no 'nosuch'" in t
               for t in text)
    assert any("field 'text.mian': the shared letter has no body part 'mian'; did you mean 'main'?" in t
               for t in text)


def test_shared_problems_stop_everything(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER.replace("    role: Clerk\n", "")
                      + "recipients:\n" + GOOD)
    assert messages(path) == [f"{path}:4:5: error: field 'letter.sender.role': required field is missing"]


def test_yaml_syntax_error_points_at_the_opening_bracket(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", "letter: [unclosed\nrecipients: x\n")
    (message,) = messages(path)
    assert message == (f"{path}:1:9: error: the [ opened here is not closed where YAML expects it; close it "
                       "with ], and put items that contain ',', ':', '[' or '{' in quotes")


def test_a_comma_inside_braces_names_the_brace_not_the_comma(tmp_path):
    """README's own bilingual salutation, {cy: Annwyl Roger,, en: Dear Roger,}, is not
    YAML (a comma ends an item), and the message read "the , opened here is not closed
    ...; close it with ]": it names the brace that is open, and its closing }."""
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD.replace(
        "salutation: Dear Good,", "salutation: {cy: Annwyl Good,, en: Dear Good,}"))
    (message,) = messages(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "Annwyl" in text)
    assert message.endswith(f":{line}:17: error: recipient 'good': the {{ opened here is not closed where YAML "
                            "expects it; close it with }, and put items that contain ',', ':', '[' or '{' in quotes")


def test_bad_url_and_id_are_explained(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + """\
references:
  r: {author: A, year: 2020, title: T, url: "javascript:alert(1)"}
recipients:
""" + GOOD.replace("id: good", "id: Not A File Name"))
    text = messages(path)
    assert any("field 'references.r.url': 'javascript:alert(1)' is not an http(s):// or mailto: URL" in t
               for t in text)


def test_markup_subset():
    (para,) = markup.parse("A *b* **c** [d](https://e.org) f[^g] \\*h\\* # i <j@k.org> `l` &amp;")
    assert para == (
        markup.Text("A "), markup.Emphasis((markup.Text("b"),)), markup.Text(" "),
        markup.Emphasis((markup.Text("c"),), strong=True), markup.Text(" "),
        markup.Link("https://e.org", (markup.Text("d"),)), markup.Text(" f"), markup.Cite("g"),
        markup.Text(" *h* # i "), markup.Link("mailto:j@k.org", (markup.Text("j@k.org"),)),
        markup.Text(" `l` &amp;"),
    )
    assert len(markup.parse("one\n\ntwo")) == 2
    # the README's other rows: _emphasis_, escapes, and what prints as typed
    assert markup.parse(r"_e_ [x](javascript:alert(1)) \[ \_ \\ \* x") == [(
        markup.Emphasis((markup.Text("e"),)), markup.Text(" [x](javascript:alert(1)) [ _ \\ * x"))]
    assert markup.parse("a __s__ b") == [(markup.Text("a "), markup.Emphasis((markup.Text("s"),), strong=True), markup.Text(" b"))]
    # a single * between letters or digits is text, as _ is: "2*3*4" in a cell printed "234", 3 in italics
    assert markup.plain(markup.parse("2*3*4 A*B*C")[0]) == "2*3*4 A*B*C"
    assert not any(isinstance(n, markup.Emphasis) for n in markup.walk(markup.parse("2*3*4 A*B*C")[0]))
    assert markup.parse("*urgent* a**b**c") == [(markup.Emphasis((markup.Text("urgent"),)), markup.Text(" a"),
                                                  markup.Emphasis((markup.Text("b"),), strong=True), markup.Text("c"))]
    assert markup.parse("> q\n\n- r\n\n1. s\n\n## t") == [
        (markup.Text("> q"),), (markup.Text("- r"),), (markup.Text("1. s"),), (markup.Text("## t"),)]
    assert markup.parse("<script>alert(1)</script> <b>x</b>") == [
        (markup.Text("<script>alert(1)</script> <b>x</b>"),)]
    # a backslash before anything but markup is a backslash: CommonMark's escapes printed
    # "C:\Temp#1 $5 {x}" for this, and its line break (a backslash ending a line) lost it too
    assert markup.parse("Path C:\\Temp\\#1 \\$5 \\{x\\} \\& \\@ \\\nnext \\") == [
        (markup.Text("Path C:\\Temp\\#1 \\$5 \\{x\\} \\& \\@ \\\nnext \\"),)]
    assert markup.parse("\\<https://x.org> \\]") == [(markup.Text("<https://x.org> ]"),)]
    # an autolink shows its address as typed (markdown-it decoded it: "a b", "~user/A")
    assert markup.parse("<https://e.org/a%20b/~u/%41>") == [(
        markup.Link("https://e.org/a%20b/~u/%41", (markup.Text("https://e.org/a%20b/~u/%41"),)),)]
    # literal() escapes only what is markup, and its text prints exactly
    typed = "C:\\Temp\\#1 *a* _b_ [^c] [d](https://e.org) <f@g.org> \\* `h` & ~ %"
    assert markup.literal(typed) == "C:\\\\Temp\\\\#1 \\*a\\* \\_b\\_ \\[^c\\] \\[d\\](https://e.org) \\<f@g.org> \\\\\\* `h` & ~ %"
    assert markup.parse(markup.literal(typed)) == [(markup.Text(typed),)]


def test_shipped_json_schema_is_current():
    from builder.schema import SCHEMA_FILE, json_schema_text
    shipped = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    assert shipped == json_schema_text(), "run `invoke schema` and commit recipients.schema.json"


# Every kind of bad input the loader knows, each with the message it must give.
# (A change to the YAML text, then what the problem says.)
BASE = MINIMAL_LETTER.replace("    - main: This is the shared text.", """\
    - main: This is the shared text[^ref].
      slot: Shared slot text.
references:
  ref: {author: A, year: 2020, title: T, url: "https://example.org"}""") + "recipients:\n" + GOOD
BAD_INPUTS = {
    "yaml syntax": (("  - id: good", "  - id: [good"), "recipient 'good': the [ opened here is not closed"),
    "unknown key": (("    name: Good Person", "    nme: Good Person"), "field 'nme': unknown key; did you mean 'name'?"),
    "unknown top-level key": (("references:", "letters: 1\nreferences:"), "field 'letters': unknown key; did you mean 'letter'?"),
    "missing field": (("    salutation: Dear Good,\n", ""), "recipient 'good', field 'salutation': required field is missing"),
    "missing shared field": (("    role: Clerk\n", ""), "field 'letter.sender.role': required field is missing"),
    "wrong type": (("    name: Good Person", "    name: [Good, Person]"), "field 'name': must be text (got a list)"),
    "empty string": (("    salutation: Dear Good,", '    salutation: ""'), "field 'salutation': must not be empty"),
    "only an invisible character": (("    salutation: Dear Good,", '    salutation: "\\ufeff"'),
                                    "field 'salutation': must not be empty"),
    "duplicate id": (("  - id: good", "  - id: good\n    name: X\n    address: [x]\n    salutation: Dear X,\n  - id: good"),
                     "field 'id': duplicate id 'good': the recipient on line 14 has it too; give each recipient an id of its own"),
    # a second entry of one id refused for another field was told of that field alone, below or above
    "duplicate id of an invalid entry": (("    salutation: Dear Good,\n", "    salutation: Dear Good,\n  - id: good\n"
                                          "    name: X\n    address: [x]\n"),
                                         "field 'id': duplicate id 'good': the recipient on line 14 has it too"),
    "duplicate id of an invalid entry above": (("  - id: good", "  - id: good\n    name: X\n    address: [x]\n"
                                                                "  - id: good"),
                                               "field 'id': duplicate id 'good': the recipient on line 17 has it too"),
    "id not a file name": (("  - id: good", "  - id: ../Good"), "field 'id': must be lower-case letters, digits and hyphens"),
    "unknown reference": (("shared text[^ref]", "shared text[^rf]"), "cites [^rf], but references has no 'rf'; did you mean [^ref]?"),
    "unknown omitted part": (("    salutation: Dear Good,", "    salutation: Dear Good,\n    omit: [slto]"),
                             "field 'omit[0]': the shared letter has no body part 'slto'; did you mean 'slot'?"),
    "unknown reworded part": (("    salutation: Dear Good,", "    salutation: Dear Good,\n    text: {mian: x}"),
                              "field 'text.mian': the shared letter has no body part 'mian'; did you mean 'main'?"),
    "missing logo": (("    role: Clerk", "    role: Clerk\n    logo: nowhere.png"), "field 'letter.sender.logo': no such file: 'nowhere.png'"),
    "image outside project": (("title: Clerk}", "title: Clerk, image: /etc/hostname}"),
                              "must be a PDF, PNG or JPEG file inside the project folder"),
    "no recipients": (("recipients:\n" + GOOD, "recipients: []\n"), "field 'recipients': must be a list of at least one recipient"),
    "date not a date": (("date: 2021-03-04", "date: 2021-02-30"), "field 'letter.date': must be a date written YYYY-MM-DD"),
    "url scheme": (('url: "https://example.org"', 'url: "ftp://example.org"'), "'ftp://example.org' is not an http(s):// or mailto: URL"),
    "url with a space": (('url: "https://example.org"', 'url: "https://example.org/a b"'), "contains ' ', which a URL may not hold"),
    "url with two fragments": (('url: "https://example.org"', 'url: "https://example.org/#a#b"'), "has more than one '#'"),
    "link scheme in text": (("Shared slot text.", "See [this](ftp://example.org)."), "link target 'ftp://example.org' is not an http(s):// or mailto: URL"),
    # the PDF's link went to https://example.org/a#b, the web page's to the whole address
    "link with two fragments": (("Shared slot text.", "See [this](https://example.org/a#b#c)."),
                                "link target 'https://example.org/a#b#c' has more than one '#'"),
    "link with an empty fragment": (("Shared slot text.", "See <https://example.org/#>."),
                                    "link target 'https://example.org/#' ends in an empty '#' fragment"),
    "duplicate yaml key": (("    name: Good Person", "    name: Good Person\n    name: Other"), "recipient 'good', field 'name': duplicate key (first given on line 15)"),
    "unprintable character": (("    name: Good Person", "    name: Good 😀"), "contains characters the letter's fonts cannot print: '😀' (grinning face, U+1F600); delete or replace it"),
    "open part left empty": (("      slot: Shared slot text.", "      slot: ~"), "part 'slot' has no shared text, so every recipient must give text.slot"),
    "omitted and reworded": (("    salutation: Dear Good,", "    salutation: Dear Good,\n    omit: [slot]\n    text: {slot: x}"),
                             "part 'slot' is both omitted and given in text"),
    "line break in a one-line field": (("    name: Good Person", '    name: "Good\\nPerson"'), "must be a single line of text but holds a line break: join its lines into one"),
    "letter with no body": (("    salutation: Dear Good,", "    salutation: Dear Good,\n    omit: [main, slot]"), "this letter would have no body text"),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_every_kind_of_bad_input_gets_its_message(tmp_path, kind):
    (old, new), expected = BAD_INPUTS[kind]
    assert old in BASE, kind
    path = write_yaml(tmp_path / "recipients.yaml", BASE.replace(old, new, 1))
    try:
        loaded = load(path)
        found = [str(p) for p in loaded.problems]
    except LoadError as exc:
        found = [str(p) for p in exc.problems]
    assert any(expected in message for message in found), found
    assert all(message.startswith(str(path)) for message in found)


def test_a_shared_part_set_to_nothing_on_a_recipient_is_pointed_out(tmp_path):
    # `ps: ~` printed the letter's PS on that letter, without a word
    path = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  body:", "  ps: Please reply.\n  cc: [A Colleague]\n  body:") + "recipients:\n" + GOOD
        + "    ps: ~\n    cc:\n    our_ref: ~\n  - id: other\n    name: O\n    address: [2 Road]\n"
          "    salutation: Dear O,\n    cc: []\n")
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["good", "other"]
    assert [str(w) for w in loaded.warnings] == [
        f"{path}:18:5: warning: recipient 'good', field 'cc': ~ (nothing) gives this letter no cc of its own, so it "
        "prints the letter's; write [] for none",
        f"{path}:17:5: warning: recipient 'good', field 'ps': ~ (nothing) gives this letter no ps of its own, so it "
        "prints the letter's; one letter cannot leave out the letter's ps: move it from letter: to the recipients "
        "that have it"]



@pytest.mark.parametrize("part, shared", [("subject", "A subject"), ("our_ref", "OR/1"), ("marking", "OFFICIAL"),
                                          ("closing", "Yours truly,"), ("enclosures", "[A plan]")])
def test_every_shared_part_set_to_nothing_on_a_recipient_is_pointed_out(tmp_path, part, shared):
    """The README names subject, our_ref, marking and closing beside ps: only ps,
    cc and our_ref were tried. A marking left ~ prints the batch's marking."""
    path = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  body:", f"  {part}: {shared}\n  body:") + "recipients:\n" + GOOD + f"    {part}: ~\n")
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["good"]
    assert [str(w).split(": warning: ")[1].split(", so it prints")[0] for w in loaded.warnings] == [
        f"recipient 'good', field '{part}': ~ (nothing) gives this letter no {part} of its own"]

def test_a_reference_never_cited_is_a_warning_only(tmp_path):
    path = write_yaml(tmp_path / "recipients.yaml", BASE.replace("shared text[^ref].", "shared text."))
    loaded = load(path)
    assert [str(w) for w in loaded.warnings] == [
        f"{path}:12:3: warning: field 'references.ref': reference 'ref' is never cited"]
    assert [r.id for r in loaded.batch.recipients] == ["good"]


def test_every_problem_in_the_file_is_reported_in_one_run(tmp_path):
    text = (BASE.replace("date: 2021-03-04", "date: soon")
                .replace('url: "https://example.org"', 'url: "example.org"')
                .replace("    name: Good Person", "    nme: Good Person")
                .replace("shared text[^ref]", "shared text[^nope]"))
    with pytest.raises(LoadError) as caught:
        load(write_yaml(tmp_path / "recipients.yaml", text))
    fields = [p.field for p in caught.value.problems]
    for field in ("letter.date", "references.ref.url", "nme"):
        assert field in fields, fields
    assert "name" not in fields, fields  # said once, by nme's "did you mean 'name'?"


def test_a_file_is_validated_once_per_text_and_again_when_it_changes(tmp_path):
    """Stages of one command load the same file: the same text gives the same
    result; a changed file (even changed back and forth) is read anew."""
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD)
    first = load(path)
    assert load(path) is first
    write_yaml(path, MINIMAL_LETTER + "recipients:\n" + GOOD.replace("Good Person", "Other Person"))
    assert [r.name for r in load(path).batch.recipients] == ["Other Person"]
    write_yaml(path, MINIMAL_LETTER + "recipients:\n" + GOOD.replace("salutation:", "salutaton:"))
    assert "salutation" in " ".join(messages(path))
    same_text_elsewhere = write_yaml(tmp_path / "copy.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD)
    assert load(same_text_elsewhere).path == same_text_elsewhere


def bomb_png(path, width: int, height: int, dpi: int | None = None):
    """A PNG of ``width`` x ``height`` black pixels (1 bit each, compressed to a few
    hundred kB: a decompression bomb), with a pHYs resolution if ``dpi``."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows, packer = (b"\0" * (1 + (width + 7) // 8)) * 1000, zlib.compressobj(9)
    data = b"".join(packer.compress(rows[:len(rows) // 1000 * min(1000, height - done)])
                    for done in range(0, height, 1000)) + packer.flush()
    phys = chunk(b"pHYs", struct.pack(">IIB", *[round(dpi / 0.0254)] * 2, 1)) if dpi else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + phys + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def bomb_pdf(path):
    """A PDF logo whose page draws a form that draws a 20000 x 20000 image (50 kB)."""
    import zlib

    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 50))
    image = pdf.make_stream(zlib.compress(b"\0" * (2500 * 20000), 9), Type=pikepdf.Name.XObject,
                            Subtype=pikepdf.Name.Image, Width=20000, Height=20000, BitsPerComponent=1,
                            ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode)
    form = pdf.make_stream(b"q 200 0 0 50 0 0 cm /Im0 Do Q", Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                           BBox=[0, 0, 200, 50], Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image)))
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm0=form))
    pdf.pages[0].Contents = pdf.make_stream(b"/Fm0 Do")
    pdf.save(path)
    return path


def test_an_image_too_large_to_print_is_one_clear_message(tmp_path):
    """A logo of 20000 x 20000 pixels in a 300 kB file, with a resolution that lets
    pdfTeX place it: pdfTeX built it (in 2 s, copying the compressed pixels) and every
    viewer and printer then had to decode 400 million pixels (poppler: 17 s a page
    for 30000 x 30000). Refused from its header, before anything is built; so are
    one over Pillow's limit, one wider than TeX can measure ("Dimension too large
    (near: \\opening{Dear Ann,})") and a PDF drawing a bomb. An unreadable one is
    left to pdfTeX (test_trust)."""
    import subprocess
    import sys

    images = {"bomb": bomb_png(tmp_path / "bomb.png", 20000, 20000, dpi=2400),
              "big": bomb_png(tmp_path / "big.png", 10000, 10000, dpi=1200),
              "wide": bomb_png(tmp_path / "wide.png", 20000, 10),
              "fine": bomb_png(tmp_path / "fine.png", 600, 200, dpi=600), "pdf": bomb_pdf(tmp_path / "bomb.pdf")}
    expected = {"bomb": "'bomb.png' is over 179 million pixels, more than the 89 million of Pillow's "
                        "decompression-bomb limit: save a smaller copy",
                "big": "'big.png' is 10000 x 10000 pixels (100 million), more than the 89 million",
                "wide": "'wide.png' is 7.1 m wide at its resolution, more than TeX can measure (5.7 m)",
                "pdf": "'bomb.pdf' holds an image of 20000 x 20000 pixels (400 million), more than the 89 million"}
    for name, image in images.items():
        path = write_yaml(tmp_path / "recipients.yaml", BASE.replace("    role: Clerk", f"    role: Clerk\n    logo: {image.name}"))
        if name == "fine":
            assert not load(path).problems
            continue
        (found,) = messages(path)
        assert found.startswith(f"{path}:6:11: error: field 'letter.sender.logo': {expected[name]}"), found
    # the task: that one line, nothing built, no traceback
    path = write_yaml(tmp_path / "recipients.yaml", BASE.replace("    role: Clerk", "    role: Clerk\n    logo: bomb.png"))
    done = subprocess.run([sys.executable, "-m", "invoke", "build", "-r", str(path), "-b", str(tmp_path / "build")],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert "decompression-bomb limit" in done.stderr + done.stdout and not (tmp_path / "build" / "letters").exists()


def test_an_invisible_character_and_several_are_said_in_good_english():
    from builder.load import _invisible_message

    assert _invisible_message("a\u200bb").startswith("contains an invisible character: zero-width space")
    # it said "contains an invisible characters"
    assert _invisible_message("a\u200bb\u00adc").startswith(
        "contains invisible characters: zero-width space, U+200B, soft hyphen")


def test_a_tab_in_a_one_line_value_is_a_space(tmp_path):
    """A name pasted with a tab in it was refused as "must be a single line of text"; the
    README says a run of spaces and tabs is one space, as it is in every other value."""
    from builder.load import load

    loaded = load(write_yaml(tmp_path / "r.yaml", BASE.replace("    name: Good Person", '    name: "Good\\tPerson"')))
    assert not loaded.rejected and loaded.batch.recipients[0].name == "Good Person"


def test_a_folder_or_a_pipe_named_like_a_file_is_said_to_be_one(tmp_path):
    """A logo, a spreadsheet or a house class that is there, but a folder or a
    FIFO, was reported as "no such file", which the user could see was wrong."""
    import os
    (tmp_path / "logo.png").mkdir()
    os.mkfifo(tmp_path / "people.csv")
    path = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    role: Clerk", "    role: Clerk\n    logo: logo.png") + "recipients: {from: people.csv}\n")
    with pytest.raises(LoadError) as caught:
        load(path)
    messages = [p.message for p in caught.value.problems]
    assert f"'logo.png' is a folder, not a file: give the file itself (paths are relative to {str(tmp_path)!r})" \
        in messages
    assert ("'people.csv' is a pipe or a device, not a file: give the file itself "
            f"(paths are relative to {str(tmp_path)!r})") in messages


def test_a_citation_inside_a_link_label_is_refused_not_printed_as_typed(tmp_path):
    # markdown-it never made this link (a token inside the label longer than its bracket
    # ends the label's scan), so the letter printed "[see the report¹](https://e.org)"
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER.replace("    - main: This is the shared text.\n",
                                                                  "    - main: ~\n") + """\
references:
  r: {author: A, year: 2020, title: T, url: "https://e.org/r"}
recipients:
""" + GOOD.replace("Dear Good,\n", "Dear Good,\n    text: {main: 'We read [the report[^r]](https://e.org).'}\n") + """\
  - id: fine
    name: Fine Person
    address: [2 Road]
    salutation: Dear Fine,
    text: {main: 'We read [the report](https://e.org)[^r].'}
""")
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["fine"]
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{path}:17:18: error: recipient 'good', field 'text.main': a citation [^key] cannot sit inside "
        "a link's label; put it after the link: [label](https://…)[^key]"]
    with pytest.raises(markup.MarkupError):
        markup.parse("[a *b[^r]*](https://e.org)")


def test_a_link_with_no_words_to_show_is_refused_not_left_out(tmp_path):
    # "[](https://e.org)" printed nothing at all: "Apply at  by Friday."
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD.replace(
        "Dear Good,\n", "Dear Good,\n    subject: 'Apply at [ ](https://e.org/apply) by Friday.'\n")
        + GOOD.replace("id: good", "id: fine"))
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["fine"]
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{path}:15:14: error: recipient 'good', field 'subject': the link to 'https://e.org/apply' has no words "
        "to show ([](https://e.org/apply)); write them in the brackets ([the form](https://e.org/apply)), or "
        "<https://e.org/apply> to show the address"]


def test_a_list_written_as_markdown_s_is_a_warning_that_says_how_to_print_it(tmp_path):
    # "- item one\n- item two" printed "- item one - item two", with no word: markup has no
    # lists, and one line break joins a paragraph's lines. Items after a blank line, and a
    # hyphen within a line, are no list
    letter = MINIMAL_LETTER.replace("    - main: This is the shared text.\n", "    - main: This is the shared text.\n"
                                    "    - asks: ~\n    - steps: ~\n    - fine: ~\n")
    path = write_yaml(tmp_path / "r.yaml", letter + "recipients:\n" + GOOD + """\
    text:
      asks: |
        We ask for:
        - the plan
        - the budget
      steps: "1. Read it.\\n2. Sign it."
      fine: "We ask for:\\n\\n- the plan\\n\\n- the budget, well-\\nknown - and more"
""")
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["good"]
    assert [str(w).split(": warning: ")[1] for w in loaded.warnings] == [
        f"recipient 'good', field 'text.{part}': a line starts {marker!r} as a list's item would, but one line "
        "break joins lines into one paragraph (\"- one - two\"); put a blank line before each item to print it "
        "as a paragraph of its own" for part, marker in (("asks", "-"), ("steps", "2."))]


def test_a_value_with_a_backslash_is_quoted_as_it_was_typed(tmp_path):
    """repr() doubled each backslash: an id typed ..\\x was "got '..\\\\x'", an address
    a\\b@… "'a\\\\b@…' is not an email address", values nobody typed. A control
    character (which the messages name) is still shown as an escape, not sent to the terminal."""
    path = write_yaml(tmp_path / "r.yaml", MINIMAL_LETTER + "recipients:\n" + GOOD + r"""
  - id: '..\x'
    name: N
    address: [1 Road]
    salutation: Dear N,
  - id: mail
    name: N
    address: [1 Road]
    salutation: Dear N,
    email: 'a\b@example.org'
  - id: part
    name: N
    address: [1 Road]
    salutation: Dear N,
    omit: ['p\1']
""")
    loaded = load(path)
    said = [str(p) for problems in loaded.rejected.values() for p in problems]
    assert any("recipient '..\\x', field 'id': " in s and s.endswith("(got '..\\x')") for s in said), said
    assert any("'a\\b@example.org' is not an email address" in s for s in said), said
    assert any(s.endswith("(got 'p\\1')") for s in said), said
    assert not any("\\\\" in s for s in said), said
    from builder.problems import quoted
    assert quoted("tab\there\x07") == "'tab\\there\\x07'" and quoted("it's") == '"it\'s"'
