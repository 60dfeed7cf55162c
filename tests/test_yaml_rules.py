"""recipients.yaml as people type it: text stays text, bounded, slips stay
local, and messages that say what to change."""
from __future__ import annotations

import resource
import time

import pytest

from builder.load import MAX_ALIAS_NODES, MAX_DEPTH, LoadError, load
from conftest import MINIMAL_LETTER, SAMPLE, write_yaml

RECIPIENTS = """\
recipients:
  - id: first
    name: First Person
    address: [1 Road]
    salutation: Dear First,
  - id: second
    name: Second Person
    address: [2 Road]
    salutation: Dear Second,
  - id: third
    name: Third Person
    address: [3 Road]
    salutation: Dear Third,
"""
BATCH = MINIMAL_LETTER + RECIPIENTS


def problems(loaded_or_path):
    try:
        loaded = load(loaded_or_path)
    except LoadError as exc:
        return None, [str(p) for p in exc.problems]
    return loaded, [str(p) for p in loaded.problems]


# ---- text stays text -----------------------------------------------------------

def test_values_stay_as_typed(tmp_path):
    text = BATCH.replace("    name: Second Person", "    name: yes").replace(
        "address: [2 Road]", "address: [02035130477, 1e3, 0x1F, on, 2020-10-13, +44 20 7946 0000]").replace(
        "    role: Clerk", "    role: Clerk\n    phone: 02035130477").replace("id: third", "id: 007")
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert found == []
    second = loaded.batch.recipients[1]
    assert second.name == "yes"
    assert second.address == ["02035130477", "1e3", "0x1F", "on", "2020-10-13", "+44 20 7946 0000"]
    assert loaded.batch.letter.sender.phone == "02035130477"
    assert loaded.batch.recipients[2].id == "007"


@pytest.mark.parametrize("year, ok", [("2019", True), ("'2019'", True), ("2019/20", True), ("2019a", True),
                                      ("no", False), ("1e3", False), ("twenty", False), ("~", False)])
def test_a_year_is_a_year(tmp_path, year, ok):
    text = MINIMAL_LETTER.replace("shared text.", "shared text[^r].") + f"""\
references:
  r: {{author: Home Office, year: {year}, title: T, url: "https://example.org"}}
""" + RECIPIENTS
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    if ok:
        assert found == [] and loaded.batch.recipients
    else:
        assert loaded is None
        assert any(f"{path}:11:" in m and "field 'references.r.year': must be a year, for example 2019" in m
                   for m in found), found


@pytest.mark.parametrize("date", ["86400", "0", "2020-10-13T10:00:00", "13/10/2020", "2020-1-3", "yes"])
def test_a_date_is_written_yyyy_mm_dd(tmp_path, date):
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("date: 2021-03-04", f"date: {date}"))
    loaded, found = problems(path)
    assert loaded is None
    assert found[0].startswith(f"{path}:2:9: error: field 'letter.date': must be a date written YYYY-MM-DD, "
                               "for example 2020-10-13"), found


def test_merge_keys_explicit_keys_win_and_are_no_duplicates(tmp_path):
    text = BATCH.replace("  - id: first\n", "  - &base\n    id: first\n").replace(
        "  - id: second\n    name: Second Person\n    address: [2 Road]\n",
        "  - <<: *base\n    id: second\n    name: Second Person\n")
    text = text.replace("  - id: third\n    name: Third Person\n",
                        "  - id: third\n    <<: [*base]\n    name: Third Person\n")
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert found == []
    first, second, third = loaded.batch.recipients
    assert (second.id, second.name, second.address, second.salutation) == (
        "second", "Second Person", ["1 Road"], "Dear Second,")
    assert (third.id, third.address, third.salutation) == ("third", ["3 Road"], "Dear Third,")


def test_a_problem_in_a_merged_value_points_at_its_line(tmp_path):
    text = BATCH.replace("  - id: first\n", "  - &base\n    id: first\n    adress: x\n").replace(
        "  - id: second\n", "  - <<: *base\n    id: second\n")
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert any(":13:5: error: recipient 'second', field 'adress': unknown key" in m for m in found), found


# ---- bounded -------------------------------------------------------------------

def test_alias_bomb_fails_fast_with_its_line(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        name, prev = chr(97 + i), chr(96 + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    path = write_yaml(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    loaded, found = problems(path)
    assert loaded is None
    assert len(found) == 1 and found[0].startswith(f"{path}:6:"), found
    assert f"repeat more than {MAX_ALIAS_NODES:,} values (the limit)" in found[0]
    # Not a timing test: the CPU used is bounded by the limit, not by 9**9.
    assert time.process_time() - started < 30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


@pytest.mark.parametrize("nesting", ["flow", "block"])
def test_deep_nesting_gives_file_line_and_limit(tmp_path, nesting):
    if nesting == "flow":
        text = "letter: " + "[" * 20000 + "]" * 20000 + "\n"
    else:
        text = "letter:\n" + "- " * 20000 + "x\n"
    path = write_yaml(tmp_path / "deep.yaml", text)
    loaded, found = problems(path)
    assert loaded is None and len(found) == 1
    assert found[0].startswith(f"{path}:") and f"nested more than {MAX_DEPTH} levels deep" in found[0]
    assert "recursion" not in found[0]


@pytest.mark.parametrize("field, value, limit", [("name", "x" * 301, 300), ("salutation", "Dear " + "x" * 400, 300)])
def test_text_has_a_length_limit(tmp_path, field, value, limit):
    old = {"name": "    name: Second Person", "salutation": "    salutation: Dear Second,"}[field]
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace(old, f"    {field}: {value}"))
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    # (a line has no other field to run on into: it said "or split it over more fields")
    assert any(f"recipient 'second', field '{field}': is too long: {len(value)} characters; "
               f"at most {limit} (shorten it)" in m for m in found), found


def test_a_body_part_has_a_length_limit(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("This is the shared text.", "word " * 5000))
    loaded, found = problems(path)
    assert loaded is None
    assert any("field 'letter.body[0].main': is too long: 24999 characters; at most 20000 (shorten it, or "
               "split it into more body parts)" in m for m in found), found


# ---- a slip stays local ----------------------------------------------------------

SLIPS = {
    "colon": ("    salutation: Dear Second,", "    salutation: Dear Second: hello,", 18, 28,
              "recipient 'second': this text contains ': ', which YAML reads as a new key; put the whole "
              "value in quotes: salutation: \"Dear Second: hello,\""),
    "indent": ("    address: [2 Road]", "     address: [2 Road]", 17, 6,
               "recipient 'second': this line is indented differently from the lines above it"),
    "less indent": ("    address: [2 Road]", "   address: [2 Road]", 17, 4,
                    "recipient 'second': this line is indented differently from the lines above it"),
    "unclosed quote": ("    salutation: Dear Second,", '    salutation: "Dear Second,', 18, 17,
                       "recipient 'second': the quote \" opened here is never closed; add the closing \" "
                       "at the end of the value"),
    # an apostrophe inside single quotes (a quote inside double ones) ends the value there:
    # it was "this line is indented differently", at a line indented right
    "apostrophe in single quotes": ("    salutation: Dear Second,", "    salutation: 'Dear O'Brien,'", 18, 17,
                                    "recipient 'second': the value in quotes here ends at the ' in column 24, so "
                                    "the text after it cannot follow; in single quotes an apostrophe is written "
                                    "twice: salutation: 'Dear O''Brien,'"),
    "quote in double quotes": ("    salutation: Dear Second,", '    salutation: "Dear "Ann","  # sic', 18, 17,
                               "recipient 'second': the value in quotes here ends at the \" in column 23, so the "
                               "text after it cannot follow; in double quotes a quote inside the value is "
                               'written \\": salutation: "Dear \\"Ann\\","'),
    "tab": ("    address: [2 Road]", "\taddress: [2 Road]", 17, 1,
            "recipient 'second': a tab character: YAML indents with spaces only"),
    # after a [list] libyaml names no character: it read "cannot start with 'this character'"
    "tab after a list": ("    salutation: Dear Second,", "\tsalutation: Dear Second,", 18, 1,
                         "recipient 'second': a tab character: YAML indents with spaces only"),
    # it said "this line is indented differently" at the line below, which is not what is wrong
    "no colon after the id": ("  - id: second", "  - id second", 15, 5,
                              "recipient 'recipients[1]': YAML expects 'key: value' here: add the ':' after "
                              "'id': - id: second"),
    # an entry's dash off the list's column: it was told as a slip of the recipient above
    # ('first', whose good letter was not built), and 'second' was named nowhere
    "entry indented a space more": ("  - id: second", "   - id: second", 15, 4,
                                    "recipient 'second': this line is indented differently"),
    "entry indented a space less": ("  - id: second", " - id: second", 15, 2,
                                    "recipient 'second': this line is indented differently"),
    "bracket": ("    address: [2 Road]", "    address: [2 Road", 17, 14,
                "recipient 'second': the [ opened here is not closed"),
    "star": ("    name: Second Person", "    name: *Second* Person", 16, 11,
             "recipient 'second': a value that starts with '*' or '&' is read as a YAML alias or anchor"),
}


def test_a_top_level_key_without_its_colon_is_told_at_that_key(tmp_path):
    """`letter` without its ':' was "this line is indented differently" at the line below it."""
    assert BATCH.startswith("letter:\n")
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("letter:\n", "letter\n", 1))
    assert problems(path)[1] == [f"{path}:1:1: error: YAML expects 'key: value' here: add the ':' after "
                                 "'letter': letter:"]


@pytest.mark.parametrize("kind", sorted(SLIPS))
def test_a_slip_in_one_recipient_stays_local(tmp_path, kind):
    old, new, line, column, message = SLIPS[kind]
    assert old in BATCH
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace(old, new))
    loaded, found = problems(path)
    assert loaded is not None, found
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    (index,) = loaded.rejected
    assert index == 1
    (problem,) = loaded.rejected[1]
    assert (problem.line, problem.column) == (line, column), str(problem)
    assert str(problem).startswith(f"{path}:{line}:{column}: error: {message}"), str(problem)


def test_several_slips_each_stay_local(tmp_path):
    text = BATCH.replace("    salutation: Dear First,", "    salutation: Dear First: hi,").replace(
        "    salutation: Dear Third,", '    salutation: "Dear Third,')
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert [r.id for r in loaded.batch.recipients] == ["second"]
    assert sorted(loaded.rejected) == [0, 2]


def test_a_slip_everywhere_or_in_the_shared_part_stops(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("    role: Clerk", "    role: Clerk: Head"))
    loaded, found = problems(path)
    assert loaded is None
    assert found == [f"{path}:5:16: error: this text contains ': ', which YAML reads as a new key; put the "
                     'whole value in quotes: role: "Clerk: Head"']
    path = write_yaml(tmp_path / "s.yaml", BATCH.replace("Dear First,", "Dear: First,")
                      .replace("Dear Second,", "Dear: Second,").replace("Dear Third,", "Dear: Third,"))
    loaded, found = problems(path)
    assert loaded is None and len(found) == 3 and all("recipient '" in m for m in found)



def test_a_quote_left_open_is_told_where_it_opens_though_a_later_quote_closes_it(tmp_path):
    """A quote left open runs on to the next quoted value, whose opening quote
    closes it: libyaml stumbles there. That was "indented differently" at a
    line that is right (in the shared part: against the first recipient, and the
    quote's own message after it), and a recipient's open quote made the next
    recipient's quoted salutation fail too: one message now, at the quote."""
    quoted = BATCH.replace("    salutation: Dear Second,", '    salutation: "Dear Second,"')
    path = write_yaml(tmp_path / "r.yaml", quoted.replace("    role: Clerk", '    role: "Clerk'))
    loaded, found = problems(path)
    assert loaded is None
    assert found == [f'{path}:5:11: error: the quote " opened here is never closed (it runs on to line 18); '
                     'add the closing " at the end of the value']
    path = write_yaml(tmp_path / "s.yaml", quoted.replace("    salutation: Dear First,", '    salutation: "Dear First,'))
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["second", "third"]
    assert found == [f"{path}:14:17: error: recipient 'first': the quote \" opened here is never closed (it runs on "
                     'to line 18); add the closing " at the end of the value']
    # a value in quotes over two lines, closed, then text after it: no quote was left open
    path = write_yaml(tmp_path / "t.yaml", BATCH.replace("    salutation: Dear First,",
                                                         '    salutation: "Dear\n      First," extra'))
    loaded, found = problems(path)
    assert len(found) == 1 and "never closed" not in found[0] and "recipient 'first'" in found[0], found

def test_an_alias_to_an_entry_that_failed_is_reported_on_its_user(tmp_path):
    text = BATCH.replace("  - id: first\n", "  - &base\n    id: first\n").replace(
        "    salutation: Dear First,", "    salutation: Dear First: hi,").replace(
        "  - id: second\n", "  - <<: *base\n    id: second\n")
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert [r.id for r in loaded.batch.recipients] == ["third"]
    assert any("recipient 'second': *base refers to '&base', which is not defined above" in m for m in found)


# ---- messages a secretary can act on -------------------------------------------------

def test_a_comment_that_cuts_a_value_is_pointed_out(tmp_path):
    text = BATCH.replace("    salutation: Dear Second,", "    salutation: Dear Second, #thanks").replace(
        "    salutation: Dear Third,", "    salutation: Dear Third,  # a comment on purpose")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert loaded.batch.recipients[1].salutation == "Dear Second,"
    assert found == [f"{path}:18:17: warning: recipient 'second', field 'salutation': the text '#thanks' "
                     "(line 18) was left out: after a space, '#' starts a YAML comment; to keep it, put the "
                     'whole value in quotes: salutation: "Dear Second, #thanks"']
    # quoted as typed: a backslash once (in the value to write, YAML's double quotes want two),
    # an apostrophe inside the same quotes; repr() showed '#C:\\Temp' and "#Jo's"
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("    salutation: Dear Second,",
                                                         "    salutation: Dear Second, #Jo's C:\\Temp"))
    loaded, found = problems(path)
    assert found == [f"{path}:18:17: warning: recipient 'second', field 'salutation': the text '#Jo's C:\\Temp' "
                     "(line 18) was left out: after a space, '#' starts a YAML comment; to keep it, put the "
                     'whole value in quotes: salutation: "Dear Second, #Jo\'s C:\\\\Temp"'], found


def test_a_value_that_starts_with_an_exclamation_mark_is_not_cut_short(tmp_path):
    """'!' starts a YAML tag, which was dropped without a word: `salutation: !Hola amigo,`
    printed "amigo,". That recipient is now refused with the quoted value to write;
    a tag YAML defines for text (!!str) is kept as it is."""
    text = BATCH.replace("    salutation: Dear Second,", "    salutation: !Hola amigo,").replace(
        "    name: Third Person", "    name: !!str 0x10")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    assert loaded.batch.recipients[1].name == "0x10"
    assert found == [f"{path}:18:17: error: recipient 'second', field 'salutation': '!Hola' is read as a "
                     "YAML tag and left out, so this would print 'amigo,'; to keep it, put the whole value "
                     'in quotes: salutation: "!Hola amigo,"']


def test_a_tag_yaml_cannot_read_is_told_with_the_value_to_write(tmp_path):
    """`!Hola\\amigo,` is no tag YAML can read: the message was libyaml's ("while scanning a
    tag did not find expected whitespace or line break"), with no fix."""
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("    salutation: Dear Second,",
                                                          "    salutation: !Hola\\amigo,"))
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    assert found == [f"{path}:18:17: error: recipient 'second': a value that starts with '!' is read as a YAML "
                     'tag; to keep the \'!\', put the whole value in quotes: "!Hola\\\\amigo,"']


def test_a_word_that_starts_with_an_ampersand_is_not_left_out_unsaid(tmp_path):
    """'&' starts a YAML anchor, dropped from the text: `name: &Co Partners` printed
    "Partners" without a word. An anchor on text that no *alias repeats can only have
    been typed as text: a warning says so, with the quoted value; one repeated is YAML's."""
    text = BATCH.replace("    salutation: Dear Second,", "    salutation: &Co Dear Partners,").replace(
        "    name: Third Person", "    name: &same Third Person\n    role: *same")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "second", "third"]
    assert loaded.batch.recipients[2].role == "Third Person"
    assert found == [f"{path}:18:17: warning: recipient 'second', field 'salutation': '&Co' is read as a "
                     "YAML anchor and left out, so this prints 'Dear Partners,'; if it is part of the text, "
                     'put the whole value in quotes: "&Co Dear Partners,"']


def test_two_words_that_start_with_the_same_ampersand_are_each_said(tmp_path):
    """The same '&Co' typed as text in two places: the second anchor of the name replaced the
    first on the list of anchors no alias repeats, and the first value lost its word unsaid."""
    text = BATCH.replace("    salutation: Dear Second,", "    salutation: &Co Dear Partners,").replace(
        "    name: Third Person", "    name: &Co Third Person")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "second", "third"]
    assert [line.split(": warning: ")[1].split(":")[0] for line in found] == [
        "recipient 'second', field 'salutation'", "recipient 'third', field 'name'"], found


def test_a_recipient_without_its_dash_is_one_message_not_one_per_key(tmp_path):
    # every key of the third entry was a "duplicate key" of the second's, one message each
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("  - id: third", "    id: third"))
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first"]
    assert found == [f"{path}:19:5: error: recipient 'third', field 'id': duplicate key (first given on line 15): "
                     "a second recipient's keys have joined this entry; start that recipient with '- ' "
                     "(- id: third)"]


def test_parts_not_indented_under_text_are_one_message_each_saying_so(tmp_path):
    # it was "field 'text': must be a mapping (got nothing)" and "field 'main': unknown key;
    # expected one of: id, name, ...", neither saying that main wants indenting under text:
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace(
        "    salutation: Dear Second,", "    salutation: Dear Second,\n    text:\n    main: Own words."))
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    assert found == [f"{path}:20:5: error: recipient 'second', field 'main': unknown key; did you mean 'marking'? Or, if it belongs under "
                     "'text:', indent it further than 'text:'"]


def test_an_item_split_by_a_comma_inside_brackets_is_pointed_out(tmp_path):
    # [Form (A4, 2 pages), Map] printed "Form (A4" and "2 pages)" on two lines, without a word
    text = BATCH.replace("    address: [2 Road]", "    address: [2 Road, Caernarfon (Gwynedd, Wales), LL55 1AA]"
                         ).replace("    address: [3 Road]", "    address: [3 Road (rear), Town (North)]")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert loaded.batch.recipients[1].address == ["2 Road", "Caernarfon (Gwynedd", "Wales)", "LL55 1AA"]
    assert found == [f"{path}:17:23: warning: recipient 'second', field 'address[1]': 'Caernarfon (Gwynedd' and "
                     "'Wales)' are two items: in [ ] a comma parts items, even inside brackets; to keep them one, "
                     'put it in quotes: "Caernarfon (Gwynedd, Wales)"']


def test_a_text_split_by_a_comma_inside_braces_is_one_error_with_the_quoted_text(tmp_path):
    # {main: A sentence, revised.} read "revised." as a key with no value: two errors (a part
    # name; not a text) at two columns, build and status each showing another, neither saying
    # to quote the text
    text = BATCH.replace("    salutation: Dear Second,", "    salutation: Dear Second,\n"
                         "    text: {main: A sensitive sentence, revised.}").replace(
        "    salutation: Dear Third,", "    salutation: Dear Third,\n    text: {main: 'Kept, whole.'}")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    assert loaded.batch.recipients[1].text == {"main": "Kept, whole."}
    assert found == [f"{path}:19:40: error: recipient 'second', field 'text.revised.': 'revised.' has no ':' after "
                     "it, so YAML read it as a key of its own: in { } a comma parts items, even inside a text; to "
                     'keep a comma in a text, put the text in quotes: main: "A sensitive sentence, revised."']


def test_a_text_split_by_two_commas_inside_braces_is_one_error_naming_the_whole_text(tmp_path):
    # {main: One, two, three.}: two errors, one at each stray key, each naming a text to write
    # that was none ("One, two", then "One, three.")
    text = BATCH.replace("    salutation: Dear Second,", "    salutation: Dear Second,\n"
                         "    text: {main: One, two, three.}")
    path = write_yaml(tmp_path / "r.yaml", text)
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["first", "third"]
    assert found == [f"{path}:19:23: error: recipient 'second', field 'text.two': 'two' has no ':' after "
                     "it, so YAML read it as a key of its own: in { } a comma parts items, even inside a text; to "
                     'keep a comma in a text, put the text in quotes: main: "One, two, three."']


def test_windows_1252_gets_line_column_and_the_fix(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(BATCH.replace("Dear Second,", "Dear Second’s,").encode("cp1252"))
    loaded, found = problems(path)
    assert found == [f"{path}:18:28: error: the file is not UTF-8 text: byte 0x92 here (in Windows-1252, "
                     "'’'). Excel and Notepad may save Windows-1252; save the file as UTF-8"]


@pytest.mark.parametrize("name, head, kind", [
    ("logo.png", b"\x89PNG\r\n\x1a\n", "a PNG image"),
    ("letter.pdf", b"%PDF-1.5\n%\xd0\xd4\xc5\xd8\n", "a PDF"),
    ("people.yaml", b"PK\x03\x04\x14\x00", "a zip file (an .xlsx, .docx or .ods is one)"),
])
def test_a_file_that_is_no_text_is_named_as_what_it_is(tmp_path, name, head, kind):
    """`-r images/logo.png` said "not UTF-8 text: byte 0x89 here ... save the file as UTF-8"."""
    path = tmp_path / name
    path.write_bytes(head + bytes(range(256)))
    assert problems(path)[1] == [f"{path}: error: the file is {kind}, not text: give the batch's YAML file "
                                 "(.yaml), whose `recipients: from:` may name a spreadsheet"]


@pytest.mark.parametrize("char, message", [
    ("\x00", "the file holds a NUL byte: it is not a text file, or was saved as UTF-16; save the file as UTF-8"),
    ("\x07", "a control character (U+0007) that cannot be printed; delete it"),
    ("\x1b", "a control character (U+001B) that cannot be printed; delete it"),
    ("\x9f", "a control character (U+009F) that cannot be printed; delete it"),
    ("\ufffe", "a control character (U+FFFE) that cannot be printed; delete it"),
    ("\u2028", "a line separator (U+2028), which YAML reads as a line break; replace it with an ordinary line "
                "break or a space"),
    ("\x85", "a next-line character (U+0085), which YAML reads as a line break"),
])
def test_control_characters_get_line_and_column(tmp_path, char, message):
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("Dear Second,", f"Dear{char} Second,"))
    loaded, found = problems(path)
    assert loaded is None and len(found) == 1
    assert found[0].startswith(f"{path}:18:21: error: {message}"), found


def test_utf8_with_a_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BATCH.encode())
    assert problems(path)[1] == []


@pytest.mark.parametrize("char, words", [
    ("\u200d", "zero-width joiner, U+200D"), ("\u200b", "zero-width space, U+200B"),
    ("\u00ad", "soft hyphen, U+00AD"), ("\u200c", "zero-width non-joiner, U+200C"),
    ("\ufeff", "byte order mark (zero-width no-break space), U+FEFF"), ("\u202e", "right-to-left override, U+202E"),
    ("\u2060", "word joiner, U+2060"),
])
def test_invisible_characters_are_named_in_words_and_print_as_nothing(tmp_path, char, words):
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("Second Person", f"Sec{char}ond Person")
                      .replace("id: third", f"id: th{char}ird"))
    loaded, found = problems(path)
    assert loaded.batch.recipients[1].name == "Second Person"
    assert loaded.batch.recipients[2].id == "third"
    assert f"{path}:16:11: warning: recipient 'second', field 'name': contains an invisible character: " \
           f"{words}; it prints as nothing and was left out" in found, found



def test_the_written_out_invisible_ranges_are_every_format_character_this_python_knows():
    import unicodedata

    from builder.load import INVISIBLE_RANGES, _INVISIBLE
    expected = {c for c in range(0x80, 0x110000)
                if unicodedata.category(chr(c)) == "Cf" or 0xFE00 <= c <= 0xFE0F
                or c in (0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0)}
    written = {c for first, last in INVISIBLE_RANGES for c in range(first, last + 1)}
    assert written == expected, sorted(written ^ expected)
    assert {c for c in range(0x80, 0x110000) if _INVISIBLE.fullmatch(chr(c))} == expected

def test_unprintable_characters_are_named_in_words(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", BATCH.replace("Second Person", "Second 😀 Ωmega"))
    loaded, found = problems(path)
    assert any("field 'name': contains characters the letter's fonts cannot print: '😀' (grinning face, "
               "U+1F600), 'Ω' (greek capital letter omega, U+03A9); delete or replace them" in m for m in found), found


def test_the_bundled_batch_still_loads_the_same():
    loaded = load(SAMPLE)
    assert loaded.problems == []
    assert loaded.batch.letter.sender.phone == "+44 (0) 20 3513 0477"


# ---- on a real build ---------------------------------------------------------------

def link_targets(pdf) -> list[str]:
    from pypdf import PdfReader

    targets = []
    for page in PdfReader(pdf).pages:
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A")
            if action and "/URI" in action:
                targets.append(str(action["/URI"]))
    return targets


def test_typed_values_print_as_typed_and_a_slip_leaves_the_others_built(tmp_path):
    from builder.build import build
    from conftest import pdf_text

    text = (MINIMAL_LETTER.replace("    role: Clerk", "    role: Clerk\n    phone: 02035130477\n"
                                   "    web: https://bücher.example/straße")
            .replace("This is the shared text.", "Shared text… as typed[^r][^s].")
            + "references:\n  r: {author: Home Office, year: 2019, title: Café report, "
              "url: \"https://example.org/café\"}\n"
              "  s: {author: Home Office, year: 2020, title: Second, url: \"https://example.org/2\"}\n" + RECIPIENTS)
    text = text.replace("    name: First Person", "    name: yes").replace(
        "    salutation: Dear Second,", "    salutation: Dear Second: hello,").replace(
        "    salutation: Dear Third,", "    salutation: Dear Third, #1")
    path = write_yaml(tmp_path / "recipients.yaml", text)
    report = build(path, tmp_path / "build")
    assert {o.recipient: o.status for o in report.outcomes} == {
        "first": "built", "second": "invalid", "third": "built"}
    assert "recipient 'second': this text contains ': '" in report.failed[0].message
    assert any("the text '#1' (line 27) was left out" in str(w) for w in report.warnings)
    first = next(o.pdf for o in report.outcomes if o.recipient == "first")
    words = pdf_text(first)
    # the footnote's URL too (read byte by byte, it printed "cafÃľ"), and an ellipsis as Word
    # types it (it was refused; T1 sets it as three full stops, tagged as the one character)
    for typed in ("02035130477", "bücher.example/straße", "yes", "Home Office (2019) Café report",
                  "example.org/café", "Shared text… as typed1,2."):  # two marks side by side: not "12"
        assert typed in words, (typed, words)
    assert sorted(set(link_targets(first))) == [
        "https://example.org/2", "https://example.org/caf%C3%A9", "https://xn--bcher-kva.example/stra%C3%9Fe"]


def test_true_and_false_are_flags_and_yes_no_stay_text(tmp_path):
    text = BATCH.replace("  date: 2021-03-04", "  date: 2021-03-04\n  return_address: false\n  fold_marks: FALSE")
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert found == [] and loaded.batch.letter.return_address is False and loaded.batch.letter.fold_marks is False
    text = BATCH.replace("  date: 2021-03-04", "  date: 2021-03-04\n  return_address: no\n  fold_marks: yes")
    path = write_yaml(tmp_path / "s.yaml", text)
    loaded, found = problems(path)
    assert found == [f"{path}:4:15: error: field 'letter.fold_marks': must be true or false (got 'yes')"]
    # a field of two kinds (true/false, or a line) left empty: one message, in the batch's words
    text = BATCH.replace("  date: 2021-03-04", "  date: 2021-03-04\n  return_address:")
    path = write_yaml(tmp_path / "t.yaml", text)
    loaded, found = problems(path)
    assert found == [f"{path}:3:18: error: field 'letter.return_address': "
                     "must be true or false, or must be text (got nothing)"], found


def test_null_as_a_word_is_nothing_and_the_message_says_how_to_write_the_word(tmp_path):
    """YAML 1.2 reads null, Null and NULL as nothing, as ~ and an empty value: a person
    called Null got "must be text (got nothing)", which did not say why."""
    text = BATCH.replace("  date: 2021-03-04", "  date: 2021-03-04\n  title: NULL")
    loaded, found = problems(write_yaml(tmp_path / "r.yaml", text))
    assert found == [] and loaded.batch.letter.title is None  # an optional field: nothing
    path = write_yaml(tmp_path / "s.yaml", text.replace("    name: Second Person", "    name: Null"))
    _, found = problems(path)
    assert found == [f"{path}:17:11: error: recipient 'second', field 'name': must be text (got Null, which "
                     'YAML reads as nothing; for the word, write it in quotes: "Null")'], found
    path = write_yaml(tmp_path / "t.yaml", text.replace("    name: Second Person", "    name:"))
    _, found = problems(path)
    assert found == [f"{path}:17:10: error: recipient 'second', field 'name': must be text (got nothing)"], found


# ---- the checklist, on a copy of the sample batch ---------------------------------

def sample_with(tmp_path, old: str, new: str, encoding: str = "utf-8"):
    text = SAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "recipients.yaml"
    path.write_bytes(text.replace(old, new, 1).encode(encoding))
    return path


def test_on_the_sample_text_stays_text_and_bad_values_are_refused(tmp_path):
    loaded, found = problems(sample_with(tmp_path, "phone: +44 (0) 20 3513 0477", "phone: 02035130477"))
    assert found == [] and loaded.batch.letter.sender.phone == "02035130477"
    path = sample_with(tmp_path, "    year: 2019", "    year: no")
    assert any(f"{path}:95:11: error: field 'references.vru-funding.year': must be a year, for example 2019"
               in m for m in problems(path)[1])
    path = sample_with(tmp_path, "  date: 2020-10-13", "  date: 86400")
    assert problems(path)[1][0].startswith(f"{path}:9:9: error: field 'letter.date': must be a date written "
                                           "YYYY-MM-DD")


def test_on_the_sample_a_colon_slip_leaves_the_other_four(tmp_path):
    path = sample_with(tmp_path, "salutation: Dear Katy,", "salutation: Dear Katy: hello,")
    loaded, found = problems(path)
    assert [r.id for r in loaded.batch.recipients] == ["avon-and-somerset", "london", "south-wales", "essex"]
    assert found == [f"{path}:150:26: error: recipient 'sussex': this text contains ': ', which YAML reads as a "
                     'new key; put the whole value in quotes: salutation: "Dear Katy: hello,"']


def test_on_the_sample_windows_1252_and_a_cut_comment(tmp_path):
    path = sample_with(tmp_path, "salutation: Dear Katy,", "salutation: Dear Katy’s team,", encoding="cp1252")
    assert problems(path)[1] == [f"{path}:150:26: error: the file is not UTF-8 text: byte 0x92 here (in "
                                 "Windows-1252, '’'). Excel and Notepad may save Windows-1252; save the file as UTF-8"]
    path = sample_with(tmp_path, "salutation: Dear Katy,", "salutation: Dear Katy, #thanks")
    loaded, found = problems(path)
    assert loaded.batch.recipients[1].salutation == "Dear Katy,"
    assert any("recipient 'sussex', field 'salutation': the text '#thanks' (line 150) was left out" in m
               for m in found)


def test_on_the_sample_the_shipped_schema_refuses_an_ftp_reference():
    import json

    import jsonschema
    import yaml

    schema = json.loads((SAMPLE.parent.parent.parent / "recipients.schema.json").read_text(encoding="utf-8"))
    text = SAMPLE.read_text(encoding="utf-8").replace(
        "url: https://www.gov.uk/government/news/funding-for-violence-reduction-units-announced",
        "url: ftp://www.gov.uk/funding")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text.replace("date: 2020-10-13", "date: '2020-10-13'")), schema)


def test_mangled_files_give_problems_never_a_traceback(tmp_path):
    """The sample with random slips typed into it (a seeded, repeatable sample
    of what a hurried edit does): load() returns or raises LoadError, nothing else."""
    import random

    lines = SAMPLE.read_text(encoding="utf-8").split("\n")
    slips = [":", ": ", " #", "#", "[", "]", "{", "}", "'", '"', "\t", "  ", "- ", "&a ", "*a", "<<: *a", "!!int ",
             "---", "...", "?", "|", ">", "%YAML 1.2", "\\", "@", "`", "\u200d", "~", "\r", ",", "*", "&"]
    rng = random.Random(10)
    path = tmp_path / "recipients.yaml"
    for _ in range(300):
        mangled = lines[:]
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(mangled))
            at = rng.randint(0, len(mangled[i]))
            mangled[i] = mangled[i][:at] + rng.choice(slips) + mangled[i][at:]
        path.write_text("\n".join(mangled), encoding="utf-8")
        try:
            loaded = load(path)
        except LoadError as exc:
            assert exc.problems and all(str(p).startswith(str(path)) for p in exc.problems)
        else:
            assert loaded.batch.recipients
