"""The self-signed HTTPS certificate: its names, reuse, renewal, repair, the key's privacy, and a user's own pair."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from teachable.certs import (
    RENEW_WITHIN,
    VALID_FOR,
    CertificateError,
    ensure_certificate,
    load_certificate,
    machine_names,
)
from teachable.cli import main
from teachable.network import host_names, lan_addresses

from .serving import free_port

NAMES = ["localhost", "127.0.0.1", "::1", "workshop.test"]
START = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def subject_alternative_names(path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {str(a) for a in san.get_values_for_type(x509.IPAddress)}


def test_the_names_are_in_the_subject_alternative_names(tmp_path):
    certificate = ensure_certificate(tmp_path, names=NAMES, now=START)
    dns, addresses = subject_alternative_names(certificate.certfile)
    assert dns == {"localhost", "workshop.test"}
    assert addresses == {"127.0.0.1", "::1"}
    assert set(certificate.names) == set(NAMES)
    assert certificate.self_signed
    assert certificate.not_after == START + VALID_FOR


def test_the_default_names_cover_loopback_host_name_and_every_network_address():
    names = set(machine_names())
    assert {"localhost", "127.0.0.1", "::1"} <= names
    assert set(lan_addresses()) <= names
    assert set(host_names()) <= names


def test_a_later_start_reuses_the_certificate(tmp_path):
    first = ensure_certificate(tmp_path, names=NAMES, now=START)
    again = ensure_certificate(tmp_path, names=NAMES, now=START + dt.timedelta(days=200))
    assert again.serial == first.serial
    assert again.certfile.read_bytes() == first.certfile.read_bytes()


def test_it_is_renewed_near_expiry(tmp_path):
    first = ensure_certificate(tmp_path, names=NAMES, now=START)
    near_expiry = START + VALID_FOR - RENEW_WITHIN + dt.timedelta(days=1)
    renewed = ensure_certificate(tmp_path, names=NAMES, now=near_expiry)
    assert renewed.serial != first.serial
    assert renewed.not_after == near_expiry + VALID_FOR


def test_it_is_renewed_when_a_name_is_missing(tmp_path):
    first = ensure_certificate(tmp_path, names=["localhost", "127.0.0.1"], now=START)
    renewed = ensure_certificate(tmp_path, names=["localhost", "127.0.0.1", "127.0.0.2"], now=START)
    assert renewed.serial != first.serial
    assert "127.0.0.2" in subject_alternative_names(renewed.certfile)[1]
    # Fewer names than stored is no reason to renew.
    assert ensure_certificate(tmp_path, names=["localhost"], now=START).serial == renewed.serial


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "cert.pem").write_text("not a certificate"),
        lambda folder: (folder / "key.pem").write_bytes(b"\x00\x01garbage"),
        lambda folder: (folder / "key.pem").unlink(),
        lambda folder: (folder / "cert.pem").write_bytes(b""),
    ],
    ids=["corrupt certificate", "corrupt key", "key missing", "empty certificate"],
)
def test_a_damaged_stored_certificate_is_replaced(tmp_path, damage):
    first = ensure_certificate(tmp_path, names=NAMES, now=START)
    damage(tmp_path)
    replaced = ensure_certificate(tmp_path, names=NAMES, now=START)
    assert replaced.serial != first.serial
    assert load_certificate(replaced.certfile, replaced.keyfile).serial == replaced.serial


def test_a_key_of_another_certificate_is_replaced(tmp_path):
    first = ensure_certificate(tmp_path / "a", names=NAMES, now=START)
    other = ensure_certificate(tmp_path / "b", names=NAMES, now=START)
    first.keyfile.write_bytes(other.keyfile.read_bytes())
    replaced = ensure_certificate(tmp_path / "a", names=NAMES, now=START)
    assert replaced.serial not in (first.serial, other.serial)


def test_the_key_is_readable_by_its_owner_only(tmp_path):
    certificate = ensure_certificate(tmp_path, names=NAMES, now=START)
    assert stat.S_IMODE(certificate.keyfile.stat().st_mode) == 0o600
    certificate.keyfile.chmod(0o644)
    ensure_certificate(tmp_path, names=NAMES, now=START)
    assert stat.S_IMODE(certificate.keyfile.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no temporary left


def test_the_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHABLE_CERT_DIR", str(tmp_path / "from-env"))
    certificate = ensure_certificate(names=NAMES, now=START)
    assert certificate.certfile.parent == tmp_path / "from-env"


def test_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CertificateError, match="Cannot write the HTTPS certificate.*TEACHABLE_CERT_DIR"):
        ensure_certificate(tmp_path / "file" / "certs", names=NAMES)


def test_a_users_own_certificate_is_loaded(tmp_path):
    made = ensure_certificate(tmp_path, names=NAMES, now=START)
    loaded = load_certificate(str(made.certfile), str(made.keyfile))
    assert (loaded.serial, loaded.names, loaded.fingerprint) == (made.serial, made.names, made.fingerprint)


def encrypted_key(path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = serialization.BestAvailableEncryption(b"secret")
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda made, other: made.certfile.unlink(), "certificate file .* does not exist"),
        (lambda made, other: made.keyfile.unlink(), "key file .* does not exist"),
        (lambda made, other: made.certfile.write_text("hello"), "holds no certificate"),
        (lambda made, other: made.keyfile.write_text("hello"), "holds no private key"),
        (lambda made, other: made.keyfile.write_bytes(other.keyfile.read_bytes()), "does not belong"),
        (lambda made, other: encrypted_key(made.keyfile), "encrypted"),
    ],
    ids=["no certificate", "no key", "not a certificate", "not a key", "another key", "encrypted key"],
)
def test_a_users_unusable_pair_is_a_clear_error(tmp_path, spoil, message):
    made = ensure_certificate(tmp_path / "a", names=NAMES, now=START)
    other = ensure_certificate(tmp_path / "b", names=NAMES, now=START)
    spoil(made, other)
    with pytest.raises(CertificateError, match=message):
        load_certificate(made.certfile, made.keyfile)


def test_a_folder_given_as_the_certificate_is_a_clear_error(tmp_path):
    with pytest.raises(CertificateError, match="is a folder"):
        load_certificate(tmp_path, tmp_path)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--ssl-certfile", "cert.pem"], "--ssl-certfile and --ssl-keyfile go together"),
        (["--ssl-keyfile", "key.pem"], "--ssl-certfile and --ssl-keyfile go together"),
        (["--ssl-certfile", "missing.pem", "--ssl-keyfile", "missing.key"], "does not exist"),
    ],
)
def test_the_app_command_refuses_an_incomplete_pair_in_one_line(arguments, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["app", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("teachable: error: ") and message in error


def test_a_server_with_the_certificate_is_trusted_for_localhost(tmp_path):
    import gradio as gr

    certificate = ensure_certificate(tmp_path, names=["localhost", "127.0.0.1", "::1"])
    with gr.Blocks() as demo:
        gr.Markdown("hello over https")
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        ssl_certfile=str(certificate.certfile),
        ssl_keyfile=str(certificate.keyfile),
        ssl_verify=False,
        prevent_thread_lock=True,
        quiet=True,
    )
    try:
        trusting = ssl.create_default_context(cafile=str(certificate.certfile))
        for host in ("localhost", "127.0.0.1"):
            with urllib.request.urlopen(f"https://{host}:{port}/", context=trusting, timeout=30) as response:
                assert response.status == 200
        # A name the certificate does not carry is refused: the check is real.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                trusting.wrap_socket(raw, server_hostname="elsewhere.test")
    finally:
        demo.close()


def test_an_existing_open_folder_is_made_owner_only(tmp_path):
    folder = tmp_path / "certs"
    folder.mkdir()
    folder.chmod(0o777)
    ensure_certificate(folder, names=NAMES, now=START)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_stored_key_that_is_a_link_is_replaced_and_its_target_left_alone(tmp_path):
    made = ensure_certificate(tmp_path / "certs", names=NAMES, now=START)
    elsewhere = tmp_path / "someone-elses.pem"
    elsewhere.write_bytes(made.keyfile.read_bytes())
    elsewhere.chmod(0o644)
    made.keyfile.unlink()
    made.keyfile.symlink_to(elsewhere)
    again = ensure_certificate(tmp_path / "certs", names=NAMES, now=START)
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644  # not chmod-ed through the link
    assert not again.keyfile.is_symlink() and stat.S_IMODE(again.keyfile.stat().st_mode) == 0o600
    assert again.serial != made.serial


def test_a_stored_certificate_linked_to_dev_zero_is_replaced_without_reading_it(tmp_path):
    made = ensure_certificate(tmp_path, names=NAMES, now=START)
    made.certfile.unlink()
    made.certfile.symlink_to("/dev/zero")
    again = ensure_certificate(tmp_path, names=NAMES, now=START)
    assert not again.certfile.is_symlink() and again.serial != made.serial


def test_a_users_huge_certificate_is_read_with_a_limit(tmp_path):
    made = ensure_certificate(tmp_path, names=NAMES, now=START)
    with pytest.raises(CertificateError, match="over 1 MB"):
        load_certificate("/dev/zero", made.keyfile)
    huge = tmp_path / "huge.pem"
    huge.write_bytes(made.certfile.read_bytes() + b"\n" * (2 << 20))
    with pytest.raises(CertificateError, match="over 1 MB"):
        load_certificate(huge, made.keyfile)
