"""Preflight: is every letter ready for the printer, the envelope and the web?

For each letter, findings (errors and warnings) from the PDF itself and from
its TeX log: A4 pages, embedded vector fonts (no Type 3), no overfull lines,
the closing never alone at the top of a page, the recipient's address inside
the envelope window (measured on the page), the page count against the
batch's typical length, and the file still matching ``build/manifest.json``.
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pypdf import PdfReader

from .build import prepare
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


def check(recipients_yaml: str | Path, build_dir: str | Path = "build", medium: str = "print") -> list[LetterCheck]:
    """Check every built letter (and the bundle's integrity) of a batch."""
    prepared = prepare(recipients_yaml, build_dir, medium)
    layout, batch = prepared.layout, prepared.loaded.batch
    manifest = Manifest.read(layout.root)
    results = []
    for source in prepared.sources:
        rid = source.recipient.id
        pdf = layout.pdf(rid)
        result = LetterCheck(rid, pdf)
        entry = manifest.letters.get(rid)
        if not pdf.exists() or entry is None:
            result.findings.append(Finding("error", "not built"))
        else:
            if entry.get("sha256") != sha256_file(pdf):
                result.findings.append(Finding("error", f"{pdf.name} no longer matches the manifest "
                                                        "(changed since it was built)"))
            if entry.get("inputs", {}).get("key") != source.key:
                result.findings.append(Finding("warning", "older than its sources: run `invoke build`"))
            result.findings += check_letter(pdf, entry.get("overfull", []), batch,
                                            source.recipient, entry.get("window"))
            result.pages = entry.get("pages") or 0
        results.append(result)
    typical = statistics.median([r.pages for r in results if r.pages]) if any(r.pages for r in results) else 0
    for result in results:
        if typical and result.pages > typical:
            result.findings.append(Finding(
                "warning", f"{result.pages} pages, longer than the batch's typical {typical:g}"))
    if manifest.bundle:
        bundle = layout.root / manifest.bundle["file"]
        result = LetterCheck("bundle", bundle, manifest.bundle.get("pages", 0))
        if not bundle.exists() or sha256_file(bundle) != manifest.bundle.get("sha256"):
            result.findings.append(Finding("error", f"{bundle.name} no longer matches the manifest"))
        results.append(result)
    return results


def check_letter(pdf: Path, overfull: list[str], batch: Batch, recipient: Recipient,
                 window: list[float] | None) -> list[Finding]:
    """``overfull``: the letter's overfull lines, from the TeX log (in the manifest)."""
    findings = [Finding("error", m) for m in pdf_problems(pdf)]
    findings += [Finding("error", f"overfull line: {text}") for text in overfull]
    lines = text_lines(pdf)
    address = [recipient.name] + ([recipient.role] if recipient.role else []) + recipient.address
    findings += _address_in_window(lines, address, window)
    findings += _closing_not_alone(lines, batch.letter.closing)
    return findings


def pdf_problems(pdf: Path) -> list[str]:
    """Pages that are not A4 portrait; fonts not embedded; Type 3 (bitmap) fonts."""
    problems = []
    for number, page in enumerate(PdfReader(pdf).pages, 1):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        if (page.get("/Rotate", 0) or 0) % 180:
            width, height = height, width
        if abs(width - A4[0]) > TOLERANCE or abs(height - A4[1]) > TOLERANCE:
            problems.append(f"page {number} is {width:.0f}x{height:.0f} pt, not A4 portrait")
        for font in _fonts(page):
            name = str(font.get("/BaseFont", "(unnamed)"))
            if font.get("/Subtype") == "/Type3":
                problems.append(f"page {number}: Type 3 (bitmap) font {name}")
            elif not _embedded(font):
                problems.append(f"page {number}: font {name} is not embedded")
    return list(dict.fromkeys(problems))


def _fonts(page) -> list:
    found, seen = [], set()

    def visit(resources):
        if resources is None:
            return
        resources = resources.get_object()
        for ref in (resources.get("/Font") or {}).values():
            font = ref.get_object()
            if id(font) not in seen:
                seen.add(id(font))
                found.append(font)
        for ref in (resources.get("/XObject") or {}).values():
            xobject = ref.get_object()
            if xobject.get("/Subtype") == "/Form" and id(xobject) not in seen:
                seen.add(id(xobject))
                visit(xobject.get("/Resources"))

    visit(page.get("/Resources"))
    return found


def _embedded(font) -> bool:
    if font.get("/Subtype") == "/Type0":
        font = font["/DescendantFonts"][0].get_object()
    descriptor = font.get("/FontDescriptor")
    descriptor = descriptor.get_object() if descriptor is not None else {}
    return any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))


@dataclass
class TextLine:
    page: int
    text: str
    left: float
    top: float  # from the page's top edge, in points
    right: float
    bottom: float


def text_lines(pdf: Path) -> list[TextLine]:
    """Every line of text with its box, measured by poppler's pdftotext."""
    exe = shutil.which("pdftotext")
    if exe is None:
        return []
    html = subprocess.run([exe, "-bbox-layout", str(pdf), "-"], capture_output=True, check=True,
                          stdin=subprocess.DEVNULL).stdout
    root = ET.fromstring(html)
    lines = []
    for number, page in enumerate(root.iter("{http://www.w3.org/1999/xhtml}page"), 1):
        for line in page.iter("{http://www.w3.org/1999/xhtml}line"):
            words = [w.text or "" for w in line.iter("{http://www.w3.org/1999/xhtml}word")]
            box = [float(line.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
            lines.append(TextLine(number, " ".join(words), *box))
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


HEADER_BOTTOM = 65.0  # points from the top: the running header of later pages ends above this


def _closing_not_alone(lines: list[TextLine], closing: str) -> list[Finding]:
    closings = [l for l in lines if _same(l.text, closing)]
    if not closings:
        return []
    last = closings[-1]
    above = [l for l in lines if l.page == last.page and HEADER_BOTTOM < l.top < last.top]
    if last.page > 1 and not above:
        return [Finding("error", f"the closing stands alone at the top of page {last.page}, "
                                 "away from the letter it closes")]
    return []
