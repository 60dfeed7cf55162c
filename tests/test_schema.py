"""The shipped JSON Schema is as strict as the loader: every rule about a
single field that the build enforces, the schema enforces too (checked with
jsonschema, an independent validator), on the data as an editor reads it."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from conftest import ROOT


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
    data = editor_data((ROOT / "recipients.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema())
    data["recipients"][0]["adress"] = data["recipients"][0].pop("address")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())
