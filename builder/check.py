"""Preflight: is every letter ready for the printer, the envelope and the web?

For each letter, findings (errors and warnings) from the PDF itself and from
its TeX log: A4 pages, embedded vector fonts (no Type 3), no overfull lines,
the closing never alone at the top of a page, the recipient's address inside
the envelope window (measured on the page), the page count against the
batch's typical length, and the file still matching ``build/manifest.json``.
"""
from __future__ import annotations

import html as htmllib
import os
import re
import shutil
import statistics
import subprocess
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf

from .build import prepare
from .compose import closing
from .manifest import Manifest, sha256_file
from .schema import Batch, Recipient

A4 = (595.276, 841.890)
TOLERANCE = 1.0  # points


@dataclass
class Finding:
    level: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


@dataclass
class LetterCheck:
    name: str
    file: Path
    pages: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def line(self) -> str:
        if not self.findings:
            return f"{self.name}: ok ({self.pages} pages)"
        return f"{self.name}: " + "; ".join(str(f) for f in self.findings)


def check(recipients_yaml: str | Path, build_dir: str | Path = "build", medium: str = "print",
          only: list[str] | None = None) -> list[LetterCheck]:
    """Check every built letter (or just ``only``), and the bundle's integrity."""
    prepared = prepare(recipients_yaml, build_dir, medium)
    layout, batch = prepared.layout, prepared.loaded.batch
    manifest = Manifest.read(layout.root)
    sources = [s for s in prepared.sources if only is None or s.recipient.id in only]

    def one(source) -> LetterCheck:
        rid = source.recipient.id
        pdf = layout.pdf(rid)
        result = LetterCheck(rid, pdf)
        entry = manifest.letters.get(rid)
        if not pdf.exists() or entry is None or "sha256" not in entry:
            result.findings.append(Finding("error", "not built"))
            return result
        if entry["sha256"] != sha256_file(pdf):
            result.findings.append(Finding("error", f"{pdf.name} no longer matches the manifest "
                                                    "(changed since it was built)"))
        if entry.get("inputs", {}).get("key") != source.key:
            result.findings.append(Finding("warning", "older than its sources: run `invoke build`"))
        result.findings += check_letter(pdf, entry.get("overfull", []), batch,
                                        source.recipient, entry.get("window"), entry.get("layout") or {})
        result.pages = entry.get("pages") or 0
        return result

    # pdftotext runs in its own process: a worker per core keeps them all busy
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        results = list(pool.map(one, sources))
    typical = statistics.median([r.pages for r in results if r.pages]) if any(r.pages for r in results) else 0
    for result in results:
        if typical and result.pages > typical:
            result.findings.append(Finding(
                "warning", f"{result.pages} pages, longer than the batch's typical {typical:g}"))
    if manifest.bundle and only is None:
        bundle = layout.root / manifest.bundle["file"]
        result = LetterCheck("bundle", bundle, manifest.bundle.get("pages", 0))
        if not bundle.exists() or sha256_file(bundle) != manifest.bundle.get("sha256"):
            result.findings.append(Finding("error", f"{bundle.name} no longer matches the manifest"))
        results.append(result)
    return results


def check_letter(pdf: Path, overfull: list[str], batch: Batch, recipient: Recipient,
                 window: list[float] | None, layout: dict | None = None) -> list[Finding]:
    """``overfull``: the letter's overfull lines, from the TeX log (in the manifest);
    ``layout``: the paper and where text starts, as the class measured them."""
    layout = layout or {}
    findings = [Finding("error", m) for m in pdf_problems(pdf, tuple(layout.get("paper") or A4))]
    findings += [Finding("error", f"overfull line: {text}") for text in overfull]
    lines = text_lines(pdf)
    address = [recipient.name] + ([recipient.role] if recipient.role else []) + recipient.address
    findings += _address_in_window(lines, address, window)
    findings += _closing_not_alone(lines, closing(batch, recipient), layout.get("text_start", HEADER_BOTTOM))
    return findings


def pdf_problems(pdf: Path, paper: tuple[float, float] = None) -> list[str]:
    """Pages not of the class's paper (A4 portrait); fonts not embedded; Type 3 (bitmap) fonts."""
    paper = paper or A4
    problems = []
    with pikepdf.open(pdf) as document:
        for number, page in enumerate(document.pages, 1):
            box = [float(v) for v in page.mediabox]
            width, height = box[2] - box[0], box[3] - box[1]
            if int(page.obj.get("/Rotate", 0)) % 180:
                width, height = height, width
            if abs(width - paper[0]) > TOLERANCE or abs(height - paper[1]) > TOLERANCE:
                problems.append(f"page {number} is {width:.0f}x{height:.0f} pt, not A4 portrait")
            for font in _fonts(page.obj.get("/Resources")):
                name = str(font.get("/BaseFont", "(unnamed)"))
                if font.get("/Subtype") == "/Type3":
                    problems.append(f"page {number}: Type 3 (bitmap) font {name}")
                elif not _embedded(font):
                    problems.append(f"page {number}: font {name} is not embedded")
    return list(dict.fromkeys(problems))


def _fonts(resources, seen=None) -> list:
    """The fonts a page uses, those inside its form XObjects included."""
    seen = set() if seen is None else seen
    found = []
    if resources is None:
        return found
    for font in (resources.get("/Font") or {}).values():
        if font.objgen not in seen or font.objgen == (0, 0):
            seen.add(font.objgen)
            found.append(font)
    for xobject in (resources.get("/XObject") or {}).values():
        if xobject.get("/Subtype") == "/Form" and xobject.objgen not in seen:
            seen.add(xobject.objgen)
            found += _fonts(xobject.get("/Resources"), seen)
    return found


def _embedded(font) -> bool:
    if font.get("/Subtype") == "/Type0":
        font = font.DescendantFonts[0]
    descriptor = font.get("/FontDescriptor") or {}
    return any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))


@dataclass
class TextLine:
    page: int
    text: str
    left: float
    top: float  # from the page's top edge, in points
    right: float
    bottom: float


_PAGE_RE = re.compile(r"<page |<line xMin=\"([\d.]+)\" yMin=\"([\d.]+)\" xMax=\"([\d.]+)\" yMax=\"([\d.]+)\">(.*?)</line>", re.S)
_WORD_RE = re.compile(r"<word [^>]*>(.*?)</word>", re.S)


def text_lines(pdf: Path) -> list[TextLine]:
    """Every line of text with its box, measured by poppler's pdftotext."""
    exe = shutil.which("pdftotext")
    if exe is None:
        return []
    html = subprocess.run([exe, "-bbox-layout", str(pdf), "-"], capture_output=True, check=True,
                          stdin=subprocess.DEVNULL).stdout.decode("utf-8", errors="replace")
    lines, page = [], 0
    for match in _PAGE_RE.finditer(html):
        if match.group(0) == "<page ":
            page += 1
            continue
        words = [htmllib.unescape(w) for w in _WORD_RE.findall(match.group(5))]
        lines.append(TextLine(page, " ".join(words), *(float(match.group(i)) for i in range(1, 5))))
    return lines


def _same(a: str, b: str) -> bool:
    def norm(s):
        return "".join(unicodedata.normalize("NFC", s).split())
    return norm(a) == norm(b)


def _address_in_window(lines: list[TextLine], address: list[str], window) -> list[Finding]:
    if not lines or window is None:
        return []
    first = [l for l in lines if l.page == 1]
    for start in range(len(first) - len(address) + 1):
        block = first[start:start + len(address)]
        if all(_same(l.text, a) for l, a in zip(block, address)):
            break
    else:
        return [Finding("warning", "could not find the recipient's address on page 1 to measure it")]
    left, top, width, height = window
    box = (min(l.left for l in block), min(l.top for l in block),
           max(l.right for l in block), max(l.bottom for l in block))
    if box[0] < left or box[1] < top or box[2] > left + width or box[3] > top + height:
        mm = 25.4 / 72
        return [Finding("error", (
            "the address is not inside the envelope window: it spans "
            f"{box[0] * mm:.0f}-{box[2] * mm:.0f} mm across and {box[1] * mm:.0f}-{box[3] * mm:.0f} mm down, "
            f"the window {left * mm:.0f}-{(left + width) * mm:.0f} mm and {top * mm:.0f}-{(top + height) * mm:.0f} mm"))]
    return []


HEADER_BOTTOM = 65.0  # points from the top, for letters built before the class recorded text_start


def _closing_not_alone(lines: list[TextLine], closing: str, text_start: float = HEADER_BOTTOM) -> list[Finding]:
    closings = [l for l in lines if _same(l.text, closing)]
    if not closings:
        return []
    last = closings[-1]
    above = [l for l in lines if l.page == last.page and text_start - 2 < l.top < last.top]
    if last.page > 1 and not above:
        return [Finding("error", f"the closing stands alone at the top of page {last.page}, "
                                 "away from the letter it closes")]
    return []
