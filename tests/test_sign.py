"""invoke sign: every ready letter and the bundle, PAdES, judged by poppler's pdfsig.

Keys from a throwaway CA (cryptography), as a PKCS#12 file and on a real
SoftHSM2 token (Debian softhsm2, loaded with OpenSC's pkcs11-tool)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from builder.build import Layout
from builder.sign import Key, field_name, open_signer, sign_bytes, signature_box, signed_copy_sha256, validate
from conftest import ROOT, copy_batch
from test_bundle import make_certificates

IDS = ["avon-and-somerset", "sussex", "london", "south-wales", "essex"]
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


def invoke(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBATCH_")}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env={**clean, **(env or {})},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def pdfsig(pdf: Path, trusting: Path | None = None) -> str:
    """poppler's report on ``pdf``'s signatures; ``trusting``: an NSS database
    (``nss_trusting``) in which the test CA is trusted, so the certificate is judged too."""
    exe = shutil.which("pdfsig")
    assert exe, "pdfsig (poppler-utils) is missing: run scripts/install"
    nss = ["-nssdir", f"sql:{trusting}"] if trusting else []
    return subprocess.run([exe, *nss, str(pdf)], capture_output=True, text=True).stdout


def nss_trusting(ca: Path, folder: Path) -> Path:
    """An NSS certificate database (poppler's) that trusts ``ca`` to issue signing certificates."""
    certutil = shutil.which("certutil")
    assert certutil, "certutil (libnss3-tools) is missing: run scripts/install"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{folder}", "--empty-password"], check=True, capture_output=True)
    subprocess.run([certutil, "-A", "-d", f"sql:{folder}", "-n", "test CA", "-t", "CT,C,C", "-i", str(ca)],
                   check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def signed_batch(mail_batch, keys, tmp_path_factory):
    """The mail batch, copied, signed once with the PKCS#12 key."""
    source, out = copy_batch(mail_batch, tmp_path_factory.mktemp("signed") / "batch")
    p12, _ = keys
    done = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                  {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0, done.stderr
    return source, out, done


def test_every_letter_signed_valid_and_whole(signed_batch, keys, tmp_path):
    source, out, done = signed_batch
    _, ca = keys
    trusting = nss_trusting(ca, tmp_path / "nss")
    manifest = json.loads((out / "manifest.json").read_text())
    for rid in IDS:
        signed, letter = Layout.of(out).signed_pdf(rid), Layout.of(out).pdf(rid)
        assert f"signed   {signed}" in done.stdout
        report = pdfsig(signed, trusting)
        assert "Signature is Valid" in report and "Total document signed" in report, (rid, report)
        assert "Certificate is Trusted" in report, (rid, report)
        (check,) = validate(signed, [ca])
        assert check.field == field_name(rid) and check.bottom_line
        # an incremental update: the letter itself, unchanged, then the signature
        assert signed.read_bytes().startswith(letter.read_bytes()) and signed_copy_sha256(letter, signed) is not None

        # visible, on the signature block the class recorded
        reader = PdfReader(signed)
        page_no, box = signature_box(manifest["letters"][rid]["signature"])
        widgets = [a.get_object() for page in reader.pages for a in page.get("/Annots", [])
                   if a.get_object().get("/T") == field_name(rid)]
        (widget,) = widgets
        assert reader.get_page_number(widget["/P"]) == page_no - 1
        assert [round(float(v), 1) for v in widget["/Rect"]] == [round(v, 1) for v in box]
        assert box[2] - box[0] > 150 and box[3] - box[1] > 25  # room for two lines of text
        text = subprocess.run(["pdftotext", "-f", str(page_no), "-l", str(page_no), "-x", str(int(box[0])),
                               "-y", str(int(841.89 - box[3])), "-W", str(int(box[2] - box[0])),
                               "-H", str(int(box[3] - box[1])), str(signed), "-"],
                              capture_output=True, text=True, check=True).stdout
        assert re.search(r"Digitally signed by Signatory\s+\d{1,2} [A-Z][a-z]+ \d{4}, \d\d:\d\d UTC", text), text
        fonts = subprocess.run(["pdffonts", str(signed)], capture_output=True, text=True, check=True).stdout
        assert all(line.split()[-5] == "yes" for line in fonts.splitlines()[2:]), fonts  # all embedded


def test_the_visible_signature_writes_the_signer_s_name_as_the_certificate_gives_it(mail_batch, tmp_path):
    """The name comes from the certificate, not the batch: nothing checked its characters.
    Every one the letters' typeface has is drawn (Vietnamese, Welsh), and those it lacks
    (Greek small letters) are named, not dropped in silence."""
    from builder.sign import appearance

    _, out = mail_batch
    p12, _ = make_certificates(tmp_path, "Nguyễn Thị Ẩn ap Rhŵ ẁ Γιώ")
    entry = json.loads((out / "manifest.json").read_text())["letters"]["london"]
    page, box = signature_box(entry["signature"])
    with open_signer(Key(p12=p12, password=b"secret")) as signer, \
            appearance(signer.subject_name) as (lacking, styles):
        data = sign_bytes(Layout.of(out).pdf("london").read_bytes(), signer, field=field_name("london"),
                          page=page - 1, box=box, style=styles["en"])
    assert lacking == "ιώ"
    (tmp_path / "signed.pdf").write_bytes(data)
    text = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(tmp_path / "signed.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "Digitally signed by Nguyễn Thị Ẩn ap Rhŵ ẁ Γ" in text, text


def test_the_bundle_fields_are_filled(signed_batch, keys, tmp_path):
    _, out, done = signed_batch
    _, ca = keys
    bundle = out / "bundle-signed.pdf"
    assert f"signed   {bundle}" in done.stdout
    checks = validate(bundle, [ca])
    assert [c.field for c in checks] == [field_name(rid) for rid in IDS]
    assert all(c.intact and c.valid and c.trusted for c in checks)
    report = pdfsig(bundle)
    assert report.count("Signature is Valid") == 5 and "Total document signed" in report
    # the certificate chain, as poppler judges it once the CA is trusted. poppler (NSS) judges
    # the first signature's certificate alone in a run: the others say "Unknown issue with
    # Certificate", as they do in a PDF signed three times by pyHanko by itself. Each letter's
    # signed copy, one signature each, is judged trusted (above).
    trusted = pdfsig(bundle, nss_trusting(ca, tmp_path / "nss"))
    assert "Certificate is Trusted" in trusted.split("Signature #2")[0], trusted
    assert bundle.read_bytes().startswith((out / "bundle.pdf").read_bytes())


def test_signing_again_changes_nothing(signed_batch, keys, tmp_path):
    source, out = copy_batch(signed_batch[:2], tmp_path / "again")
    before = {p.name: p.read_bytes() for p in (out / "signed").iterdir()}
    bundle = (out / "bundle-signed.pdf").read_bytes()
    p12, _ = keys
    again = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                   {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("  current  ") == 5 and "signed " not in again.stdout.replace("signed copy", "")
    assert {p.name: p.read_bytes() for p in (out / "signed").iterdir()} == before
    assert (out / "bundle-signed.pdf").read_bytes() == bundle
    # with nothing to sign the key is never opened, but a key file mistyped is still said:
    # it said "current", exit 0, until a letter changed
    for flags, what in ((["--p12", str(tmp_path / "old.p12")], "cannot read"),
                        (["--pkcs11-lib", str(tmp_path / "opensc.so"), "--token", "t", "--key", "k"],
                         "cannot load the PKCS#11 library")):
        mistyped = invoke(["sign", "-r", str(source), "-b", str(out), *flags],
                          {"LETTERBATCH_P12_PASSWORD": "secret", "LETTERBATCH_PKCS11_PIN": "1234"})
        assert mistyped.returncode == 2 and "current" not in mistyped.stdout, mistyped.stdout
        assert mistyped.stderr == f"could not sign: {what} {flags[1]}: No such file or directory\n", mistyped.stderr
        # and before its password or PIN is asked for: it said "set LETTERBATCH_P12_PASSWORD", and at a
        # terminal asked for the password of a file that is not there
        unasked = invoke(["sign", "-r", str(source), "-b", str(out), *flags])
        assert unasked.returncode == 2 and unasked.stderr == mistyped.stderr, unasked.stderr
    forced = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12), "--force"],
                    {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert forced.returncode == 0, forced.stderr
    signed_lines = [line for line in forced.stdout.splitlines() if line.strip().startswith("signed ")]
    assert len(signed_lines) == 6 and "  current  " not in forced.stdout, forced.stdout  # every letter, and the bundle
    for rid in IDS:
        assert "Signature is Valid" in pdfsig(out / "signed" / f"{rid}.pdf")


def test_letters_not_ready_are_refused_by_name(mail_batch, keys, tmp_path, inject_latex):
    from builder.build import build
    from conftest import UNDEFINED

    source, out = copy_batch(mail_batch, tmp_path / "b")
    inject_latex({"avon-and-somerset": UNDEFINED})
    assert [o.status for o in build(source, out, force=True, only=["avon-and-somerset"]).outcomes] == ["failed"]
    inject_latex({})
    with open(Layout.of(out).pdf("sussex"), "ab") as handle:  # changed after its build
        handle.write(b"\n% edited\n")
    text = source.read_text()
    essex = text[text.index("  - id: essex\n"):]
    source.write_text(text.replace("Dear Sophie,", "Dear Ms Linden,")  # london is stale
                      + essex.replace("id: essex", "id: newcomer", 1))  # never built
    p12, _ = keys
    refused = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                     {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert refused.returncode == 1
    assert "not signed; these letters are not ready" in refused.stderr
    assert re.search(r"^  sussex: .*changed since it was built", refused.stderr, re.M), refused.stderr
    assert re.search(r"^  london: stale: older than its inputs", refused.stderr, re.M), refused.stderr  # merge's words
    assert re.search(r"^  avon-and-somerset: .*its last build failed", refused.stderr, re.M), refused.stderr
    assert re.search(r"^  newcomer: never built", refused.stderr, re.M), refused.stderr
    assert "Traceback" not in refused.stderr
    assert sorted(p.stem for p in (out / "signed").iterdir()) == ["essex", "south-wales"]
    assert not (out / "bundle-signed.pdf").exists()
    assert re.search(r"^bundle not signed: it holds letters that are not ready: avon-and-somerset, sussex, london; "
                     r"the batch has letters not in it and not ready: newcomer$", refused.stderr, re.M), refused.stderr


def test_a_letter_refused_for_preflight_errors_is_told_how_to_accept_them(mail_batch, keys, tmp_path):
    """As merge says it (one rule, ready.not_ready_fix): build and fix, or accept the
    findings on purpose with `merge --accept`; sign said only the first. After that
    merge the letter is signed."""
    from builder.build import build

    source, out = copy_batch(mail_batch, tmp_path / "b")
    tall = "".join(f"      - Line {n}\n" for n in range(1, 13))  # an address too tall for the window
    text = source.read_text()
    start = text.index("    address:\n", text.index("  - id: essex\n"))
    end = text.index("    salutation:", start)
    source.write_text(text[:start] + "    address:\n" + tall + text[end:])
    report = build(source, out)
    assert [o.recipient for o in report.not_ready] == ["essex"], [(o.recipient, o.findings) for o in report.outcomes]
    p12, _ = keys
    refused = invoke(["sign", "-r", str(source), "-b", str(out), "--p12", str(p12)],
                     {"LETTERBATCH_P12_PASSWORD": "secret"})
    accept = f"`invoke merge --accept essex:window -r {source} -b {out}`"
    assert refused.returncode == 1 and re.search(r"^  essex: preflight: window: ", refused.stderr, re.M)
    assert (f"Run `invoke build -r {source} -b {out}` and fix what it reports "
            f"(or accept its preflight findings on purpose: {accept})." in refused.stderr), refused.stderr
    assert invoke(shlex.split(accept.strip("`"))[1:]).returncode == 0  # as copied
    done = invoke(["sign", "-r", str(source), "-b", str(out), "--p12", str(p12)], {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0 and "signed/essex.pdf" in done.stdout, done.stdout + done.stderr


def test_a_bundle_changed_after_the_merge_is_not_signed(mail_batch, keys, tmp_path):
    source, out = copy_batch(mail_batch, tmp_path / "b")
    with open(out / "bundle.pdf", "ab") as handle:
        handle.write(b"\n% edited\n")
    p12, _ = keys
    refused = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                     {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert refused.returncode == 1
    assert refused.stderr.strip() == "bundle not signed: bundle.pdf changed since it was merged"
    assert len(list((out / "signed").iterdir())) == 5 and not (out / "bundle-signed.pdf").exists()


def edwards_key(folder: Path) -> Path:
    """A self-signed Ed25519 key and certificate as PKCS#12 (password 'secret')."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key, now = ed25519.Ed25519PrivateKey.generate(), dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Edwards")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, None))
    (folder / "ed25519.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"ed", key, cert, None, serialization.BestAvailableEncryption(b"secret")))
    return folder / "ed25519.p12"


def test_a_wrong_password_is_one_line(mail_batch, keys, tmp_path):
    source, out = copy_batch(mail_batch, tmp_path / "b")
    p12, _ = keys
    wrong = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                   {"LETTERBATCH_P12_PASSWORD": "not the password"})
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (f"could not sign: cannot open {p12}: wrong password, "
                                    "or not a PKCS#12 file with a key")
    asked = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)])
    assert asked.returncode == 2 and asked.stderr.strip() == "set LETTERBATCH_P12_PASSWORD (no terminal to ask)"
    ed25519 = edwards_key(tmp_path)  # pyHanko failed with a traceback on it (it signs SHA-512 only)
    refused = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(ed25519)],
                     {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "could not sign: the key is Ed25519, whose signatures PDF readers cannot check; use an RSA or ECDSA key")
    assert not (out / "signed").exists()
    options = invoke(["--help", "sign"]).stdout.lower()  # the secret is never a flag (it would show in `ps`)
    assert "--p12" in options and "--password" not in options and "--pin" not in options


def test_a_certificate_readers_would_reject_signs_nothing(mail_batch, tmp_path):
    """An expired certificate, one not valid yet, and one issued for encryption
    only: each signature made with them is one PDF readers call invalid, and
    sign signed every letter with them and said so. Now one line, exit 2,
    nothing written; a certificate valid today and for signing still signs."""
    source, out = copy_batch(mail_batch, tmp_path / "b")
    cases = {"expired": (dict(valid=(-60, -2)), "could not sign: the certificate expired on "),
             "future": (dict(valid=(3, 60)), "could not sign: the certificate is valid only from "),
             "encrypts": (dict(signs=False), "could not sign: the certificate's key may not sign "
                                             "(its key usage: key encipherment)")}
    for name, (options, start) in cases.items():
        (tmp_path / name).mkdir()
        p12, _ = make_certificates(tmp_path / name, **options)
        refused = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                         {"LETTERBATCH_P12_PASSWORD": "secret"})
        assert refused.returncode == 2, (name, refused.stderr)
        assert refused.stderr.startswith(start) and refused.stderr.count("\n") == 1, (name, refused.stderr)
        assert refused.stderr.rstrip().endswith("PDF readers would call every signature made with it invalid; "
                                                "give the office's current certificate (and its key)"), refused.stderr
        assert not (out / "signed").exists() and not (out / "bundle-signed.pdf").exists()
    (tmp_path / "today").mkdir()
    p12, _ = make_certificates(tmp_path / "today", valid=(0, 1))
    done = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                  {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0, done.stderr
    assert "Signature is Valid" in pdfsig(out / "signed" / "london.pdf")


def test_a_run_loads_the_key_and_measures_the_room_for_a_signature_once(mail_batch, keys, tmp_path, monkeypatch):
    """pyHanko sizes a signature by making a dummy one first, and loads the
    private key for every signature (cryptography checks an RSA key as it
    loads it); one run's signatures are all alike, so the room it measured for
    the first serves the rest, and the key is loaded once. Every signature is
    still valid, in letters and bundle alike, each given the same room."""
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.signers.pdf_signer import PdfSigningSession

    from builder.sign import sign_batch

    measured, loaded = [], []
    original, load = PdfSigningSession.estimate_signature_container_size, serialization.load_der_private_key

    async def counted(self, *args, **kwargs):
        measured.append(await original(self, *args, **kwargs))
        return measured[-1]

    monkeypatch.setattr(PdfSigningSession, "estimate_signature_container_size", counted)
    monkeypatch.setattr(serialization, "load_der_private_key", lambda *a, **k: loaded.append(1) or load(*a, **k))
    source, out = copy_batch(mail_batch, tmp_path / "b")
    p12, _ = keys
    report = sign_batch(source, out, Key(p12=p12, password=b"secret"))
    assert len(report.signed) == len(IDS) and report.bundle is not None
    assert len(measured) == 1 and len(loaded) == 1  # for 5 letters and the bundle's 5 fields
    bundle = pdfsig(out / "bundle-signed.pdf")
    assert bundle.count("Signature is Valid") == len(IDS) and "Total document signed" in bundle
    for rid in IDS:
        assert "Signature is Valid" in pdfsig(out / "signed" / f"{rid}.pdf"), rid
    reader = PdfReader(out / "bundle-signed.pdf")
    rooms = {len(field.get_object()["/V"].get_object()["/Contents"])
             for field in reader.trailer["/Root"]["/AcroForm"]["/Fields"]}
    assert rooms == {measured[0] // 2}  # bytes, two hex digits each
    # the record sign wrote is the shape a fresh read checks for (its verdict is kept, not checked again)
    from builder import manifest as record

    data = (out / "manifest.json").read_bytes()
    kept = record._verdicts.get(hashlib.sha256(data).digest())
    assert kept == record._verdict(json.loads(data)) and kept[0] == set(IDS) and kept[2], kept


def test_an_ecdsa_key_signs_too(mail_batch, tmp_path):
    """The README offers RSA or ECDSA keys: an ECDSA signature (P-256) is one
    PDF readers check."""
    source, out = copy_batch(mail_batch, tmp_path / "b")
    p12, ca = make_certificates(tmp_path, kind="ec")
    done = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                  {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0, done.stderr
    report = pdfsig(out / "signed" / "london.pdf", nss_trusting(ca, tmp_path / "nss"))
    assert "Signature is Valid" in report and "ECDSA" in report.upper(), report
    assert "Certificate is Trusted" in report, report
    assert pdfsig(out / "bundle-signed.pdf").count("Signature is Valid") == len(IDS)
    (check,) = validate(out / "signed" / "london.pdf", [ca])
    assert check.bottom_line


@pytest.fixture(scope="module")
def softhsm_token(keys, tmp_path_factory):
    """A real SoftHSM2 token 'letterbatch' (user PIN 1234) holding the test
    signer's key and certificate under the label 'signer'."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    assert SOFTHSM.exists() and shutil.which("pkcs11-tool"), "run scripts/install (softhsm2, opensc)"
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "letterbatch", "--pin", "1234",
                    "--so-pin", "5678"], env=env, check=True, capture_output=True)
    p12, _ = keys
    key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), b"secret")
    (folder / "key.der").write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (folder / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    for kind, path in (("privkey", "key.der"), ("cert", "cert.der")):
        subprocess.run(["pkcs11-tool", "--module", str(SOFTHSM), "--token-label", "letterbatch", "--login",
                        "--pin", "1234", "--write-object", str(folder / path), "--type", kind,
                        "--label", "signer", "--id", "01"], env=env, check=True, capture_output=True)
    return conf


def test_a_token_or_key_label_not_found_is_told_with_the_labels_there(mail_batch, softhsm_token, tmp_path):
    # "no token labelled 'Letterbatch'" alone: the office had only the README's pkcs11-tool to
    # find the token was 'letterbatch' (labels are case-sensitive), or its key 'signer'
    source, out = copy_batch(mail_batch, tmp_path / "b")
    env = {"SOFTHSM2_CONF": str(softhsm_token), "LETTERBATCH_PKCS11_PIN": "1234"}
    base = ["sign", "--recipients", str(source), "--build-dir", str(out), "--pkcs11-lib", str(SOFTHSM)]
    token = invoke([*base, "--token", "Letterbatch", "--key", "signer"], env)
    assert token.returncode == 2 and token.stderr.strip() == (
        f"could not sign: no token labelled 'Letterbatch' in {SOFTHSM}; the library's tokens are 'letterbatch' "
        "(labels are case-sensitive: --token letterbatch)")  # SoftHSM's free slot, labelled '', is no token
    key = invoke([*base, "--token", "letterbatch", "--key", "nobody"], env)
    assert key.returncode == 2 and len(key.stderr.strip().splitlines()) == 1, key.stderr
    assert key.stderr.strip().endswith("; the token's certificates are 'signer'"), key.stderr
    assert not (out / "signed").exists()


def test_signing_with_a_softhsm_token(mail_batch, keys, softhsm_token, tmp_path):
    source, out = copy_batch(mail_batch, tmp_path / "b")
    _, ca = keys
    command = ["sign", "--recipients", str(source), "--build-dir", str(out), "--pkcs11-lib", str(SOFTHSM),
               "--token", "letterbatch", "--key", "signer"]
    env = {"SOFTHSM2_CONF": str(softhsm_token)}

    wrong = invoke(command, {**env, "LETTERBATCH_PKCS11_PIN": "9999"})
    assert wrong.returncode == 2 and wrong.stderr.strip() == "could not sign: wrong PIN for token 'letterbatch'"
    missing = invoke([*command[:-4], "--token", "elsewhere", "--key", "signer"], {**env, "LETTERBATCH_PKCS11_PIN": "1234"})
    assert missing.returncode == 2 and missing.stderr.strip().startswith("could not sign: no token labelled 'elsewhere'")
    no_key = invoke([*command[:-2], "--key", "nobody"], {**env, "LETTERBATCH_PKCS11_PIN": "1234"})
    assert no_key.returncode == 2 and len(no_key.stderr.strip().splitlines()) == 1, no_key.stderr
    assert "could not sign: token 'letterbatch' has no usable key and certificate labelled 'nobody'" in no_key.stderr
    assert not (out / "signed").exists()

    done = invoke(command, {**env, "LETTERBATCH_PKCS11_PIN": "1234"})
    assert done.returncode == 0, done.stderr
    trusting = nss_trusting(ca, tmp_path / "nss")
    for rid in IDS:
        report = pdfsig(out / "signed" / f"{rid}.pdf", trusting)
        assert "Signature is Valid" in report and "Total document signed" in report, (rid, report)
        assert "Certificate is Trusted" in report, (rid, report)
    (check,) = validate(out / "signed" / "london.pdf", [ca])
    assert check.bottom_line
    assert "Total document signed" in pdfsig(out / "bundle-signed.pdf")
    # a signed copy changed since: status names the token and key, and that command signs it again
    with open(out / "signed" / "essex.pdf", "ab") as handle:
        handle.write(b"\n% edited\n")
    seen = invoke(["status", "-r", str(source), "-b", str(out)]).stdout
    sign = f"`invoke sign --pkcs11-lib {SOFTHSM} --token letterbatch --key signer -r {source} -b {out}`"
    assert f"signed/essex.pdf changed since it was signed: run {sign}" in seen, seen
    done = invoke(shlex.split(sign.strip("`"))[1:], {**env, "LETTERBATCH_PKCS11_PIN": "1234"})
    assert done.returncode == 0 and "signed/" not in invoke(["status", "-r", str(source), "-b", str(out)]).stdout


def test_a_pkcs11_library_that_cannot_be_loaded_is_named_as_such(mail_batch, tmp_path):
    """A mistyped --pkcs11-lib, or a file that is no PKCS#11 module, is not a token
    missing: it said "no token labelled 'letterbatch' in /usr/lib/opensc.so", and the
    office went looking for its smartcard."""
    source, out = copy_batch(mail_batch, tmp_path / "b")
    not_a_module = tmp_path / "notes.so"
    not_a_module.write_text("not a library\n")
    for lib, why in ((tmp_path / "missing.so", "No such file or directory"), (not_a_module, "")):
        refused = invoke(["sign", "-r", str(source), "-b", str(out), "--pkcs11-lib", str(lib),
                          "--token", "letterbatch", "--key", "signer"], {"LETTERBATCH_PKCS11_PIN": "1234"})
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith(f"could not sign: cannot load the PKCS#11 library {lib}: "), refused.stderr
        assert why in refused.stderr and "no token" not in refused.stderr and "OS exception" not in refused.stderr
    assert not (out / "signed").exists()


def test_pyhanko_is_imported_only_to_sign():
    probe = ("import sys, tasks, builder.sign, builder.send, builder.merge; "
             "print(sorted(m for m in sys.modules if m.startswith(('pyhanko', 'pkcs11'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_tells_a_signed_copy_of_an_older_letter(signed_batch, keys, tmp_path):
    """From the record sign keeps (no pyHanko in status): a signed copy made
    from an older letter, or changed since, is named with the command to run."""
    from builder.build import build

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    batch = f" -r {source} -b {out}"  # as typed: the command suggested works on this batch

    def status() -> str:
        done = invoke(["status", "--recipients", str(source), "--build-dir", str(out)])
        assert "Traceback" not in done.stderr
        return done.stdout

    assert "signed/" not in status()
    source.write_text(source.read_text().replace("Dear Sophie,", "Dear Ms Linden,"))
    assert build(source, out).ok
    with open(out / "signed" / "essex.pdf", "ab") as handle:
        handle.write(b"\n% edited\n")
    seen = status()
    p12, _ = keys
    # the key the last sign was given (on the record), so the command works as written
    sign = f"`invoke sign --p12 {p12}{batch}`"
    assert f"signed/london.pdf is the signed copy of an older letter: run {sign}" in seen, seen
    assert f"signed/essex.pdf changed since it was signed: run {sign}" in seen, seen
    assert seen.count("signed/") == 2
    done = invoke(shlex.split(sign.strip("`"))[1:], {"LETTERBATCH_P12_PASSWORD": "secret"})  # as copied
    # both letters signed again (the bundle, older than london's letter, is merge's to make first)
    assert done.stdout.count("  signed   ") == 2 and "could not sign" not in done.stderr, done.stdout + done.stderr
    assert "signed/" not in status(), done.stdout + done.stderr


def test_a_signed_copy_sign_did_not_make_is_never_taken_for_one(signed_batch, keys, tmp_path):
    """signed/london.pdf replaced by the letter as it is, signed by another key (a valid
    signature, covering the whole file): it is not the signed copy. status and check exit 1
    naming it, send holds the letter back, and sign signs it again instead of taking it on
    the record. (It was mailed, status and check exited 0, and sign called it current and
    recorded it; so was a signed bundle with one field signed by another key.)"""
    from builder.manifest import Manifest
    from builder.send import _attachment

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    (tmp_path / "other").mkdir()
    impostor, _ = make_certificates(tmp_path / "other", "Mallory Impostor")
    letters = Layout.of(out)
    with open_signer(Key(p12=impostor, password=b"secret")) as signer:
        (out / "signed" / "london.pdf").write_bytes(
            sign_bytes(letters.pdf("london").read_bytes(), signer, field="Forged"))
        (out / "bundle-signed.pdf").write_bytes(sign_bytes(letters.bundle.read_bytes(), signer,
                                                           field=field_name("sussex")))
    batch = ["--recipients", str(source), "--build-dir", str(out)]
    for task in ("status", "check"):
        said = invoke([task, *batch])
        assert said.returncode == 1 and "Traceback" not in said.stderr, said.stdout + said.stderr
        assert "signed/london.pdf changed since it was signed" in said.stdout, said.stdout
        assert "bundle-signed.pdf changed since it was signed" in said.stdout, said.stdout
    held = _attachment("london", letters, Manifest.read(out))
    assert held.status == "not ready" and "signed/london.pdf changed since it was signed" in held.detail
    again = invoke(["sign", *batch, "--p12", str(p12)], {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert again.returncode == 0, again.stdout + again.stderr
    for signed in (out / "signed" / "london.pdf", out / "bundle-signed.pdf"):
        assert "Mallory" not in pdfsig(signed) and "Signatory" in pdfsig(signed), signed
    assert invoke(["status", *batch]).returncode == 0


def test_a_key_that_does_not_match_its_certificate_signs_nothing(mail_batch, keys, softhsm_token, tmp_path):
    """A token whose label names the signer's key and another key's certificate: every
    signature made with them is invalid to a reader. One line, exit 2, nothing written.
    (sign said "signed" for every letter, status said ready, and send held them all.)"""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    source, out = copy_batch(mail_batch, tmp_path / "b")
    p12, _ = keys
    (tmp_path / "other").mkdir()
    other, _ = make_certificates(tmp_path / "other", "Someone Else")
    key = pkcs12.load_key_and_certificates(p12.read_bytes(), b"secret")[0]
    cert = pkcs12.load_key_and_certificates(other.read_bytes(), b"secret")[1]
    (tmp_path / "key.der").write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    env = {"SOFTHSM2_CONF": str(softhsm_token)}
    for kind, path in (("privkey", "key.der"), ("cert", "cert.der")):
        subprocess.run(["pkcs11-tool", "--module", str(SOFTHSM), "--token-label", "letterbatch", "--login",
                        "--pin", "1234", "--write-object", str(tmp_path / path), "--type", kind,
                        "--label", "mismatch", "--id", "02"], env={**os.environ, **env}, check=True, capture_output=True)
    refused = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--pkcs11-lib", str(SOFTHSM),
                      "--token", "letterbatch", "--key", "mismatch"], {**env, "LETTERBATCH_PKCS11_PIN": "1234"})
    assert (refused.returncode, refused.stderr.strip()) == (2, (
        "could not sign: the key does not match its certificate: PDF readers would call every signature "
        "made with it invalid; give the key and the certificate that belong together")), refused.stdout
    assert not (out / "signed").exists() and not (out / "bundle-signed.pdf").exists()


def stop_sign_force_part_way(source: Path, out: Path, p12: Path, stop: int) -> tuple[int, list[str]]:
    """`sign --force` sent ``stop`` (a signal) once its first new signed copy is written: its
    exit status, and the letters whose signed copies it had made anew by then."""
    import time

    first = out / "signed" / f"{IDS[0]}.pdf"
    before = {rid: (out / "signed" / f"{rid}.pdf").read_bytes() for rid in IDS}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBATCH_")}
    running = subprocess.Popen([sys.executable, "-m", "invoke", "sign", "-r", str(source), "-b", str(out), "--p12",
                                str(p12), "--force"], cwd=ROOT, env={**clean, "LETTERBATCH_P12_PASSWORD": "secret"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        while running.poll() is None and first.read_bytes() == before[IDS[0]]:
            time.sleep(0.002)
        running.send_signal(stop)
    finally:
        running.wait()
    resigned = [rid for rid in IDS if (out / "signed" / f"{rid}.pdf").read_bytes() != before[rid]]
    assert resigned[:1] == [IDS[0]] and len(resigned) < len(IDS), resigned  # stopped part way
    return running.returncode, resigned


def test_a_sign_run_killed_part_way_leaves_no_copy_changed_since_it_was_signed(signed_batch, keys, tmp_path):
    """sign --force killed (kill -9) after its first new signed copy: the copies it
    was replacing are off the record ("not on the record"), never a new copy under
    the old record ("changed since it was signed", which nobody did); a plain
    sign then records them all again."""
    import signal

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    ended, _ = stop_sign_force_part_way(source, out, p12, signal.SIGKILL)
    assert ended == -signal.SIGKILL, "sign finished before it could be killed"
    seen = invoke(["status", "-r", str(source), "-b", str(out)]).stdout
    assert "changed since it was signed" not in seen, seen
    # every record forgotten (--force) but for the key: the command suggested is sign with
    # the key last given here (it was `--p12 YOUR-KEY.p12`, to fill in: wrong for a token)
    sign = f"`invoke sign --p12 {p12} -r {source} -b {out}`"
    assert f"signed/{IDS[0]}.pdf is not on the record: run {sign}" in seen, seen
    assert f"signed/{IDS[-1]}.pdf is not on the record: run {sign}" in seen, seen  # not "of an older letter"
    assert "YOUR-KEY" not in seen, seen
    held = invoke(["send", "-r", str(source), "-b", str(out)]).stdout
    assert f"signed/{IDS[0]}.pdf is not on the record: run {sign}" in held, held  # send says it the same way
    done = invoke(["sign", "-r", str(source), "-b", str(out), "--p12", str(p12)], {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signed/" not in invoke(["status", "-r", str(source), "-b", str(out)]).stdout


def test_a_sign_run_stopped_with_ctrl_c_records_the_copies_it_made(signed_batch, keys, tmp_path):
    """sign --force stopped with Ctrl-C (SIGINT) after its first new signed copy: the copies
    it made are on the record, as a stopped build's letters are. They were "not on the record",
    and the next sign signed every letter again."""
    import signal

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    ended, resigned = stop_sign_force_part_way(source, out, p12, signal.SIGINT)
    assert ended == 130, "sign finished before it could be stopped"
    seen = invoke(["status", "-r", str(source), "-b", str(out)]).stdout
    for rid in IDS:
        assert (f"signed/{rid}.pdf is not on the record" in seen) == (rid not in resigned), (rid, seen)
    done = invoke(["sign", "-r", str(source), "-b", str(out), "--p12", str(p12)], {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert [rid for rid in IDS if f"/signed/{rid}.pdf\n" in done.stdout] == [r for r in IDS if r not in resigned]


def test_a_sign_stopped_just_after_it_replaced_a_copy_records_that_copy(signed_batch, keys, tmp_path, monkeypatch):
    """Ctrl-C between a new signed copy's rename into place and its being listed: the copy
    is whole (written atomically) and this run's, so it is on the record too. It was "not
    on the record" (the test above saw it now and then, on a loaded machine)."""
    import builder.sign as signing

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    write = signing.write_atomic

    def written_then_stopped(path, data, *args, **kwargs):
        write(path, data, *args, **kwargs)
        if path.parent.name == "signed":
            raise KeyboardInterrupt

    monkeypatch.setattr(signing, "write_atomic", written_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        signing.sign_batch(source, out, Key(p12=p12, password=b"secret"), force=True)
    seen = invoke(["status", "-r", str(source), "-b", str(out)]).stdout
    assert [rid for rid in IDS if f"signed/{rid}.pdf is not on the record" in seen] == IDS[1:], seen
    assert "Signature is Valid" in pdfsig(out / "signed" / f"{IDS[0]}.pdf")


def test_a_signed_letter_invalid_or_removed_for_a_while_and_back_the_same_is_still_signed(
        signed_batch, keys, tmp_path):
    """A recipient made invalid (or removed) and then restored comes back as the
    same letter, byte for byte, which its signed copy (kept) still signs. Its
    record was dropped with the letter's, so status said "not on the record: run
    sign" and sign then only recorded it; now both say it is current. While the
    recipient is invalid, status does not send the user to sign."""
    from builder.build import build

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    original = source.read_text()

    def status() -> str:
        done = invoke(["status", "--recipients", str(source), "--build-dir", str(out)])
        assert "Traceback" not in done.stderr
        return done.stdout

    source.write_text(original.replace("  - id: essex\n", "  - id: essex\n    bogus: 1\n")
                      .replace("  - id: london\n", "  - id: london-moved\n"))
    report = build(source, out)
    assert report.removed == ["london"] and report.kept_signed == [out / "signed" / "london.pdf"]
    assert build(source, out).removed == []  # said once, not on every build
    seen = status()
    # (essex's letter of before is kept, bad input losing nothing, and so is its signed copy)
    assert "signed/essex.pdf is the signed copy of a letter that is not ready: its recipient's entry is invalid" \
        in seen, seen
    assert "run `invoke sign" not in seen, seen
    # the task named (as build says it), not a command without its key
    assert f"its signed copy {out / 'signed' / 'london.pdf'} is kept (only `invoke sign` makes one)" in seen, seen
    source.write_text(original)
    assert build(source, out).ok
    seen = status()
    assert "signed/" not in seen, seen
    done = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                  {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0, done.stdout + done.stderr
    for rid in IDS:  # nothing signed again: every signed copy is of its letter as it is
        assert f"current  {rid} (its signed copy is of the current letter" in done.stdout, done.stdout
    assert "signed   " not in done.stdout.replace("signed   " + str(out / "bundle-signed.pdf"), "")
    assert status() == seen


def test_a_letter_added_after_the_others_were_signed_is_said_unsigned(signed_batch, keys, tmp_path):
    """A recipient added after the letters were signed: status called the new letter ready
    with no word, and send mailed it unsigned ("(not signed)" only as it went). Status now
    says it is not signed while the others are, with the sign command that signs it."""
    from builder.build import build

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    text = source.read_text()
    essex = text[text.index("  - id: essex\n"):]  # the last recipient, again as another
    source.write_text(text + essex.replace("id: essex", "id: kent").replace("essex@", "kent@"))
    assert build(source, out).ok
    done = invoke(["status", "--recipients", str(source), "--build-dir", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    kent = next(i for i, line in enumerate(lines) if line.startswith("  kent "))
    assert lines[kent + 1].strip() == (f"not signed, while 5 letters of this batch are: `invoke sign --p12 {p12} "
                                       f"-r {source} -b {out}` signs it (send mails it unsigned)"), done.stdout
    assert done.stdout.count("not signed, while") == 1, done.stdout
    from builder.merge import merge

    merge(source, out)
    signed = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                    {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert signed.returncode == 0, signed.stderr
    assert "not signed" not in invoke(["status", "--recipients", str(source), "--build-dir", str(out)]).stdout


def test_status_tells_the_bundle_and_its_signed_copy(signed_batch, keys, tmp_path):
    """status gives the bundle's state by the same rule as merge and sign, and
    what is wrong with the signed bundle, from the record (no pyHanko)."""
    from builder.build import build
    from builder.merge import merge

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    batch = f" -r {source} -b {out}"  # as typed: the command suggested works on this batch

    def status() -> subprocess.CompletedProcess:
        done = invoke(["status", "--recipients", str(source), "--build-dir", str(out)])
        assert "Traceback" not in done.stderr
        return done

    def sign() -> subprocess.CompletedProcess:
        return invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                      {"LETTERBATCH_P12_PASSWORD": "secret"})

    seen = status()
    assert re.search(r"^  bundle\.pdf +ready$", seen.stdout, re.M) and "bundle-signed" not in seen.stdout, seen.stdout
    good = (out / "bundle-signed.pdf").read_bytes()
    (out / "bundle-signed.pdf").write_bytes(good + b"\n% edited\n")
    assert f"bundle-signed.pdf changed since it was signed: run `invoke sign --p12 {p12}{batch}`" in status().stdout
    (out / "bundle-signed.pdf").write_bytes(good)
    source.write_text(source.read_text().replace("Dear Sophie,", "Dear Ms Linden,"))
    assert build(source, out).ok
    seen = status()
    assert re.search(r"^  bundle\.pdf +stale +older than its letters \(rebuilt since the merge\): london; "
                     + re.escape(f"run `invoke merge{batch}`") + "$", seen.stdout, re.M), seen.stdout
    assert seen.returncode == 0  # a command to run, not a person to ask
    # merged to another file: that is the bundle on the record, and the one sign signs
    merge(source, out, out / "other.pdf", signature_fields=True)
    seen = status()
    assert re.search(r"^  other\.pdf +ready$", seen.stdout, re.M), seen.stdout
    # signed from bundle.pdf as it was: the signed copy of an older bundle (it was "not on the record")
    assert ("bundle-signed.pdf is the signed copy of an older bundle: "
            f"run `invoke sign --p12 {p12}{batch}`") in seen.stdout, seen.stdout
    # as check says: the bundle.pdf left behind is vouched for by nothing
    assert "bundle.pdf is not on the record (merge last wrote other.pdf)" in seen.stdout and seen.returncode == 1
    done = sign()
    assert done.returncode == 0, done.stderr
    signed = (out / "bundle-signed.pdf").read_bytes()
    assert signed.startswith((out / "other.pdf").read_bytes()) and not signed.startswith((out / "bundle.pdf").read_bytes())
    assert "bundle-signed" not in status().stdout
    with open(out / "other.pdf", "ab") as handle:  # changed by hand after its merge
        handle.write(b"\n% edited\n")
    seen = status()
    assert "other.pdf          changed     other.pdf changed since it was merged" in seen.stdout, seen.stdout
    assert seen.returncode == 1


def test_a_bundle_merged_again_leaves_the_signed_copy_of_an_older_bundle(signed_batch, keys, tmp_path):
    """A bundle merged again to the same file (another option) leaves bundle-signed.pdf the
    signed copy of an older bundle, as README says: sign's to make again, no person's to ask.
    The merge dropped sign's record, so status called it "not on the record" and exited 1."""
    from builder.merge import merge

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    batch = f" -r {source} -b {out}"
    merge(source, out)  # no signature fields now: other bytes, the same file
    seen = invoke(["status", "--recipients", str(source), "--build-dir", str(out)])
    assert ("bundle-signed.pdf is the signed copy of an older bundle: "
            f"run `invoke sign --p12 {p12}{batch}`") in seen.stdout, seen.stdout
    assert "not on the record" not in seen.stdout and seen.returncode == 0, seen.stdout
    done = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                  {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 0 and f"  signed   {out / 'bundle-signed.pdf'}" in done.stdout, done.stdout
    assert "bundle-signed" not in invoke(["status", "--recipients", str(source), "--build-dir", str(out)]).stdout


def test_a_bundle_merged_elsewhere_and_back_leaves_the_signed_copy_of_an_older_bundle(signed_batch, keys,
                                                                                    tmp_path):
    """`merge --output other.pdf`, then `merge`: the merge to another file dropped sign's
    record, so status called bundle-signed.pdf "not on the record" and exited 1, as for a
    file nobody signed. It is the signed copy of an older bundle, sign's to make again."""
    from builder.merge import merge

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    p12, _ = keys
    batch = f" -r {source} -b {out}"
    merge(source, out, out / "other.pdf", signature_fields=False)
    merge(source, out, signature_fields=False)
    seen = invoke(["status", "--recipients", str(source), "--build-dir", str(out)])
    assert ("bundle-signed.pdf is the signed copy of an older bundle: "
            f"run `invoke sign --p12 {p12}{batch}`") in seen.stdout, seen.stdout
    assert "not on the record" not in seen.stdout and seen.returncode == 0, seen.stdout


def test_a_manifest_edited_by_hand_signs_only_what_it_still_vouches_for(mail_batch, keys, tmp_path):
    source, out = copy_batch(mail_batch, tmp_path / "b")
    data = json.loads((out / "manifest.json").read_text())
    data["letters"]["london"]["sha256"] = None
    data["letters"]["sussex"]["pages"] = "two"
    data["bundle"]["seen"] = "x"
    data["batch"]["rejected"] = [[1]]
    (out / "manifest.json").write_text(json.dumps(data))
    p12, _ = keys
    done = invoke(["sign", "--recipients", str(source), "--build-dir", str(out), "--p12", str(p12)],
                  {"LETTERBATCH_P12_PASSWORD": "secret"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert re.search(r"^  london: ", done.stderr, re.M) and re.search(r"^  sussex: ", done.stderr, re.M), done.stderr
    assert sorted(p.stem for p in (out / "signed").iterdir()) == ["avon-and-somerset", "essex", "south-wales"]
    assert not (out / "bundle-signed.pdf").exists()


def test_a_letter_or_bundle_changed_while_sign_runs_is_not_signed(mail_batch, keys, tmp_path, monkeypatch):
    """What is signed is what was checked: sign judges every letter and the bundle
    first, then signs one after another (a smartcard takes a while for each). A file
    changed by hand in the meantime is not the one judged ready: it is not signed."""
    from builder import sign as signing
    from builder.sign import Key

    real, p12 = signing.sign_bytes, keys[0]

    def sign_while(edit, folder):
        source, out = copy_batch(mail_batch, tmp_path / folder)
        edited = []

        def sign_bytes(data, *args, **kw):  # the real signature; a person edits files meanwhile
            if not edited:
                edited.append(edit(Layout.of(out)))
            return real(data, *args, **kw)

        monkeypatch.setattr(signing, "sign_bytes", sign_bytes)
        return signing.sign_batch(source, out, Key(p12=p12, password=b"secret")), Layout.of(out)

    def letters(layout):
        with open(layout.pdf("london"), "ab") as handle:
            handle.write(b"\n")
        layout.pdf("essex").write_bytes(layout.pdf("sussex").read_bytes())  # another letter's file

    report, layout = sign_while(letters, "letters")
    assert sorted(p.stem for p in report.signed) == ["avon-and-somerset", "south-wales", "sussex"]
    assert sorted(report.failed) == [
        "essex: changed: letters/essex.pdf changed since it was judged ready; not signed",
        "london: changed: letters/london.pdf changed since it was judged ready; not signed"]
    assert sorted(p.stem for p in layout.signed.iterdir()) == ["avon-and-somerset", "south-wales", "sussex"]
    assert report.bundle is None and report.bundle_refused and not layout.bundle_signed.exists()

    def bundle(layout):
        with open(layout.bundle, "ab") as handle:
            handle.write(b"\n")

    report, layout = sign_while(bundle, "bundle")
    assert len(report.signed) == 5 and not report.failed
    assert report.bundle is None and report.bundle_refused and not layout.bundle_signed.exists()
    assert report.bundle_note == "bundle not signed: changed: bundle.pdf changed since it was judged ready; not signed"


def test_the_sign_suggested_names_the_key_given_last(signed_batch, keys, softhsm_token, tmp_path):
    """The bundle and letters signed with the PKCS#12 key, then a rebuilt letter signed with
    the token (the bundle, older than it, not signed): the next suggested ``sign`` names the
    token, the key given last. It named the PKCS#12 key, the bundle's record being read first."""
    from builder.build import build

    source, out = copy_batch(signed_batch[:2], tmp_path / "b")
    source.write_text(source.read_text().replace("Dear Sophie,", "Dear Ms Linden,"))
    assert build(source, out).ok
    token = ["--pkcs11-lib", str(SOFTHSM), "--token", "letterbatch", "--key", "signer"]
    done = invoke(["sign", "-r", str(source), "-b", str(out), *token],
                  {"SOFTHSM2_CONF": str(softhsm_token), "LETTERBATCH_PKCS11_PIN": "1234"})
    assert done.stdout.count("  signed   ") == 1 and "bundle not signed" in done.stderr, done.stdout + done.stderr
    source.write_text(source.read_text().replace("Dear Ms Linden,", "Dear Sophie Linden,"))
    assert build(source, out).ok
    seen = invoke(["status", "-r", str(source), "-b", str(out)]).stdout
    sign = f"`invoke sign {shlex.join(token)} -r {source} -b {out}`"
    assert f"signed/london.pdf is the signed copy of an older letter: run {sign}" in seen, seen
    assert f"bundle-signed.pdf is the signed copy of an older bundle: run {sign}" not in seen  # not merged since
