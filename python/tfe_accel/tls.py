"""Certificates and TLS contexts for mutually authenticated links between players.

A *consortium* CA signs one certificate per player (``server0``, ..., ``owner0``, ``driver``); the
player's name is the certificate's common name and its only DNS subject-alternative name. Every
link between players is TLS 1.3 where both sides present such a certificate:

* the dialing side requires the peer's certificate to name the player it dials
  (``server_hostname=<player>``, OpenSSL's host-name check on the DNS SAN);
* the accepting side requires a certificate from the CA whose name is one of the cluster's players.

Layout of a TLS directory (``tfe-accel certs init DIR --players ...``)::

    DIR/ca.pem          the consortium CA certificate (public; every player needs it)
    DIR/ca.key          the CA's private key (keep it offline; only ``certs init/issue`` need it)
    DIR/NAME.pem        player NAME's certificate
    DIR/NAME.key        player NAME's private key (mode 0600; only NAME needs it)

An organisation that runs its own CA can issue the files with openssl instead
(docs/deployment.md has the commands); :func:`load_identity` checks them the same way.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

DRIVER = "driver"
DEFAULT_DAYS = 365
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class TlsConfigError(ValueError):
    """A TLS directory, certificate or key that cannot be used (the message names the file and why)."""


class TlsPeerError(ConnectionError):
    """A TLS link to a player that failed: the message names the player, its address and the reason.
    `unreachable`: nothing accepted the connection (no TLS was tried; worth retrying while the
    player starts), as opposed to a certificate or TLS failure (retrying does not help)."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def _x509():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - cryptography is an install requirement
        raise TlsConfigError(f"the 'cryptography' package is needed for certificates: {exc}") from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _check_names(names: Iterable[str]) -> List[str]:
    out = []
    for n in names:
        n = n.strip()
        if not n or not _NAME.match(n):
            raise TlsConfigError(f"bad player name {n!r} (letters, digits, '_', '-', '.')")
        if n == "ca":
            raise TlsConfigError("'ca' cannot be a player name (ca.pem / ca.key are the CA's files)")
        if n in out:
            raise TlsConfigError(f"player {n!r} given twice")
        out.append(n)
    if not out:
        raise TlsConfigError("no player names given")
    return out


def _write_key(path: Path, key) -> None:
    _, _, serialization, _, _, _ = _x509()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert) -> None:
    _, _, serialization, _, _, _ = _x509()
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_ca(directory: Path):
    x509, _, serialization, _, _, _ = _x509()
    ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
    for f in (ca_pem, ca_key):
        if not f.exists():
            raise TlsConfigError(f"{f} not found: create the CA with `tfe-accel certs init {directory}`")
    try:
        cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    except ValueError as exc:
        raise TlsConfigError(f"cannot read the CA in {directory}: {exc}") from None
    return cert, key


def issue(directory, name: str, days: float = DEFAULT_DAYS,
          not_before: Optional[_dt.datetime] = None) -> Tuple[Path, Path]:
    """Issue (or re-issue) player `name`'s certificate and key from the CA in `directory`.

    `not_before` (default: one minute ago) and `days` give the validity window; tests use a window in
    the past to make an expired certificate.
    """
    x509, hashes, _, ec, EKU, NameOID = _x509()
    directory = Path(directory)
    (name,) = _check_names([name])
    ca_cert, ca_key = _load_ca(directory)
    start = not_before or (_now() - _dt.timedelta(minutes=1))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([EKU.SERVER_AUTH, EKU.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem, keyfile = directory / f"{name}.pem", directory / f"{name}.key"
    _write_key(keyfile, key)
    _write_cert(pem, cert)
    return pem, keyfile


def init(directory, players: Sequence[str], days: float = DEFAULT_DAYS, ca_days: float = 3650,
         ca_name: str = "tfe-accel consortium CA", force: bool = False) -> List[Path]:
    """A new consortium CA in `directory` and one certificate + key per player. Returns the files."""
    x509, hashes, _, ec, _, NameOID = _x509()
    names = _check_names(players)
    if days <= 0 or ca_days <= 0:
        raise TlsConfigError("validity must be > 0 days")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.pem").exists() and not force:
        raise TlsConfigError(f"{directory / 'ca.pem'} exists: a new CA would invalidate every "
                             "certificate it signed; use `tfe-accel certs issue` to add a player, or "
                             "--force to start over")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    start = _now() - _dt.timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + _dt.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    _write_cert(directory / "ca.pem", cert)
    files = [directory / "ca.pem", directory / "ca.key"]
    for n in names:
        files.extend(issue(directory, n, days=days))
    return files


def player_names(directory) -> List[str]:
    """The players with a certificate in TLS directory `directory` (every NAME.pem but ca.pem)."""
    return sorted(f.stem for f in Path(directory).glob("*.pem") if f.name != "ca.pem")


def certificate_names(cert) -> List[str]:
    """The DNS subject-alternative names of a `cryptography` certificate."""
    x509, _, _, _, _, _ = _x509()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.DNSName))


@dataclass
class Identity:
    """Player `name`'s certificate and key, checked against the consortium CA."""

    name: str
    directory: Path
    cert_file: Path
    key_file: Path
    ca_file: Path
    not_after: _dt.datetime

    def _context(self, purpose) -> ssl.SSLContext:
        ctx = ssl.SSLContext(purpose)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        ctx.load_verify_locations(cafile=str(self.ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["h2"])  # the links carry TF's gRPC (HTTP/2); gRPC clients require it
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """Accepting side: TLS 1.3, a client certificate from the CA required."""
        return self._context(ssl.PROTOCOL_TLS_SERVER)

    def client_context(self) -> ssl.SSLContext:
        """Dialing side: TLS 1.3, the peer's certificate must name the player dialed."""
        ctx = self._context(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = True
        return ctx

    def days_left(self) -> float:
        return (self.not_after - _now()).total_seconds() / 86400.0


def load_identity(directory, name: str) -> Identity:
    """Player `name`'s identity from TLS directory `directory`, checked: the files exist and parse,
    the certificate is signed by ``ca.pem``, is valid now, names `name`, and matches the key."""
    x509, _, _, _, _, _ = _x509()
    directory = Path(directory)
    if not directory.is_dir():
        raise TlsConfigError(f"TLS directory {directory} not found (create it with "
                             f"`tfe-accel certs init {directory} --players ...`)")
    ca_file, cert_file, key_file = directory / "ca.pem", directory / f"{name}.pem", directory / f"{name}.key"
    for f in (ca_file, cert_file, key_file):
        if not f.exists():
            raise TlsConfigError(f"player {name!r}: {f} not found (issue it with "
                                 f"`tfe-accel certs issue {directory} {name}`)")
    try:
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    except ValueError as exc:
        raise TlsConfigError(f"{ca_file}: not a PEM certificate ({exc})") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as exc:
        raise TlsConfigError(f"player {name!r}: {cert_file} is not a PEM certificate ({exc})") from None
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as exc:  # ValueError (issuer name) / InvalidSignature / TypeError (key type)
        raise TlsConfigError(
            f"player {name!r}: {cert_file} is not signed by the consortium CA {ca_file} "
            f"({type(exc).__name__}: {exc or 'bad signature'})") from None
    now = _now()
    if cert.not_valid_after_utc <= now:
        raise TlsConfigError(f"player {name!r}: {cert_file} expired on "
                             f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; issue a new one")
    if cert.not_valid_before_utc > now:
        raise TlsConfigError(f"player {name!r}: {cert_file} is not valid before "
                             f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the clock)")
    names = certificate_names(cert)
    if name not in names:
        raise TlsConfigError(f"player {name!r}: {cert_file} is issued to {', '.join(names) or 'no DNS name'}, "
                             f"not to {name!r}")
    ident = Identity(name, directory, cert_file, key_file, ca_file, cert.not_valid_after_utc)
    try:
        ident.client_context()
    except ssl.SSLError as exc:
        raise TlsConfigError(f"player {name!r}: {key_file} does not belong to {cert_file} or "
                             f"cannot be read ({exc.reason or exc})") from None
    return ident


def peer_name(ssl_object, allowed: Iterable[str]) -> Tuple[Optional[str], str]:
    """(name, '') when the verified peer certificate names exactly one of `allowed`, else
    (None, why not)."""
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return None, "no client certificate"
    names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    allowed = set(allowed)
    hits = [n for n in names if n in allowed]
    if len(hits) != 1:
        return None, (f"certificate names {', '.join(names) or 'nobody'}, which is not one player "
                      f"of this cluster ({', '.join(sorted(allowed))})")
    return hits[0], ""


def describe_error(exc: BaseException) -> str:
    """A short reason for a failed TLS handshake or link."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        msg = exc.verify_message or str(exc.reason)
        hint = ""
        if any(k in msg.lower() for k in ("signature failure", "local issuer", "self-signed", "self signed")):
            hint = " (not issued by this consortium's CA)"
        elif "expired" in msg.lower():
            hint = " (issue it a new one: `tfe-accel certs issue`)"
        return f"the peer's certificate failed verification: {msg}{hint}"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).lower().replace("_", " ")
        if reason in ("wrong version number", "http request", "unknown protocol"):
            reason += " (the client does not speak TLS: a plaintext connection)"
        return f"TLS failed: {reason}"
    if isinstance(exc, (ConnectionRefusedError, socket.timeout, TimeoutError)):
        return f"cannot connect: {exc.strerror or exc}" if isinstance(exc, OSError) else "timed out"
    return f"{type(exc).__name__}: {exc}"


def check_peer(identity: Identity, player: str, host: str, port: int, timeout: float = 5.0) -> None:
    """Open one TLS link to `player` at host:port as `identity`; raise TlsPeerError naming the player
    and the reason when the handshake fails or the peer refuses our certificate."""
    where = f"player {player!r} ({host}:{port})"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TlsPeerError(f"{where}: {describe_error(exc)}", unreachable=True) from None
    try:
        with identity.client_context().wrap_socket(raw, server_hostname=player) as s:
            # TLS 1.3: the server judges our certificate after our Finished; its verdict (an alert,
            # or a close) arrives on the first read.
            s.settimeout(min(1.0, timeout))
            try:
                data = s.recv(1)
            except (socket.timeout, TimeoutError):
                return  # the peer waits for the protocol to start: we were accepted
            except ssl.SSLError as exc:
                raise TlsPeerError(f"{where} refused {identity.name!r}'s certificate: "
                                   f"{describe_error(exc)}") from None
            if not data:
                raise TlsPeerError(f"{where} closed the link after the handshake: it does not accept "
                                   f"{identity.name!r} as a player of its cluster (see its log)")
    except ssl.SSLError as exc:
        raise TlsPeerError(f"{where}: {describe_error(exc)}") from None
    except OSError as exc:
        raise TlsPeerError(f"{where}: {describe_error(exc)}") from None
    finally:
        raw.close()
