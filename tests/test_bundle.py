"""The bundle to sign: cover, order, bookmarks, labels, links, duplex, signatures."""
from __future__ import annotations

import datetime as dt
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader

from builder import files as files_module
from builder import split as split_module
from builder.build import build, prepare
from builder.merge import merge
from builder.sign import sign, validate
from test_parts import find, lines
from conftest import MINIMAL_LETTER, ROOT, pdf_text, write_yaml

IDS = ["avon-and-somerset", "sussex", "london", "south-wales", "essex"]


def letter_ranges(reader: PdfReader) -> dict[str, range]:
    """Page ranges per document, from the bundle's page labels ('london 1', ...)."""
    ranges: dict[str, list[int]] = {}
    for index, label in enumerate(reader.page_labels):
        ranges.setdefault(label.rsplit(" ", 1)[0], []).append(index)
    return {name: range(pages[0], pages[-1] + 1) for name, pages in ranges.items()}


def test_bundle_structure_cover_and_metadata(real_batch):
    out, _, bundle = real_batch
    reader = PdfReader(bundle.path)
    letter_pages = [len(PdfReader(out / "letters" / f"{rid}.pdf").pages) for rid in IDS]
    assert len(reader.pages) == bundle.pages == 1 + sum(letter_pages)
    ranges = letter_ranges(reader)
    assert list(ranges) == ["cover sheet", *IDS]
    assert [len(ranges[rid]) for rid in IDS] == letter_pages
    starts = [reader.get_destination_page_number(item) for item in reader.outline]
    assert [item.title for item in reader.outline][:2] == [
        "Cover sheet", "Sue Mountstevens, Avon and Somerset Police and Crime Commissioner"]
    assert starts == [ranges[name].start for name in ranges]
    meta = reader.metadata
    assert meta.author == "Dame Sara Thornton DBE QPM"
    assert meta.title == "Letters for signature: Violence Reduction Units and modern slavery"
    assert meta.creation_date.date() == dt.date(2020, 10, 13)
    cover = pdf_text_of_page(reader, 0)
    for rid, name in zip(IDS, ["Sue Mountstevens", "Katy Bourne OBE", "Sophie Linden",
                               "The Rt Hon. Alun Michael", "Roger Hirst"]):
        first, last = ranges[rid].start + 1, ranges[rid].stop
        assert f"{name}" in cover and f"{first}–{last}" in cover
    assert "Initials:" in cover
    assert bundle.size < bundle.inputs_size  # fonts and shared objects stored once


def pdf_text_of_page(reader, index):
    return " ".join(reader.pages[index].extract_text().split())


def test_every_link_stays_inside_its_own_letter(real_batch):
    out, _, bundle = real_batch
    reader = PdfReader(bundle.path)
    ranges = letter_ranges(reader)
    owner = {page: name for name, pages in ranges.items() for page in pages}
    names = reader.named_destinations
    internal, uris, borders = 0, {name: set() for name in ranges}, set()
    actions: dict[str, list] = {}  # web address or e-mail -> how each link holds its action
    for index, page in enumerate(reader.pages):
        for annot in page.get("/Annots", []) or []:
            annot = annot.get_object()
            if annot.get("/Subtype") != "/Link":
                continue
            borders.add(annot.raw_get("/Border").idnum)  # each letter's shared border: one in the bundle
            # without the optional /Type /Annot pdfTeX writes (qpdf held 5 KB a letter for them)
            assert "/Type" not in annot, annot
            action = annot.get("/A", {})
            if "/URI" in action:
                uris[owner[index]].add(str(action["/URI"]))
                held = annot.raw_get("/A")
                actions.setdefault(str(action["/URI"]), []).append(getattr(held, "idnum", None))
                continue
            dest = annot.get("/Dest", action.get("/D"))
            target = names[str(dest)] if isinstance(dest, str) else dest
            assert reader.get_destination_page_number(target) in ranges[owner[index]], (index, dest)
            internal += 1
    assert internal == 25  # five footnote marks in each of five letters
    assert len(borders) == 1
    # an address several links share (the letterhead's, the shared footnotes') is one action
    # object in the bundle, not one per link
    shared = {uri: held for uri, held in actions.items() if len(held) > 1}
    assert "mailto:iasc@iasc.independent.gov.uk" in shared
    assert all(len(set(held)) == 1 and held[0] is not None for held in shared.values()), shared
    for rid in IDS:  # the bundle keeps exactly each letter's own URIs
        single = {str(a.get_object()["/A"]["/URI"]) for p in PdfReader(out / "letters" / f"{rid}.pdf").pages
                  for a in p.get("/Annots", []) if "/URI" in a.get_object().get("/A", {})}
        assert uris[rid] == single


@pytest.mark.parametrize("count", [0, 5, 33, 1100])
def test_named_destinations_make_a_name_tree_in_which_each_is_found(count, tmp_path):
    # the tree is made at once (split.name_tree), not by pikepdf's NameTree: one leaf for a
    # letter's few names, two levels above the leaves for a bundle's thousands
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    page = pdf.pages[0].obj
    wanted = [f"Hfootnote.r{n % 397:05d}-{n}.{n % 7}" for n in range(count)]  # in no order
    names = {name: pikepdf.Array([page, pikepdf.Name.XYZ, 0, n, 0])
             for n, name in enumerate(wanted)}
    pdf.Root.Names = pikepdf.Dictionary(Dests=split_module.name_tree(pdf, names))
    pdf.save(tmp_path / "names.pdf")
    checked = subprocess.run(["qpdf", "--check", str(tmp_path / "names.pdf")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with pikepdf.open(tmp_path / "names.pdf") as again:
        tree = pikepdf.NameTree(again.Root.Names.Dests)
        assert list(tree.keys()) == sorted(wanted)
        # found by qpdf's search, which goes by each node's /Limits
        assert all(float(tree[name][3]) == n for n, name in enumerate(wanted))

        def names_under(node, root=False) -> list[str]:
            """The names under a node, checking what the standard asks of it on the way: a
            root without /Limits, every other node's /Limits its first and last name."""
            if "/Names" in node:
                found = [str(node.Names[i]) for i in range(0, len(node.Names), 2)]
            else:
                found = [name for kid in node.Kids for name in names_under(kid)]
            if root:
                assert "/Limits" not in node
            else:
                assert [str(limit) for limit in node.Limits] == [found[0], found[-1]]
            return found

        assert names_under(again.Root.Names.Dests, root=True) == sorted(wanted)
        if count > 32 * 32:
            assert "/Kids" in again.Root.Names.Dests.Kids[0]  # a root, nodes, their leaves
    # and by another reader
    assert set(PdfReader(tmp_path / "names.pdf").named_destinations) == set(wanted)


SMALL = MINIMAL_LETTER + """\
recipients:
  - id: one
    name: One
    address: [1 Road]
    salutation: Dear One,
  - id: two
    name: Two
    address: [2 Road]
    salutation: Dear Two,
"""


@pytest.fixture
def small_batch(tmp_path):
    source = write_yaml(tmp_path / "recipients.yaml", SMALL)
    assert build(source, tmp_path / "build").ok
    return source, tmp_path / "build"


def test_the_cover_is_the_same_compiled_in_a_fresh_folder_or_again(small_batch):
    """longtable learns a column's natural width from the .aux: a cover whose
    later rows hold wider numbers than its first ones came out with another
    layout (the table 5 pt to the right) from a fresh work folder than when
    compiled again, so the bundle's bytes depended on the folder's history."""
    import shutil

    import pikepdf

    from builder.build import prepare
    from builder.merge import COVER_NAME, _cover_document, _Part

    source, out = small_batch
    prepared = prepare(source, out)
    # 20 one-page letters, then ten of 500 pages: rows 21-30 need wider columns
    letters = [_Part(rid, rid, prepared.layout.pdf(rid), 1 if n < 20 else 500)
               for n, rid in enumerate(["one", "two"] * 15)]
    document = _cover_document(prepared, letters, False, [], 2)

    def compiled() -> list[bytes]:
        result = prepared.compile(COVER_NAME, document)
        # four-digit page ranges: the role column is narrower, the table still inside the margins
        assert result.ok and result.only.pages == 2 and not result.only.overfull
        with pikepdf.open(result.pdf) as pdf:
            return [page.Contents.read_bytes() for page in pdf.pages]

    shutil.rmtree(out / "work" / COVER_NAME, ignore_errors=True)
    fresh = compiled()
    assert compiled() == fresh


def started_from_print_format(out: Path, rid: str) -> bool:
    """Whether the run that compiled ``rid`` last started from a printed preamble's format."""
    import re

    log = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["letters"][rid]["log"]
    return re.search(r"\(preloaded format=print-\w+ ", (out / log).read_text(errors="replace")) is not None


def test_a_merge_makes_the_print_format_and_letters_built_from_it_have_the_same_bytes(real_batch, tmp_path):
    """A run of one printed letter spends most of its time loading the class:
    the merge compiles the cover sheet from a format of the preamble, made on
    the other core while the letters are put together, and later builds start
    from it (a cold build, compiling the batch in a few runs, makes none).
    pdfTeX's state outside a format is put back (letterbatch-preload-print.tex):
    the sample's two-page letters with footnotes and links, and a Welsh letter
    (its own format: the class loads Welsh), come out byte for byte as built
    without it."""
    import shutil

    from conftest import SAMPLE

    out = tmp_path / "sample"
    shutil.copytree(real_batch[0], out)
    shutil.rmtree(out / "work" / "_preamble")
    assert not any(started_from_print_format(out, rid) for rid in IDS)  # built cold: no format
    merge(SAMPLE, out, duplex=True)  # (another bundle: the cover is compiled)
    assert len(list((out / "work" / "_preamble").glob("print-*.fmt"))) == 1
    before = {rid: (out / "letters" / f"{rid}.pdf").read_bytes() for rid in IDS}
    for rid in IDS:
        (out / "letters" / f"{rid}.pdf").unlink()
    rebuilt = build(SAMPLE, out, jobs=2)
    assert sorted(o.recipient for o in rebuilt.outcomes if o.status == "built") == sorted(IDS)
    assert all(started_from_print_format(out, rid) for rid in IDS)
    assert {rid: (out / "letters" / f"{rid}.pdf").read_bytes() for rid in IDS} == before

    welsh = MINIMAL_LETTER.replace("  body:\n", "  language: cy\n  body:\n") + (
        "recipients:\n  - {id: cymraeg, name: Darllenydd, address: [2 Ffordd], salutation: 'Annwyl Ddarllenydd,'}\n")
    (tmp_path / "welsh").mkdir()
    source = write_yaml(tmp_path / "welsh" / "recipients.yaml", welsh)
    out = tmp_path / "welsh" / "build"
    assert build(source, out).ok and not started_from_print_format(out, "cymraeg")
    made = (out / "letters" / "cymraeg.pdf").read_bytes()
    merge(source, out)
    (out / "letters" / "cymraeg.pdf").unlink()
    assert build(source, out).ok and started_from_print_format(out, "cymraeg")
    assert (out / "letters" / "cymraeg.pdf").read_bytes() == made
    assert len(list((out / "work" / "_preamble").glob("print-*.fmt"))) == 1


def test_a_merge_makes_the_format_again_when_it_was_lost_though_the_cover_is_kept(small_batch):
    import shutil

    source, out = small_batch
    merge(source, out)
    shutil.rmtree(out / "work" / "_preamble")  # (work/ cleared by hand, or the project moved)
    write_yaml(source, source.read_text().replace("Dear One,", "Dear First One,"))
    assert build(source, out).ok and not started_from_print_format(out, "one")
    cover = (out / "cover.pdf").stat().st_mtime_ns
    merge(source, out)
    assert (out / "cover.pdf").stat().st_mtime_ns == cover  # kept: not compiled again
    assert len(list((out / "work" / "_preamble").glob("print-*.fmt"))) == 1
    write_yaml(source, source.read_text().replace("Dear First One,", "Dear One,"))
    assert build(source, out).ok and started_from_print_format(out, "one")


def test_a_letter_never_starts_from_a_format_made_before_the_class_changed(small_batch, monkeypatch, tmp_path):
    """TeX's own files are judged by size and date; the class and its map, by
    content, as the letters are: a class edited to the same size with its date
    put back (cp -p, rsync -t) is another class, and no letter is made from
    the format of the one before."""
    import os

    from builder import build as build_module

    source, out = small_batch
    merge(source, out)  # the cover sheet: the format is made
    extra = tmp_path / "part-of-the-class.cls"
    extra.write_text("% one\n")
    files = build_module.letterhead_files()
    monkeypatch.setattr(build_module, "letterhead_files", lambda: [*files, extra])
    for rid in ("one", "two"):
        (out / "letters" / f"{rid}.pdf").unlink()
    assert build(source, out).ok
    assert not started_from_print_format(out, "one") and not started_from_print_format(out, "two")
    merge(source, out)  # the format of the class as it is now
    assert len(list((out / "work" / "_preamble").glob("print-*.fmt"))) == 2
    (out / "letters" / "one.pdf").unlink()
    assert build(source, out).ok and started_from_print_format(out, "one")
    made = extra.stat()
    extra.write_text("% two\n")  # the same size, and its date put back
    os.utime(extra, ns=(made.st_atime_ns, made.st_mtime_ns))
    rebuilt = build(source, out)
    assert sorted(o.recipient for o in rebuilt.outcomes if o.status == "built") == ["one", "two"]
    assert not started_from_print_format(out, "one") and not started_from_print_format(out, "two")


def test_the_cover_table_keeps_a_long_name_and_role_in_their_columns(tmp_path):
    """Letters are never hyphenated, but the cover is a table: a long double-barrelled
    name or a role typed with hyphens wraps in its column instead of running over the
    next one (and the page numbers) or off the page; so does a word too long for its
    column with no hyphen to break at (a long name, an e-mail address), broken only
    there, and a no-break space keeps its two words together."""
    long_role = "Deputy-Mayor-for-Policing-and-Crime-in-London-" * 3
    unbroken = "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaft"
    address = "clerk@averyveryverylongdomainnameforanorganisation.example.org.uk"
    source = write_yaml(tmp_path / "recipients.yaml", SMALL.replace(
        "    name: One\n", f"    name: Maximilian {unbroken}\n    role: {address}\n"
        "    accept: [overfull, address, window]\n").replace(
        "    name: Two\n", f"    name: Roger Hirst-Featherstonehaugh-Cholmondeley-Marjoribanks\n    role: {long_role}\n"
        "    accept: [overfull, address, window]\n"))
    source.write_text(source.read_text(encoding="utf-8").replace("Cholmondeley-Marjoribanks",
                                                                  "Cholmondeley-Marjoribanks\u00a0Jr"), encoding="utf-8")
    report = build(source, tmp_path / "build")
    assert report.ok
    # the letter itself: its overfull line quoted as typed (once with the hyphens TeX could put in)
    overfull = [f["message"] for o in report.outcomes for f in o.findings if f["code"] == "overfull"]
    assert any(f"overfull line: '{unbroken}' runs " in message and "it is part of the name" in message
               for message in overfull), overfull
    merge(source, tmp_path / "build")
    log = (tmp_path / "build" / "work" / "_cover" / "_cover.log").read_text(encoding="utf-8", errors="replace")
    assert "Overfull \\hbox" not in log
    found = lines(tmp_path / "build" / "cover.pdf")
    found = found[:found.index(find(found, "Preflight findings accepted"))]  # the table
    text = "".join(line.text for line in found).replace(" ", "")
    assert "Featherstonehaugh" in text and unbroken in text and address in text  # every character, in order
    # broken where it had to be: the name and the e-mail address each on more than one line
    assert not any(unbroken in line.text for line in found) and not any(address in line.text for line in found)
    assert "Maximilian" in " ".join(line.text for line in found)
    assert any(line.text.endswith("Marjoribanks Jr") for line in found)  # not broken at the no-break space


def test_a_cover_for_recipients_without_roles_gives_the_names_the_role_column(tmp_path):
    """Tenants have no role: the cover printed an empty Role column, half the table, and
    wrapped a double-barrelled name beside it. Without a role in the batch there is no
    Role column, and the name is on one line."""
    name = "Ms Catherine Fotheringham-Llewellyn-Smythe"
    source = write_yaml(tmp_path / "recipients.yaml", SMALL.replace("    name: One\n", f"    name: {name}\n"))
    assert build(source, tmp_path / "build").ok
    merge(source, tmp_path / "build")
    found = [line for line in lines(tmp_path / "build" / "cover.pdf") if line.page == 1]
    header = find(found, "Recipient")
    assert [line.text for line in found if line.top == header.top] == ["No.", "Recipient", "Pages"]
    assert any(line.text.endswith(name) for line in found), [line.text for line in found]


def test_letters_to_the_same_name_have_bookmarks_and_cover_rows_told_apart(tmp_path):
    """Three letters "To the Occupier" had three bookmarks "The Occupier", and three rows
    of the cover sheet: each one's id (its file's and page labels' name) tells them apart."""
    source = write_yaml(tmp_path / "recipients.yaml", SMALL.replace("name: One", "name: The Occupier").replace(
        "name: Two", "name: The Occupier") + """\
  - id: three
    name: The Occupier
    address: [2 Road, Elsewhere]
    salutation: Dear Three,
  - id: four
    name: Four
    address: [4 Road]
    salutation: Dear Four,
""")
    assert build(source, tmp_path / "build").ok
    reader = PdfReader(merge(source, tmp_path / "build").path)
    assert [item.title for item in reader.outline] == [
        "Cover sheet", "The Occupier (one)", "The Occupier (two)", "The Occupier (three)", "Four"]
    cover = reader.pages[0].extract_text()
    assert all(f"The Occupier ({rid})" in cover for rid in ("one", "two", "three")), cover
    assert "Four (four)" not in cover and "Four" in cover, cover


def test_duplex_pads_each_document_to_start_on_a_front_side(small_batch):
    source, out = small_batch
    report = merge(source, out, duplex=True)
    reader = PdfReader(report.path)
    assert len(reader.pages) == 6 and report.blank_pages == 3  # cover, one, two: 1 page each
    assert [reader.get_destination_page_number(o) for o in reader.outline] == [0, 2, 4]
    assert [pdf_text_of_page(reader, i) for i in (1, 3, 5)] == ["", "", ""]
    plain = merge(source, out, cover=False)
    assert len(PdfReader(plain.path).pages) == 2 and plain.cover_pages == 0


def test_duplex_leaves_a_letter_of_even_length_unpadded(real_batch, tmp_path):
    import shutil

    from conftest import SAMPLE

    out = tmp_path / "build"
    shutil.copytree(real_batch[0], out)  # the sample's letters are two pages each
    report = merge(SAMPLE, out, duplex=True, cover=False)
    reader = PdfReader(report.path)
    assert report.blank_pages == 0 and len(reader.pages) == 10
    assert all(pdf_text_of_page(reader, i) for i in range(10))  # no blank page anywhere
    with_cover = merge(SAMPLE, out, duplex=True)
    assert with_cover.blank_pages == 1 and len(PdfReader(with_cover.path).pages) == 12  # the cover alone


def digests_worked_out(letter: Path) -> dict[str, str]:
    """The digests of a letter's fonts and forms as the merge works them out
    from the letter's own file (``split.Deduplicator``)."""
    import pikepdf

    with pikepdf.open(letter) as pdf:
        worked_out = split_module.Deduplicator(pikepdf.new())
        worked_out.append({}, pdf, {}, range(len(pdf.pages)), "x")
    return worked_out.learned["x"]


def hashing(monkeypatch) -> list[str]:
    """The files whose objects ``split.digest`` hashes from now on, one entry a call."""
    hashed, worked_out = [], split_module.digest

    def counted(pdf, obj, memo):
        hashed.append(pdf.filename)
        return worked_out(pdf, obj, memo)

    monkeypatch.setattr(split_module, "digest", counted)
    return hashed


def test_the_build_keeps_its_letters_font_digests_as_the_merge_works_them_out(tmp_path, monkeypatch):
    """Cutting a batch into letters hashes each font once for the batch and
    keeps, for each letter's file, the digests of its fonts and forms; the
    first merge after the build hashes no letter's fonts. Those digests are
    the ones the merge works out itself, letter by letter, and the bundle is
    the same bytes as one merged from nothing."""
    source = write_yaml(tmp_path / "recipients.yaml", SMALL)
    out = tmp_path / "build"
    assert build(source, out, jobs=1).ok  # one batch of both letters: their fonts are shared in it
    kept = json.loads((out / "work" / "bundle-digests.json").read_text(encoding="utf-8"))["documents"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert set(kept) == {manifest["letters"][rid]["sha256"] for rid in ("one", "two")}
    for rid in ("one", "two"):
        by_merge = digests_worked_out(out / "letters" / f"{rid}.pdf")
        assert {where.split("/")[1] for where in by_merge} == {"Font", "XObject"}  # fonts and the letterhead's forms
        assert kept[manifest["letters"][rid]["sha256"]] == by_merge, rid
    hashed = hashing(monkeypatch)
    first = merge(source, out).path.read_bytes()
    assert hashed and not [name for name in hashed if "letters" in name]  # the cover's own, not the letters'
    (out / "work" / "bundle-digests.json").unlink()
    (out / "bundle.pdf").unlink()
    hashed.clear()
    assert merge(source, out).path.read_bytes() == first
    assert [name for name in hashed if "letters" in name]


def test_a_merge_again_takes_the_digests_it_kept_and_writes_the_same_bundle(small_batch, monkeypatch):
    source, out = small_batch
    first = merge(source, out).path.read_bytes()
    kept = out / "work" / "bundle-digests.json"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    # one entry per document of the bundle, by the hash of its file
    assert set(json.loads(kept.read_text(encoding="utf-8"))["documents"]) == {
        manifest["letters"]["one"]["sha256"], manifest["letters"]["two"]["sha256"], manifest["bundle"]["cover"]["sha256"]}
    hashed = hashing(monkeypatch)
    (out / "bundle.pdf").unlink()
    assert merge(source, out).path.read_bytes() == first
    assert hashed and not [name for name in hashed if "letters" in name]  # no letter's fonts hashed again
    good = json.loads(kept.read_text(encoding="utf-8"))
    other_code = json.dumps({**good, "code": "0" * 64}).encode()  # kept by another version of the builder
    for damaged in (b"not json", b'{"x": {"1 0": "zz"}}', b"[]", b'{"x": 3}', b"[" * 100_000 + b"]" * 100_000,
                    json.dumps({**good, "documents": {"x": {"1 0": "zz"}}}).encode(), other_code, "fifo"):
        kept.unlink()
        if damaged == "fifo":
            os.mkfifo(kept)  # reading it would never end: not a file, so not read
        else:
            kept.write_bytes(damaged)  # only a short cut: worked out again
        (out / "bundle.pdf").unlink()
        hashed.clear()
        assert merge(source, out).path.read_bytes() == first
        assert [name for name in hashed if "letters" in name] and kept.is_file()


def test_interrupted_merge_leaves_the_previous_bundle(small_batch, monkeypatch):
    source, out = small_batch
    first = merge(source, out).path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C came between writing and renaming

    monkeypatch.setattr(files_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge(source, out, cover=False)
    monkeypatch.undo()
    assert (out / "bundle.pdf").read_bytes() == first
    assert not [p for p in out.iterdir() if p.name.startswith(".bundle")]


def tiny_png(path: Path, width=120, height=40) -> Path:
    rows = b"".join(b"\x00" + bytes([20, 20, 120, 255]) * width for _ in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def image_boxes(page) -> list[tuple[float, float, float, float]]:
    """Where ``page`` (pikepdf) draws its images: left, bottom, right, top in PDF points."""
    import pikepdf

    ctm, boxes = [pikepdf.Matrix()], []
    for operands, operator in pikepdf.parse_content_stream(page):
        if str(operator) == "q":
            ctm.append(ctm[-1])
        elif str(operator) == "Q" and len(ctm) > 1:
            ctm.pop()
        elif str(operator) == "cm":
            ctm[-1] = pikepdf.Matrix(*map(float, operands)) @ ctm[-1]
        elif str(operator) == "Do" and page.Resources.XObject[operands[0]].Subtype == "/Image":
            m = ctm[-1]
            boxes.append((m.e, m.f, m.e + m.a, m.f + m.d))
    return boxes


def test_signature_image_in_every_letter(tmp_path):
    import pikepdf

    tiny_png(tmp_path / "signature.png")
    source = write_yaml(tmp_path / "recipients.yaml", SMALL.replace(
        "title: Clerk}", "title: Clerk, image: signature.png}"))
    assert build(source, tmp_path / "build").ok
    manifest = json.loads((tmp_path / "build" / "manifest.json").read_text())
    for rid in ("one", "two"):
        page = PdfReader(tmp_path / "build" / "letters" / f"{rid}.pdf").pages[-1]
        images = [x for x in page["/Resources"].get("/XObject", {}).values()
                  if x.get_object()["/Subtype"] == "/Image"]
        assert len(images) == 1
        # the space a digital signature is drawn in lies beside the image, not over it,
        # and inside the text width (the letterhead's rule spans it)
        with pikepdf.open(tmp_path / "build" / "letters" / f"{rid}.pdf") as pdf:
            [(left, bottom, right, top)] = image_boxes(pdf.pages[-1])
            # a PNG with an alpha channel is drawn through a soft mask (PDF 1.4): the letter
            # says the version pdflatex wrote, not the 1.3 of a new PDF saved without object streams
            assert "/SMask" in images[0].get_object() and pdf.pdf_version == "1.5"
        _, x, sig_bottom, sig_top, width = manifest["letters"][rid]["signature"]
        assert right < x and x + width <= 595.28 - left  # the margins are equal
        assert sig_bottom < top and bottom < sig_top  # beside it: the same height on the page


def test_signature_image_outside_the_project_is_refused(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    tiny_png(tmp_path / "elsewhere.png")
    source = write_yaml(project / "recipients.yaml", SMALL.replace(
        "title: Clerk}", "title: Clerk, image: ../elsewhere.png}"))
    from builder.load import LoadError
    with pytest.raises(LoadError, match="field 'letter.signatory.image': must be a PDF, PNG or JPEG file inside the project folder"):
        build(source, project / "build")


def make_certificates(folder: Path, name: str = "Signatory", kind: str = "rsa",
                      valid: tuple[int, int] = (-1, 30), signs: bool = True) -> tuple[Path, Path]:
    """A throwaway CA and signer (``name``), bundled as PKCS#12 with password
    'secret'; the signer's key RSA (2048 bits) or, ``kind`` "ec", ECDSA P-256.
    ``valid``: the signer's validity period, in days from now; ``signs``: False
    for a certificate whose key usage is encryption only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    def cert(subject, issuer, key, signing_key, ca):
        start, end = (-1, 30) if ca else valid
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now + dt.timedelta(days=start)).not_valid_after(now + dt.timedelta(days=end))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        signer = not ca and signs
        usage = dict(digital_signature=signer, content_commitment=signer, key_encipherment=not ca and not signs,
                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                     encipher_only=False, decipher_only=False)
        return builder.add_extension(x509.KeyUsage(**usage), critical=True).sign(signing_key, hashes.SHA256())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca_cert = cert(ca_name, ca_name, ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, key, ca_key, False)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "signer.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"signer", key, signer, [ca_cert], serialization.BestAvailableEncryption(b"secret")))
    return folder / "signer.p12", folder / "ca.pem"


def test_signature_fields_then_a_valid_signature_that_detects_tampering(small_batch, tmp_path):
    source, out = small_batch
    bundle = merge(source, out, signature_fields=True).path
    reader = PdfReader(bundle)
    fields = {f.get_object()["/T"]: f.get_object() for f in reader.trailer["/Root"]["/AcroForm"]["/Fields"]}
    assert set(fields) == {"Signature-one", "Signature-two"}
    ranges = letter_ranges(reader)
    for rid in ("one", "two"):
        assert reader.get_page_number(fields[f"Signature-{rid}"]["/P"]) == ranges[rid][-1]

    p12, ca = make_certificates(tmp_path)
    signed = sign(bundle, p12, b"secret", tmp_path / "signed.pdf")
    (check,) = validate(signed, [ca])
    assert check.intact and check.valid and check.trusted and check.bottom_line

    data = bytearray(signed.read_bytes())
    spot = data.index(b"Dear Two") if b"Dear Two" in data else len(data) // 3
    data[spot] ^= 0x01
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(bytes(data))
    (check,) = validate(tampered, [ca])
    assert not check.intact and not check.bottom_line


def test_invoke_sign_takes_the_password_from_the_environment(small_batch, tmp_path):
    import os
    import subprocess
    import sys

    source, out = small_batch
    merge(source, out)
    p12, ca = make_certificates(tmp_path)
    command = [sys.executable, "-m", "invoke", "sign", "--p12", str(p12), "--recipients", str(source),
               "--build-dir", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "LETTERBATCH_P12_PASSWORD"}
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "LETTERBATCH_P12_PASSWORD" in refused.stderr  # no terminal to ask
    wrong = subprocess.run(command, cwd=ROOT, env={**env, "LETTERBATCH_P12_PASSWORD": "wrong"},
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (out / "bundle-signed.pdf").exists()
    done = subprocess.run(command, cwd=ROOT, env={**env, "LETTERBATCH_P12_PASSWORD": "secret"},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    (check,) = validate(out / "bundle-signed.pdf", [ca])
    assert check.bottom_line and check.whole_file
    # bytes appended after signing show; a damaged file is reported, not raised
    appended = tmp_path / "appended.pdf"
    appended.write_bytes((out / "bundle-signed.pdf").read_bytes() + b"\n% added later\n")
    (check,) = validate(appended, [ca])
    assert not check.whole_file and "added after signing" in check.summary
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes((out / "bundle-signed.pdf").read_bytes()[:5000])
    (check,) = validate(damaged, [ca])
    assert not check.valid and not check.bottom_line

    # only a ready bundle is signed: one that changed, or holds a letter rebuilt since, is refused
    (out / "bundle-signed.pdf").unlink()
    bundle = out / "bundle.pdf"
    good = bundle.read_bytes()
    bundle.write_bytes(good + b"\n% edited")
    edited = subprocess.run(command, cwd=ROOT, env={**env, "LETTERBATCH_P12_PASSWORD": "secret"},
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert edited.returncode == 1 and "changed since it was merged" in edited.stderr
    bundle.write_bytes(good)
    write_yaml(source, source.read_text().replace("Dear One,", "Dear Uno,"))
    assert build(source, out).ok
    stale = subprocess.run(command, cwd=ROOT, env={**env, "LETTERBATCH_P12_PASSWORD": "secret"},
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert stale.returncode == 1 and "older than its letters" in stale.stderr, stale.stderr
    assert not (out / "bundle-signed.pdf").exists()


def render(pdf: Path, page: int, folder: Path) -> bytes:
    """One page as pixels (poppler, grey, 40 dpi)."""
    import subprocess
    stem = folder / f"{pdf.stem}-{page}"
    subprocess.run(["pdftoppm", "-gray", "-r", "40", "-f", str(page), "-l", str(page), "-singlefile",
                    str(pdf), str(stem)], check=True)
    return stem.with_suffix(".pgm").read_bytes()


def test_every_bundle_page_looks_exactly_like_its_letter(real_batch, tmp_path):
    # Text extraction cannot see a wrong glyph; pixels can (fonts are shared in the bundle).
    out, _, bundle = real_batch
    ranges = letter_ranges(PdfReader(bundle.path))
    for name, pages in ranges.items():
        original = out / ("cover.pdf" if name == "cover sheet" else f"letters/{name}.pdf")
        for offset, index in enumerate(pages, 1):
            assert render(bundle.path, index + 1, tmp_path) == render(original, offset, tmp_path), (name, offset)


# A house class that draws, on every page, a form of the letter's own (the
# recipient's name, in a Type 3 bitmap font too) around a form every letter
# shares: forms inside forms, and a form that differs from letter to letter.
HOUSE_FORMS = r"""\NeedsTeXFormat{LaTeX2e}
\ProvidesClass{house}
\LoadClassWithOptions{letterbatch}
\pdfmapline{-cmr10}
\font\housebitmap=cmr10
\newcount\house@inner
\AddToHook{shipout/foreground}{%
  \ifnum\house@inner=0
    \setbox0\hbox{\bfseries HOUSE}\immediate\pdfxform0 \global\house@inner=\pdflastxform
  \fi
  \setbox0\hbox{\pdfrefxform\house@inner\ \itshape\letterget{toname}\ {\housebitmap\letterget{toname}}}%
  \immediate\pdfxform0
  \put(20,-20){\pdfrefxform\pdflastxform}}
"""


def house_forms(folder: Path, house: str = HOUSE_FORMS) -> tuple[Path, Path]:
    """Three letters on ``house``, with a logo, built in ``folder``."""
    (folder / "house.cls").write_text(house, encoding="utf-8")
    tiny_png(folder / "logo.png")
    source = write_yaml(folder / "recipients.yaml", MINIMAL_LETTER.replace(
        "  sender:\n", "  sender:\n    logo: logo.png\n").replace("  body:\n", "  letterhead: house.cls\n  body:\n") + """\
recipients:
  - {id: one, name: Person One, address: [1 Road], salutation: "Dear One,", accept: [fonts]}
  - {id: two, name: Person Two, address: [2 Road], salutation: "Dear Two,", accept: [fonts]}
  - {id: three, name: Person Three, address: [3 Road], salutation: "Dear Three,", accept: [fonts]}
""")
    report = build(source, folder / "build", jobs=1)  # one batch: the three share one copy of each font
    assert report.ok, [(o.recipient, o.message) for o in report.failed]
    return source, folder / "build"


@pytest.fixture(scope="module")
def house_forms_batch(tmp_path_factory):
    """``house_forms``, built once (a copy per test)."""
    return house_forms(tmp_path_factory.mktemp("house-forms"))


def test_digests_kept_are_the_files_own_from_a_house_class_that_writes_streams_uncompressed(tmp_path, monkeypatch):
    """\\pdfcompresslevel=0 in a house class: pdfTeX writes fonts, images and
    forms uncompressed, and saving a letter compresses them. The digests the
    cutting worked out (before saving) were of the uncompressed objects, so
    none was the one the merge works out from the letter's file: each was a
    miss, and every letter's fonts were copied and hashed again."""
    source, out = house_forms(tmp_path, "\\pdfcompresslevel=0\n" + HOUSE_FORMS)
    kept = json.loads((out / "work" / "bundle-digests.json").read_text(encoding="utf-8"))["documents"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for rid in ("one", "two", "three"):
        assert kept[manifest["letters"][rid]["sha256"]] == digests_worked_out(out / "letters" / f"{rid}.pdf"), rid
    hashed = hashing(monkeypatch)
    first = merge(source, out).path.read_bytes()
    assert hashed and not [name for name in hashed if "letters" in name]
    (out / "work" / "bundle-digests.json").unlink()
    (out / "bundle.pdf").unlink()
    assert merge(source, out).path.read_bytes() == first


def test_digests_kept_for_another_letter_never_put_its_form_on_this_letters_page(house_forms_batch, tmp_path,
                                                                                monkeypatch):
    """The bundle takes a letter's fonts and forms by the digests kept in
    work/bundle-digests.json: a digest there that is not the letter's own (the
    file edited, or copied in from elsewhere) would put another letter's form
    on its page (another name) while the letter itself and its record are
    untouched. Only the digests the manifest vouches for are used."""
    from conftest import copy_batch

    source, out = copy_batch(house_forms_batch, tmp_path / "batch")
    honest = merge(source, out).path.read_bytes()
    kept = out / "work" / "bundle-digests.json"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    sha = {rid: manifest["letters"][rid]["sha256"] for rid in ("one", "two", "three")}
    good = json.loads(kept.read_text(encoding="utf-8"))
    documents = good["documents"]
    assert documents[sha["one"]] != documents[sha["two"]]  # the letters' own forms differ
    # letter two "has" letter one's objects; letter three's entry is said to be letter one's file
    forged = {**documents, sha["two"]: documents[sha["one"]], sha["one"]: documents[sha["three"]]}
    kept.write_text(json.dumps({**good, "documents": forged}), encoding="utf-8")
    (out / "bundle.pdf").unlink()
    bundle = merge(source, out).path
    assert bundle.read_bytes() == honest
    ranges = letter_ranges(PdfReader(bundle))
    for rid in ("one", "two", "three"):
        assert render(bundle, ranges[rid].start + 1, tmp_path) == render(out / "letters" / f"{rid}.pdf", 1, tmp_path)
    # what that merge worked out again, it vouched for: the next merge hashes no letter, nor the cover
    hashed = hashing(monkeypatch)
    bundle.unlink()
    assert merge(source, out).path.read_bytes() == honest
    assert hashed and not [name for name in hashed if "letters" in name or "cover" in name]  # the bundle's own only


def test_a_logo_whose_forms_draw_with_their_parents_fonts_looks_in_the_letter_as_pdflatex_made_it(tmp_path):
    """A PDF logo may hold a form with no resources of its own, or without a
    font its text names (PDF 1.1 allowed it): viewers draw it with the fonts
    of the form it is drawn in. Cutting dropped those as unused there and
    renamed the page's, so the logo's text came out in one of the letter's
    own fonts (its spaces as visible "␣"); the letter is what pdflatex made."""
    import pikepdf

    logo = pikepdf.new()
    logo.add_blank_page(page_size=(300, 80))
    helvetica = logo.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                      BaseFont=pikepdf.Name.Helvetica))
    courier = logo.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                    BaseFont=pikepdf.Name.Courier))
    bare = logo.make_stream(b"BT /F1 20 Tf 5 50 Td (Nested text) Tj ET", Type=pikepdf.Name.XObject,
                            Subtype=pikepdf.Name.Form, BBox=[0, 0, 300, 80])  # no /Resources
    partial = logo.make_stream(b"BT /F2 12 Tf 5 30 Td (Courier text) Tj /F1 12 Tf ( and more) Tj ET",
                               Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form, BBox=[0, 0, 300, 80],
                               Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F2=courier)))  # no /F1
    page = logo.pages[0]
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=helvetica),
                                        XObject=pikepdf.Dictionary(Fm0=bare, Fm1=partial))
    page.Contents = logo.make_stream(b"0 0 1 rg 0 0 300 10 re f q /Fm0 Do Q q /Fm1 Do Q")
    logo.save(tmp_path / "logo.pdf")
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "  sender:\n", "  sender:\n    logo: logo.pdf\n") + """\
recipients:
  - {id: one, name: Person One, address: [1 Road], salutation: "Dear One,", accept: [fonts]}
""")
    assert build(source, tmp_path / "build").ok  # Helvetica and Courier are not embedded: accepted
    letter = tmp_path / "build" / "letters" / "one.pdf"
    # the build keeps no compiled PDF once its letters are cut: the letter's own .tex, compiled again
    prepared = prepare(source, tmp_path / "build")
    compiled = prepared.compile("as-pdflatex-made-it", prepared.tex(prepared.source("one"))).pdf
    assert render(letter, 1, tmp_path) == render(compiled, 1, tmp_path)
    text = pdf_text(letter)
    assert "Nested text" in text and "Courier text and more" in text and "␣" not in text


def test_the_cover_names_an_accepted_finding_once(tmp_path):
    """A reference whose URL is too long for a line, cited three times, is
    three equal overfull findings; accepted, the cover printed the same note
    three times over. It is one note (the finding is one thing to accept)."""
    url = "https://example.org/" + "NoBreakInThisLongPathSegment" * 4
    body = "    - main: One[^long]. Two[^long]. Three[^long].\n"
    source = write_yaml(tmp_path / "recipients.yaml", MINIMAL_LETTER.replace(
        "    - main: This is the shared text.\n", body) +
        "references:\n  long: {author: A, year: 2020, title: A note, url: '%s'}\n" % url +
        "recipients:\n  - {id: one, name: A Person, address: [1 Road, Town], salutation: 'Dear Ann,'}\n")
    report = build(source, tmp_path / "build")
    assert [f["code"] for o in report.outcomes for f in o.findings] == ["overfull"] * 3
    merge(source, tmp_path / "build", accept={"one": ["overfull"]})
    cover = pdf_text(tmp_path / "build" / "cover.pdf")
    assert cover.count("one: overfull accepted") == 1, cover
