"""Digital signatures on the bundle (PAdES, with pyHanko).

``sign`` applies a PAdES B-B signature from a PKCS#12 file; ``validate``
checks a signed PDF against the trust roots you give it (never the OS list).
The password is passed in by the caller (the task reads it from the
environment or a prompt, never from the command line).
"""
from __future__ import annotations

import io
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


def sign(pdf: str | Path, p12: str | Path, password: bytes, out: str | Path, *,
         reason: str = "Approved for dispatch", field: str = SIGNATURE_FIELD) -> Path:
    """Sign ``pdf`` with the key in ``p12`` into ``out`` (written atomically)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter

    signer = signers.SimpleSigner.load_pkcs12(pfx_file=str(p12), passphrase=password)
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
    """Every signature in ``pdf``, checked against ``trust_roots`` (PEM or DER files)."""
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    context = ValidationContext(trust_roots=[load_cert_from_pemder(str(p)) for p in trust_roots],
                                allow_fetching=False)
    checks = []
    with open(pdf, "rb") as handle:
        reader = PdfFileReader(handle)
        for embedded in reader.embedded_signatures:
            status = validate_pdf_signature(embedded, context)
            checks.append(SignatureCheck(embedded.field_name, status.intact, status.valid,
                                         status.trusted, status.bottom_line, status.summary()))
    return checks
