"""Data is data: every special character prints as itself, and nothing runs."""
from __future__ import annotations

import html
import re
import subprocess
import unicodedata
from pathlib import Path

import pikepdf
from pypdf import PdfReader

from builder import markup
from builder.build import build
from builder.merge import merge
from builder.latex import text
from conftest import MINIMAL_LETTER, normalise, pdf_text, write_yaml

SPECIALS = r"""& % $ # _ { } ~ ^ \ 50% a_b {x} ~y^z \input{/etc/hostname} \write18{touch pwned} ^^5c "q" 'q' `q` -- --- << >> ,, ?` !` | """
LETTERS = "Llŷr Ŵyn Siân Öz Ñoño Bjørn “curly” ‘single’ – — £ € à é Rene\u0301e"  # e + U+0301 joins: é
LETTERS += " ẃ ẁ ẅ ỳ Ẃ"  # Welsh w and y with other accents, which T1 does not declare: refused, they were
# a letter and an accent drawn as two glyphs, the accent first (Ŵ) or last (Ș): text copied from
# the PDF read "Rhys- Ŵyn", "Ș tefan"
LETTERS += " Rhys-Ŵyn Ștefan Țurcanu Ĝiĝ ŷr"


def test_escape_keeps_every_special_out_of_tex():
    escaped = text(r"\input{x} ^^5c $ & # % _ ~ ' -- ,,")
    assert "\\input" not in escaped and "^^" not in escaped and "--" not in escaped
    assert escaped.count("\\textbackslash{}") == 1


def test_a_no_break_space_stays_one():
    """Typed between two words (10\u00a0000, Mr\u00a0Smith) it keeps them on one line: TeX's ~."""
    assert text("10\u00a0000 and Mr\u00a0Smith") == "10~000 and Mr~Smith"
    assert text("a \n\t b") == "a b"  # any other run of white space is one space


def test_specials_and_accents_come_out_verbatim(tmp_path: Path):
    value = " ".join(SPECIALS.split()) + " " + LETTERS
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    marked = markup.literal(value).replace("\\", "\\\\").replace('"', '\\"')  # markup fields: subject, ps
    # every other text of the letter and its cover too, not only the recipient's block:
    # the letterhead, references beside the date, subject, closing, signature, cc, enclosures, PS,
    # return address, and the bundle's title, keywords, cover table and bookmarks
    shared = {"SN": f'"SN{quoted}"', "SR": f'"SR{quoted}"', "SA": f'["SA{quoted}"]', "GN": f'"GN{quoted}"',
              "GT": f'"GT{quoted}"', "TI": f'"TI{quoted}"', "KW": f'["KW{quoted}"]', "CL": f'"CL{quoted}"',
              "OR": f'"OR{quoted}"', "CC": f'["CC{quoted}"]', "EN": f'["EN{quoted}"]', "RA": f'"RA{quoted}"',
              "SU": f'"SU{marked}"', "PS": f'"PS{marked}"'}
    yaml_text = MINIMAL_LETTER.replace(
        "  sender:\n    name: Ann Sender\n    role: Clerk\n    address: [1 High Street, Town]\n"
        "  signatory: {name: Ann Sender, title: Clerk}\n",
        f"  title: {shared['TI']}\n  keywords: {shared['KW']}\n"
        f"  sender: {{name: {shared['SN']}, role: {shared['SR']}, address: {shared['SA']}}}\n"
        f"  signatory: {{name: {shared['GN']}, title: {shared['GT']}, show_name: true}}\n"
        f"  closing: {shared['CL']}\n  our_ref: {shared['OR']}\n  cc: {shared['CC']}\n"
        f"  enclosures: {shared['EN']}\n  return_address: {shared['RA']}\n"
        f"  subject: {shared['SU']}\n  ps: {shared['PS']}\n").replace(
        "    - main: This is the shared text.",
        "    - main: 'Body: [^ref] then x'\n"
        "references:\n"
        f'  ref: {{author: "A{quoted}", year: 2020, title: "T{quoted}",\n'
        '         url: "https://example.org/a_b/~c?d=1&e=%20#frag"}\n',
    ) + f"""recipients:
  - id: specials
    name: "N{quoted}"
    role: "R{quoted}"
    address: ["L{quoted}", "M{quoted}"]
    salutation: "S{quoted}"
    your_ref: "YR{quoted}"
"""
    source = write_yaml(tmp_path / "recipients.yaml", yaml_text)
    report = build(source, tmp_path / "build")
    assert report.ok, [o.message for o in report.failed]
    got = pdf_text(tmp_path / "build" / "letters" / "specials.pdf")
    for prefix in ["N", "R", "L", "M", "S", "A", "T", "YR", *(k for k in shared if k not in ("TI", "KW"))]:
        assert normalise(prefix + value) in got, prefix
    # every value is long here: the return address, scaled to the window's width, cannot be read
    bundle = merge(source, tmp_path / "build", accept={"specials": ["window", "address", "return_address"]})
    cover = pdf_text(tmp_path / "build" / "cover.pdf")
    for prefix in ["TI", "GN", "N", "R"]:  # the cover sheet: title, signatory, its table
        assert normalise(prefix + value) in cover, prefix
    with pikepdf.open(bundle.path) as merged, merged.open_outline() as outline:
        assert normalise(f"N{value}, R{value}") in [normalise(str(item.title)) for item in outline.root]
        assert normalise(str(merged.docinfo["/Title"])) == normalise(f"Letters for signature: TI{value}")
    assert not (tmp_path / "build" / "tex" / "pwned").exists()
    meta = PdfReader(tmp_path / "build" / "letters" / "specials.pdf").metadata
    nfc = lambda t: unicodedata.normalize("NFC", t)  # the print copy's metadata keeps e + U+0301, the web's joins it
    assert nfc(meta.subject) == nfc(f"TI{value}") and nfc(meta.author) == nfc(f"GN{value}")
    assert nfc(meta["/Keywords"]) == nfc(f"KW{value}")
    title = " ".join(f"Letter to N{value}, R{value}".split())  # metadata: as typed
    raw = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(tmp_path / "build" / "letters" / "specials.pdf"),
                          "-"], capture_output=True, text=True, check=True).stdout
    assert raw.count("Ren\u00e9e") >= 6 and "\u0301" not in raw  # printed: one character, é
    assert nfc(meta.title) == nfc(title)
    assert build(source, tmp_path / "build", medium="web").ok  # metadata by another road
    web = PdfReader(tmp_path / "build" / "web" / "2021-03-04-specials.pdf")
    assert nfc(web.metadata.title) == nfc(title)
    xmp = web.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert nfc(title) in nfc(html.unescape(xmp))
    uris = [a.get_object()["/A"].get("/URI") for p in PdfReader(tmp_path / "build" / "letters" / "specials.pdf").pages
            for a in p.get("/Annots", []) if "/URI" in a.get_object().get("/A", {})]
    assert "https://example.org/a_b/~c?d=1&e=%20#frag" in uris


def test_thin_spaces_print_thin_and_the_narrow_no_break_one_holds(tmp_path: Path):
    """The thin space (U+2009) and the narrow no-break space (U+202F) of typeset
    numbers and names ("10 000", "Dr Jo") were refused as characters the fonts
    cannot print (the second named "no-break space"). Each prints as TeX's thin
    space, narrower than a word space; a line breaks at U+2009, never at U+202F
    (forty words joined by it overrun the line, which the preflight reports)."""
    words = ["Seventeen"] * 40
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + f"""recipients:
  - id: narrow
    name: "Dr\\u202fJo Bloggs"
    address: [1 Road, Town]
    salutation: "Dear Dr\\u202fBloggs, 10\\u2009000"
    text: {{main: "{chr(0x202f).join(words)}"}}
  - id: thin
    name: Jo Bloggs
    address: [1 Road, Town]
    salutation: Dear Jo,
    text: {{main: "{chr(0x2009).join(words)}"}}
""")
    report = build(source, tmp_path / "build")
    codes = {o.recipient: [f["code"] for f in o.findings] for o in report.outcomes}
    assert "overfull" in codes["narrow"] and "overfull" not in codes["thin"], codes
    letters = tmp_path / "build" / "letters"
    assert "Dear Dr Bloggs, 10 000" in pdf_text(letters / "narrow.pdf")
    assert " ".join(words) in pdf_text(letters / "thin.pdf")
    boxes = subprocess.run(["pdftotext", "-bbox", str(letters / "narrow.pdf"), "-"], capture_output=True,
                           text=True, check=True).stdout
    found = [(float(x0), float(x1), word) for x0, x1, word in
             re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
                                      boxes)]
    at = next(i for i, (_, _, word) in enumerate(found) if word == "Dr")
    (_, dr_end, _), (jo_start, jo_end, jo), (bloggs_start, _, bloggs) = found[at:at + 3]
    assert (jo, bloggs) == ("Jo", "Bloggs")
    assert 0 < jo_start - dr_end < 0.6 * (bloggs_start - jo_end)  # thin: about half a word space


def test_a_character_the_fonts_lack_is_named_whole():
    """The message named U+202F "no-break space": the first word of a space's
    name was cut off as if it were the character shown in quotes."""
    from builder.load import describe

    assert describe("\u2003", quoted=False) == "em space, U+2003"
    assert describe("\u03a9", quoted=False) == "greek capital letter omega, U+03A9"
    assert describe("\u03a9") == "'\u03a9' greek capital letter omega, U+03A9"


def test_an_apostrophe_in_a_references_address_prints_straight(tmp_path: Path):
    """url.sty sets a printed URL in the text's T1 font, whose slot for ' is a closing
    quote: en.wikipedia.org/wiki/People's_Republic printed as People’s_Republic."""
    url = "https://en.wikipedia.org/wiki/People's_Republic"
    yaml_text = MINIMAL_LETTER.replace(
        "    - main: This is the shared text.",
        "    - main: 'Cited[^ref].'\n"
        f'references:\n  ref: {{author: A, year: 2020, title: T, url: "{url}"}}\n',
    ) + "recipients:\n  - {id: one, name: N, address: [L], salutation: 'Dear N,'}\n"
    source = write_yaml(tmp_path / "recipients.yaml", yaml_text)
    assert build(source, tmp_path / "build").ok
    got = pdf_text(tmp_path / "build" / "letters" / "one.pdf")
    assert "en.wikipedia.org/wiki/People's_Republic" in got.replace("- ", "-"), got
    assert "\u2019" not in got


def test_a_sender_address_any_mail_program_takes_is_printed_and_linked(tmp_path: Path):
    """An e-mail address may hold characters a URL may not (RFC 5322: ` | ^ in its user part)
    and ones a mailto: URL reads otherwise (? starts its headers, # a fragment, % an escape):
    the build stopped with "unsafe URL", naming no field, or linked another address.
    RFC 6068 has them percent-encoded in the link; the letter prints the address as typed."""
    address = "o'brien|x^y`z?a#b%c@example.org"
    yaml_text = MINIMAL_LETTER.replace(
        "    address: [1 High Street, Town]\n",
        f'    address: [1 High Street, Town]\n    email: "{address}"\n',
    ) + "recipients:\n  - {id: one, name: N, address: [L], salutation: 'Dear N,'}\n"
    source = write_yaml(tmp_path / "recipients.yaml", yaml_text)
    assert build(source, tmp_path / "build").ok
    got = pdf_text(tmp_path / "build" / "letters" / "one.pdf")
    assert address in got, got
    with pikepdf.open(tmp_path / "build" / "letters" / "one.pdf") as pdf:
        uris = [str(a.A.URI) for a in pdf.pages[0].Annots if "/A" in a and "/URI" in a.A]
    assert "mailto:o'brien%7Cx%5Ey%60z%3Fa%23b%25c@example.org" in uris, uris
    assert build(source, tmp_path / "build", medium="web").ok
    page = (tmp_path / "build" / "web" / "2021-03-04-one.html").read_text(encoding="utf-8")
    assert 'href="mailto:o&#x27;brien%7Cx%5Ey%60z%3Fa%23b%25c@example.org"' in page
