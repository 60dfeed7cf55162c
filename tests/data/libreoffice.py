import datetime as dt, openpyxl
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
wb = openpyxl.Workbook()
ws = wb.active; ws.title = "Contacts"
ws.append(["id", "name", "address 1", "address 2", "address 3", "salutation", "text.note", "Phone"])
def put(r, c, v, f=None):
    cell = ws.cell(row=r, column=c, value=v)
    if f: cell.number_format = f
put(2,1,"a-1"); put(2,2,"Dr Siân O'Brien"); put(2,3,"1 High St"); put(2,4,2035130477,"00000000000")
put(2,5,dt.datetime(2021,3,14),"d mmmm yyyy"); put(2,6,"Dear Dr O'Brien,"); put(2,7,"=\"Thanks \"&B2"); put(2,8,0.5,"0%")
put(3,1,"b-2"); put(3,2,"Jo Bloggs"); put(3,4,True); put(3,5,"=1+2"); put(3,6,"Dear Jo,"); put(3,7,"x"); put(3,8,1234567.891,"#,##0.00")
# row 4 missing; row 5 sparse (skips columns C..E)
put(5,1,"c-3"); put(5,2,"Ann  Other "); put(5,6,"Dear Ann,"); put(5,7,CellRichText(["Bold ", TextBlock(InlineFont(b=True), "and"), " plain"]))
put(6,1,"d-4"); put(6,2,"Lee"); put(6,3,dt.datetime(2021,3,14),"mm-dd-yy"); put(6,4,0.1+0.2); put(6,5,44,"General"); put(6,6,"Dear Lee,"); put(6,7,"=1/0"); put(6,8,dt.time(13,30),"h:mm")
put(7,1,"e-5"); put(7,2,"Mo"); put(7,4,-12.5,"0.00;(0.00)"); put(7,5,"=TRUE()"); put(7,6,"Dear Mo,"); put(7,7,"x"); put(7,8,"0123")
put(9,2,"Tail"); put(9,6,"Dear T,"); put(9,12,"far right")
wb.save("rich.xlsx")
