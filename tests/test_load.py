"""Validation: one clear message per problem, naming file, line, recipient and field."""
from __future__ import annotations

import pytest

from builder.load import LoadError, load
from builder import markup
from conftest import MINIMAL_LETTER, ROOT, write_yaml

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
    loaded = load(ROOT / "recipients.yaml")
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
    assert f"{path}:17:5: error: recipient 'typo', field 'adress': unknown key; did you mean 'address'?" in text
    assert [r.id for r in loaded.batch.recipients] == ["good"]


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


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", "letter: [unclosed\nrecipients: x\n")
    (message,) = messages(path)
    assert message.startswith(f"{path}:2:") and "YAML syntax error" in message


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


def test_shipped_json_schema_is_current():
    from builder.schema import SCHEMA_FILE, json_schema_text
    shipped = (ROOT / SCHEMA_FILE).read_text(encoding="utf-8")
    assert shipped == json_schema_text(), "run `invoke schema` and commit recipients.schema.json"


def test_shipped_json_schema_accepts_the_bundled_batch():
    import json

    import jsonschema
    import yaml

    from builder.load import _Loader  # dates stay text, as an editor's YAML 1.2 sees them

    schema = json.loads((ROOT / "recipients.schema.json").read_text(encoding="utf-8"))
    data = yaml.load((ROOT / "recipients.yaml").read_text(encoding="utf-8"), Loader=_Loader)
    jsonschema.validate(data, schema)
    data["recipients"][0]["adress"] = data["recipients"][0].pop("address")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
