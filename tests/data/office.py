"""How tests/data/office.xlsx and office.csv were made (LibreOffice is not installed in CI):

    python3 tests/data/office.py                 # writes /tmp/office.xlsx with openpyxl
    soffice --headless --convert-to xlsx --outdir /tmp/out /tmp/office.xlsx
    soffice --headless --convert-to 'csv:Text - txt - csv (StarCalc):59,34,76,1' --outdir /tmp/out /tmp/office.xlsx
    cp /tmp/out/office.xlsx /tmp/out/office.csv tests/data/

LibreOffice 7.4 (Debian 12) saves a contact list as an office keeps one: a title and a blank
row above the headers (row 3), an autofilter over them, a second sheet; a
formula (=C5&" "&D5) with its value; an address typed with a line break in its cell; no-break
spaces (U+00A0) around and inside a name and inside an e-mail; spaces around a postcode; a
date under dd/mm/yyyy. The CSV is the same sheet as LibreOffice exports it: ';'-separated,
UTF-8, every text quoted, the title row padded with separators.
"""
import datetime as dt

import openpyxl
from openpyxl.styles import Alignment

book = openpyxl.Workbook()
sheet = book.active
sheet.title = "Contacts"
sheet["A1"] = "Friends of Newtown Library: contacts"
sheet.append([])
sheet.append(["Name", "Role", "First", "Last", "Address", "Postcode", "Salutation", "text.note", "Email", "Joined"])
for row in [
    ["Dr Siân O'Brien", "Chair", "Siân", "O'Brien", "12 Mill Lane\nNewtown", "NT2 3BB", "Dear Dr O'Brien,",
     "Your card is renewed.", "sian@example.org", dt.date(2026, 3, 4)],
    ["\u00a0Jo\u00a0Bloggs\u00a0", None, "Jo", "Bloggs", "3 Station Road\nOldtown", " OT1 4CC ", "Dear Jo,",
     '=C5&" "&D5', "jo@example.org\u00a0", dt.date(2025, 12, 25)],
    [" Ann Other ", "Treasurer", "Ann", "Other", "4 Side St", "NT1 1AA", "Dear Ann,", "x",
     "ann\u00a0other@example.org", dt.date(2025, 1, 2)],
]:
    sheet.append(row)
for number in range(4, 7):
    sheet.cell(number, 5).alignment = Alignment(wrap_text=True)
    sheet.cell(number, 10).number_format = "dd/mm/yyyy"
sheet.auto_filter.ref = "A3:J6"
book.create_sheet("Lookups")["A1"] = "name"
book.save("/tmp/office.xlsx")
