"""Recipients from a spreadsheet: a real .xlsx written by openpyxl, and CSV
files byte for byte as Excel and LibreOffice save them."""
from __future__ import annotations

import datetime as dt
import gc

import openpyxl
import pytest

from builder.build import build
from builder.load import LoadError, load
from builder.table import make_id
from conftest import MINIMAL_LETTER, ROOT, pdf_text, write_yaml

LETTER = MINIMAL_LETTER.replace("    - main: This is the shared text.",
                                "    - main: This is the shared text.\n      note: ~")

HEADERS = ["Name", "Role", "Address 1", "Address 2", "Address 3", "Salutation", "text.note", "Phone"]
# (value, number format) per cell, as an office types them
ROWS = [
    [("Dr Siân O'Brien", None), ("Chief Executive", None), ("1 High Street", None),
     (2035130477, "00000000000"), (dt.datetime(2021, 3, 14), "d mmmm yyyy"), ("Dear Dr O'Brien,", None),
     ("Thank you for your letter of 14/03/2021.", None), (2035130477, "00000000000")],
    [("Jo Bloggs", None), (None, None), ("2 Low Road", None), (12345, "General"), ("Town", None),
     ("Dear Jo,", None), ("We met on the pier.", None), (None, None)],
    [("Jo Bloggs", None), (None, None), ("3 Mid Lane", None), (None, None), (None, None),
     ("Dear Jo,", None), (None, None), (None, None)],  # no text.note: an error on row 4
    [("Ann Other", None), (None, None), ("4 Side Street", None), (0.5, "0%"), (None, None),
     ("Dear Ann,", None), ("Short note.", None), (None, None)],
]
SEEN = [  # the same rows as the spreadsheet shows them, for the CSV files
    ["Dr Siân O'Brien", "Chief Executive", "1 High Street", "02035130477", "14 March 2021", "Dear Dr O'Brien,",
     "Thank you for your letter of 14/03/2021.", "02035130477"],
    ["Jo Bloggs", "", "2 Low Road", "12345", "Town", "Dear Jo,", "We met on the pier.", ""],
    ["Jo Bloggs", "", "3 Mid Lane", "", "", "Dear Jo,", "", ""],
    ["Ann Other", "", "4 Side Street", "50%", "", "Dear Ann,", "Short note.", ""],
]


def write_xlsx(path, headers=HEADERS, rows=ROWS, sheet="Contacts"):
    book = openpyxl.Workbook()
    sheet_ = book.active
    sheet_.title = sheet
    sheet_.append(headers)
    for r, row in enumerate(rows, start=2):
        for c, (value, style) in enumerate(row, start=1):
            cell = sheet_.cell(row=r, column=c, value=value)
            if style:
                cell.number_format = style
    book.save(path)
    return path


def csv_bytes(rows, *, bom: bool, newline: str, quote_all: bool = False) -> bytes:
    def field(value: str) -> str:
        if quote_all or any(c in value for c in ',"\n\r'):
            return '"' + value.replace('"', '""') + '"'
        return value
    text = "".join(",".join(field(v) for v in row) + newline for row in rows)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def batch(tmp_path, source: str) -> str:
    return write_yaml(tmp_path / "recipients.yaml", LETTER + f"recipients: {{from: {source}}}\n")


def test_make_id():
    assert make_id("Dr Siân O'Brien") == "dr-sian-o-brien"
    assert make_id("  ") == ""
    assert len(make_id("x" * 100)) == 64
    # letters that are no letter plus an accent were dropped: ucja-zak-wroblewska.pdf
    assert make_id("Łucja Żak-Wróblewska") == "lucja-zak-wroblewska"
    assert make_id("Øystein Ærø Straße") == "oystein-aero-strasse"
    # a name in capitals writes ß as its capital, ẞ: "GROẞ Anna" was gro-anna
    assert make_id("Anna GROẞ") == make_id("Anna Groß") == "anna-gross"
    assert make_id("Đorđe Þórsdóttir") == "dorde-thorsdottir"



def test_ids_made_from_long_names_that_share_64_characters_stay_64_and_apart(tmp_path):
    """Ids are at most 64 characters: two names alike in their first 64 get the
    second's "-2" inside the 64 (not 66, which the id's own rule refuses), and
    the cut never leaves a hyphen at the end."""
    shared = "Alexandra " + "Bartholomew-" * 5
    (tmp_path / "c.csv").write_text("name,address,salutation,text.note\n"
                                    f"{shared}Smith Jones,1 Road,Dear A,x\n{shared}Smith Brown,2 Road,Dear B,y\n"
                                    f"Alexandra {'x' * 53} Y,3 Road,Dear C,z\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert loaded.problems == []
    first, second, third = (r.id for r in loaded.batch.recipients)
    assert len(first) == 64 and first.startswith("alexandra-bartholomew-")
    assert second == first[:62].rstrip("-") + "-2" and len(second) <= 64
    assert third == "alexandra-" + "x" * 53  # 64th character a hyphen: cut off

def test_an_id_made_from_a_name_never_names_a_file_tex_reads(tmp_path):
    """A row named "Babel Welsh" (no id column) was given the id babel-welsh,
    which is refused (TeX reads babel-welsh.tex), with "choose another id" for a
    file that has no ids to choose: the id made is another."""
    (tmp_path / "people.csv").write_text("Name,Address 1,Salutation,text.note\nBabel Welsh,1 Road,Dear B,Hello\n"
                                         "Glyphtounicode,2 Road,Dear G,Hello\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "people.csv"))
    assert [r.id for r in loaded.batch.recipients] == ["r-babel-welsh", "r-glyphtounicode"] and not loaded.rejected


def check_loaded(loaded, file):
    recipients = loaded.batch.recipients
    assert [r.id for r in recipients] == ["dr-sian-o-brien", "jo-bloggs", "ann-other"]
    first = recipients[0]
    assert first.address == ["1 High Street", "02035130477", "14 March 2021"]
    assert first.role == "Chief Executive" and first.salutation == "Dear Dr O'Brien,"
    assert first.text == {"note": "Thank you for your letter of 14/03/2021."}
    assert recipients[1].address == ["2 Low Road", "12345", "Town"] and recipients[1].role is None
    assert recipients[2].address == ["4 Side Street", "50%"]
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{file}:row 4:text.note: error: recipient 'jo-bloggs-2': part 'note' has no shared text, so every "
        "recipient must give text.note (or list it under omit)"]  # at the cell to fill
    assert [str(w) for w in loaded.warnings] == [
        f"{file}:row 1: warning: column 'Phone' not used (no field has that name; map it under columns: to use it, "
        "or to ~ to leave it out without this warning)"]


def test_a_column_mapped_to_nothing_is_left_out_without_a_warning(tmp_path):
    """An office keeps columns for itself (a Phone column): it was warned of on every build,
    and on every rebuild of watch, with no way to say it is not meant for the letters.
    `columns: {Phone: ~}` says so; the schema editors read takes it too."""
    import json

    import jsonschema
    import yaml

    write_xlsx(tmp_path / "contacts.xlsx")
    source = write_yaml(tmp_path / "recipients.yaml",
                        LETTER + "recipients: {from: contacts.xlsx, columns: {phone: ~, Fax: ~}}\n")
    loaded = load(source)
    assert [str(w) for w in loaded.warnings] == []  # nor of a Fax column the file does not have: nothing is lost
    assert [r.id for r in loaded.batch.recipients] == ["dr-sian-o-brien", "jo-bloggs", "ann-other"]
    schema = json.loads((ROOT / "recipients.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(json.dumps(yaml.safe_load(source.read_text(encoding="utf-8")), default=str)),
                        schema)


def test_xlsx_builds_real_letters_as_the_office_sees_the_cells(tmp_path):
    write_xlsx(tmp_path / "contacts.xlsx")
    path = batch(tmp_path, "contacts.xlsx")
    check_loaded(load(path), tmp_path / "contacts.xlsx")
    report = build(path, tmp_path / "build")
    assert {o.recipient: o.status for o in report.outcomes} == {
        "dr-sian-o-brien": "built", "jo-bloggs": "built", "ann-other": "built", "jo-bloggs-2": "invalid"}
    words = pdf_text(report.outcomes[1].pdf)
    assert "Dr Siân O'Brien" in words  # the cell's straight apostrophe, as typed (not TeX's ’)
    for seen in ("02035130477", "14 March 2021", "Thank you for your letter of 14/03/2021."):
        assert seen in words, (seen, words)
    # The same rows saved as CSV by Excel and by LibreOffice give the very same
    # letters: the build finds them up to date.
    for name, data in [("excel.csv", csv_bytes([HEADERS] + SEEN, bom=True, newline="\r\n")),
                       ("libreoffice.csv", csv_bytes([HEADERS] + SEEN, bom=False, newline="\n"))]:
        (tmp_path / name).write_bytes(data)
        again = build(batch(tmp_path, name), tmp_path / "build")
        assert {o.recipient: o.status for o in again.outcomes} == {
            "dr-sian-o-brien": "up to date", "jo-bloggs": "up to date", "ann-other": "up to date",
            "jo-bloggs-2": "invalid"}, name
    # status and diff read the spreadsheet batch as they read a YAML one
    from builder.build import status
    from builder.diff import personal

    yaml_path = tmp_path / "recipients.yaml"
    assert {s.recipient: s.state for s in status(yaml_path, tmp_path / "build")} == {
        "dr-sian-o-brien": "ready", "jo-bloggs": "ready", "ann-other": "ready", "jo-bloggs-2": "invalid"}
    loaded = load(yaml_path)
    assert "note (own): Short note." in personal(loaded.batch, loaded.batch.recipients[2])
    # one row edited: status names the file its text now comes from; that letter alone is rebuilt
    edited = [row[:] for row in SEEN]
    edited[3][6] = "A longer note."
    (tmp_path / "libreoffice.csv").write_bytes(csv_bytes([HEADERS] + edited, bom=False, newline="\n"))
    assert {s.recipient: s.reason for s in status(yaml_path, tmp_path / "build")}["ann-other"] == \
        "older than its inputs; changed: its text (libreoffice.csv)"  # the file that changed, alone
    again = build(yaml_path, tmp_path / "build")
    assert {o.recipient: o.status for o in again.outcomes} == {
        "dr-sian-o-brien": "up to date", "jo-bloggs": "up to date", "ann-other": "built",
        "jo-bloggs-2": "invalid"}
    from builder.build import Layout

    assert "A longer note." in pdf_text(Layout.of(tmp_path / "build").pdf("ann-other"))


@pytest.mark.parametrize("bom, newline, quote_all", [(True, "\r\n", False), (False, "\n", False),
                                                     (False, "\r\n", True)])
def test_csv_as_excel_and_libreoffice_save_it(tmp_path, bom, newline, quote_all):
    rows = [HEADERS] + SEEN
    rows[2] = rows[2][:6] + ["We met\non the pier, \"by chance\"."] + rows[2][7:]  # a line break, quotes
    (tmp_path / "contacts.csv").write_bytes(csv_bytes(rows, bom=bom, newline=newline, quote_all=quote_all))
    loaded = load(batch(tmp_path, "contacts.csv"))
    assert loaded.batch.recipients[0].address == ["1 High Street", "02035130477", "14 March 2021"]
    assert loaded.batch.recipients[1].text == {"note": "We met\non the pier, \"by chance\"."}
    assert [r.id for r in loaded.batch.recipients] == ["dr-sian-o-brien", "jo-bloggs", "ann-other"]


def test_windows_1252_csv_gets_a_clear_message(tmp_path):
    (tmp_path / "contacts.csv").write_bytes(
        "\r\n".join(",".join(row) for row in [HEADERS] + SEEN).encode("cp1252"))
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "contacts.csv"))
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{tmp_path / 'contacts.csv'}:row 2: error: this CSV file is not UTF-8 (byte 0xE2, 'â' in Windows-1252): "
        "it was probably saved as Excel's \"CSV (Comma delimited)\". Save it as \"CSV UTF-8 (Comma delimited)\" "
        "(in LibreOffice: character set \"Unicode (UTF-8)\")")


def test_windows_1252_csv_names_the_spreadsheet_row_below_an_address_with_line_breaks(tmp_path):
    # the row was the file's line: below an address cell of three lines, "row 4" named the
    # row of another person two rows on
    rows = [HEADERS[:6], ["Ann One", "", "1 Mill Lane\r\nNewtown\r\nNT2 3BB", "", "", "Dear Ann,"],
            ["Bob Ådams", "", "3 Station Road", "", "", "Dear Bob,"]]
    text = "".join(",".join(f'"{v}"' if "\n" in v else v for v in row) + "\r\n" for row in rows)
    (tmp_path / "contacts.csv").write_bytes(text.encode("cp1252"))
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "contacts.csv"))
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"{tmp_path / 'contacts.csv'}:row 3: error: this CSV file is not UTF-8 (byte 0xC5, 'Å' in Windows-1252) "
        "(line 5 of the file): it was probably saved as Excel's \"CSV (Comma delimited)\".")


def test_errors_name_file_row_column_and_recipient_and_bad_rows_stay_local(tmp_path):
    rows = [HEADERS[:6] + ["id", "omit"]]
    rows += [["Kay Smith", "", "1 Road", "", "", "", "katy", "note"],  # no salutation
             ["Lee Jones", "", "2 Road", "", "", "Dear Lee,", "Bad Id", "note"],
             ["", "", "3 Road", "", "", "Dear X,", "x", "note"],  # no name
             ["Mo Good", "Boss\nman", "4 Road", "", "", "Dear Mo,", "", "note"],
             ["Nia Omits", "", "4 Road", "", "", "Dear Nia,", "", "note, nope"],
             ["Ok Person", "", "5 Road", "", "", "Dear Ok,", "", "note"]]
    (tmp_path / "contacts.csv").write_bytes(csv_bytes(rows, bom=True, newline="\r\n"))
    loaded = load(batch(tmp_path, "contacts.csv"))
    file = tmp_path / "contacts.csv"
    assert [r.id for r in loaded.batch.recipients] == ["ok-person"]
    found = [str(p) for ps in loaded.rejected.values() for p in ps]
    assert f"{file}:row 2:Salutation: error: recipient 'katy': required field is missing" in found
    assert any(m.startswith(f"{file}:row 3:id: error: recipient 'Bad Id': must be lower-case letters") for m in found)
    assert f"{file}:row 4:Name: error: recipient 'x': required field is missing" in found
    assert any(m.startswith(f"{file}:row 5:Role: error: recipient 'mo-good': must be a single line") for m in found)
    assert any(m.startswith(f"{file}:row 6:omit: error: recipient 'nia-omits': the shared letter has no body "
                            "part 'nope'") for m in found), found


def test_columns_map_headers_and_sheets_are_chosen(tmp_path):
    write_xlsx(tmp_path / "book.xlsx", headers=["Full name", "Street", "Town", "Greeting", "Note"],
               rows=[[("Pat Kay", None), ("9 Way", None), ("Ville", None), ("Dear Pat,", None), ("Hi.", None)]],
               sheet="Second")
    path = write_yaml(tmp_path / "recipients.yaml", LETTER + """\
recipients:
  from: book.xlsx
  sheet: Second
  columns: {Full name: name, Street: address 1, Town: address 2, Greeting: salutation, Note: text.note}
""")
    loaded = load(path)
    (pat,) = loaded.batch.recipients
    assert (pat.id, pat.name, pat.address, pat.salutation, pat.text) == (
        "pat-kay", "Pat Kay", ["9 Way", "Ville"], "Dear Pat,", {"note": "Hi."})
    assert loaded.problems == []
    # a mapping that names no header (misspelt) is said, not left to the shared text in silence
    path.write_text(path.read_text().replace("Note: text.note}", "Note: text.note, Post code: address 3}"))
    loaded = load(path)
    assert [str(p) for p in loaded.problems] == [
        f"{tmp_path / 'book.xlsx'}:row 1: warning: columns: 'Post code' names no column (its value is not used); "
        "the headers are: Full name, Street, Town, Greeting, Note"]
    assert loaded.batch.recipients[0].address == ["9 Way", "Ville"]
    path.write_text(path.read_text().replace("sheet: Second", "sheet: Third"))
    with pytest.raises(LoadError) as caught:
        load(path)
    assert "the workbook has no sheet 'Third'; its sheets are: Second" in str(caught.value)
    # Excel's sheet names are one name in any case: `sheet: second` was "no sheet 'second'"
    path.write_text(path.read_text().replace("sheet: Third", "sheet: sECOND"))
    assert [r.id for r in load(path).batch.recipients] == ["pat-kay"]
    path.write_text(path.read_text().replace("sheet: sECOND", "sheet: Second"))

    # a mapping to a part the body lacks (misspelt) is one error at its line in the YAML,
    # not one per row, each against the spreadsheet, with "every recipient must give text.note"
    rows = [[(f"Pat Kay {n}", None), ("9 Way", None), ("Ville", None), ("Dear Pat,", None), ("Hi.", None)]
            for n in range(3)]
    write_xlsx(tmp_path / "book.xlsx", headers=["Full name", "Street", "Town", "Greeting", "Note"], rows=rows,
               sheet="Second")
    path.write_text(path.read_text().replace("sheet: Third", "sheet: Second").replace("text.note,", "text.note2,"))
    with pytest.raises(LoadError) as caught:
        load(path)
    line = path.read_text().splitlines().index(next(x for x in path.read_text().splitlines() if "columns:" in x)) + 1
    assert [str(p) for p in caught.value.problems if not p.warning] == [
        f"{path}:{line}:94: error: field 'recipients.columns.Note': the column 'Note' is mapped to text.note2, but "
        "the shared letter has no body part 'note2'; did you mean 'note'?"]


def test_a_missing_required_column_stops_with_the_headers(tmp_path):
    (tmp_path / "c.csv").write_text("Name,Address,Greeting\nA,1 Road,Dear A\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "c.csv"))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'c.csv'}:row 1: error: no column for the required field 'salutation'; the headers are: "
        "Name, Address, Greeting"]


def test_one_address_cell_with_line_breaks(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", headers=["id", "name", "address", "salutation", "omit"],
               rows=[[("a-1", None), ("A", None), ("1 Road\nTown\n\nAB1 2CD", None), ("Dear A,", None),
                      ("note", None)]])
    (a,) = load(batch(tmp_path, "c.xlsx")).batch.recipients
    assert (a.id, a.address, a.omit) == ("a-1", ["1 Road", "Town", "AB1 2CD"], ["note"])


def test_a_line_break_in_a_one_line_cell_is_refused_with_the_fix(tmp_path):
    """Alt+Enter in a name cell: that recipient is refused at its row and field, saying what
    to do (the README's Characters section said any line break was a space), and the other
    recipient loads."""
    write_xlsx(tmp_path / "c.xlsx", headers=["id", "name", "address", "salutation", "omit"],
               rows=[[("a-1", None), ("Jane\nDoe", None), ("1 Road\nTown", None), ("Dear Jane,", None),
                      ("note", None)],
                     [("a-2", None), ("John Roe", None), ("2 Road\nTown", None), ("Dear John,", None),
                      ("note", None)]])
    loaded = load(batch(tmp_path, "c.xlsx"))
    assert [str(p) for p in loaded.problems] == [
        f"{tmp_path / 'c.xlsx'}:row 2:name: error: recipient 'a-1': must be a single line of text but holds a "
        "line break: join its lines into one (an address takes one line per item)"]
    assert [r.id for r in loaded.batch.recipients] == ["a-2"]


def test_ten_thousand_rows_load(tmp_path):
    """A size check, not a timing test (the README gives the time measured)."""
    rows = [["id", "name", "address 1", "address 2", "salutation", "text.note"]]
    rows += [[f"r{i}", f"Person {i}", f"{i} Road", "Town", f"Dear {i},", f"Note {i}."] for i in range(10_000)]
    (tmp_path / "big.csv").write_bytes(csv_bytes(rows, bom=True, newline="\r\n"))
    loaded = load(batch(tmp_path, "big.csv"))
    assert len(loaded.batch.recipients) == 10_000 and loaded.problems == []


def test_the_readme_example_loads():
    from conftest import ROOT

    loaded = load(ROOT / "examples" / "spreadsheet" / "library.yaml")
    assert loaded.problems == []
    first, second = loaded.batch.recipients
    assert (first.id, first.address, second.id, second.role) == (
        "dr-sian-o-brien", ["12 Mill Lane", "Newtown", "NT2 3BB"], "jo-bloggs", None)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    csv_text = (ROOT / "examples" / "spreadsheet" / "contacts.csv").read_bytes().decode("utf-8-sig")
    assert csv_text.replace("\r\n", "\n") in readme  # the README shows the file as it is


def test_ids_given_are_never_taken_and_empty_id_cells_are_made(tmp_path):
    (tmp_path / "c.csv").write_text("id;name;address;salutation;text.note\n"
                                    ";Jo Bloggs;1 Road;Dear Jo,;x\n"
                                    "jo-bloggs;Someone Else;2 Road;Dear S,;y\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))  # ';'-separated, as Excel saves CSV in much of Europe
    assert [r.id for r in loaded.batch.recipients] == ["jo-bloggs-2", "jo-bloggs"]


def test_a_duplicate_id_names_the_row_that_has_it_first(tmp_path):
    """Two rows with one id: the message points at the other row, as the office sees the
    sheet, not at "recipients[0]", a list index of nothing they can see."""
    (tmp_path / "c.csv").write_text("id,name,address,salutation,text.note\n"
                                    "ynys,Eleri,1 Road,Dear Eleri,x\n"
                                    "brown,Tom,2 Road,Dear Tom,y\n"
                                    "ynys,Sarah,3 Road,Dear Sarah,z\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert [r.id for r in loaded.batch.recipients] == ["ynys", "brown"]  # the first is still built
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'c.csv'}:row 4:id: error: recipient 'ynys': duplicate id 'ynys': the recipient on row 2 "
        "has it too; give each recipient an id of its own"]


def test_numbers_and_dates_as_excel_shows_them(tmp_path):
    cells = [(dt.datetime(2021, 3, 14), "mm-dd-yy"), (0.1 + 0.2, "General"), (1234567.891, "#,##0.00"),
             (44, "General"), (dt.datetime(2021, 3, 14), "yyyy-mm-dd"), (True, "General"),
             # Excel's ribbon "Long Date" and "Time": the system's, so British here
             (dt.datetime(2021, 3, 4), "[$-F800]dddd\\,\\ mmmm\\ dd\\,\\ yyyy"),
             (dt.datetime(2021, 3, 4, 15, 30), "[$-F400]h:mm:ss\\ AM/PM"),
             # built-in 22, the computer's short date and a time: day first here, as in Excel in the UK
             (dt.datetime(2021, 3, 4, 15, 30), "m/d/yy h:mm")]
    write_xlsx(tmp_path / "c.xlsx", headers=["name", "salutation", "text.note"] + [f"address {i}" for i in range(1, 10)],
               rows=[[("A", None), ("Dear A,", None), ("x", None)] + cells])
    (a,) = load(batch(tmp_path, "c.xlsx")).batch.recipients
    assert a.address == ["14/03/2021", "0.3", "1,234,567.89", "44", "2021-03-14", "TRUE", "04 March 2021", "15:30:00",
                         "04/03/2021 15:30"]


def test_a_date_formatted_in_welsh_shows_welsh_months_and_days_as_in_excel(tmp_path):
    """Format Cells, Locale: Welsh stores [$-452] before the format: Excel shows
    "20 Ionawr 2025", and a Welsh letter printed "20 January 2025". Other locales' tags,
    and none, keep the English names. A tag naming a locale and no currency prints nothing
    (a phone number under [$-809] printed "$01654 767626"); a currency's symbol stays."""
    day = dt.datetime(2025, 1, 20)  # a Monday
    cells = [(day, "[$-452]d mmmm yyyy"), (day, "[$-452]dddd, d mmm yyyy"), (dt.datetime(2025, 3, 4), "[$-cy-GB]ddd d mmm"),
             (day, "d mmmm yyyy"), (day, "[$-809]dddd d mmmm"), (1654767626, "[$-452]00000 000000"),
             (1654767626, "[$-809]00000 000000"), (1234.5, "[$-en-GB]#,##0.00"), (1234.5, "[$£-809]#,##0.00"),
             (44, "[$-809]General")]
    write_xlsx(tmp_path / "c.xlsx", headers=["name", "salutation", "text.note"] + [f"address {i}" for i in range(1, 11)],
               rows=[[("A", None), ("Dear A,", None), ("x", None)] + cells])
    (a,) = load(batch(tmp_path, "c.xlsx")).batch.recipients
    assert a.address == ["20 Ionawr 2025", "Dydd Llun, 20 Ion 2025", "Maw 4 Maw", "20 January 2025",
                         "Monday 20 January", "01654 767626", "01654 767626", "1,234.50", "£1,234.50", "44"]


def test_a_date_whose_format_names_no_locale_is_written_in_the_letter_s_language(tmp_path):
    """A date cell formatted "d mmmm yyyy" (no locale: Excel writes the computer's month
    names) printed "4 March 2026" in a Welsh letter, without a word. The letter's language
    decides (the row's language cell, else letter.language; a column by language, its own),
    unless the cell's format names a locale: [$-809] keeps English, [$-452] Welsh."""
    day, long = dt.datetime(2026, 3, 4), "d mmmm yyyy"  # a Wednesday
    # a list field's cell (a line per item) too: "dddd" and "d mmmm yyyy" on two lines (Alt+Enter in
    # Format Cells), as the enclosures; split as plain text, they printed in English in a Welsh letter
    lines = 'dddd"\n"d mmmm yyyy'
    write_xlsx(tmp_path / "c.xlsx", headers=["name", "salutation.cy", "salutation.en", "text.note.cy",
                                             "text.note.en", "language", "your ref", "address 1", "address 2",
                                             "enclosures"],
               rows=[[("Alys", None), ("Annwyl Alys,", None), (None, None), (day, long), (None, None),
                      ("cy", None), (day, "mmmm yyyy"), ("1 Lôn", None), (day, "dddd d mmm"), (day, lines)],
                     [("Tom", None), (None, None), ("Dear Tom,", None), (None, None), (day, long),
                      ("en", None), (day, "mmmm yyyy"), ("2 Road", None), (day, "dddd d mmm"), (day, lines)],
                     [("Bea", None), ("Annwyl Bea,", None), ("Dear Bea,", None), (day, long), (day, long),
                      ("cy-en", None), (day, "[$-809]mmmm yyyy"), ("3 Ffordd", None), (day, "[$-452]d mmm"),
                      (day, long)]])
    letter = LETTER.replace("    - main: This is the shared text.", "    - main: {en: Shared., cy: Rhannol.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    source = write_yaml(tmp_path / "recipients.yaml", letter + "recipients: {from: c.xlsx}\n")
    loaded = load(source)
    assert not loaded.problems, [str(p) for p in loaded.problems]
    alys, tom, bea = loaded.batch.recipients
    assert (alys.text, alys.your_ref, alys.address) == ({"note": {"cy": "4 Mawrth 2026"}}, "Mawrth 2026",
                                                        ["1 Lôn", "Dydd Mercher 4 Maw"])
    assert (tom.text, tom.your_ref, tom.address) == ({"note": {"en": "4 March 2026"}}, "March 2026", ["2 Road", "Wednesday 4 Mar"])
    assert bea.text == {"note": {"cy": "4 Mawrth 2026", "en": "4 March 2026"}}  # each column its language
    assert (bea.your_ref, bea.address) == ("March 2026", ["3 Ffordd", "4 Maw"])  # the cell's own locale
    assert (alys.enclosures, tom.enclosures) == (["Dydd Mercher", "4 Mawrth 2026"], ["Wednesday", "4 March 2026"])
    assert bea.enclosures == ["4 Mawrth 2026"]  # a list is one for both halves: in the first's language
    # and the letter says so, built with the real pdflatex
    assert build(source, tmp_path / "build", only=["alys"]).ok
    text = pdf_text(tmp_path / "build" / "letters" / "alys.pdf")
    assert "Rhannol. 4 Mawrth 2026" in text and "Eich cyf: Mawrth 2026" in text and "March" not in text
    assert "Amg: Dydd Mercher" in text and "Wednesday" not in text


def test_a_date_cell_in_a_bilingual_row_s_text_is_written_in_both_languages(tmp_path):
    """A date cell formatted "d mmmm yyyy" in one text column of a bilingual row was
    written in Welsh alone, and the row refused: "text.note has no English text", though
    the cell held a date, which the builder writes in each language."""
    day, long = dt.datetime(2026, 3, 4), "d mmmm yyyy"
    write_xlsx(tmp_path / "c.xlsx", headers=["name", "address", "salutation.cy", "salutation.en", "text.note",
                                             "language"],
               rows=[[("Bea", None), ("1 Lôn", None), ("Annwyl Bea,", None), ("Dear Bea,", None), (day, long),
                      ("cy-en", None)],
                     [("Cai", None), ("2 Lôn", None), ("Annwyl Cai,", None), ("Dear Cai,", None), (day, "yyyy-mm-dd"),
                      ("cy-en", None)]])
    letter = LETTER.replace("    - main: This is the shared text.", "    - main: {en: Shared., cy: Rhannol.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    loaded = load(write_yaml(tmp_path / "recipients.yaml", letter + "recipients: {from: c.xlsx}\n"))
    assert not loaded.rejected, [str(p) for problems in loaded.rejected.values() for p in problems]
    bea, cai = loaded.batch.recipients
    assert bea.text == {"note": {"cy": "4 Mawrth 2026", "en": "4 March 2026"}}
    assert cai.text == {"note": "2026-03-04"}  # in figures: one text serves both


def test_invisible_characters_in_cells_are_named_and_left_out(tmp_path):
    (tmp_path / "c.csv").write_text("name,address,salutation,text.note\n"
                                    "Jo\u200b Bloggs,\"1 Road\n\u00adTown\",Dear Jo,x\u200d\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    (jo,) = loaded.batch.recipients
    assert (jo.name, jo.address, jo.text) == ("Jo Bloggs", ["1 Road", "Town"], {"note": "x"})
    file = tmp_path / "c.csv"
    assert [str(w) for w in loaded.warnings] == [
        f"{file}:row 2:name: warning: recipient 'jo-bloggs': contains an invisible character: zero-width space, "
        "U+200B; it prints as nothing and was left out",
        f"{file}:row 2:address: warning: recipient 'jo-bloggs': contains an invisible character: soft hyphen, "
        "U+00AD; it prints as nothing and was left out",
        f"{file}:row 2:text.note: warning: recipient 'jo-bloggs': contains an invisible character: zero-width "
        "joiner, U+200D; it prints as nothing and was left out"]


def test_any_recipient_field_by_its_name(tmp_path):
    (tmp_path / "c.csv").write_text("Name,Address,Salutation,text.note,Email,Your ref,CC 1,CC 2,Language\n"
                                    "Jo Bloggs,1 Road,Dear Jo,x,jo@example.org,AB/12/0001,Head Office,Legal,\n"
                                    "Al Bad,2 Road,Dear Al,y,not-an-address,,,,\n"
                                    "Sue Name,3 Road,Dear Sue,z,Sue Name <sue@example.org>,,,,\n"
                                    "Ed Named,4 Road,Dear Ed,w,ed@example.org,,,,English \n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    (jo,) = loaded.batch.recipients
    assert (jo.email, jo.your_ref, jo.cc) == ("jo@example.org", "AB/12/0001", ["Head Office", "Legal"])
    assert [str(p) for ps in loaded.rejected.values() for p in ps] == [
        f"{tmp_path / 'c.csv'}:row 3:Email: error: recipient 'al-bad': 'not-an-address' is not an email address",
        # an address as Outlook copies it: said was "holds a space after 'Sue', ...; delete it",
        # which would not make it an address
        f"{tmp_path / 'c.csv'}:row 4:Email: error: recipient 'sue-name': 'Sue Name <sue@example.org>' is not an "
        "email address: it holds a name and the address in <>; write the address alone, sue@example.org",
        # a language by name, as an office fills in a Language column: the code it means
        f"{tmp_path / 'c.csv'}:row 5:Language: error: recipient 'ed-named': must be 'en', 'cy' or 'cy-en' "
        "(got 'English': write en)"]
    # done as they say, the rows are letters
    text = (tmp_path / "c.csv").read_text(encoding="utf-8")
    (tmp_path / "c.csv").write_text(text.replace("Sue Name <sue@example.org>", "sue@example.org").replace(
        "English ", "en"), encoding="utf-8")
    assert [r.email for r in load(batch(tmp_path, "c.csv")).batch.recipients] == [
        "jo@example.org", "sue@example.org", "ed@example.org"]


def test_texts_by_language(tmp_path):
    (tmp_path / "c.csv").write_text(
        "name,address,language,salutation.en,salutation.cy,text.note.cy,text.note.en\n"
        "Siôn Jones,1 Ffordd,en,Dear Siôn,Annwyl Siôn,Diolch.,Thank you.\n", encoding="utf-8")
    (sion,) = load(batch(tmp_path, "c.csv")).batch.recipients
    assert (sion.language, sion.salutation, sion.text) == (
        "en", {"en": "Dear Siôn", "cy": "Annwyl Siôn"}, {"note": {"cy": "Diolch.", "en": "Thank you."}})
    (tmp_path / "d.csv").write_text("name,address,salutation,salutation.cy,text.note\n"
                                    "A,1 Road,Dear A,Annwyl A,x\nB,2 Road,Dear B,,y\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "d.csv"))
    assert [r.id for r in loaded.batch.recipients] == ["b"]
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'd.csv'}:row 2:salutation.cy: error: recipient 'a': salutation is given both as one text "
        "(column 'salutation') and by language (column 'salutation.cy'); leave one of the two cells empty, or, "
        "if 'salutation' holds the English text, map it under columns: (salutation: salutation.en)"]


def test_a_language_typed_in_capitals_is_told_the_code_to_write(tmp_path):
    # "CY" in a Language column was "must be 'en', 'cy' or 'cy-en' (got 'CY')": nothing said which
    (tmp_path / "c.csv").write_text("name,address,salutation,text.note,language\n"
                                    "Ed Named,4 Road,Dear Ed,w,EN\nAl Bad,2 Road,Dear Al,y,Cy-En \n"
                                    "Jo Bloggs,1 Road,Dear Jo,x,en\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert [str(p).split("error: ")[1] for ps in loaded.rejected.values() for p in ps] == [
        "recipient 'ed-named': must be 'en', 'cy' or 'cy-en' (got 'EN': write en)",
        "recipient 'al-bad': must be 'en', 'cy' or 'cy-en' (got 'Cy-En': write cy-en)"]


def test_a_bilingual_row_with_a_plain_and_a_welsh_column_is_told_once_how_to_map_them(tmp_path):
    # an office's English `Salutation` beside `Salutation CY`: a bilingual row fills both. It was
    # told "give one or the other", and then, at the other column, that it had no Welsh text, to
    # be given in the columns salutation.cy and salutation.en: the first of which it had filled
    letter = ("letter:\n  date: 2021-03-04\n  sender: {name: Ann, role: {en: Clerk, cy: Clerc}, address: [1 Stryd]}\n"
              "  signatory: {name: Ann, title: {en: Clerk, cy: Clerc}}\n"
              "  body:\n    - main: {en: Shared., cy: Rhannu.}\n")
    columns = "recipients:\n  from: c.csv\n  columns:\n    Salutation CY: salutation.cy\n"
    (tmp_path / "b.yaml").write_text(letter + columns, encoding="utf-8")
    (tmp_path / "c.csv").write_text("Name,Address,Language,Salutation,Salutation CY\n"
                                    "Emrys Owen,1 Ffordd,cy-en,\"Dear Emrys,\",\"Annwyl Emrys,\"\n"
                                    "Jo Bloggs,2 Road,en,\"Dear Jo,\",\n", encoding="utf-8")
    loaded = load(tmp_path / "b.yaml")
    assert [r.id for r in loaded.batch.recipients] == ["jo-bloggs"]
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'c.csv'}:row 2:Salutation CY: error: recipient 'emrys-owen': salutation is given both as "
        "one text (column 'Salutation') and by language (column 'Salutation CY'); leave one of the two cells "
        "empty, or, if 'Salutation' holds the English text, map it under columns: (Salutation: salutation.en)"]
    # the Welsh column first: still one message, at it
    (tmp_path / "c.csv").write_text("Name,Address,Language,Salutation CY,Salutation\n"
                                    "Emrys Owen,1 Ffordd,cy-en,\"Annwyl Emrys,\",\"Dear Emrys,\"\n"
                                    "Jo Bloggs,2 Road,en,,\"Dear Jo,\"\n", encoding="utf-8")
    (problems,) = load(tmp_path / "b.yaml").rejected.values()
    assert [(p.header, "map it under columns: (Salutation: salutation.en)" in p.message) for p in problems] == [
        ("Salutation CY", True)]
    # done as it says, both letters are made, the bilingual one with both salutations
    (tmp_path / "b.yaml").write_text(letter + columns + "    Salutation: salutation.en\n", encoding="utf-8")
    loaded = load(tmp_path / "b.yaml")
    assert not loaded.rejected
    assert [r.salutation for r in loaded.batch.recipients] == [
        {"cy": "Annwyl Emrys,", "en": "Dear Emrys,"}, {"en": "Dear Jo,"}]


def test_tab_separated(tmp_path):
    (tmp_path / "c.csv").write_text("name\taddress\tsalutation\ttext.note\nJo Bloggs\t1 Road, Town\tDear Jo,\tx\n",
                                    encoding="utf-8")
    (jo,) = load(batch(tmp_path, "c.csv")).batch.recipients
    assert (jo.id, jo.address, jo.salutation) == ("jo-bloggs", ["1 Road, Town"], "Dear Jo,")


# ---- the sheet reader against openpyxl's own -------------------------------------------

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
SHARED = ["id", "name", "address 1", "address 2", "address 3", "salutation", "text.note", "Phone",  # 0-7
          "a-1",  # 8
          '<r><t xml:space="preserve">Rich </t></r><r><rPr><b/></rPr><t>shared</t></r>',  # 9: runs
          "a_x005F_x0041_b",  # 10: an escaped underscore, as Excel writes "a_x0041_b"
          "Dear Jo,"]  # 11
STYLES = ["0", "164", "165", "14", "9", "20", "166", "167"]  # cellXfs: style index -> numFmtId
# Cells as Excel and LibreOffice write them: empty cells left out (B2 then D2), a row left out (3),
# cells without a reference (row 4), formulas with their cached value, a string formula (t="str"),
# an error, a boolean, an ISO date (t="d"), inline rich text with a phonetic guide, a cell far right.
SHEET = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheetData>
<row r="1">{"".join(f'<c r="{c}1" t="s"><v>{i}</v></c>' for i, c in enumerate("ABCDEFGH"))}</row>
<row r="2"><c r="A2" t="s"><v>8</v></c><c r="B2" t="inlineStr"><is><r><t xml:space="preserve">Dr </t></r><r><rPr><b/>\
</rPr><t>Siân</t></r><r><t xml:space="preserve"> O'Brien</t></r><rPh sb="0" eb="1"><t>ph</t></rPh></is></c>\
<c r="D2" s="1"><v>2035130477</v></c><c r="E2" s="2"><v>44269</v></c><c r="F2" t="s"><v>11</v></c>\
<c r="G2" t="str"><f>"Thanks "&amp;B2</f><v>Thanks Dr Siân</v></c><c r="H2" s="4"><v>0.5</v></c></row>
<row r="4"><c t="inlineStr"><is><t>b-2</t></is></c><c t="s"><v>9</v></c><c s="3"><v>44269</v></c><c t="b"><f>TRUE()</f>\
<v>1</v></c><c><f>1+2</f><v>3</v></c><c t="s"><v>11</v></c><c t="e"><f>1/0</f><v>#DIV/0!</v></c>\
<c s="5"><v>0.5625</v></c></row>
<row r="5"><c r="A5" t="inlineStr"><is><t>c-3</t></is></c><c r="B5" t="s"><v>10</v></c><c r="C5" s="6"><v>1234567.891</v>\
</c><c r="D5" s="7"><v>-12.5</v></c><c r="E5"><v>1E3</v></c><c r="F5"><f>A1</f></c><c r="G5"><v></v></c>\
<c r="H5" t="d" s="2"><v>2021-03-14T00:00:00</v></c></row>
<row r="7"><c r="B7" t="inlineStr"><is><t>Tail</t></is></c><c r="D7" s="0"><v>0.30000000000000004</v></c>\
<c r="F7" t="inlineStr"><is><t>Dear T,</t></is></c><c r="AB7" t="inlineStr"><is><t>far right</t></is></c></row>
</sheetData></worksheet>"""


def write_parts(path, *, sheet=SHEET, date1904=False, strings=SHARED):
    """An .xlsx written part by part (no <dimension>, shared strings), as a spreadsheet program does."""
    import zipfile

    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": f"""<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/>
<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/></Types>""",
        "_rels/.rels": f"""<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>""",
        "xl/workbook.xml": f"""<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><workbookPr date1904="{int(date1904)}"/>
<sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>""",
        "xl/_rels/workbook.xml.rels": f"""<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="{REL_NS}/styles" Target="styles.xml"/>
<Relationship Id="rId3" Type="{REL_NS}/sharedStrings" Target="sharedStrings.xml"/></Relationships>""",
        "xl/styles.xml": f"""<styleSheet xmlns="{MAIN_NS}"><numFmts count="4">
<numFmt numFmtId="164" formatCode="00000000000"/><numFmt numFmtId="165" formatCode="d mmmm yyyy"/>
<numFmt numFmtId="166" formatCode="#,##0.00"/><numFmt numFmtId="167" formatCode="0.00;(0.00)"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="{len(STYLES)}">{"".join(f'<xf numFmtId="{n}" fontId="0" fillId="0" borderId="0" xfId="0"/>'
                                         for n in STYLES)}</cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>""",
        "xl/sharedStrings.xml": f"""<sst xmlns="{MAIN_NS}" count="{len(strings)}" uniqueCount="{len(strings)}">"""
                                + "".join(f"<si>{s if s.startswith('<') else f'<t>{s}</t>'}</si>" for s in strings)
                                + "</sst>",
        "xl/worksheets/sheet1.xml": sheet,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def as_openpyxl_reads(path):
    """The oracle: openpyxl's own read-only reader, each number shown with
    xlfmt under the cell's number format (as this reader did before)."""
    from openpyxl.utils.datetime import CALENDAR_MAC_1904
    from xlfmt import format_value

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    date1904 = book.epoch == CALENDAR_MAC_1904
    rows = {}
    for number, row in enumerate(book.worksheets[0].iter_rows(), start=1):
        values = []
        for cell in row:
            value = getattr(cell, "value", None)
            if value is not None and not isinstance(value, str):
                style = {"mm-dd-yy": "dd/mm/yyyy", "m/d/yy h:mm": "dd/mm/yyyy hh:mm"}.get(cell.number_format,
                                                                                       cell.number_format)
                value = str(format_value(value, style, date1904=date1904))
            values.append(value)
        rows[number] = values
    book.close()
    return trimmed(rows.items())


def trimmed(rows):
    """Rows without trailing empty cells, empty rows left out (as the entries see them)."""
    found = {}
    for number, values in rows:
        values = list(values)
        while values and values[-1] is None:
            values.pop()
        if values:
            found[number] = values
    return found


def test_the_sheet_reader_reads_cells_as_openpyxl_does(tmp_path):
    from builder.table import _xlsx_rows

    def headed(rows):  # cells beyond the last header have no field: the reader leaves them out
        width = len(rows[min(rows)])
        return {number: trimmed([(0, values[:width])]).get(0) for number, values in rows.items()
                if trimmed([(0, values[:width])])}

    from builder.table import Unusable

    def read(path):  # a formula never worked out (F5) reads as openpyxl reads it, as no value
        return trimmed((n, [None if isinstance(v, Unusable) and not v else v for v in values])
                       for n, values in _xlsx_rows(path, None))

    for date1904 in (False, True):
        path = write_parts(tmp_path / f"parts{int(date1904)}.xlsx", date1904=date1904)
        assert read(path) == headed(as_openpyxl_reads(path))
    seen = read(path)  # the 1904 workbook: 44269 is four years on
    assert seen[2] == ["a-1", "Dr Siân O'Brien", None, "02035130477", "15 March 2025", "Dear Jo,", "Thanks Dr Siân",
                       "50%"]
    assert seen[4] == ["b-2", "Rich shared", "15/03/2025", "TRUE", "3", "Dear Jo,", "#DIV/0!", "13:30"]
    assert seen[5] == ["c-3", "a_x0041_b", "1,234,567.89", "(12.50)", "1000", None, None, "14 March 2021"]
    assert seen[7] == [None, "Tail", None, "0.3", None, "Dear T,"]  # "far right" (AB7) has no header
    assert 3 not in seen
    # a workbook saved by LibreOffice 7.4 as Excel saves one: shared strings, formulas' cached values,
    # rich text, rows and cells left out (tests/data/libreoffice.py says how it was made)
    office = ROOT / "tests" / "data" / "libreoffice.xlsx"
    assert read(office) == headed(as_openpyxl_reads(office))
    assert trimmed(_xlsx_rows(office, None))[5] == ["c-3", "Ann  Other ", None, None, None, "Dear Ann,",
                                                   "Bold and plain"]


def test_a_duration_and_excel_s_own_leap_day_show_as_in_excel(tmp_path):
    """openpyxl turns these into Python values that read differently (a timedelta
    the formatter refused; 28 February for Excel's 29 February 1900)."""
    write_xlsx(tmp_path / "c.xlsx", headers=["name", "salutation", "text.note", "address 1", "address 2"],
               rows=[[("A", None), ("Dear A,", None), ("x", None), (dt.timedelta(hours=30), "[h]:mm"),
                      (60, "d mmmm yyyy")]])
    (a,) = load(batch(tmp_path, "c.xlsx")).batch.recipients
    assert a.address == ["30:00", "29 February 1900"]


BOMB = f"""<?xml version="1.0"?>
<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">{"".join(
    f'<!ENTITY {b} "{("&" + a + ";") * 10}">' for a, b in zip("abcdefgh", "bcdefghi"))}]>
<worksheet xmlns="{MAIN_NS}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&i;</t></is></c></row>
</sheetData></worksheet>"""


@pytest.mark.parametrize("damage, message", [
    ("cut", "cannot read this workbook (File is not a zip file); save it from Excel or LibreOffice as .xlsx"),
    ("not xml", "cannot read the sheet 'Contacts' of this workbook (not well-formed (invalid token): line 4, "
                "column 14); save it again from Excel or LibreOffice as .xlsx"),
    ("sheet cut", "cannot read the sheet 'Contacts' of this workbook (no element found: line 4, column 0); "
                  "save it again from Excel or LibreOffice as .xlsx"),
    ("bomb", "cannot read the sheet 'Contacts' of this workbook (limit on input amplification factor (from DTD "
             "and entities) breached: line 3, column 130); save it again from Excel or LibreOffice as .xlsx"),
    ("beyond XFD", "the sheet has a cell in column 'XFE', which is not a column of a workbook (A to XFD); save "
                   "it again from Excel or LibreOffice as .xlsx"),  # not a list of a billion empty cells
    ("strings bomb", "cannot read this workbook (limit on input amplification factor (from DTD and entities) "
                     "breached: line 1, column 839); save it from Excel or LibreOffice as .xlsx"),
])
def test_a_damaged_workbook_is_one_plain_message(tmp_path, damage, message):
    """Never a traceback, and an entity bomb (a billion laughs) is refused by the
    XML parser's amplification limit at once instead of expanding."""
    path = tmp_path / "c.xlsx"
    if damage == "cut":
        whole = write_parts(tmp_path / "whole.xlsx").read_bytes()
        path.write_bytes(whole[:len(whole) // 2])
    elif damage == "not xml":
        write_parts(path, sheet=SHEET.replace("<row r=\"2\">", "<row r=\"2\"><c <<"))
    elif damage == "sheet cut":
        write_parts(path, sheet=SHEET[:SHEET.index("<row r=\"2\">")])
    elif damage == "bomb":
        write_parts(path, sheet=BOMB)
    elif damage == "beyond XFD":
        write_parts(path, sheet=SHEET.replace('r="AB7"', 'r="XFE7"'))
    else:
        write_parts(path, strings=SHARED[:-1] + ["&i;"])
        xml = BOMB.split("<worksheet")[0].replace("DOCTYPE worksheet", "DOCTYPE sst").replace("\n", "")
        import zipfile
        with zipfile.ZipFile(path) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
        parts["xl/sharedStrings.xml"] = xml.encode() + parts["xl/sharedStrings.xml"]
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in parts.items():
                archive.writestr(name, data)
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "c.xlsx"))
    assert [str(p) for p in caught.value.problems] == [f"{path}: error: {message}"]
    assert gc.isenabled()  # load() pauses Python's cycle collector, and turns it back on whatever happens


def test_what_an_outsider_found_in_workbooks(tmp_path, monkeypatch):
    """Numbers longer than the format can round, Excel's escaped carriage returns,
    rows out of order, a cell far beyond the headers on every row, and more texts
    than any contact list holds."""
    from builder import table as table_module
    from builder.table import _xlsx_rows

    header = "".join(f'<c r="{c}1" t="s"><v>{i}</v></c>' for i, c in enumerate("ABCDEF"))

    def sheet(*rows):
        return f"""<worksheet xmlns="{MAIN_NS}"><sheetData><row r="1">{header}</row>{"".join(rows)}</sheetData></worksheet>"""

    # 1e30 under "00000000000" and a 400-digit number under "0": shown in full, as Excel shows them
    long_number = "9" * 400
    path = write_parts(tmp_path / "n.xlsx", strings=SHARED + ["A_x000D_\nB", "C_x000D_D", "_x005F_x000D_"],
                       sheet=sheet('<row r="2"><c r="A2" t="inlineStr"><is><t>a-1</t></is></c>'
                                   '<c r="C2" s="1"><v>1E+30</v></c><c r="D2" s="0"><v>' + long_number + '</v></c>'
                                   '<c r="E2" t="s"><v>12</v></c><c r="F2" t="s"><v>13</v></c>'
                                   '<c r="G2" t="s"><v>14</v></c><c r="XFD2" t="inlineStr"><is><t>x</t></is></c></row>'))
    (row,) = [values for number, values in _xlsx_rows(path, None) if number == 2]
    assert row == ["a-1", None, "1" + "0" * 30, long_number, "A\nB", "C\nD"]  # G and XFD: no header
    # _x005F_ keeps a text that reads "_x000D_" as typed
    assert table_module._unescape("_x005F_x000D_") == "_x000D_"

    out_of_order = write_parts(tmp_path / "o.xlsx", sheet=sheet(
        '<row r="5"><c r="A5" t="inlineStr"><is><t>a-5</t></is></c></row>',
        '<row r="3"><c r="A3" t="inlineStr"><is><t>a-3</t></is></c></row>'))
    with pytest.raises(table_module.TableError, match=r"the sheet's rows are out of order \(row 3 comes after row 5\)"):
        list(_xlsx_rows(out_of_order, None))

    wide = write_parts(tmp_path / "w.xlsx", sheet=sheet(*(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>a-{n}</t></is></c><c r="XFD{n}" t="inlineStr"><is><t>'
        f'x</t></is></c></row>' for n in range(2, 2002))))
    rows = list(_xlsx_rows(wide, None))
    assert len(rows) == 2001 and max(len(values) for _, values in rows) == 6

    monkeypatch.setattr(table_module, "MAX_SHARED_STRINGS", 20)
    write_parts(tmp_path / "m.xlsx", strings=SHARED + [f"t{n}" for n in range(20)])
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "m.xlsx"))
    assert "the workbook holds more than 20 different texts" in str(caught.value)


def test_a_spreadsheet_error_or_a_formula_never_worked_out_is_refused_where_it_stands(tmp_path):
    """#N/A from a lookup that found nothing, or a formula in a file written by a
    program (openpyxl) and never opened in a spreadsheet: no letter prints them.
    That row's letter is refused with file, row and column; the others build."""
    headers = ["name", "address", "salutation", "role", "text.note", "notes"]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(headers)
    sheet.append(["Ann Good", "1 Road", "Dear Ann,", None, "A note.", None])
    sheet.append(["Bea Lookup", "2 Road", "Dear Bea,", "#N/A", "A note.", None])  # stored as an error cell
    sheet.append(["Cy Formula", "3 Road", '="Dear "&"Cy,"', None, "A note.", None])  # a formula, no value
    sheet.append(["Di Unused", "4 Road", "Dear Di,", None, "A note.", "#REF!"])  # a column no field reads
    book.save(tmp_path / "contacts.xlsx")
    loaded = load(batch(tmp_path, "contacts.xlsx"))
    file = tmp_path / "contacts.xlsx"
    assert [r.id for r in loaded.batch.recipients] == ["ann-good", "di-unused"]
    found = [str(p) for ps in loaded.rejected.values() for p in ps]
    assert f"{file}:row 3:role: error: recipient 'bea-lookup': the cell shows the spreadsheet error #N/A; " \
        "correct it in the spreadsheet or type the value instead" in found, found
    assert f"{file}:row 4:salutation: error: recipient 'cy-formula': the cell holds a formula whose value was " \
        "never worked out (the file was not saved by a spreadsheet program); correct it in the spreadsheet or " \
        "type the value instead" in found, found
    assert len(found) == 2  # one message for each cell: not also "required field is missing"


def test_a_column_refused_in_every_row_is_one_problem_of_the_file(tmp_path):
    """A workbook written by a program (openpyxl) with formula columns holds no values: every
    row of each such column was refused, twice per row for two columns (3,000 lines for 1,500
    rows), and a build then deleted every letter built before. It is the file's problem: one
    message naming the file, the columns, the rows and the fix, and the batch stops (LoadError:
    nothing built, nothing deleted). A column of #REF! in every row is one message too; a
    column failing in some rows only stays the problem of those recipients."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "address", "salutation", "text.note", "your_ref", "role"])
    for n in range(2, 6):
        sheet.append([f"Person {n}", f"{n} Road", f"Dear P{n},", f"=A{n}", f"=B{n}", "#REF!"])
    book.save(tmp_path / "contacts.xlsx")
    file = tmp_path / "contacts.xlsx"
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "contacts.xlsx"))
    assert [str(p) for p in caught.value.problems] == [
        f"{file}:row 1: error: every one of the 4 rows of columns 'text.note' and 'your_ref' holds a formula "
        "whose value was never worked out: the file was written by a program and never saved by a spreadsheet "
        "program. Open contacts.xlsx in Excel or LibreOffice and save it (that works the formulas out), or have "
        "the program write the values instead of formulas",
        f"{file}:row 1:role: error: every one of the 4 rows of column 'role' shows the spreadsheet error #REF!: "
        "correct the column in the spreadsheet (a formula filled down it that goes wrong for every row?)"]

    sheet["D5"], sheet["E5"], sheet["F5"] = "typed", "typed", "Clerk"  # one row holds values: per row, as before
    book.save(tmp_path / "contacts.xlsx")
    loaded = load(batch(tmp_path, "contacts.xlsx"))
    assert [r.id for r in loaded.batch.recipients] == ["person-5"]
    assert len([p for ps in loaded.rejected.values() for p in ps]) == 9


def test_a_formula_whose_text_is_empty_is_an_empty_cell(tmp_path):
    """=IF(B2="","",B2) or IFERROR(VLOOKUP(...),"") worked out to "": saved by Excel and
    LibreOffice as t="str" with an empty value. That is an empty cell (the field is
    absent), not a formula never worked out."""
    from builder.table import _xlsx_rows

    header = "".join(f'<c r="{c}1" t="s"><v>{i}</v></c>' for i, c in enumerate("ABCDEF"))
    path = write_parts(tmp_path / "e.xlsx", sheet=f"""<worksheet xmlns="{MAIN_NS}"><sheetData><row r="1">{header}\
</row><row r="2"><c r="A2" t="inlineStr"><is><t>a-1</t></is></c><c r="C2" t="str"><f>IF(1,"","x")</f><v></v></c>\
<c r="D2" t="str"><f>IF(1,"","x")</f><v/></c><c r="E2"><f>A1</f><v></v></c></row></sheetData></worksheet>""")
    ((_, _), (_, row)) = list(_xlsx_rows(path, None))
    assert row[:4] == ["a-1", None, None, None] and getattr(row[4], "why", "").startswith("holds a formula whose value")


def test_a_spreadsheet_error_saved_into_a_csv_is_refused_where_it_stands(tmp_path):
    """CSV has no error type: Excel writes #N/A, LibreOffice Err:502, as text.
    A field given one is refused at its row and column; a cell that only looks
    alike (#NA, a hashtag) prints as written, and the other letters build."""
    (tmp_path / "contacts.csv").write_text(
        "name,address,salutation,role,text.note,notes\r\n"
        "Ann Good,1 Road,\"Dear Ann,\",#NA,A note.,\r\n"
        "Bea Lookup,2 Road,\"Dear Bea,\", #N/A ,A note.,\r\n"
        "Cy Calc,3 Road,Err:502,Clerk,A note.,\r\n"
        "Di Unused,4 Road,\"Dear Di,\",#campaign,A note.,#REF!\r\n"
        "Ed Part,5 Road,\"Dear Ed,\",Clerk,#DIV/0!,\r\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "contacts.csv"))
    file = tmp_path / "contacts.csv"
    assert [(r.id, r.role) for r in loaded.batch.recipients] == [("ann-good", "#NA"), ("di-unused", "#campaign")]
    found = [str(p) for ps in loaded.rejected.values() for p in ps]
    assert f"{file}:row 3:role: error: recipient 'bea-lookup': the cell shows #N/A, a spreadsheet error saved " \
        "into the CSV file; correct it in the spreadsheet or type the value instead" in found, found
    assert f"{file}:row 4:salutation: error: recipient 'cy-calc': the cell shows Err:502, a spreadsheet error " \
        "saved into the CSV file; correct it in the spreadsheet or type the value instead" in found, found
    # a part every letter must give, refused: one message, not also "must give text.note"
    assert f"{file}:row 6:text.note: error: recipient 'ed-part': the cell shows #DIV/0!, a spreadsheet error " \
        "saved into the CSV file; correct it in the spreadsheet or type the value instead" in found, found
    assert len(found) == 3


def test_what_a_second_outsider_found(tmp_path):
    """A hidden first sheet, a 12-digit phone number in General, merged cells, a ';' file
    whose header holds a comma, and a line break saved as CR LF inside a quoted cell."""
    book = openpyxl.Workbook()
    lookups = book.active
    lookups.title = "Lookups"  # hidden: the office never sees it, so it is not the recipients
    lookups.append(["name", "salutation"])
    lookups.append(["Nobody Seen", "Dear N,"])
    lookups.sheet_state = "hidden"
    sheet = book.create_sheet("Contacts")
    sheet.append(["name", "role", "address", "salutation", "text.note", "your_ref"])
    sheet.append(["Ann Good", "Chair", "1 Road", "Dear Ann,", 447700900123, 123456789012345])
    sheet.append(["Bob Fine", "Member", "2 Road", "Dear Bob,", "x", None])
    sheet.append(["Cat Below", None, None, "Dear Cat,", "y", None])
    sheet.append(["Dee Early", None, "4 Road", "Dear Dee,", -5, None])  # Excel shows ######## for it
    sheet.append(["Eve Late", None, "5 Road", "Dear Eve,", 3_000_000, None])  # and #VALUE! for this
    sheet["E5"].number_format = sheet["E6"].number_format = "d mmmm yyyy"
    sheet.row_dimensions[3].hidden = True  # filtered out: still a letter, and said so
    sheet.merge_cells("B3:B4")  # the sheet shows "Member" beside Cat too
    sheet.merge_cells("C3:C4")
    book.save(tmp_path / "c.xlsx")
    loaded = load(batch(tmp_path, "c.xlsx"))
    ann, bob = loaded.batch.recipients
    assert [str(p) for p in loaded.problems if p.warning] == [
        f"{tmp_path / 'c.xlsx'}:row 3: warning: row 3 is hidden in the sheet (filtered out?) and still gets a letter; "
        "to leave them out, delete the rows (or copy the rows you see into a new sheet)"]
    assert (ann.id, ann.text, ann.your_ref, bob.role) == ("ann-good", {"note": "447700900123"}, "123456789012345", "Member")
    where = f"{tmp_path / 'c.xlsx'}:row 4:"
    assert sorted(str(p) for p in loaded.problems if not p.warning) == [
        f"{where}address: error: recipient 'cat-below': the cell is part of the merged cells C3:C4, whose value "
        "stands in C3 only; unmerge them and type the value in each cell",
        f"{where}role: error: recipient 'cat-below': the cell is part of the merged cells B3:B4, whose value "
        "stands in B3 only; unmerge them and type the value in each cell",
        f"{tmp_path / 'c.xlsx'}:row 5:text.note: error: recipient 'dee-early': the cell shows ########: a negative "
        "number under a date or time format, which no calendar shows; correct it in the spreadsheet or type the "
        "value instead",
        f"{tmp_path / 'c.xlsx'}:row 6:text.note: error: recipient 'eve-late': the cell holds a date after the year "
        "9999, which Excel shows as #VALUE!; correct it in the spreadsheet or type the value instead"]

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "address", None, "salutation", "text.note"])
    sheet.append(["Ann Good", "1 Road", "Town", "Dear Ann,", "x"])
    sheet.merge_cells("B1:C1")  # "address" over two columns: the town would be lost
    book.save(tmp_path / "h.xlsx")
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "h.xlsx"))
    assert f"{tmp_path / 'h.xlsx'}:row 1:address: error: the header 'address' is merged across B1:C1" in str(caught.value)
    (tmp_path / "g.csv").write_text("name,address,,salutation,text.note\nAnn Good,1 Road,Town,\"Dear Ann,\",x\n",
                                    encoding="utf-8")  # the town typed under no header: said, not silently lost
    assert [str(p) for p in load(batch(tmp_path, "g.csv")).problems] == [
        f"{tmp_path / 'g.csv'}:row 1: warning: column C has no header, so its cells (row 2 first) are not read; "
        "give it a header (address 2, text.<part> ...) or delete them"]

    (tmp_path / "s.csv").write_bytes("\ufeffname;address;salutation;Note, optional\r\n"
                                     'Ann Good;"1 Road\r\nTown";Dear Ann,;"one\r\ntwo"\r\n'.encode("utf-8"))
    path = write_yaml(tmp_path / "s.yaml", LETTER + """\
recipients:
  from: s.csv
  columns: {"Note, optional": text.note}
""")
    loaded = load(path)
    (ann,) = loaded.batch.recipients
    assert (ann.address, ann.salutation, ann.text) == (["1 Road", "Town"], "Dear Ann,", {"note": "one\ntwo"})
    assert loaded.problems == []
    # Excel's "Unicode Text" (UTF-16, tabs) and "CSV (Macintosh)" (lines end in CR), ';'-separated
    # and Excel's "sep=;" line, which names the separator and is no row
    for data in ("name\taddress\tsalutation\tNote, optional\r\nAnn Good\t1 Road\tDear Ann,\tone\r\n".encode("utf-16"),
                 b"name;address;salutation;Note, optional\rAnn Good;1 Road;Dear Ann,;one\r",
                 b"sep=;\r\nname;address;salutation;Note, optional\r\nAnn Good;1 Road;Dear Ann,;one\r\n"):
        (tmp_path / "s.csv").write_bytes(data)
        loaded = load(path)
        (ann,) = loaded.batch.recipients
        assert (ann.address, ann.salutation, ann.text, loaded.problems) == (["1 Road"], "Dear Ann,", {"note": "one"}, [])
    (tmp_path / "m.csv").write_text("name,address,salutation,text.note,E-mail,Your Ref.,Phone\n"
                                    "Ann,1 Road,Dear Ann,x,a@b.org,R1,1\n", encoding="utf-8")  # headers as offices write them: the field they meant, said
    assert [str(p) for p in load(batch(tmp_path, "m.csv")).problems] == [
        f"{tmp_path / 'm.csv'}:row 1: warning: columns 'E-mail', 'Your Ref.', 'Phone' not used (no field has that "
        "name; is 'E-mail' 'email'? is 'Your Ref.' 'your_ref'? rename the header, or map it under columns: to use it, "
        "or to ~ to leave it out without this warning)"]
    (tmp_path / "h.csv").write_bytes(b"\xef\xbb\xbfname,address,salutation\r\n")  # headers, nobody yet
    with pytest.raises(LoadError) as caught:  # said of the spreadsheet, not of the YAML's recipients
        load(batch(tmp_path, "h.csv"))
    assert str(caught.value) == f"{tmp_path / 'h.csv'}:row 1: error: the file has its headers but no rows below " \
                                "them: one row per letter"
    (tmp_path / "d.csv").write_text("name,Address,Address,salutation\nAnn,1 Road,Town,Dear Ann,\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:  # one header per line of an address: said how to name them
        load(batch(tmp_path, "d.csv"))
    assert "two columns give the same field: 'Address' and 'Address'; for the lines of one address, name them " \
           "'address 1', 'address 2' ..." in str(caught.value)
    # a control character pasted into a cell: named, with the fix, as the YAML reader says it
    (tmp_path / "s.csv").write_text("name;address;salutation;Note, optional\nAnn\x1bGood;1 Road;Dear Ann,;o\x07ne\n",
                                    encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load(path)
    assert sorted(p.message for p in caught.value.problems) == [
        f"contains a control character (U+{code}) that cannot be printed; delete it" for code in ("0007", "001B")]


def test_a_contact_list_as_libreoffice_saves_it_title_above_the_headers(tmp_path):
    """tests/data/office.xlsx and office.csv (made by LibreOffice, tests/data/office.py):
    a title and a blank row above the headers, which stand on row 3. The title was taken
    for the header row, so no column named a field and nothing was built."""
    import shutil

    for name in ("office.xlsx", "office.csv"):
        shutil.copy(ROOT / "tests" / "data" / name, tmp_path / name)
        loaded = load(write_yaml(tmp_path / "recipients.yaml", LETTER + f"recipients: {{from: {name}}}\n"))
        recipients = loaded.batch.recipients
        assert [r.id for r in recipients] == ["dr-sian-o-brien", "jo-bloggs"], name
        # a line break typed in the cell; the Postcode column is the address's last line
        assert recipients[0].address == ["12 Mill Lane", "Newtown", "NT2 3BB"]
        assert recipients[1].address == ["3 Station Road", "Oldtown", "OT1 4CC"]  # spaces around it dropped
        assert recipients[1].name == "Jo\u00a0Bloggs"  # no-break spaces around it dropped, between kept
        assert recipients[1].text == {"note": "Jo Bloggs"}  # the formula's value
        assert recipients[1].email == "jo@example.org"
        (problems,) = loaded.rejected.values()
        assert [str(p) for p in problems] == [
            f"{tmp_path / name}:row 6:Email: error: recipient 'ann-other': 'ann\\xa0other@example.org' is not an "
            "email address: it holds a no-break space (U+00A0) after 'ann', and an address has no spaces; delete it"]
        assert [str(w) for w in loaded.warnings] == [
            f"{tmp_path / name}:row 3: warning: columns 'First', 'Last', 'Joined' not used (no field "
            "has that name; map it under columns: to use it, or to ~ to leave it out without this warning)"]
    report = build(tmp_path / "recipients.yaml", tmp_path / "build")
    assert {o.recipient: o.status for o in report.outcomes} == {
        "dr-sian-o-brien": "built", "jo-bloggs": "built", "ann-other": "invalid"}
    words = pdf_text(next(o.pdf for o in report.outcomes if o.recipient == "jo-bloggs"))
    assert "Jo Bloggs" in words and "3 Station Road Oldtown OT1 4CC" in words, words


def test_headers_below_a_title_but_not_below_ten_rows_of_notes(tmp_path):
    """The headers are the first row naming a field; more than ten rows that name none above it
    and the first row is taken, as before, so its message shows what was found."""
    rows = [["Contacts"], [""], ["name", "address", "salutation", "text.note"], ["Jo", "1 Road", "Dear Jo,", "Hi."]]
    (tmp_path / "c.csv").write_bytes(csv_bytes(rows, bom=False, newline="\n"))
    loaded = load(batch(tmp_path, "c.csv"))
    assert [r.name for r in loaded.batch.recipients] == ["Jo"] and not loaded.warnings
    notes = [[f"note {n}"] for n in range(11)]
    (tmp_path / "c.csv").write_bytes(csv_bytes(notes + rows[2:], bom=False, newline="\n"))
    with pytest.raises(LoadError, match=r"row 1: error: no column for the required field 'name'; the headers are: "
                                        r"note 0"):
        load(batch(tmp_path, "c.csv"))


@pytest.mark.parametrize("name, kind", [("contacts.ods", "a LibreOffice workbook (.ods)"),
                                        ("Contacts.XLS", "an Excel 97-2003 workbook (.xls)")])
def test_a_workbook_of_another_kind_is_told_what_to_save(tmp_path, name, kind):
    """LibreOffice saves .ods unless told otherwise: the message names what the file is and
    how to save one that is read, not only 'must be a .xlsx or .csv file inside the project folder'."""
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, name))
    assert str(caught.value).endswith(
        f"error: field 'recipients.from': '{name}' is {kind}; recipients are read from a .xlsx or .csv file: "
        "save the sheet as .xlsx (in LibreOffice: File > Save As, 'Excel 2007-365'; in Excel: 'Excel Workbook') or as CSV UTF-8, and give that "
        "file"), str(caught.value)


def test_excel_unicode_text_saved_as_txt_is_told_to_be_renamed(tmp_path):
    """Excel saves "Unicode Text" (UTF-16, tab-separated) as .txt, which the CSV reader reads."""
    with pytest.raises(LoadError, match=r"'contacts.txt' is a text file \(.txt\); recipients are read from a .xlsx or "
                                        r".csv file: a tab-separated text file saved by a spreadsheet is read as CSV, "
                                        r"so rename it to .csv"):
        load(batch(tmp_path, "contacts.txt"))
    data = "name\taddress\tsalutation\ttext.note\r\nJo\t1 Road\tDear Jo,\thi\r\n".encode("utf-16")
    (tmp_path / "contacts.csv").write_bytes(data)
    assert [r.name for r in load(batch(tmp_path, "contacts.csv")).batch.recipients] == ["Jo"]


def test_town_and_postcode_columns_are_the_address_s_last_lines(tmp_path):
    """'Address 1, Address 2, Town, Post Code' is how offices keep addresses: Town and Post Code
    were ignored with a warning, and every letter was built without its town and postcode."""
    (tmp_path / "c.csv").write_text(
        "ID,Name,Address 1,Address 2,Town,Post Code,Salutation,text.note\n"
        "1,Jo Bloggs,3 Station Road,Oldtown,Newtown,NT1 4CC,Dear Jo,hi\n"
        "2,Ann,4 Road,,Town,NT2 2BB,Dear Ann,hi\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert [r.address for r in loaded.batch.recipients] == [
        ["3 Station Road", "Oldtown", "Newtown", "NT1 4CC"], ["4 Road", "Town", "NT2 2BB"]]
    assert loaded.problems == []
    # without an address column: the street, city and postcode columns are the address
    (tmp_path / "c.csv").write_text("Name,Street,City,Postcode,Country,Salutation,text.note\n"
                                    "Jo,1 Rue,Paris,75001,France,Dear Jo,hi\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert loaded.batch.recipients[0].address == ["1 Rue", "Paris", "75001", "France"] and not loaded.problems


def test_contacts_on_a_second_sheet_the_message_names_the_sheets(tmp_path):
    """A workbook whose first sheet is a 'Read me' and whose contacts are on the second (the
    sheet the office sees when it opens the file): the message named only the headers found."""
    book = openpyxl.Workbook()
    book.active.title = "Read me"
    book.active["A1"] = "How to fill in this list"
    contacts = book.create_sheet("Contacts")
    contacts.append(["name", "address", "salutation", "text.note"])
    contacts.append(["Jo", "1 Road", "Dear Jo,", "Hi."])
    book.active = 1
    book.save(tmp_path / "c.xlsx")
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "c.xlsx"))
    said = [str(p) for p in caught.value.problems]
    # one cause, one message: it was three, one per required field, and only the first named the sheets
    assert said == [f"{tmp_path / 'c.xlsx'}:row 1: error: no column for the required fields 'name', 'address' and "
                    "'salutation'; the headers are: How to fill in this list (in the sheet 'Read me', the first; the "
                    "workbook's sheets are: Read me, Contacts: name the one with the contacts as 'sheet:' under "
                    "recipients:)"], said
    yaml = tmp_path / "recipients.yaml"
    yaml.write_text(yaml.read_text().replace("{from: c.xlsx}", "{from: c.xlsx, sheet: Contacts}"))
    assert [r.name for r in load(yaml).batch.recipients] == ["Jo"]


def test_a_semicolon_csv_with_a_title_line_above_its_headers(tmp_path):
    """A title line without a separator ('Members list') decided the separator (',', the tie's
    winner), so a ';' file's header row was one cell and nothing was built."""
    (tmp_path / "c.csv").write_bytes("Members list\r\nname;address 1;Town;salutation;text.note\r\n"
                                     "Jo;1 Road;Newtown;Dear Jo,;hi, there\r\n".encode())
    loaded = load(batch(tmp_path, "c.csv"))
    assert [(r.name, r.address, r.salutation, r.text) for r in loaded.batch.recipients] == [
        ("Jo", ["1 Road", "Newtown"], "Dear Jo,", {"note": "hi, there"})]


def test_a_no_break_space_in_an_id_cell_is_named(tmp_path):
    """An id typed with a no-break space (pasted from a web page or an e-mail): the message
    showed only 'jo\\xa0b', which no one sees in the sheet."""
    (tmp_path / "c.csv").write_text("id,name,address,salutation,text.note\njo\u00a0b,Jo,1 Road,Dear Jo,hi\n"
                                    "ann,Ann,1 Road,Dear Ann,hi\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    (problems,) = loaded.rejected.values()
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'c.csv'}:row 2:id: error: recipient 'jo\\xa0b': must be lower-case letters, digits and hyphens "
        "(it names the PDF file), at most 64 (got 'jo\\xa0b'; it holds a no-break space (U+00A0) after 'jo')"]


def test_address_line_columns_and_a_half_read_address_is_refused(tmp_path):
    """'Address Line 1', 'Address Line 2' (as many systems export them) are the address's lines;
    a column that looks like the address but no field takes stops the build, rather than letters
    going out with the town and postcode only."""
    (tmp_path / "c.csv").write_text("Name,Address Line 1,Address Line 2,Town/City,Postcode,Salutation,text.note\n"
                                    "Jo,1 Road,Flat 2,Newtown,NT1 1AA,Dear Jo,hi\n", encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert loaded.batch.recipients[0].address == ["1 Road", "Flat 2", "Newtown", "NT1 1AA"] and not loaded.problems
    (tmp_path / "c.csv").write_text("Name,Address (home),Town,Postcode,Salutation,text.note\n"
                                    "Jo,1 Road,Newtown,NT1 1AA,Dear Jo,hi\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "c.csv"))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'c.csv'}:row 1:Address (home): error: the column 'Address (home)' looks like part of the "
        "address, but no field takes it; name it 'address 1', 'address 2' ... in the order of the lines, or map it "
        "under columns: (to ~ if it is no line of the address)"]
    # as offices name that column too (each built letters with the town and postcode alone);
    # an e-mail or web address is no line of it
    for header in ("Home address", "Postal address", "Street address", "Addr 1", "Mailing address"):
        (tmp_path / "c.csv").write_text(f"Name,{header},Town,Postcode,Salutation,text.note,Email address,Web address\n"
                                        "Jo,1 Road,Newtown,NT1 1AA,Dear Jo,hi,jo@example.org,example.org\n",
                                        encoding="utf-8")
        with pytest.raises(LoadError) as caught:
            load(batch(tmp_path, "c.csv"))
        assert [p.header for p in caught.value.problems] == [header], caught.value.problems


def test_a_csv_row_wider_than_its_headers_is_refused_and_a_sheet_s_cell_right_of_them_warned_of(tmp_path):
    """A value holding a comma, saved without quotes (typed by hand, or by a program), splits in
    two and moves every later cell of its row one column on: the address was read as the
    salutation, and the last cell was read by no column, without a word. That row is refused,
    the others build. In a workbook, a cell right of the last header is an address line typed
    where no header names it: warned of, as one under an empty header."""
    (tmp_path / "c.csv").write_text("id,name,role,address,salutation,text.note\n"
                                    "x,Xavier Unal,Chair, Friends of Borth Library,1 Road,Dear X,Hello.\n"
                                    'y,Yan Li,"Chair, Friends",2 Road,Dear Y,Hi.\n', encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert [r.id for r in loaded.batch.recipients] == ["y"] and loaded.batch.recipients[0].role == "Chair, Friends"
    ((rejected,),) = loaded.rejected.values()
    assert str(rejected).startswith(f"{tmp_path / 'c.csv'}:row 2: error: recipient 'x': this row has cells past "
                                    "the last column of the header row (6 columns), from 'Hello.' on: a value "
                                    "holding the file's separator")
    book = openpyxl.Workbook()
    for row in (["id", "name", "address", "salutation", "text.note"],
                ["a", "Ann", "1 Road", "Dear Ann,", "Hi.", "Flat 3"],  # read before the headers' width is known
                ["b", "Bob", "2 Road", "Dear Bob,", "Hi.", None, "Flat 4"]):
        book.active.append(row)
    book.save(tmp_path / "c.xlsx")
    loaded = load(batch(tmp_path, "c.xlsx"))
    assert [r.id for r in loaded.batch.recipients] == ["a", "b"]
    assert [str(w) for w in loaded.warnings] == [
        f"{tmp_path / 'c.xlsx'}:row 1: warning: column {column} has no header, so its cells (row {row} first) are "
        "not read; give it a header (address 2, text.<part> ...) or delete them" for column, row in (("F", 2), ("G", 3))]


def test_a_postcode_column_beside_a_whole_address_is_not_printed_twice(tmp_path):
    """Offices keep a Postcode column for sorting beside the address cell that holds it already."""
    (tmp_path / "c.csv").write_text('Name,Address,Postcode,Salutation,text.note\n'
                                    'Jo,"1 Road\nNewtown\nNT1 1AA",nt1  1aa,Dear Jo,hi\n'
                                    'Al,"2 Road\nNewtown",NT1 2BB,Dear Al,hi\n', encoding="utf-8")
    loaded = load(batch(tmp_path, "c.csv"))
    assert [r.address for r in loaded.batch.recipients] == [
        ["1 Road", "Newtown", "NT1 1AA"], ["2 Road", "Newtown", "NT1 2BB"]]


def test_a_welsh_row_s_own_text_in_one_language_is_told_the_columns_to_use(tmp_path):
    """A row made Welsh (or bilingual) by its language cell, with a text in one cell:
    the fix is in the spreadsheet, columns by language, not YAML's {cy: …, en: …}."""
    (tmp_path / "c.csv").write_text(
        "name,address,salutation,text.note,language\n"
        "Alys Evans,1 Lôn,\"Annwyl Alys,\",Nodyn.,cy\n"
        "Tom Price,2 Road,\"Dear Tom,\",A note.,cy-en\n", encoding="utf-8")
    letter = LETTER.replace("    - main: This is the shared text.", "    - main: {en: Shared., cy: Rhannol.}").replace(
        "title: Clerk}", "title: {en: Clerk, cy: Clerc}}").replace("role: Clerk\n", "role: {en: Clerk, cy: Clerc}\n")
    path = write_yaml(tmp_path / "recipients.yaml", letter + "recipients: {from: c.csv}\n")
    loaded = load(path)
    assert [r.id for r in loaded.batch.recipients] == ["alys-evans"]  # Welsh, written in Welsh: no fix needed
    assert [str(p) for problems in loaded.rejected.values() for p in problems] == [
        # a bilingual row's cell lacks both languages: said of both (it said "this letter is in Welsh")
        f"{tmp_path / 'c.csv'}:row 3:text.note: error: recipient 'tom-price': text.note has no Welsh text (cy) or "
        "English text (en), and this letter is in Welsh and English: leave this cell empty and give it in the "
        "columns text.note.cy and text.note.en (headers of yours mapped to them under columns:)",
        f"{tmp_path / 'c.csv'}:row 3:salutation: error: recipient 'tom-price': salutation has no Welsh text (cy) or "
        "English text (en), and this letter is in Welsh and English: leave this cell empty and give it in the "
        "columns salutation.cy and salutation.en (headers of yours mapped to them under columns:)"]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_spreadsheet_saved_while_the_build_runs_leaves_its_letter_stale_not_ready(tmp_path, monkeypatch, kind):
    """The build reads the spreadsheet once: the hash on the record is of the
    bytes its letters were made from. The same file saved again just after the
    build read it (an office saving while a build ran) was hashed as saved, so
    the letter with the old wording was called ready, and no build made it again."""
    from builder import table as table_module
    from builder.build import status as status_of

    headers = ["Name", "Address 1", "Salutation"]

    def write(salutation: str) -> None:
        if kind == "csv":
            (tmp_path / "contacts.csv").write_text(
                ",".join(headers) + "\n" + f'Ann Other,1 Road,"{salutation}"\n', encoding="utf-8")
        else:
            write_xlsx(tmp_path / "contacts.xlsx", headers, [[("Ann Other", None), ("1 Road", None),
                                                             (salutation, None)]])

    write("Dear Ann,")
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER + f"recipients: {{from: contacts.{kind}}}\n")
    out = tmp_path / "build"
    assert build(source, out).ok
    write("Dear Ms Other,")
    read = table_module.read

    def saved_again_once_read(*args, **kwargs):
        table = read(*args, **kwargs)
        write("Dear Annie,")  # saved again while the build goes on with what it read
        monkeypatch.setattr(table_module, "read", read)
        return table

    monkeypatch.setattr(table_module, "read", saved_again_once_read)
    assert build(source, out).ok
    assert "Dear Ms Other," in pdf_text(out / "letters" / "ann-other.pdf")  # what it read
    assert not [s for s in status_of(source, out) if s.ready and s.recipient == "ann-other"]
    again = build(source, out)
    assert [o.status for o in again.outcomes] == ["built"]
    assert "Dear Annie," in pdf_text(out / "letters" / "ann-other.pdf")


def test_an_unclosed_quote_in_a_csv_stops_with_the_row_and_column_it_opened_in(tmp_path):
    """A quote left open ran on through the rows below it: Ann's letter was built with
    "Newtown,n / Bob Two,Dear Bob" in her address, and Bob got no letter and was named
    nowhere. The file is refused at the row and column where the quote opened; a quoted cell
    with line breaks (Alt+Enter, as Excel saves it) is still one cell of one row."""
    file = tmp_path / "c.csv"
    good = b'Bob Two,"Dear Bob,","2 Mill Lane\r\nOldtown",n\r\nCat Three,"Dear Cat,","3 Mill Lane",n\r\n'
    source = write_yaml(tmp_path / "recipients.yaml",
                        LETTER + "recipients: {from: c.csv, columns: {Note: text.note}}\n")
    for ann, row, cell, where in [
            (b'Ann One,"Dear Ann,","1 Mill Lane\r\nNewtown,n\r\n', 2, "C ('Address')", ""),
            (b'Ann One,"Dear Ann,,1 Mill Lane,n\r\n', 2, "B ('Salutation')", ""),
            # after a cell of two lines, the file's line is not its row: both are said
            (b'Zed,"Dear Zed,","9 Road\r\nTown",n\r\nAnn One,"Dear Ann,",1 Mill Lane,"n\r\n', 3, "D ('Note')",
             " (line 4 of the file)")]:
        file.write_bytes(b"Name,Salutation,Address,Note\r\n" + ann + (good if b"Zed" not in ann else b""))
        with pytest.raises(LoadError) as caught:
            load(source)
        assert [str(p) for p in caught.value.problems] == [
            f"{file}:row {row}: error: a double quote opens the cell in column {cell}{where} and is never closed, "
            "so the text after it, the rows below too, would be read into that one cell; close the quote after "
            "the cell's text (a quote inside a cell is written twice: \"\")"]
    file.write_bytes(b'Name,Salutation,Address,Note\r\nAnn One,"Dear Ann" x,1 Mill Lane,n\r\n' + good)
    with pytest.raises(LoadError) as caught:
        load(source)
    assert [str(p) for p in caught.value.problems] == [
        f"{file}:row 2: error: the cell in column B ('Salutation') has text after its closing double quote; close "
        "the quote after the cell's text, or write a quote inside the cell twice (\"\")"]
    file.write_bytes(b'Name,Salutation,Address,Note\r\n' + good)
    loaded = load(source)
    assert [(r.id, r.address) for r in loaded.batch.recipients] == [
        ("bob-two", ["2 Mill Lane", "Oldtown"]), ("cat-three", ["3 Mill Lane"])] and not loaded.problems


def test_a_number_in_a_cell_formatted_text_prints_all_its_digits(tmp_path):
    """A number typed before its cell was formatted Text ("@"), or pasted into it, stays a
    number, which Excel shows as General would: it printed 4.47701E+11."""
    book = openpyxl.Workbook()
    book.active.append(["Name", "Address 1", "Address 2", "Salutation", "text.note"])
    book.active.append(["Ann", "1 Road", 447700900123, "Dear Ann,", 12345678901234])
    for cell in ("C2", "E2"):
        book.active[cell].number_format = "@"
    book.save(tmp_path / "c.xlsx")
    (ann,) = load(batch(tmp_path, "c.xlsx")).batch.recipients
    assert (ann.address, ann.text) == (["1 Road", "447700900123"], {"note": "12345678901234"})


def test_rows_empty_but_for_a_column_no_field_takes_are_no_recipients(tmp_path):
    """A lookup's #N/A filled down past the data, in a column no field takes, made each such
    row a recipient missing every field ("row-4: required field is missing"), so the build
    failed and merge refused. A row is empty when the columns fields take are; an error in one
    of those is still refused where it stands."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Name", "Address", "Salutation", "text.note", "Lookup"])
    sheet.append(["Ann", "1 Road", "Dear Ann,", "Hi.", "A1"])
    for row in range(3, 8):
        cell = sheet.cell(row=row, column=5, value="#N/A")
        cell.data_type = "e"
    cell = sheet.cell(row=8, column=1, value="#N/A")  # a field's cell: refused, not passed over
    cell.data_type = "e"
    book.save(tmp_path / "c.xlsx")
    (tmp_path / "c.csv").write_bytes(b"Name,Address,Salutation,text.note,Lookup\r\nAnn,1 Road,\"Dear Ann,\",Hi.,A1\r\n"
                                     + b",,,,#N/A\r\n" * 5 + b"#N/A,,,,\r\n")
    for name in ("c.xlsx", "c.csv"):
        loaded = load(batch(tmp_path, name))
        assert [r.id for r in loaded.batch.recipients] == ["ann"]
        ((first, *_),) = loaded.rejected.values()  # (and the fields it leaves missing)
        assert (first.row, first.header) == (8, "Name") and first.message.startswith("the cell shows")
        assert [p.row for p in loaded.warnings] == [1]  # the Lookup column, not used


def test_the_column_headings_again_below_the_first_are_refused_on_their_row(tmp_path):
    """A second export pasted below the first: its header row became a letter to "Name" at
    "Address". That row is refused, one message at its row; the others build."""
    book = openpyxl.Workbook()
    for row in (["Name", "Address", "Salutation", "text.note", "Email"], ["Ann", "1 Road", "Dear Ann,", "Hi.", None],
                ["Bob", "2 Road", "Dear Bob,", "Hi.", None], [" name", "ADDRESS", "Salutation", "text.note", "Email"],
                ["Cat", "3 Road", "Dear Cat,", "Hi.", None]):
        book.active.append(row)
    book.save(tmp_path / "c.xlsx")
    report = build(batch(tmp_path, "c.xlsx"), tmp_path / "build")
    assert {o.recipient: o.status for o in report.outcomes} == {
        "ann": "built", "bob": "built", "row-4": "invalid", "cat": "built"}
    (refused,) = [o for o in report.outcomes if o.status == "invalid"]
    assert refused.message == (
        f"{tmp_path / 'c.xlsx'}:row 4: error: recipient 'row-4': this row repeats the column headings (a second "
        "export pasted below the first?), so it is no recipient; delete it")
    (bob,) = [o for o in report.outcomes if o.recipient == "bob"]
    assert "Dear Bob," in pdf_text(bob.pdf)


def test_columns_that_look_like_lines_of_the_address_stop_the_build(tmp_path):
    """House Name/Number, Locality and the like, which no field takes, were left out with a
    warning: letters went out without that line. One message names them and the fix; mapped
    under columns: (to ~ for a sales region), they are read, or left out."""
    (tmp_path / "c.csv").write_text("Name,House Name/Number,Address,Locality,Postcode,Region,Company Phone,"
                                    "Salutation,text.note\nJo,Rose Cottage,1 Road,Hamlet,NT1 1AA,North,01234,"
                                    "Dear Jo,hi\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "c.csv"))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'c.csv'}:row 1: error: the columns 'House Name/Number', 'Locality', 'Region' look like parts "
        "of the address, but no field takes them; name them 'address 1', 'address 2' ... in the order of the lines, "
        "or map each under columns: (to ~ one that is no line of the address)"]
    for header in ("Building", "Flat", "Street Name", "District", "City/Town", "County Name", "Delivery Postcode",
                   "Company", "Organisation"):
        (tmp_path / "c.csv").write_text(f"Name,Address,{header},Postcode,Salutation,text.note\n"
                                        "Jo,1 Road,x,NT1 1AA,Dear Jo,hi\n", encoding="utf-8")
        with pytest.raises(LoadError) as caught:
            load(batch(tmp_path, "c.csv"))
        assert [p.header for p in caught.value.problems] == [header], caught.value.problems
    (tmp_path / "c.csv").write_text("Name,House Name/Number,Address,Locality,Postcode,Region,Company Phone,"
                                    "Salutation,text.note\nJo,Rose Cottage,1 Road,Hamlet,NT1 1AA,North,01234,"
                                    "Dear Jo,hi\n", encoding="utf-8")
    source = write_yaml(tmp_path / "recipients.yaml", LETTER + "recipients: {from: c.csv, columns: {House Name/Number: "
                        "address 1, Address: address 2, Locality: address 3, Region: ~}}\n")
    loaded = load(source)
    assert loaded.batch.recipients[0].address == ["Rose Cottage", "1 Road", "Hamlet", "NT1 1AA"]
    assert [p.message for p in loaded.problems] == [  # a company's phone is no line of the address
        "column 'Company Phone' not used (no field has that name; map it under columns: to use it, or to ~ to leave "
        "it out without this warning)"]


def test_a_workbook_named_csv_one_with_a_password_and_an_old_xls_are_said_to_be_what_they_are(tmp_path):
    """An .xlsx renamed .csv was "not UTF-8 (byte 0xC7)"; a workbook with a password (or an old
    .xls renamed .xlsx) was "File is not a zip file"."""
    write_xlsx(tmp_path / "c.xlsx")
    (tmp_path / "c.csv").write_bytes((tmp_path / "c.xlsx").read_bytes())
    with pytest.raises(LoadError) as caught:
        load(batch(tmp_path, "c.csv"))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'c.csv'}: error: this file is a workbook (an Excel .xlsx, a zip file), not a CSV text file, "
        "though its name ends in .csv; rename it to .xlsx, or save it from Excel as CSV UTF-8"]
    # what Excel saves a workbook with a password as, and an .xls: an OLE compound file
    ole = bytes.fromhex("D0CF11E0A1B11AE1") + bytes(504)
    for name, end in (("p.xlsx", ""), ("p.csv", ", or as CSV UTF-8")):
        (tmp_path / name).write_bytes(ole)
        with pytest.raises(LoadError) as caught:
            load(batch(tmp_path, name))
        assert [str(p) for p in caught.value.problems] == [
            f"{tmp_path / name}: error: this file is an Excel workbook with a password (encrypted) or an old Excel "
            f"97-2003 workbook (.xls), though its name ends in {name[1:]}; open it in Excel and save it as .xlsx "
            "(Excel Workbook) without a password (File > Info > Protect Workbook > Encrypt with Password: clear "
            f"it){end}"]


def test_a_hidden_column_a_field_takes_is_warned_of_as_hidden_rows_are(tmp_path):
    """A hidden column a field takes was read into every letter without a word, where hidden
    rows are warned of: one no field takes is not read, and nothing is said of it."""
    write_xlsx(tmp_path / "c.xlsx")
    book = openpyxl.load_workbook(tmp_path / "c.xlsx")
    for column in ("D", "E", "H"):  # Address 2, Address 3 and Phone (no field takes it: nothing said)
        book.active.column_dimensions[column].hidden = True
    book.save(tmp_path / "c.xlsx")
    loaded = load(batch(tmp_path, "c.xlsx"))
    assert [str(w) for w in loaded.warnings][-1] == (
        f"{tmp_path / 'c.xlsx'}:row 1: warning: columns D ('Address 2'), E ('Address 3') are hidden in the sheet and "
        "still read into the letters; unhide them to check their cells, or map each under columns: to ~ to leave it "
        "out")
    assert len(loaded.warnings) == 2 and loaded.batch.recipients[0].address[1] == "02035130477"


def test_a_spreadsheet_linked_from_outside_the_project_is_refused(tmp_path):
    """``from:`` must name a file inside the project folder, as a logo must: a link
    there to another file (contacts.csv -> /etc/passwd) was read, and its lines shown
    in the messages."""
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("Name,Address 1,Salutation,text.note\nAnn,1 Road,\"Dear Ann,\",Hello\n", encoding="utf-8")
    (project / "contacts.csv").symlink_to(outside)
    with pytest.raises(LoadError) as caught:
        load(batch(project, "contacts.csv"))
    assert [p.message for p in caught.value.problems] == [
        f"'contacts.csv' lies outside the project folder {str(project)!r}"]
    (project / "inside.csv").symlink_to(project / "people.csv")  # a link inside the folder is fine
    (project / "people.csv").write_text(outside.read_text(encoding="utf-8"), encoding="utf-8")
    assert [r.name for r in load(batch(project, "inside.csv")).batch.recipients] == ["Ann"]
