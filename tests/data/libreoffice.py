"""How tests/data/libreoffice.xlsx was made (LibreOffice is not installed in CI):

    python3 tests/data/libreoffice.py            # writes /tmp/rich.xlsx with openpyxl
    soffice --headless --convert-to xlsx --outdir /tmp/out /tmp/rich.xlsx
    cp /tmp/out/rich.xlsx tests/data/libreoffice.xlsx

LibreOffice 7.4 (Debian 12) saves it as Excel does: shared strings (a rich-text one with three
runs), a <dimension>, formulas with their cached values (text, number, boolean, #DIV/0!),
number formats in the stylesheet, row 4 and empty cells left out, a cell far to the right.
"""
import datetime as dt

import openpyxl
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont

book = openpyxl.Workbook()
sheet = book.active
sheet.title = "Contacts"
sheet.append(["id", "name", "address 1", "address 2", "address 3", "salutation", "text.note", "Phone"])
CELLS = {  # (row, column): value or (value, number format)
    (2, 1): "a-1", (2, 2): "Dr Siân O'Brien", (2, 3): "1 High St", (2, 4): (2035130477, "00000000000"),
    (2, 5): (dt.datetime(2021, 3, 14), "d mmmm yyyy"), (2, 6): "Dear Dr O'Brien,", (2, 7): '="Thanks "&B2',
    (2, 8): (0.5, "0%"),
    (3, 1): "b-2", (3, 2): "Jo Bloggs", (3, 4): True, (3, 5): "=1+2", (3, 6): "Dear Jo,", (3, 7): "x",
    (3, 8): (1234567.891, "#,##0.00"),
    (5, 1): "c-3", (5, 2): "Ann  Other ", (5, 6): "Dear Ann,",
    (5, 7): CellRichText(["Bold ", TextBlock(InlineFont(b=True), "and"), " plain"]),
    (6, 1): "d-4", (6, 2): "Lee", (6, 3): (dt.datetime(2021, 3, 14), "mm-dd-yy"), (6, 4): 0.1 + 0.2,
    (6, 5): (44, "General"), (6, 6): "Dear Lee,", (6, 7): "=1/0", (6, 8): (dt.time(13, 30), "h:mm"),
    (7, 1): "e-5", (7, 2): "Mo", (7, 4): (-12.5, "0.00;(0.00)"), (7, 5): "=TRUE()", (7, 6): "Dear Mo,",
    (7, 7): "x", (7, 8): "0123",
    (9, 2): "Tail", (9, 6): "Dear T,", (9, 12): "far right",
}
for (row, column), value in CELLS.items():
    value, style = value if isinstance(value, tuple) else (value, None)
    cell = sheet.cell(row=row, column=column, value=value)
    if style:
        cell.number_format = style
book.save("/tmp/rich.xlsx")
