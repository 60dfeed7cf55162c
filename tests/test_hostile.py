"""Hostile input: whatever the data holds, it prints as itself and never runs.

Property-based: hypothesis draws strings across Unicode, weighted toward TeX's
special characters and tricks, puts them in every kind of field of one letter,
builds it with the real pdflatex, and reads the text back.
"""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from pypdf import PdfReader

from builder import latex, markup
from builder.build import build
from builder.compile import compile_letter, tex_environment
from builder.load import _INVISIBLE
from builder.build import LETTERHEAD
from conftest import normalise, pdf_text

TRICKS = ["–-", "‘‘", "’’", "!‘", "?‘", "\\", "{", "}", "$", "&", "#", "^", "_", "%", "~", "^^5c", "^^M", "\\input{/etc/hostname}",
          "\\write18{touch pwned}", "\\catcode`\\@=11", "\\def\\x{y}", "\\end{document}", "\\\\",
          "--", "---", "''", "``", "<<", ">>", ",,", "!`", "?`", "\n", "ŵ", "ŷ", "Ŵ", "Ŷ", "â", "ë", "ñ",
          "ø", "“", "”", "‘", "’", "–", "—", "£", "€", "'", '"', "*", "[", "]", "(", ")", "<", ">", "|"]
PRINTABLE = sorted(latex.printable() or [])
fragment = st.one_of(st.sampled_from(TRICKS), st.text(st.sampled_from(PRINTABLE), min_size=1, max_size=4))
# something visible: a value of invisible characters only (a lone BOM) is
# empty once they are left out, and refused as empty (test_load)
value = st.lists(fragment, min_size=1, max_size=10).map("".join).filter(lambda s: _INVISIBLE.sub("", s).split())
URL_SAFE = "abcXYZ019-._~!$&'()*+,;=:@/?#%"
# RFC 3986: at most one '#'; an empty fragment is refused (PDF links drop it)
url_tail = st.text(st.sampled_from(URL_SAFE), max_size=20).filter(
    lambda t: t.count("#") <= 1 and not t.endswith("#"))


def line(s: str) -> str:
    return " ".join(s.split())  # one-line fields: newlines and tabs become spaces


# Each example is one real pdflatex run; no shrinking phase, so a failure is
# reported in seconds rather than minutes (the example is printed as drawn).
# LETTERBATCH_FUZZ_EXAMPLES=500 runs a longer campaign.
@settings(max_examples=int(os.environ.get("LETTERBATCH_FUZZ_EXAMPLES", 15)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(name=value, role=value, address=st.lists(value, min_size=1, max_size=3), salutation=value,
       paragraph=value, author=value, title=value, tail=url_tail)
def test_any_text_round_trips_through_a_real_pdf(tmp_path_factory, name, role, address, salutation,
                                                 paragraph, author, title, tail):
    folder = tmp_path_factory.mktemp("hostile")
    url = "https://example.org/" + tail
    values = {"name": line(name), "role": line(role), "address": [line(a) for a in address],
              "salutation": line(salutation), "author": line(author), "title": line(title)}
    data = {
        "letter": {"date": "2021-01-02",
                   "sender": {"name": "S", "role": "R", "address": ["A"]},
                   "signatory": {"title": "T"},
                   "body": [{"main": markup.literal(paragraph) + " [^ref]"}]},
        "references": {"ref": {"author": values["author"], "year": 2021, "title": values["title"],
                               "url": url}},
        "recipients": [{"id": "fuzz", "name": values["name"], "role": values["role"],
                        "address": values["address"], "salutation": values["salutation"]}],
    }
    source = folder / "recipients.yaml"
    source.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    report = build(source, folder / "build")
    assert report.ok, [o.message for o in report.failed]
    pdf = folder / "build" / "letters" / "fuzz.pdf"
    # pdftotext guesses spaces from glyph gaps (it adds one after some accented
    # letters), so compare the characters with whitespace set aside; the exact
    # spacing is checked in test_escaping.
    text = "".join(c for c in pdf_text(pdf) if not c.isspace() and unicodedata.category(c) != "Cf")
    expected = [values["name"], values["role"], *values["address"], values["salutation"],
                values["author"], values["title"], paragraph]
    for item in expected:  # invisible format characters (soft hyphen, BOM) print as nothing
        visible = "".join(c for c in item if unicodedata.category(c) != "Cf")
        assert "".join(normalise(visible).split()) in text, item
    uris = [str(a.get_object()["/A"]["/URI"]) for page in PdfReader(pdf).pages
            for a in page.get("/Annots", []) if "/URI" in a.get_object().get("/A", {})]
    assert url in uris
    assert not list(folder.rglob("pwned"))


def test_characters_the_fonts_lack_are_a_clear_error(tmp_path):
    from builder.load import LoadError, load
    for bad in ("😀", "中文", "≠"):
        source = tmp_path / "r.yaml"
        source.write_text(json.dumps({
            "letter": {"date": "2021-01-02", "sender": {"name": "S", "role": "R", "address": ["A"]},
                       "signatory": {"title": "T"}, "body": [{"main": f"x {bad}"}]},
            "recipients": [{"id": "a", "name": "N", "address": ["A"], "salutation": "Dear N,"}]},
            ensure_ascii=False), encoding="utf-8")
        try:
            load(source)
        except LoadError as exc:
            message = str(exc)
        else:
            raise AssertionError("accepted " + bad)
        assert "field 'letter.body[0].main': contains characters the letter's fonts cannot print" in message
        assert f"U+{ord(bad[0]):04X}" in message


def _compile(tmp_path: Path, body: str):
    folder = tmp_path / "tex"
    folder.mkdir(exist_ok=True)
    tex = folder / "probe.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\n" + body + "\n\\end{document}\n")
    return compile_letter(tex, tmp_path / "work", tmp_path / "probe.pdf",
                          tex_environment([LETTERHEAD], 1600000000))


def test_tex_cannot_read_files_outside_the_build(tmp_path):
    result = _compile(tmp_path, "\\input{/etc/passwd}")
    assert not result.ok and not (tmp_path / "probe.pdf").exists()
    assert "/etc/passwd" in result.first_error
    sneaky = _compile(tmp_path, "\\newread\\r\\openin\\r=/etc/hostname \\ifeof\\r NOTREAD\\else READ\\fi")
    assert sneaky.ok and "NOTREAD" in pdf_text(tmp_path / "probe.pdf")


def test_tex_cannot_write_outside_the_build(tmp_path):
    target = tmp_path / "escaped.txt"
    result = _compile(tmp_path, f"\\newwrite\\w\\immediate\\openout\\w={target}\\immediate\\write\\w{{x}}")
    assert not result.ok and not target.exists()
    assert "write" in result.first_error.lower()
    shell = _compile(tmp_path, "\\immediate\\write18{touch pwned} text")
    assert not (tmp_path / "tex" / "pwned").exists() and not (tmp_path / "work" / "pwned").exists()
    assert shell.ok  # \write18 is just text to a log when shell escape is off
