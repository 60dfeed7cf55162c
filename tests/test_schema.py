"""The shipped JSON Schema is as strict as the loader: every rule about a
single field that the build enforces, the schema enforces too (checked with
jsonschema, an independent validator), on the data as an editor reads it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT, SAMPLE as SAMPLE_BATCH


class Yaml12(yaml.SafeLoader):
    """YAML 1.2 core schema, as editors read the file (yaml-language-server):
    null, true/false, decimal/octal/hex integers and floats; everything else,
    dates included, is a string."""


Yaml12.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+.0123456789")),
    ("tag:yaml.org,2002:merge", r"^<<$", ["<"]),
]:
    Yaml12.add_implicit_resolver(tag, re.compile(pattern), first)
Yaml12.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(node.value.replace("0o", "0o"), 0)
                       if node.value.startswith(("0o", "0x")) else int(node.value))


def schema():
    return json.loads((ROOT / "recipients.schema.json").read_text(encoding="utf-8"))


def editor_data(text: str):
    return yaml.load(text, Loader=Yaml12)


def test_shipped_json_schema_accepts_the_bundled_batch():
    data = editor_data(SAMPLE_BATCH.read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    data["recipients"][0]["adress"] = data["recipients"][0].pop("address")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())


# A batch with every kind of field, which the loader and the schema accept.
SAMPLE = """\
letter:
  date: 2021-03-04
  title: A batch
  keywords: [one, two]
  sender:
    name: Ann Sender
    role: Clerk
    address: [1 High Street, Town]
    phone: 02035130477
    email: ann@example.org
    web: https://example.org/café
  signatory: {name: Ann Sender, title: Clerk}
  body:
    - main: This is the shared text[^ref].
      slot: Shared slot text.
references:
  ref: {author: A, year: 2020, title: T, url: "https://example.org/a#b"}
recipients:
  - id: good
    name: Good Person
    role: yes
    address: [1 Road, 00123]
    salutation: Dear Good,
    omit: [slot]
    text: {main: 'Hello[^ref].'}
"""

# Every rule about one field the loader knows: (old, new) in SAMPLE, and a word
# of the loader's message. The schema must refuse each of them too.
SINGLE_FIELD = {
    "url ftp": (('url: "https://example.org/a#b"', 'url: "ftp://example.org"'), "is not an http(s)://"),
    "url without scheme": (('url: "https://example.org/a#b"', 'url: "example.org"'), "is not an http(s)://"),
    "url javascript": (('url: "https://example.org/a#b"', 'url: "javascript:alert(1)"'), "is not an http(s)://"),
    "url with a space": (('url: "https://example.org/a#b"', 'url: "https://example.org/a b"'), "contains ' '"),
    "url with two #": (('url: "https://example.org/a#b"', 'url: "https://example.org/#a#b"'), "more than one '#'"),
    "url ends in #": (('url: "https://example.org/a#b"', 'url: "https://example.org/#"'), "empty '#'"),
    "url with a quote": (('url: "https://example.org/a#b"', "url: 'https://example.org/a\"b'"), "contains '\"'"),
    "url with braces": (('url: "https://example.org/a#b"', 'url: "https://example.org/{x}"'), "contains '{'"),
    "url no host": (('url: "https://example.org/a#b"', 'url: "https:///path"'), "is not an http(s)://"),
    "mailto without @": (('url: "https://example.org/a#b"', 'url: "mailto:nobody"'), "is not an http(s)://"),
    "url too long": (('url: "https://example.org/a#b"', 'url: "https://example.org/' + "a" * 2000 + '"'), "too long"),
    "web ftp": (("web: https://example.org/café", "web: ftp://example.org"), "is not an http(s)://"),
    "email without @": (("email: ann@example.org", "email: ann.example.org"), "is not an email address"),
    "email with a space": (("email: ann@example.org", "email: ann @example.org"), "is not an email address"),
    "email without a dot": (("email: ann@example.org", "email: ann@localhost"), "is not an email address"),
    "email too long": (("email: ann@example.org", "email: " + "a" * 250 + "@example.org"), "too long"),
    "email two @": (("email: ann@example.org", "email: ann@b@example.org"), "is not an email address"),
    # a link copied as the address: mailed "mailto:ann" at example.org, nobody
    "email mailto": (("email: ann@example.org", "email: mailto:ann@example.org"),
                     "is not an email address: it is a mailto: link; write the address alone, ann@example.org"),
    # two addresses in one: refused without a word of what to do instead
    "email two addresses": (("    salutation: Dear Good,\n",
                             '    salutation: Dear Good,\n    email: "ann@example.org;bob@example.org"\n'),
                            "is not an email address: it holds 2 addresses, and a letter is mailed to one address "
                            "only; keep one, ann@example.org"),
    "email two addresses, comma": (("email: ann@example.org", 'email: "ann@example.org, bob@example.org"'),
                                   "it holds 2 addresses, and a letter is mailed to one address only"),
    "blank name": (("    name: Good Person", '    name: "   "'), "must not be empty"),
    "empty name": (("    name: Good Person", '    name: ""'), "must not be empty"),
    "null name": (("    name: Good Person", "    name:"), "must be text"),
    "multi-line name": (("    name: Good Person", '    name: "Good\\nPerson"'), "single line"),
    "control in name": (("    name: Good Person", '    name: "Good\\aPerson"'), "control character (U+0007)"),
    "name a list": (("    name: Good Person", "    name: [Good, Person]"), "must be text"),
    "name too long": (("    name: Good Person", "    name: " + "x" * 301), "too long"),
    "blank address line": (("address: [1 Road, 00123]", 'address: [1 Road, " "]'), "must not be empty"),
    "no address": (("address: [1 Road, 00123]", "address: []"), "at least 1"),
    "salutation missing": (("    salutation: Dear Good,\n", ""), "required field is missing"),
    "blank sender role": (("    role: Clerk", '    role: ""'), "must not be empty"),
    "blank keyword": (("keywords: [one, two]", 'keywords: [one, ""]'), "must not be empty"),
    "title multi-line": (("  title: A batch", '  title: "A\\nbatch"'), "single line"),
    "bad id": (("  - id: good", "  - id: Good Person"), "lower-case letters"),
    "id with a slash": (("  - id: good", "  - id: ../good"), "lower-case letters"),
    "id too long": (("  - id: good", "  - id: " + "a" * 65), "lower-case letters"),
    "id negative": (("  - id: good", "  - id: -1"), "lower-case letters"),
    "id of a file TeX reads": (("  - id: good", "  - id: glyphtounicode"), "is the name of a file TeX reads"),
    "id of babel's file": (("  - id: good", "  - id: babel-welsh"), "is the name of a file TeX reads"),
    "bad part name in body": (("      slot: Shared slot text.", "      Slot Name: Shared slot text."), "a part name"),
    "bad part name in text": (("text: {main: 'Hello[^ref].'}", "text: {Main Part: 'Hello[^ref].'}"), "a part name"),
    "bad part name in omit": (("omit: [slot]", "omit: [Slot!]"), "a part name"),
    "bad reference key": (("  ref: {author", "  bad key!: {author"), "a reference key"),
    "blank body part": (("text: {main: 'Hello[^ref].'}", 'text: {main: " "}'), "must not be empty"),
    "control in body": (("text: {main: 'Hello[^ref].'}", 'text: {main: "Hel\\alo"}'), "control character"),
    "body part too long": (("text: {main: 'Hello[^ref].'}", "text: {main: " + "x" * 20001 + "}"), "too long"),
    "empty paragraph": (("    - main: This is the shared text[^ref].\n      slot: Shared slot text.",
                         "    - main: This is the shared text[^ref].\n    - {}"), "at least 1"),
    "date a number": (("date: 2021-03-04", "date: 86400"), "YYYY-MM-DD"),
    "date in words": (("date: 2021-03-04", "date: 4 March 2021"), "YYYY-MM-DD"),
    "date with a time": (("date: 2021-03-04", "date: 2021-03-04 10:00"), "YYYY-MM-DD"),
    "year no": (("year: 2020", "year: no"), "must be a year"),
    "year a word": (("year: 2020", "year: soon"), "must be a year"),
    "year 3 digits": (("year: 2020", "year: 202"), "must be a year"),
    "fold marks yes": (("  title: A batch", "  title: A batch\n  fold_marks: yes"), "must be true or false"),
    "show name on": (("title: Clerk}", "title: Clerk, show_name: on}"), "must be true or false"),
    "language fr": (("  title: A batch", "  title: A batch\n  language: fr"), "must be 'en', 'cy' or 'cy-en' (got 'fr')"),
    "envelope B4": (("  title: A batch", "  title: A batch\n  envelope: B4"), "must be 'DL', 'C5', 'C4' or 'none' (got 'B4')"),
    "recipient email": (("    salutation: Dear Good,", "    salutation: Dear Good,\n    email: good.example.org"),
                        "is not an email address"),
    "cc blank line": (("    salutation: Dear Good,", '    salutation: Dear Good,\n    cc: [""]'), "must not be empty"),
    "our ref two lines": (("  title: A batch", '  title: A batch\n  our_ref: "A\\nB"'), "single line"),
    "subject blank": (("  title: A batch", '  title: A batch\n  subject: " "'), "must not be empty"),
    "subject too long": (("  title: A batch", "  title: A batch\n  subject: " + "x" * 20001), "too long"),
    "salutation by language": (("    salutation: Dear Good,", "    salutation: {en: Dear Good, fr: Cher}"),
                               "takes the keys en and cy"),
    "unknown key": (("    name: Good Person", "    nme: Good Person"), "unknown key"),
    "unknown top-level key": (("references:", "letters: 1\nreferences:"), "unknown key"),
    "logo outside": (("    role: Clerk", "    role: Clerk\n    logo: /etc/logo.png"), "inside the project folder"),
    "logo up": (("    role: Clerk", "    role: Clerk\n    logo: ../logo.png"), "inside the project folder"),
    "logo not an image": (("    role: Clerk", "    role: Clerk\n    logo: notes.txt"), "PDF, PNG or JPEG"),
    "table not a table": (("recipients:\n" + SAMPLE.split("recipients:\n")[1], "recipients: {from: contacts.ods}\n"),
                          ".xlsx or .csv"),
    "table unknown key": (("recipients:\n" + SAMPLE.split("recipients:\n")[1],
                           "recipients: {from: contacts.csv, colums: {}}\n"), "unknown key"),
}

# What the loader accepts, written as people type it: the schema accepts it too.
ACCEPTED = {
    "phone as digits": ("phone: 02035130477", "phone: 02035130477"),
    "name yes": ("    name: Good Person", "    name: no"),
    "name a number": ("    name: Good Person", "    name: 1e3"),
    "id digits": ("  - id: good", "  - id: 007"),
    "year as text": ("year: 2020", "year: '2020'"),
    "year a range": ("year: 2020", "year: 2019/20"),
    "iri": ('url: "https://example.org/a#b"', 'url: "https://example.org/über?q=é#frag"'),
    "return address false": ("  title: A batch", "  title: A batch\n  return_address: false"),
    "return address text": ("  title: A batch", "  title: A batch\n  return_address: PO Box 1, Town"),
    "fold marks": ("  title: A batch", "  title: A batch\n  fold_marks: FALSE"),
    "salutation in Welsh": ("    salutation: Dear Good,", "    salutation: {en: Dear Good, cy: Annwyl Good}"),
    "mailto": ('url: "https://example.org/a#b"', 'url: "mailto:someone@example.org"'),
    "table": ("recipients:\n" + SAMPLE.split("recipients:\n")[1],
              "recipients: {from: contacts.xlsx, sheet: Contacts, columns: {Full name: name}}\n"),
}


def loader_errors(tmp_path, text: str) -> list[str]:
    from builder.load import LoadError, load

    path = tmp_path / "recipients.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        loaded = load(path)
    except LoadError as exc:
        return [str(p) for p in exc.problems if not p.warning]
    return [str(p) for ps in loaded.rejected.values() for p in ps]


def schema_errors(text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    return [e.message for e in validator.iter_errors(editor_data(text))]


def test_the_sample_passes_both():
    assert schema_errors(SAMPLE) == []


def test_the_sample_passes_the_loader(tmp_path):
    assert loader_errors(tmp_path, SAMPLE) == []


@pytest.mark.parametrize("kind", sorted(SINGLE_FIELD))
def test_every_single_field_rejection_is_in_the_schema(tmp_path, kind):
    (old, new), said = SINGLE_FIELD[kind]
    assert old in SAMPLE, kind
    text = SAMPLE.replace(old, new, 1)
    if kind.startswith("table"):
        # the loader reads the table's settings before the file: no file needed
        pass
    errors = loader_errors(tmp_path, text)
    assert any(said in e for e in errors), errors
    assert schema_errors(text), f"the schema accepts {kind}: {new!r}"


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_what_the_loader_accepts_the_schema_accepts(tmp_path, kind):
    old, new = ACCEPTED[kind]
    assert old in SAMPLE, kind
    text = SAMPLE.replace(old, new, 1)
    assert schema_errors(text) == []
    if not kind.startswith("table"):
        assert loader_errors(tmp_path, text) == []


def test_no_id_can_name_a_file_a_letter_s_compile_reads(tmp_path):
    """A letter's LaTeX is tex/<id>.tex, where pdflatex looks first: the ids
    refused are every .tex file compiling a letter reads besides the letter
    itself, printed and for the web, in English, Welsh and both (a recipient
    called glyphtounicode, or babel-welsh in a Welsh batch, had TeX read that
    letter in place of its own file, and every letter failed)."""
    import shutil
    import subprocess

    from builder.build import build, prepare
    from builder.schema import TEX_READS_BY_NAME, TEX_READS_BY_PREFIX
    from conftest import MINIMAL_LETTER, write_yaml

    welsh = MINIMAL_LETTER.replace("    - main: This is the shared text.",
                                   "    - main: {en: This is the shared text., cy: Dyma'r testun.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    source = write_yaml(tmp_path / "recipients.yaml", welsh + """\
recipients:
  - {id: saesneg, name: A, address: [1 Road], salutation: 'Dear A,'}
  - {id: cymraeg, name: B, address: [2 Ffordd], salutation: 'Annwyl B,', language: cy}
  - {id: y-ddwy, name: C, address: [3 Road], salutation: {cy: 'Annwyl C,', en: 'Dear C,'}, language: cy-en}
""")
    read = set()
    for medium in ("print", "web"):
        assert build(source, tmp_path / "build", medium=medium).ok
        prepared = prepare(source, tmp_path / "build", medium)
        for rid in ("saesneg", "cymraeg", "y-ddwy"):
            folder = tmp_path / medium / rid
            folder.mkdir(parents=True)
            shutil.copy(prepared.layout.tex / f"{rid}.tex", folder / "letter.tex")
            subprocess.run(["pdflatex", "-recorder", "-interaction=batchmode", "-no-shell-escape", "letter.tex"],
                           cwd=folder, env=prepared.env, check=True, stdout=subprocess.DEVNULL)
            read |= {Path(line[len("INPUT "):]).stem for line in (folder / "letter.fls").read_text().splitlines()
                     if line.startswith("INPUT ") and line.endswith(".tex")} - {"letter"}
    assert {"glyphtounicode", "babel-welsh", "babel-british"} <= read, read
    assert all(name in TEX_READS_BY_NAME or name.startswith(TEX_READS_BY_PREFIX) for name in read), read
