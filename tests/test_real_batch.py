"""The five real letters of 13 October 2020, built end to end and read back."""
from __future__ import annotations

import re

import pytest
from pypdf import PdfReader

from conftest import SAMPLE, SEEDS, normalise, pdf_text

IDS = ["avon-and-somerset", "sussex", "london", "south-wales", "essex"]
SUPERSCRIPTS = str.maketrans("¹²³⁴⁵", "12345")


def seed_parts(rid: str) -> tuple[str, list[str]]:
    """(body text, footnotes in order) of a seed, its Markdown undone."""
    body, notes = [], []
    for line in (SEEDS / f"{rid}.txt").read_text(encoding="utf-8").splitlines():
        line = re.sub(r"<sup>(\d)</sup>", r"\1", line).translate(SUPERSCRIPTS)
        line = re.sub(r"\[(.*?)\]\((?:#|mailto:[^)]*)\)", r"\1", line)
        line = line.replace("\\(", "(").replace("\\)", ")").replace("**", "").strip()
        if line == "---":
            continue
        (notes if re.match(r"\d ", line) else body).append(line)
    return normalise(" ".join(body)), [normalise(n) for n in notes]


@pytest.mark.parametrize("rid", IDS)
def test_letter_matches_its_seed_word_for_word(real_batch, rid):
    out, _, _ = real_batch
    text = pdf_text(out / "letters" / f"{rid}.pdf")
    body, notes = seed_parts(rid)
    # footnotes 1-5, each whole and in order
    assert [n.split(" ", 1)[0] for n in notes] == ["1", "2", "3", "4", "5"]
    positions = [text.find(note) for note in notes]
    assert all(p >= 0 for p in positions), [n for n, p in zip(notes, positions) if p < 0]
    assert positions == sorted(positions)
    # a printed footnote shows its reference's URL after the title (a reader of
    # paper cannot click), broken across lines where url.sty chose to
    shown = [re.sub(r"^https?://", "", ref["url"]).rstrip("/") for ref in cited_references(rid)]
    for note, url in zip(notes, shown):
        pattern = re.escape(note) + r"\. " + r"\s?".join(re.escape(c) for c in url)
        assert re.search(pattern, text), (note, url)
        text = re.sub(pattern, " ", text)
    text = re.sub(r"\S+(?: \S+)*? \d+ \w+ \d{4} Page \d of \d", " ", text)  # later-page header
    text = re.sub(r"Page \d of \d", " ", text)
    # the letter starts at the return address; the date stands beside the
    # recipient block (the seed writes it above)
    return_address = "5th Floor, Globe House, 89 Eccleston Square, London, SW1V 1PN "
    letter_from = text.index(return_address, text.index("www.antislaverycommissioner.co.uk"))
    text = normalise(text[letter_from + len(return_address):])
    assert text.count("13 October 2020") == 1
    text = "13 October 2020 " + normalise(text.replace("13 October 2020", ""))
    # the seeds' signature block: the title alone (signatory.show_name is off)
    signature = "Yours sincerely, Independent Anti-Slavery Commissioner"
    assert text.endswith(signature)
    assert body == text


def cited_references(rid: str) -> list[dict]:
    """The references a letter cites, in order of first citation."""
    from builder.load import load

    batch = load(SAMPLE).batch
    recipient = next(r for r in batch.recipients if r.id == rid)
    keys = []
    for paragraph in batch.paragraphs_for(recipient):
        for _name, source in paragraph:
            keys += [k for k in re.findall(r"\[\^([^\]]+)\]", source) if k not in keys]
    return [batch.references[k].model_dump() for k in keys]


def test_shared_text_is_tailored_per_recipient(real_batch):
    out, _, _ = real_batch
    texts = {rid: pdf_text(out / "letters" / f"{rid}.pdf") for rid in IDS}
    assert "My office comprises" not in texts["london"]
    assert all("My office comprises" in texts[r] for r in IDS if r != "london")
    assert "Finally, as you may be aware" in texts["london"]
    assert "I note that your Strategic Needs Assessment" in texts["south-wales"]


@pytest.mark.parametrize("rid", IDS)
def test_links_carry_the_reference_urls(real_batch, rid):
    out, _, _ = real_batch
    uris, borders = set(), set()
    for page in PdfReader(out / "letters" / f"{rid}.pdf").pages:
        for annot in page.get("/Annots", []) or []:
            # no box on paper, and no border colour or highlight mode to carry a
            # thousand times in a bundle (the default highlight is the same);
            # every link shares one border array, an indirect object
            border = annot.get_object().raw_get("/Border")
            assert list(border.get_object()) == [0, 0, 0]
            borders.add(border.idnum)
            assert not {"/C", "/H"} & set(annot.get_object())
            action = annot.get_object().get("/A", {})
            if "/URI" in action:
                uris.add(str(action["/URI"]))
    assert len(borders) == 1
    expected = {
        "https://www.gov.uk/government/news/funding-for-violence-reduction-units-announced",
        "https://www.antislaverycommissioner.co.uk/news-insights/iasc-blog-a-public-health-approach-to-modern-slavery/",
        "https://apccs.police.uk/our-work/preventing-serious-violence",
        "http://www.antislaverycommissioner.co.uk/media/1478/the-modern-slavery-act-2015-statutory-defence-call-for-evidence.pdf",
        "https://www.ecpat.org.uk/what-works-multi-agency-decision-making-child-trafficking",
        "mailto:April.McCoig@iasc.independent.gov.uk",
        "mailto:iasc@iasc.independent.gov.uk",
        "https://www.antislaverycommissioner.co.uk",
    }
    if rid != "london":
        expected |= {
            "https://www.gov.uk/government/publications/independent-anti-slavery-commissioner-strategic-plan-2019-to-2021",
            "https://www.gov.uk/government/publications/independent-anti-slavery-commissioner-annual-report-2019-to-2020",
        }
    assert uris == expected


def test_letters_are_a4_with_embedded_vector_fonts(real_batch):
    out, _, _ = real_batch
    reader = PdfReader(out / "letters" / "sussex.pdf")
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            assert font["/Subtype"] == "/Type1"
            assert "/FontFile" in font["/FontDescriptor"].get_object()
    assert reader.metadata.title == "Letter to Katy Bourne OBE, Sussex Police and Crime Commissioner"
    assert reader.metadata.author == "Dame Sara Thornton DBE QPM"


def test_footnote_targets_stay_unique_in_the_bundle(real_batch):
    _, _, bundle = real_batch
    names = PdfReader(bundle.path).named_destinations
    for rid in IDS:
        assert all(f"Hfootnote.{rid}.{n}" in names for n in range(1, 6)), rid


def test_the_same_inputs_give_byte_identical_pdfs(real_batch, tmp_path):
    """Another build folder, another day: the same bytes (dates come from the letter)."""
    from builder.build import build
    from builder.merge import merge

    out, _, _ = real_batch
    again = tmp_path / "elsewhere"
    assert build(SAMPLE, again).ok
    merge(SAMPLE, again)
    for name in [f"letters/{rid}.pdf" for rid in IDS] + ["cover.pdf", "bundle.pdf"]:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    info = PdfReader(out / "letters" / "london.pdf").metadata
    assert info.creation_date.date().isoformat() == "2020-10-13"
