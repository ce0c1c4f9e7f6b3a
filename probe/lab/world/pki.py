"""The simulated world's certificates: a world CA, a rogue "national" CA and a CA nobody trusts.

Everything about keys and certificates of the simulated world lives here. One directory holds:

``ca.pem`` / ``ca.key``                 the world CA; the probe trusts it (``--ca-bundle``).
``rogue-ca.pem`` / ``rogue-ca.key``     the rogue "national" CA used by a TLS interception proxy
                                        (subject C=KZ, O=Probe Test National CA,
                                        CN=Probe Test Security Certificate; RSA 2048 so any
                                        proxy, mitmproxy included, can sign with it).
``unknown-ca.pem`` / ``unknown-ca.key`` a third CA nobody trusts (``unknown_ca`` certificates).
``certs/``                              issued leaves, cached by (hostnames, kind).
``forged/``                             leaves forged by :meth:`WorldPKI.forge`, cached by the
                                        SHA-256 of the original certificate.

:meth:`WorldPKI.create` is idempotent: files present are reused, so several processes (one per
network namespace) can share a directory; creation and issuance hold an ``flock`` on
``.lock`` and every file is written atomically. A cached leaf is re-issued when it no longer
chains to the current CA or (for kinds meant to be in their validity window) expires within
a week. Leaf keys are EC P-256 (fast); chains are ``leaf + issuing CA``.

Certificate kinds for :meth:`WorldPKI.issue`:

``valid``          signed by the world CA for the given names (DNS names or IP addresses).
``expired``        world CA, names right, validity ended 30 days ago.
``not_yet_valid``  world CA, names right, validity starts in 30 days.
``wrong_host``     world CA, valid, but only for ``wrong-host.invalid``.
``unknown_ca``     names right, signed by the untrusted third CA.
``self_signed``    names right, issuer = subject, signed by its own key.

Hostile kinds (for the hostile world, :mod:`probe.lab.world.hostile`):

``long_chain``     the leaf is issued by the last of :data:`LONG_CHAIN_LENGTH` (50) intermediate
                   CAs, each issued by the one before, the first by the world CA; the chain
                   file holds all of them (~25 KB): too deep for any verifier.
``huge_chain``     a valid leaf + the world CA + :data:`HUGE_CHAIN_FILLERS` copies of a filler
                   certificate carrying a 64 KiB private extension (~2 MiB in one handshake
                   message).
``malformed``      a valid leaf whose BasicConstraints ``critical`` BOOLEAN is re-encoded as
                   ``0x01`` (BER, not DER): OpenSSL loads and sends it, strict DER parsers
                   (``cryptography``) refuse it. Its signature no longer verifies.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .spec import CERT_KINDS, HOSTILE_CERT_KINDS, normalize_hostname

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

WRONG_HOST_NAME = "wrong-host.invalid"
LONG_CHAIN_LENGTH = 50  # intermediates of a ``long_chain`` certificate
HUGE_CHAIN_FILLERS = 32  # 64 KiB filler certificates of a ``huge_chain`` (~2 MiB)
FILLER_EXTENSION_BYTES = 64 * 1024
_FILLER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")  # private arc, test only
#: DER of BasicConstraints' OID followed by ``critical TRUE``; ``malformed`` re-encodes the TRUE.
_BASIC_CONSTRAINTS_CRITICAL = bytes.fromhex("0603551d130101ff")

WORLD_CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Probe Test World"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Probe Test World Root CA"),
    ]
)
ROGUE_CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "KZ"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Probe Test National CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Probe Test Security Certificate"),
    ]
)
UNKNOWN_CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Probe Test Unknown CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Probe Test Untrusted Root"),
    ]
)

_DAY = dt.timedelta(days=1)
_thread_lock = threading.RLock()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _san(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(normalize_hostname(host)))
    return names


def _leaf_subject(hostnames: Sequence[str]) -> x509.Name:
    first = hostnames[0] if hostnames else "probe-world"
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Probe Test World Site")]
    if len(first) <= 64:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, first))
    return x509.Name(attrs)


@dataclass(frozen=True)
class _CA:
    cert: x509.Certificate
    key: PrivateKey
    cert_path: Path
    key_path: Path


def _build_ca(subject: x509.Name, key: PrivateKey) -> x509.Certificate:
    now = _now()
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 3650 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(key, hashes.SHA256())
    )


def _build_intermediate(subject: x509.Name, key: PrivateKey, issuer: _CA) -> x509.Certificate:
    """A CA certificate for ``key`` issued by ``issuer`` (no path length limit)."""
    now = _now()
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 3650 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )


def _filler(issuer: _CA) -> x509.Certificate:
    """A certificate whose only purpose is size: a 64 KiB private extension."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    payload = (
        b"\x04\x83" + FILLER_EXTENSION_BYTES.to_bytes(3, "big") + b"F" * FILLER_EXTENSION_BYTES
    )
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Probe Test Filler")]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 365 * _DAY)
        .add_extension(x509.UnrecognizedExtension(_FILLER_OID, payload), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )


def _der_to_pem(der: bytes) -> bytes:
    """PEM armour for DER bytes that a parser may refuse (no round trip through a parser)."""
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    ).encode()


def _build_leaf(
    subject: x509.Name,
    san: x509.SubjectAlternativeName | None,
    key: PrivateKey,
    issuer: _CA | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A TLS server certificate; ``issuer`` None = self-signed."""
    pub = key.public_key()
    if issuer is None:
        issuer_name, signing_key = subject, key
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(pub)
    else:
        issuer_name, signing_key = issuer.cert.subject, issuer.key
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(aki, critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=len(subject) == 0)
    return builder.sign(signing_key, hashes.SHA256())


class WorldPKI:
    """The certificates of one simulated world, kept in one directory (see module docstring)."""

    def __init__(self, directory: Path, world: _CA, rogue: _CA, unknown: _CA) -> None:
        self.directory = directory
        self._world = world
        self._rogue = rogue
        self._unknown = unknown
        self._forged: dict[str, tuple[str, str]] = {}

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike[str]) -> WorldPKI:
        """Load the CAs from ``directory``, creating what is missing (idempotent, process-safe)."""
        path = Path(directory).absolute()
        path.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            world = _load_or_make_ca(path, "ca", WORLD_CA_SUBJECT, rsa_key=False)
            rogue = _load_or_make_ca(path, "rogue-ca", ROGUE_CA_SUBJECT, rsa_key=True)
            unknown = _load_or_make_ca(path, "unknown-ca", UNKNOWN_CA_SUBJECT, rsa_key=False)
        return cls(path, world, rogue, unknown)

    # -- paths ------------------------------------------------------------------------------

    @property
    def ca_pem(self) -> str:
        """Path of the world CA certificate (what the probe trusts)."""
        return str(self._world.cert_path)

    @property
    def ca_key(self) -> str:
        return str(self._world.key_path)

    @property
    def rogue_ca_pem(self) -> str:
        """Path of the rogue "national" CA certificate."""
        return str(self._rogue.cert_path)

    @property
    def rogue_ca_key(self) -> str:
        """Path of the rogue CA's private key (PKCS#8 PEM, RSA 2048)."""
        return str(self._rogue.key_path)

    @property
    def unknown_ca_pem(self) -> str:
        """Path of the CA that signs ``unknown_ca`` certificates (trusted by nobody)."""
        return str(self._unknown.cert_path)

    @property
    def world_ca_cert(self) -> x509.Certificate:
        return self._world.cert

    @property
    def rogue_ca_cert(self) -> x509.Certificate:
        return self._rogue.cert

    # -- issuing ----------------------------------------------------------------------------

    def issue(self, hostnames: Sequence[str], kind: str = "valid") -> tuple[str, str]:
        """A server certificate for ``hostnames`` → (chain PEM path, key PEM path).

        ``kind`` is one of :data:`probe.lab.world.spec.CERT_KINDS`; cached on disk.
        """
        if kind not in CERT_KINDS:
            raise ValueError(f"unknown certificate kind {kind!r}; known: {', '.join(CERT_KINDS)}")
        names = [_canonical_name(h) for h in hostnames]
        if not names:
            raise ValueError("issue: at least one hostname is required")
        digest = hashlib.sha256("\n".join([kind, *names]).encode()).hexdigest()[:16]
        slug = re.sub(r"[^a-z0-9.-]+", "_", names[0])[:40]
        certs = self.directory / "certs"
        chain_path = certs / f"{kind}-{slug}-{digest}.pem"
        key_path = certs / f"{kind}-{slug}-{digest}.key"
        with _locked(self.directory):
            if self._cached_ok(chain_path, key_path, kind):
                return str(chain_path), str(key_path)
            certs.mkdir(exist_ok=True)
            key = ec.generate_private_key(ec.SECP256R1())
            now = _now()
            not_before, not_after = now - _DAY, now + 365 * _DAY
            issuer: _CA | None = self._world
            subject_names = names
            if kind in HOSTILE_CERT_KINDS:
                chain = self._hostile_chain(names, key, kind)
                _write_atomic(key_path, _key_pem(key), 0o600)
                _write_atomic(chain_path, chain)
                return str(chain_path), str(key_path)
            if kind == "expired":
                not_before, not_after = now - 730 * _DAY, now - 30 * _DAY
            elif kind == "not_yet_valid":
                not_before, not_after = now + 30 * _DAY, now + 395 * _DAY
            elif kind == "wrong_host":
                subject_names = [WRONG_HOST_NAME]
            elif kind == "unknown_ca":
                issuer = self._unknown
            elif kind == "self_signed":
                issuer = None
            san = x509.SubjectAlternativeName(_san(subject_names))
            cert = _build_leaf(
                _leaf_subject(subject_names), san, key, issuer, not_before, not_after
            )
            chain = _cert_pem(cert) + (_cert_pem(issuer.cert) if issuer else b"")
            _write_atomic(key_path, _key_pem(key), 0o600)
            _write_atomic(chain_path, chain)
        return str(chain_path), str(key_path)

    def _hostile_chain(self, names: list[str], key: PrivateKey, kind: str) -> bytes:
        """The chain PEM of a hostile certificate kind (see the module docstring)."""
        now = _now()
        san = x509.SubjectAlternativeName(_san(names))
        subject = _leaf_subject(names)
        if kind == "long_chain":
            issuer = self._world
            cas: list[x509.Certificate] = []
            for i in range(LONG_CHAIN_LENGTH):
                ca_key = ec.generate_private_key(ec.SECP256R1())
                name = x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Probe Test World"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"Probe Test Intermediate {i + 1}"),
                    ]
                )
                ca_cert = _build_intermediate(name, ca_key, issuer)
                issuer = _CA(ca_cert, ca_key, Path(), Path())
                cas.append(ca_cert)
            leaf = _build_leaf(subject, san, key, issuer, now - _DAY, now + 365 * _DAY)
            return _cert_pem(leaf) + b"".join(_cert_pem(c) for c in reversed(cas))
        leaf = _build_leaf(subject, san, key, self._world, now - _DAY, now + 365 * _DAY)
        if kind == "huge_chain":
            filler = _cert_pem(_filler(self._world))
            return _cert_pem(leaf) + _cert_pem(self._world.cert) + filler * HUGE_CHAIN_FILLERS
        der = leaf.public_bytes(serialization.Encoding.DER)
        at = der.index(_BASIC_CONSTRAINTS_CRITICAL) + len(_BASIC_CONSTRAINTS_CRITICAL) - 1
        broken = der[:at] + b"\x01" + der[at + 1 :]
        return _der_to_pem(broken) + _cert_pem(self._world.cert)

    def forge(self, original_der: bytes) -> tuple[str, str]:
        """A leaf signed by the rogue CA copying subject and SAN of ``original_der``.

        Returns (chain PEM path = forged leaf + rogue CA, key PEM path); cached by the SHA-256
        of the original, in memory and on disk. For a TLS interception proxy.
        """
        digest = hashlib.sha256(original_der).hexdigest()
        if digest in self._forged:
            return self._forged[digest]
        original = x509.load_der_x509_certificate(original_der)
        forged_dir = self.directory / "forged"
        chain_path, key_path = forged_dir / f"{digest}.pem", forged_dir / f"{digest}.key"
        with _locked(self.directory):
            if not self._cached_ok(chain_path, key_path, "forged"):
                forged_dir.mkdir(exist_ok=True)
                try:
                    san: x509.SubjectAlternativeName | None = (
                        original.extensions.get_extension_for_class(
                            x509.SubjectAlternativeName
                        ).value
                    )
                except x509.ExtensionNotFound:
                    san = None
                key = ec.generate_private_key(ec.SECP256R1())
                now = _now()
                cert = _build_leaf(
                    original.subject, san, key, self._rogue, now - _DAY, now + 365 * _DAY
                )
                _write_atomic(key_path, _key_pem(key), 0o600)
                _write_atomic(chain_path, _cert_pem(cert) + _cert_pem(self._rogue.cert))
        result = (str(chain_path), str(key_path))
        self._forged[digest] = result
        return result

    def server_context(self, hostnames: Sequence[str], kind: str = "valid") -> ssl.SSLContext:
        """A server-side SSLContext presenting :meth:`issue`'s certificate (ALPN http/1.1)."""
        chain, key = self.issue(hostnames, kind)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side SSLContext that trusts only the world CA (for tests)."""
        return ssl.create_default_context(cafile=self.ca_pem)

    # -- cache ------------------------------------------------------------------------------

    def _cached_ok(self, chain_path: Path, key_path: Path, kind: str) -> bool:
        if not (chain_path.exists() and key_path.exists()):
            return False
        if kind in HOSTILE_CERT_KINDS:  # not meant to verify: only check it is still young
            age = _now().timestamp() - chain_path.stat().st_mtime
            return age < 300 * 86400 and chain_path.stat().st_mtime >= (
                Path(self._world.cert_path).stat().st_mtime
            )
        try:
            certs = x509.load_pem_x509_certificates(chain_path.read_bytes())
            serialization.load_pem_private_key(key_path.read_bytes(), None)
        except ValueError:
            return False
        leaf = certs[0]
        issuer = {"unknown_ca": self._unknown, "forged": self._rogue, "self_signed": None}.get(
            kind, self._world
        )
        try:
            leaf.verify_directly_issued_by(issuer.cert if issuer else leaf)
        except Exception:  # any failure (wrong issuer, bad signature) = re-issue
            return False
        if kind in ("expired", "not_yet_valid"):
            return True
        return leaf.not_valid_after_utc > _now() + 7 * _DAY


def _canonical_name(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return normalize_hostname(host)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise PKI writes between threads and processes sharing ``directory``."""
    with _thread_lock, open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _load_or_make_ca(directory: Path, stem: str, subject: x509.Name, *, rsa_key: bool) -> _CA:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    if cert_path.exists() or key_path.exists():
        if not (cert_path.exists() and key_path.exists()):
            raise ValueError(f"{directory}: {stem}.pem and {stem}.key must both exist or neither")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{key_path}: unsupported key type")
        return _CA(cert, loaded, cert_path, key_path)
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    cert = _build_ca(subject, key)
    _write_atomic(key_path, _key_pem(key), 0o600)
    _write_atomic(cert_path, _cert_pem(cert))
    return _CA(cert, key, cert_path, key_path)
