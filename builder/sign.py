"""Digital signatures on the bundle (PAdES, with pyHanko).

``sign`` applies a PAdES B-B signature from a PKCS#12 file; ``validate``
checks a signed PDF against the trust roots you give it (never the OS list).
The password is passed in by the caller (the task reads it from the
environment or a prompt, never from the command line).
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from .files import write_atomic

SIGNATURE_FIELD = "Bundle"


@dataclass
class SignatureCheck:
    field: str
    intact: bool
    valid: bool
    trusted: bool
    bottom_line: bool
    summary: str
    # the signature covers the whole file: nothing was added after signing
    whole_file: bool = False


def sign(pdf: str | Path, p12: str | Path, password: bytes, out: str | Path, *,
         reason: str = "Approved for dispatch", field: str = SIGNATURE_FIELD) -> Path:
    """Sign ``pdf`` with the key in ``p12`` into ``out`` (written atomically)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter

    # pyHanko logs a wrong password with a traceback; the ValueError below says it in one line
    quiet = logging.getLogger("pyhanko.sign.signers.pdf_cms")
    was, quiet.disabled = quiet.disabled, True
    try:
        signer = signers.SimpleSigner.load_pkcs12(pfx_file=str(p12), passphrase=password)
    finally:
        quiet.disabled = was
    if signer is None:
        raise ValueError(f"could not open {p12}: wrong password, or not a PKCS#12 file with a key")
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES, reason=reason)
    output = io.BytesIO()
    with open(pdf, "rb") as source:
        signers.PdfSigner(meta, signer=signer, new_field_spec=SigFieldSpec(field)).sign_pdf(
            IncrementalPdfFileWriter(source), output=output)
    out = Path(out)
    write_atomic(out, output.getvalue())
    return out


def validate(pdf: str | Path, trust_roots: list[str | Path]) -> list[SignatureCheck]:
    """Every signature in ``pdf``, checked against ``trust_roots`` (PEM or DER
    files). ``whole_file`` says whether a signature covers the file as it is
    (bytes appended after signing show as False). A file that cannot be read
    as a signed PDF gives one check that is not valid, never an exception."""
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    context = ValidationContext(trust_roots=[load_cert_from_pemder(str(p)) for p in trust_roots],
                                allow_fetching=False)
    checks = []
    try:
        with open(pdf, "rb") as handle:
            reader = PdfFileReader(handle)
            for embedded in reader.embedded_signatures:
                status = validate_pdf_signature(embedded, context)
                whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
                checks.append(SignatureCheck(embedded.field_name, status.intact, status.valid,
                                             status.trusted, status.bottom_line,
                                             status.summary() + ("" if whole else
                                                                 "; the signature does not cover the whole file: "
                                                                 "something was added after signing"),
                                             whole))
    except Exception as exc:  # pyHanko raises many kinds on a damaged file
        return [SignatureCheck("(unreadable)", False, False, False, False,
                               f"not a readable signed PDF: {exc}")]
    return checks
