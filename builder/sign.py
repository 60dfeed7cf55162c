"""Sign stage: PAdES signatures on each ready letter and on the bundle (pyHanko).

``sign_batch`` signs every ready letter into ``<build>/signed/<id>.pdf``, with
a visible signature (the signer's name and the date) in the letter's signature
block, where the letterhead class recorded it (the manifest's ``signature``:
page, x, y bottom, y top); then the bundle into ``<build>/bundle-signed.pdf``,
filling the per-letter fields ``merge --signature-fields`` made, or a new field.
Letters that are not ready are refused and named. The key comes from a PKCS#12
file or a PKCS#11 token (smartcard, HSM); the password or PIN is passed in by
the caller, never read from the command line.

``validate`` checks a signed PDF against the trust roots you give it (never
the OS list). pyHanko is imported only in these code paths.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import logging
import shutil
import subprocess
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from . import command
from .files import clear_stale_temporaries, clear_temporaries_of, write_atomic

SIGNATURE_FIELD = "Bundle"
REASON = "Approved for dispatch"


class SigningError(Exception):
    """A key that cannot be used (wrong password or PIN, no such token or key): one line."""


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


@dataclass
class Key:
    """Where the signing key is: a PKCS#12 file, or a PKCS#11 token."""

    p12: Path | None = None
    password: bytes | None = None
    pkcs11_lib: Path | None = None
    token: str | None = None
    key: str | None = None  # the key's label (its certificate has the same label, or cert= says)
    cert: str | None = None
    pin: str | None = None


@dataclass
class SignReport:
    signed: list[Path] = field(default_factory=list)
    current: list[str] = field(default_factory=list)  # signed copies already of the current letter
    refused: list[str] = field(default_factory=list)  # "id: why", for letters not ready
    refused_fix: str = ""  # what to do about them, as merge says it (ready.not_ready_fix)
    failed: list[str] = field(default_factory=list)  # "id: why", for letters pyHanko could not sign
    bundle: Path | None = None
    bundle_note: str = ""  # why the bundle was not signed
    bundle_refused: bool = False  # ... when it should have been
    notes: list[str] = field(default_factory=list)  # what a person should know of the signatures made


def field_name(recipient_id: str) -> str:
    """A letter's signature field: the same name in the letter and in the bundle."""
    return f"Signature-{recipient_id}"


@contextlib.contextmanager
def open_signer(key: Key):
    """A pyHanko signer for ``key``; SigningError (one line) if it cannot be used."""
    if key.p12 is not None:
        yield _usable(_p12_signer(key.p12, key.password or b""))
        return
    if not (key.pkcs11_lib and key.token and (key.key or key.cert)):
        raise SigningError("give --p12 FILE, or --pkcs11-lib PATH --token LABEL --key LABEL")
    import pkcs11
    from pkcs11 import exceptions as p11
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.general import SigningError as PyHankoSigningError
    from pyhanko.sign.pkcs11 import PKCS11Error, PKCS11Signer, open_pkcs11_session

    # the library first: python-pkcs11 raises the same PKCS11Error for a library it cannot
    # load as pyHanko does for a token it cannot find, and a mistyped path was reported as
    # "no token labelled ..." (the office went looking for its smartcard)
    try:
        pkcs11.lib(str(key.pkcs11_lib))
    except (OSError, RuntimeError) as exc:  # PKCS11Error is a RuntimeError
        reason = _one_line(exc).replace(f"OS exception while loading {key.pkcs11_lib}: ", "", 1)
        raise SigningError(f"cannot load the PKCS#11 library {key.pkcs11_lib}: {reason}") from None
    try:
        session = open_pkcs11_session(str(key.pkcs11_lib), token_criteria=TokenCriteria(label=key.token),
                                      user_pin=key.pin)
    except (p11.PinIncorrect, p11.PinLenRange, p11.PinInvalid):
        raise SigningError(f"wrong PIN for token '{key.token}'") from None
    except p11.PinLocked:
        raise SigningError(f"the PIN of token '{key.token}' is locked (too many wrong PINs)") from None
    except PKCS11Error:
        raise SigningError(f"no token labelled '{key.token}' in {key.pkcs11_lib}"
                           f"{_labels_there(key.token, '--token', _token_labels, key.pkcs11_lib)}") from None
    except (OSError, RuntimeError, p11.PKCS11Error) as exc:
        raise SigningError(f"cannot use the PKCS#11 library {key.pkcs11_lib}: {_one_line(exc)}") from None
    try:
        signer = PKCS11Signer(session, key_label=key.key, cert_label=key.cert or key.key)
        try:
            signer.signing_cert  # loads the key and certificate now, to fail before any signing
        except (PKCS11Error, PyHankoSigningError, p11.PKCS11Error) as exc:
            raise SigningError(f"token '{key.token}' has no usable key and certificate labelled "
                               f"'{key.cert or key.key}': {_one_line(exc).rstrip('.')}"
                               f"{_labels_there(key.cert or key.key, '--key', _certificate_labels, session)}") from None
        yield _usable(signer)
    finally:
        session.close()


def _token_labels(library) -> list[str]:
    import pkcs11
    return [token.label for token in pkcs11.lib(str(library)).get_tokens()]


def _certificate_labels(session) -> list[str]:
    from pkcs11 import Attribute, ObjectClass
    return [o[Attribute.LABEL] for o in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})]


def _labels_there(given: str, flag: str, labels_of, where) -> str:
    """The labels the library (or token) has, to put after "no token labelled 'Cyngor'": the
    office had only the README's pkcs11-tool to find that the label was 'cyngor'."""
    try:
        labels = sorted({str(label).strip() for label in labels_of(where)} - {""})  # SoftHSM's free slot: ''
    except Exception:  # noqa: BLE001 - a hint only: the message stands without it
        return ""
    what = "the library's tokens are" if flag == "--token" else "the token's certificates are"
    if not labels:
        return f"; {what} none"
    said = f"; {what} " + ", ".join(f"'{label}'" for label in labels[:10])
    same = [label for label in labels if label.casefold() == given.casefold()]
    return said + (f" (labels are case-sensitive: {flag} {same[0]})" if same else "")


def _usable(signer):
    """``signer``, if PDF readers can check what it signs: an RSA or ECDSA key. An EdDSA
    key (Ed25519) signs with SHA-512 only, and poppler's pdfsig calls the result corrupt.
    And a key that signs for its certificate: a token's key labelled with another key's
    certificate made signatures every reader calls invalid, and sign reported them signed
    (so one signature of a blank page is made and checked first, before any letter)."""
    kind = signer.signing_cert.public_key.algorithm
    if kind not in ("rsa", "rsassa_pss", "ec"):
        raise SigningError(f"the key is {kind.replace('ed', 'Ed', 1) if kind.startswith('ed') else kind.upper()}, "
                           "whose signatures PDF readers cannot check; use an RSA or ECDSA key")
    unfit = _certificate_unfit(signer.signing_cert)
    if unfit:
        raise SigningError(f"{unfit}: PDF readers would call every signature made with it invalid; "
                           "give the office's current certificate (and its key)")
    import pikepdf

    blank = io.BytesIO()
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(blank)
    if not _signature_holds(sign_bytes(blank.getvalue(), signer, field="KeyCheck")):
        raise SigningError("the key does not match its certificate: PDF readers would call every signature "
                           "made with it invalid; give the key and the certificate that belong together")
    return signer


def _certificate_unfit(cert, now: dt.datetime | None = None) -> str | None:
    """Why PDF readers would reject every signature ``cert`` (asn1crypto) makes
    today, or None: out of its validity period, or a key usage that does not
    include signing (the self-made blank-page signature cannot tell: its
    check trusts the certificate as its own root). Before, sign signed with an
    expired certificate, or one issued for encryption only, and said "signed"."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if now < cert.not_valid_before:
        return f"the certificate is valid only from {cert.not_valid_before:%d %B %Y %H:%M} UTC"
    if now > cert.not_valid_after:
        return f"the certificate expired on {cert.not_valid_after:%d %B %Y %H:%M} UTC"
    usage = cert.key_usage_value
    if usage is not None and not set(usage.native) & {"digital_signature", "non_repudiation"}:
        uses = ", ".join(sorted(usage.native)).replace("_", " ") or "none"
        return f"the certificate's key may not sign (its key usage: {uses})"
    return None


def _p12_signer(p12: Path, password: bytes):
    from pyhanko.sign import signers

    try:
        data = Path(p12).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {p12}: {exc.strerror}") from None
    try:
        loaded = signers.SimpleSigner.load_pkcs12_data(data, other_certs=None, passphrase=password)
    except ValueError:
        raise SigningError(f"cannot open {p12}: wrong password, or not a PKCS#12 file with a key") from None
    return _key_loaded_once()(signing_cert=loaded.signing_cert, signing_key=loaded.signing_key,
                              cert_registry=loaded.cert_registry)


@functools.cache
def _key_loaded_once():
    """pyHanko's ``SimpleSigner``, loading its private key once: pyHanko loads
    it again for every signature, and cryptography checks an RSA key as it
    loads it (68 ms for 2048 bits here, more than the rest of signing a
    letter). Signs as pyHanko does, by pyHanko's own hash and PSS settings;
    a key of another kind is left to pyHanko."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from pyhanko.sign import signers
    from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

    class KeyLoadedOnce(signers.SimpleSigner):
        @functools.cached_property
        def private_key(self):
            return serialization.load_der_private_key(self.signing_key.dump(), password=None)

        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
            try:
                algorithm = mechanism.signature_algo
            except ValueError:
                algorithm = mechanism["algorithm"].native
            if algorithm == "rsassa_pkcs1v15":
                return self.private_key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
            if algorithm == "rsassa_pss":
                return self.private_key.sign(data, *process_pss_params(mechanism["parameters"]))
            if algorithm == "ecdsa":
                return self.private_key.sign(data, ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
            return super().sign_raw(data, digest_algorithm)

    return KeyLoadedOnce


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# Characters the signer's name may use in the appearance: Latin-1, Latin
# Extended-A, and typographic punctuation.
_APPEARANCE_CHARACTERS = [*range(0x20, 0x7F), *range(0xA0, 0x180), 0x2013, 0x2014, 0x2018, 0x2019,
                          0x201C, 0x201D, 0x2026, 0x20AC]


# The letters' typefaces (``letter.font``) as OpenType files in TeX Live
TYPEFACES = {"sans": "lmsans10-regular.otf", "serif": "lmroman10-regular.otf"}


# The visible signature's first words, in the letter's language (README, "Letters in
# Welsh"): "llofnodi" as on the cover sheet ("i'w llofnodi gan"), "yn ddigidol"
# (digitally, with the adverb's soft mutation), "gan" (by).
SIGNED_BY = {"en": "Digitally signed by", "cy": "Llofnodwyd yn ddigidol gan"}


@contextlib.contextmanager
def appearance(signer_name: str = "", font: str = "sans"):
    """The visible signature's styles, one per language (``SIGNED_BY``): "Digitally
    signed by <name>" and the date ("Llofnodwyd yn ddigidol gan <name>" and
    "5 Hydref 2026" in Welsh), in the letters' own typeface (``font``: Latin Modern
    Sans or Roman, from TeX Live), embedded; and the characters of the signer's
    name that typeface cannot show.
    The font is cut down once to the characters above and those of the
    signer's name (it comes from the certificate, not the batch, so nothing
    checked it; Latin Modern writes Vietnamese and Welsh, not Greek):
    pyHanko subsets the whole OpenType font for every signature otherwise
    (0.7 s each)."""
    from pyhanko.pdf_utils.layout import AxisAlignment, SimpleBoxLayoutRule
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    from .compose import MONTHS

    @dataclass(frozen=True)
    class LetterStampStyle(TextStampStyle):
        """pyHanko writes the signing time with ``timestamp_format`` (strftime: the
        machine's locale's month names); this style names the month in the letter's
        language, as the letter's date does (compose.long_date)."""

        language: str = "en"

        def create_stamp(self, writer, box, text_params):
            day, month, rest = text_params["ts"].split(" ", 2)
            text_params = {**text_params, "ts": f"{int(day)} {MONTHS[self.language][int(month) - 1]} {rest}"}
            return super().create_stamp(writer, box, text_params)

    # pyHanko warns for every signature that a CFF font has no ROS entry; it is not needed
    logging.getLogger("pyhanko.pdf_utils.font.opentype").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="letterbatch-sign-") as folder:
        text_style = {"font_size": 9}
        cut, lacking = _letter_font(Path(folder), signer_name, TYPEFACES[font])
        if cut:
            from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
            text_style["font"] = GlyphAccumulatorFactory(str(cut))
        box_style = TextBoxStyle(**text_style)
        yield lacking, {language: LetterStampStyle(
            language=language,
            stamp_text=f"{words} %(signer)s\n%(ts)s",
            timestamp_format="%d %m %Y, %H:%M %Z",  # day and month made words by LetterStampStyle
            text_box_style=box_style,
            inner_content_layout=SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MIN,
                                                     y_align=AxisAlignment.ALIGN_MID),
            border_width=0, background=None) for language, words in SIGNED_BY.items()}


def _letter_font(folder: Path, signer_name: str = "",
                 typeface: str = TYPEFACES["sans"]) -> tuple[Path | None, str]:
    """The signature's font, cut down, and the characters of ``signer_name`` it lacks."""
    kpsewhich = shutil.which("kpsewhich")
    found = subprocess.run([kpsewhich, typeface], capture_output=True, text=True) if kpsewhich else None
    if not found or not found.stdout.strip():
        return None, ""  # pyHanko's default font (Courier, not embedded)
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    font = TTFont(found.stdout.strip())
    has = font.getBestCmap()
    lacking = "".join(dict.fromkeys(c for c in signer_name if not c.isspace() and ord(c) not in has))
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=set(_APPEARANCE_CHARACTERS) | {ord(c) for c in signer_name if ord(c) in has})
    subsetter.subset(font)
    font.save(folder / "signature.otf")
    return folder / "signature.otf", lacking


def signature_box(signature) -> tuple[int, tuple[float, float, float, float]]:
    """The page (from 1) and rectangle of a letter's signature space, as the
    letterhead class measured it (the manifest's ``signature``: page, x,
    y bottom, y top, width; PDF points from the page's lower left)."""
    page, x, bottom, top, width = signature
    return int(page), (x, bottom, x + width, top)


def sign_bytes(data: bytes, signer, *, field: str, reason: str = REASON,
               page: int | None = None, box: tuple | None = None, style=None) -> bytes:
    """``data`` signed (an incremental update, PAdES B-B) in ``field``: a new
    field at ``box`` on ``page`` (from 0), or an existing field of that name;
    visible in ``style`` (see ``appearance``), or invisible."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter

    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES, reason=reason)
    spec = SigFieldSpec(field, on_page=page, box=box) if box else SigFieldSpec(field)
    output = io.BytesIO()
    reserved = _ROOM.get(signer)
    signers.PdfSigner(meta, signer=signer, stamp_style=style,
                      new_field_spec=spec).sign_pdf(
        # strict=False: tolerate what PDF readers tolerate, such as a key given twice in a
        # dictionary (pdfTeX's Info dictionary had /Title twice when hyperref set it too)
        IncrementalPdfFileWriter(io.BytesIO(data), strict=False), output=output, bytes_reserved=reserved)
    if reserved is None:
        _ROOM[signer] = _room_taken(output.getvalue())
    return output.getvalue()


# The room (bytes of the hex string /Contents) pyHanko gave the first signature
# of each signer. Without it, pyHanko sizes every signature by making a dummy
# one first, which loads and checks the private key again: for a PKCS#12 key,
# 43% of signing 20 fields of a bundle (10.3 s; 5.9 s with the room kept). The
# signatures of one signer are all alike (its certificates, the same signed
# attributes), and pyHanko's measure keeps a margin of half again.
_ROOM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _room_taken(signed: bytes) -> int | None:
    """The room the last signature of ``signed`` was given, or None to let
    pyHanko measure again."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        contents = PdfFileReader(io.BytesIO(signed), strict=False).embedded_signatures[-1].sig_object.raw_get("/Contents")
        return 2 * len(bytes(contents))  # two hex digits a byte
    except Exception:  # pyHanko's own file, read back: were it unreadable, measure again next time
        return None


def sign(pdf: str | Path, p12: str | Path, password: bytes, out: str | Path, *,
         reason: str = REASON, field: str = SIGNATURE_FIELD) -> Path:
    """Sign one PDF with the key in ``p12`` into ``out`` (written atomically),
    in a new invisible field."""
    with open_signer(Key(p12=Path(p12), password=password)) as signer:
        data = sign_bytes(Path(pdf).read_bytes(), signer, field=field, reason=reason)
    out = Path(out)
    write_atomic(out, data)
    return out


def check_key_files(p12: str | Path | None, pkcs11_lib: str | Path | None) -> None:
    """SigningError (one line) if the key's file (``--p12``) or the token's library
    (``--pkcs11-lib``) cannot be read: said before a password or PIN is asked for it."""
    for path, what in ((p12, "cannot read"), (pkcs11_lib, "cannot load the PKCS#11 library")):
        try:
            if path:
                Path(path).open("rb").close()
        except OSError as exc:
            raise SigningError(f"{what} {path}: {exc.strerror}") from None


def sign_batch(recipients_yaml: str | Path, build_dir: str | Path, key: Key, *,
               reason: str = REASON, force: bool = False) -> SignReport:
    """Sign every ready letter of the batch, then the bundle (when it is the
    bundle of these letters). Letters that are not ready are refused, by name."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.general import SigningError as NotSigned

    from .build import lock, prepare
    from .manifest import Manifest
    from .ready import letter_states, not_ready_fix

    # the key's file, before anything: with every copy current the key is never opened, and
    # `--pkcs11-lib /usr/lib/opensc.so` mistyped said "current", exit 0, until a letter changed
    check_key_files(key.p12, key.pkcs11_lib)
    prepared = prepare(recipients_yaml, build_dir)
    layout = prepared.layout
    report = SignReport()
    with lock(layout):
        # left by a sign killed outright (kill -9) while it wrote a signed copy (one as large as
        # its letter), as a build's and a merge's are cleared by the next: they stayed for good
        clear_stale_temporaries(layout.signed)
        clear_temporaries_of(layout.bundle_signed)
        manifest = Manifest.read(layout.root)
        states = letter_states(prepared, manifest)
        ready = [s.recipient for s in states if s.ready]
        report.refused = [s.line() for s in states if not s.ready]  # in merge's words: "id: state: reason"
        report.refused_fix = not_ready_fix(states) if report.refused else ""
        # current: the signed copy this build folder's record vouches for, of the letter as it
        # is. A file there that merely holds a valid signature is not one (another key's,
        # over a stamp added to the letter): it is signed again, never taken on the record
        todo = [rid for rid in ready if force or not _signed_here(layout, manifest, rid)]
        report.current = [rid for rid in ready if rid not in todo]
        bundle_parts = _bundle_to_sign(prepared, manifest, states, force)
        if isinstance(bundle_parts, _NotSigned):
            report.bundle_note, report.bundle_refused = bundle_parts.note, bundle_parts.error
            if not todo:
                return report
        with open_signer(key) as signer, appearance(signer.subject_name or "",
                                                 prepared.loaded.batch.letter.font) as (lacking, styles):
            def style(rid: str):
                return styles[stamp_language(prepared, rid)]

            # the record forgets the signed copies about to be replaced before any is: a run
            # stopped part way (killed) leaves them "not on the record", which is so, where
            # it left a new copy under the old record, "changed since it was signed"
            _forget_signed(manifest, todo, bundle=isinstance(bundle_parts, list))
            if lacking and todo:  # a pyHanko TrueType font (DejaVu) is drawn misplaced: no fall-back font
                report.notes.append(f"the letters' typeface has no {', '.join(repr(c) for c in lacking)} of the "
                                    f"signer's name {signer.subject_name!r}: the visible signature shows a blank "
                                    "for each (the signature itself holds the name as the certificate gives it)")

            def record() -> None:
                _record_signed(layout, manifest, key_record(key),
                               [rid for rid in todo if layout.signed_pdf(rid) in report.signed],
                               report.bundle is not None)

            in_flight = None  # the letter being signed, and its old signed copy's inode (None: none)
            try:
                for rid in todo:
                    in_flight = rid, _inode(layout.signed_pdf(rid))
                    try:
                        report.signed.append(_sign_letter(layout, manifest.letters[rid], rid, signer, reason,
                                                          style(rid)))
                    except (PdfError, NotSigned) as exc:  # this letter's file (or pyHanko's word on the key)
                        report.failed.append(f"{rid}: {layout.pdf(rid).name} cannot be signed: {_one_line(exc)}")
                    except _ChangedSince as exc:
                        report.failed.append(f"{rid}: {exc}")
                    in_flight = None
                if isinstance(bundle_parts, list):
                    if report.failed:
                        report.bundle_note = f"{layout.bundle.name} not signed: some of its letters could not be signed"
                        report.bundle_refused = True
                    else:
                        # the bundle on the record (merge --output may have written another file)
                        try:
                            report.bundle = _sign_bundle(layout, layout.root / manifest.bundle["file"], bundle_parts,
                                                         signer, reason, {field_name(rid): style(rid) for rid in
                                                                          manifest.bundle["letters"]},
                                                         manifest.bundle["sha256"])
                        except _ChangedSince as exc:
                            report.bundle_note, report.bundle_refused = f"bundle not signed: {exc}", True
            except KeyboardInterrupt:
                # stopped part way (Ctrl-C, SIGTERM): the copies made so far go on the record, as a
                # stopped build's letters do (status called them "not on the record", and the next
                # sign signed every one again). One stopped after its new copy replaced the old
                # (a new inode: written whole, by write_atomic) but before it was listed is one too
                if in_flight and layout.signed_pdf(in_flight[0]) not in report.signed \
                        and _inode(layout.signed_pdf(in_flight[0])) not in (None, in_flight[1]):
                    report.signed.append(layout.signed_pdf(in_flight[0]))
                record()
                raise
            record()
    return report


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _signed_here(layout, manifest, rid: str) -> bool:
    """Whether the letter's signed copy is the one sign made and recorded, of the letter as it is."""
    from .ready import signed_copy_note

    return layout.signed_pdf(rid).is_file() and signed_copy_note(layout, manifest, rid) is None


def stamp_language(prepared, recipient_id: str) -> str:
    """The language of a letter's visible signature: that of the signature block it
    is drawn on, the letter's last (the class records the last closing's space: a
    bilingual cy-en letter is signed under its English half)."""
    source = prepared.source(recipient_id)
    return prepared.loaded.batch.languages_of(source.recipient)[-1] if source else "en"


def key_record(key: Key) -> dict:
    """Where the key this run was given is, as the record keeps it: a suggested
    ``sign`` command (``ready.sign_command``) then names it, and works as written.
    Never the password or PIN (those come from the environment or a prompt)."""
    if key.p12 is not None:
        return {"p12": str(Path(key.p12).expanduser().resolve())}
    return {"pkcs11_lib": str(key.pkcs11_lib), "token": key.token or "", "key": key.key or ""}


def _record_signed(layout, manifest, key: dict, current: list[str], bundle_current: bool = False) -> None:
    """On the record: each of ``current``'s signed copy is of its letter as it
    is (and, with ``bundle_current``, the signed bundle of the bundle as it
    is), so ``status`` can tell a signed copy of an older one without pyHanko;
    and ``key``, the key this run was given (``key_record``)."""
    from .manifest import current_sha256

    # when the key was given: the suggested ``sign`` names the key given last, not the
    # first record's (a bundle signed with a trial key, its letters since with the token)
    given = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")

    def recorded(entry: dict, made_from: str, signed: Path) -> bool:
        """``entry["signed"]``: made from ``entry``'s file, and its own hash; True if it changed."""
        record = {made_from: entry["sha256"], "key": key, "given": given}
        record["sha256"] = current_sha256(signed, record)
        changed = entry.get("signed") != record
        entry["signed"] = record
        return changed

    changed = [recorded(manifest.letters[rid], "letter", layout.signed_pdf(rid)) for rid in current]
    if bundle_current and manifest.bundle:
        changed.append(recorded(manifest.bundle, "bundle", layout.bundle_signed))
    if any(changed):
        manifest.write()


def _forget_signed(manifest, recipients: list[str], bundle: bool) -> None:
    """Off the record: the signed copies of ``recipients`` (and of the bundle). The key
    each was made with stays (a record without ``letter`` or ``bundle`` vouches for no
    file): a run killed part way suggests ``sign`` with it, not a key to fill in."""
    def forget(entry: dict) -> bool:
        record = entry.pop("signed", None)
        if isinstance(record, dict) and record.get("key"):
            entry["signed"] = {name: record[name] for name in ("key", "given") if name in record}
        return record is not None and entry.get("signed") != record

    forgotten = [forget(manifest.letters[rid]) for rid in recipients]
    if bundle and manifest.bundle:
        forgotten.append(forget(manifest.bundle))
    if any(forgotten):
        manifest.write()


class _ChangedSince(Exception):
    """The file read to be signed is not the one judged ready (edited while sign ran)."""


def _judged(layout, path: Path, sha256: str) -> bytes:
    """The bytes of ``path``, which must be those judged ready (``sha256``)."""
    from .manifest import read_as_judged

    data = read_as_judged(path, sha256)
    if data is None:
        raise _ChangedSince(f"changed: {layout.relative(path)} changed since it was judged ready; not signed")
    return data


def _sign_letter(layout, entry: dict, rid: str, signer, reason: str, style) -> Path:
    data = _judged(layout, layout.pdf(rid), entry["sha256"])
    page, box = None, None
    if len(entry.get("signature") or ()) == 5:  # else no signature space measured: invisible
        page, box = signature_box(entry["signature"])
        page -= 1
    signed = sign_bytes(data, signer, field=field_name(rid), reason=reason, page=page, box=box,
                        style=style if box else None)
    write_atomic(layout.signed_pdf(rid), signed)
    return layout.signed_pdf(rid)


def _bundle_to_sign(prepared, manifest, states, force: bool):
    """The bundle's empty per-letter fields to fill (maybe none), or a
    ``_NotSigned`` saying why the bundle is not signed this time."""
    from .ready import bundle_state, signed_bundle_note

    layout, record = prepared.layout, manifest.bundle
    state = bundle_state(prepared, manifest, states)
    if not record:
        return _NotSigned(f"no bundle to sign ({command('merge')} makes one)", error=False)
    if not state.ready:
        return _NotSigned(f"bundle not signed: {state.reason}")
    bundle = layout.root / record["file"]
    if not force and layout.bundle_signed.is_file() and signed_bundle_note(layout, manifest) is None:
        return _NotSigned(f"{layout.bundle_signed.name} is already the signed copy of {bundle.name} "
                          "(--force signs again)", error=False)
    if record.get("options", {}).get("signature_fields"):
        return [field_name(rid) for rid in record["letters"]]
    return []


@dataclass
class _NotSigned:
    note: str
    error: bool = True  # the bundle should have been signed: the task fails


def _sign_bundle(layout, bundle: Path, fields: list[str], signer, reason: str, styles: dict, sha256: str) -> Path:
    """Fill each letter's empty field (one incremental signature each, in order:
    the last covers the whole file) in its letter's style (``styles``, by field), or
    sign a new invisible field. ``sha256``: the bundle as judged ready."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import enumerate_sig_fields

    data = _judged(layout, bundle, sha256)
    empty = {name for name, value, _ in enumerate_sig_fields(PdfFileReader(io.BytesIO(data), strict=False)) if value is None}
    for name in [f for f in fields if f in empty] or [SIGNATURE_FIELD]:
        data = sign_bytes(data, signer, field=name, reason=reason,
                          style=styles.get(name) if name != SIGNATURE_FIELD else None)
    write_atomic(layout.bundle_signed, data)
    return layout.bundle_signed


def signed_copy_sha256(letter: Path, signed: Path) -> str | None:
    """The SHA-256 of ``signed`` as read and found to be ``letter`` with a signature
    added, intact, covering all of it (a signature is an incremental update, so the
    signed file starts with the letter's bytes, unchanged), or None: what is attached
    later must be these bytes."""
    if not (letter.is_file() and signed.is_file()):  # a named pipe would never end
        return None
    original, data = letter.read_bytes(), signed.read_bytes()
    if len(data) <= len(original) or not data.startswith(original):
        return None
    from .manifest import sha256_bytes

    return sha256_bytes(data) if _signature_holds(data) else None


def _signature_holds(data: bytes) -> bool:
    """Whether the last signature of ``data`` is intact, made by the key of its
    certificate, and covers the whole file."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import SignatureCoverageLevel, validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        signatures = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
        if not signatures:
            return False
        last = signatures[-1]
        # the question is the file's integrity, not whom to trust: the signer's
        # own certificate serves as the root
        status = validate_pdf_signature(last, ValidationContext(trust_roots=[last.signer_cert],
                                                                allow_fetching=False))
        return bool(status.intact and status.valid and status.coverage == SignatureCoverageLevel.ENTIRE_FILE)
    except Exception:  # a damaged file is simply not a signed copy
        return False


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
