"""HTTPS certificates: a self-signed one made on first use, or the user's own.

Browsers give the camera only to pages served over https (or from localhost), so a workshop on a room's network
needs a certificate. :func:`ensure_certificate` makes one with ``cryptography`` whose subject alternative names
cover localhost, 127.0.0.1, ::1, this computer's host name and every address it has on the network. It is kept
in a per-user config folder (``TEACHABLE_CERT_DIR`` overrides it), the key readable by its owner only, and reused
on later starts until it is within :data:`RENEW_WITHIN` of expiry or lacks one of the current names; then a new one
replaces it. A stored file that cannot be read or parsed is replaced too, with a log line saying why.

:func:`load_certificate` checks a user's own ``--ssl-certfile`` / ``--ssl-keyfile`` pair instead. Both raise
:class:`CertificateError` with a plain message, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import filelock
import platformdirs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .atomic import atomic_write
from .network import LOOPBACK_NAMES, host_names, lan_addresses
from .settings import read

__all__ = [
    "Certificate",
    "CertificateError",
    "VALID_FOR",
    "RENEW_WITHIN",
    "certificate_folder",
    "machine_names",
    "ensure_certificate",
    "load_certificate",
]

log = logging.getLogger(__name__)

VALID_FOR = dt.timedelta(days=365)
RENEW_WITHIN = dt.timedelta(days=30)
CERT_NAME, KEY_NAME, LOCK_NAME = "cert.pem", "key.pem", ".lock"
MAX_PEM_BYTES = 1 << 20
"""Largest certificate or key file read: a certificate with its chain is a few KB, so this is generous."""


class CertificateError(Exception):
    """A certificate or key that cannot be made, read or used, said in plain words."""


@dataclass(frozen=True)
class Certificate:
    """A certificate and key on disk, ready for a server's ``ssl_certfile`` / ``ssl_keyfile``."""

    certfile: Path
    keyfile: Path
    names: tuple[str, ...]  # the subject alternative names: host names and addresses
    not_after: dt.datetime  # UTC
    serial: int
    fingerprint: str  # SHA-256, as browsers show it: "AB:CD:..."
    self_signed: bool


def certificate_folder(folder: str | os.PathLike | None = None) -> Path:
    """Where the self-signed certificate lives: ``folder``, else ``$TEACHABLE_CERT_DIR``, else the user's config."""
    chosen = folder or read("TEACHABLE_CERT_DIR") or Path(platformdirs.user_config_dir("teachable")) / "https"
    return Path(chosen).expanduser()


def machine_names() -> list[str]:
    """Every name a browser may reach this computer by: loopback, host names, then network addresses."""
    return _normalise_all([*LOOPBACK_NAMES, *host_names(), *lan_addresses()])


def ensure_certificate(
    folder: str | os.PathLike | None = None,
    *,
    names: Iterable[str] | None = None,
    now: dt.datetime | None = None,
) -> Certificate:
    """The stored self-signed certificate for ``names`` (default :func:`machine_names`), made or renewed if needed.

    ``now`` stands in for the current time (for tests). Raises :class:`CertificateError` when the folder cannot be
    written.
    """
    directory = certificate_folder(folder)
    wanted = _normalise_all(names if names is not None else machine_names())
    if not wanted:
        raise CertificateError("A certificate needs at least one host name or address.")
    moment = _utc(now)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _keep_private(directory)
        with filelock.FileLock(str(directory / LOCK_NAME), timeout=30):
            certfile, keyfile = directory / CERT_NAME, directory / KEY_NAME
            reason = _why_renew(certfile, keyfile, wanted, moment)
            if reason is not None:
                log.info("Making a self-signed HTTPS certificate in %s: %s.", directory, reason)
                cert_pem, key_pem = _make_self_signed(wanted, moment)
                atomic_write(keyfile, key_pem, 0o600)
                atomic_write(certfile, cert_pem, 0o644)
            return _describe(certfile, keyfile, *_read_pair(certfile, keyfile), self_signed=True)
    except filelock.Timeout:
        raise CertificateError(f"Another start is still writing the certificate in {directory}; try again.") from None
    except OSError as error:
        raise CertificateError(
            f"Cannot write the HTTPS certificate in {directory} ({error.strerror or error}). "
            "Set TEACHABLE_CERT_DIR to a folder you can write to."
        ) from None


def load_certificate(certfile: str | os.PathLike, keyfile: str | os.PathLike) -> Certificate:
    """A user's own certificate (PEM, may hold the chain after it) and unencrypted private key, checked to match."""
    certfile, keyfile = Path(certfile).expanduser(), Path(keyfile).expanduser()
    cert, key = _read_pair(certfile, keyfile)
    return _describe(certfile, keyfile, cert, key, self_signed=cert.issuer == cert.subject)


def _why_renew(certfile: Path, keyfile: Path, wanted: list[str], now: dt.datetime) -> str | None:
    """Why the stored pair cannot be reused, or None if it can."""
    if not certfile.exists() and not keyfile.exists():
        return "none was made yet"
    if certfile.is_symlink() or keyfile.is_symlink():
        return "the stored one is a link to another file"  # replaced by files of its own, the link's target untouched
    try:
        cert, _ = _read_pair(certfile, keyfile)
    except CertificateError as error:
        return f"the stored one is unusable ({error})"
    if cert.not_valid_after_utc - now < RENEW_WITHIN:
        return f"the stored one expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.not_valid_before_utc > now:
        return f"the stored one is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    missing = sorted(set(wanted) - set(_names_of(cert)))
    if missing:
        return f"the stored one lacks {', '.join(missing)}"
    _make_owner_only(keyfile)  # a copy or restore may have loosened it; the key stays private
    return None


def _keep_private(directory: Path) -> None:
    """The certificate folder is its owner's alone: one that others may read or write (an existing 0777 folder,
    which ``mkdir``'s mode does not change) is tightened to 0700."""
    if directory.stat().st_mode & 0o077:
        log.info("Making %s readable by its owner only (it was %o).", directory, directory.stat().st_mode & 0o777)
        directory.chmod(0o700)


def _make_owner_only(path: Path) -> None:
    """``chmod 600`` on ``path`` itself, never on what a link put in its place points to."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        status = os.fstat(descriptor)
        if stat.S_ISREG(status.st_mode) and status.st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _make_self_signed(names: list[str], now: dt.datetime) -> tuple[bytes, bytes]:
    """A new P-256 key and a certificate for ``names`` signed by it, both as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "teachable (self-signed)"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"teachable on {names[0]}"[:64]),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))  # other devices' clocks may run a little behind
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _read_pair(certfile: Path, keyfile: Path) -> tuple[x509.Certificate, object]:
    """The certificate (the first in the file) and its private key; CertificateError unless they load and match."""
    cert_data, key_data = _read(certfile, "certificate"), _read(keyfile, "key")
    try:
        cert = x509.load_pem_x509_certificates(cert_data)[0]
    except ValueError:
        try:
            cert = x509.load_der_x509_certificate(cert_data)
        except ValueError:
            raise CertificateError(f"The certificate file {certfile} holds no certificate in PEM format.") from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise CertificateError(f"The key file {keyfile} is encrypted; give a key without a passphrase.") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"The key file {keyfile} holds no private key in PEM format.") from None
    spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CertificateError(f"The key in {keyfile} does not belong to the certificate in {certfile}.")
    return cert, key


def _read(path: Path, what: str) -> bytes:
    """The file's bytes, read only up to :data:`MAX_PEM_BYTES` (a link to /dev/zero is not read forever)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise CertificateError(f"The {what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise CertificateError(f"The {what} file {path} is a folder, not a file.") from None
    except OSError as error:
        raise CertificateError(f"Cannot read the {what} file {path} ({error.strerror or error}).") from None
    if len(data) > MAX_PEM_BYTES:
        raise CertificateError(
            f"The {what} file {path} is over {MAX_PEM_BYTES // 2**20} MB; a {what} in PEM format is a few KB."
        )
    return data


def _describe(certfile: Path, keyfile: Path, cert: x509.Certificate, key: object, *, self_signed: bool) -> Certificate:
    return Certificate(
        certfile=certfile,
        keyfile=keyfile,
        names=tuple(_names_of(cert)),
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        self_signed=self_signed,
    )


def _names_of(cert: x509.Certificate) -> list[str]:
    """The certificate's subject alternative names, normalised as :func:`_normalise` does."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return _normalise_all([*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))])


def _normalise_all(names: Iterable[str]) -> list[str]:
    """Names in one spelling (lower case, addresses compressed, no brackets), in order, once each."""
    result: list[str] = []
    for name in names:
        normal = _normalise(name)
        if normal and normal not in result:
            result.append(normal)
    return result


def _normalise(name: str) -> str | None:
    name = name.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        return name.encode("idna").decode("ascii") if name else None
    except UnicodeError:
        log.info("Leaving %r out of the certificate: not a valid host name.", name)
        return None


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
