"""X.509 helpers: turn a presented chain into :class:`~probe.model.Certificate` records and
validate it ourselves against the trust anchors.

Responsibility: everything the probe knows about certificates lives here, as pure functions
(plus a cached, read-only trust store). No network IO.

Why we validate ourselves: the TLS step completes every handshake *without* verification so
that the whole presented chain is always recorded (an interception certificate is evidence).
Validation is then done here with ``cryptography.x509.verification`` (Web PKI rules, RFC 5280
path building) at the instant of the handshake, for the SNI name.

Two deliberate relaxations of the strict Web PKI profile, because OpenSSL and browsers accept
them and the probe must not call a working site broken: the leaf's subjectAltName and
extendedKeyUsage may be marked critical (trustme and many private CAs do this). The leaf must
still carry ``serverAuth`` (or ``anyExtendedKeyUsage``) when it has an EKU at all.

Naming the reason of a failed validation follows OpenSSL's order of checks
(``x509_vfy.c``: build the chain, then check the name, then validity periods), so the names
match what OONI reports for the same certificate:

1. no path of signatures from the leaf to a trust anchor → ``ssl_unknown_authority``;
2. the leaf's subjectAltName does not cover the SNI name (RFC 6125) → ``ssl_invalid_hostname``;
3. anything else (a certificate of the path expired or not yet valid, or a profile violation
   such as a CA without basicConstraints) → ``ssl_invalid_certificate``.

The diagnosis runs only after the verifier said no; it re-walks the path by names and
signatures (``verify_directly_issued_by``) because the verifier checks all validity periods
at one instant and reports reasons as free text.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import os
import re
import ssl
import threading
import warnings
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID

from probe import failures
from probe.errors import ProbeError
from probe.model import Certificate

#: Where the system's trust anchors usually are when ``ssl`` reports nothing usable.
_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, BSD
)

_MAX_DEPTH = 8  # certificates in a path we are willing to walk

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL
)

#: warnings.catch_warnings() swaps process-wide state: two threads parsing certificates at once
#: could restore each other's filters mid-parse (and a test's "error" filter then turns
#: cryptography's deprecation notice about a system root into an exception). One at a time.
_QUIET = threading.RLock()


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_der(der: bytes) -> x509.Certificate | None:
    # cryptography warns (and will one day refuse) on certificates with e.g. negative serials;
    # the probe records whatever it is shown, so silence that here.
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError:
            return None


def parse_certificate(der: bytes) -> Certificate:
    """A :class:`Certificate` record for one DER certificate.

    A certificate that cannot be parsed still gets a record: ``sha256`` of its bytes and empty
    strings for every field that could not be read (so the raw bytes are never lost). Never
    raises, whatever the bytes.
    """
    digest = hashlib.sha256(der).hexdigest()
    bare = Certificate(der=der, sha256=digest, spki_sha256="", subject="", issuer="",
                       not_before="", not_after="")
    try:
        return _parse_certificate(der, digest, bare)
    except Exception:  # a certificate odd enough to trip the parser beyond ValueError
        return bare


def _parse_certificate(der: bytes, digest: str, bare: Certificate) -> Certificate:
    cert = _load_der(der)
    if cert is None:
        return bare
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spki = spki_der(cert.tbs_certificate_bytes)
        if spki is None:
            return bare
        try:
            subject = cert.subject.rfc4514_string()
            issuer = cert.issuer.rfc4514_string()
        except ValueError:
            subject = issuer = ""
        return Certificate(
            der=der,
            sha256=digest,
            spki_sha256=hashlib.sha256(spki).hexdigest(),
            subject=subject,
            issuer=issuer,
            not_before=_iso(cert.not_valid_before_utc),
            not_after=_iso(cert.not_valid_after_utc),
            san=subject_alt_names(cert),
        )


def _tlv(data: bytes, pos: int) -> tuple[int, int]:
    """(start of the value, end of the element) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return start, start + length


def spki_der(tbs: bytes) -> bytes | None:
    """The SubjectPublicKeyInfo element of a TBSCertificate, byte for byte as encoded
    (RFC 5280 §4.1: [0] version, serial, signature, issuer, validity, subject, SPKI).
    None = not a well-formed TBSCertificate."""
    try:
        body, end = _tlv(tbs, 0)
        pos = body
        if pos < end and tbs[pos] == 0xA0:  # explicit version
            pos = _tlv(tbs, pos)[1]
        for _ in range(5):  # serial, signature, issuer, validity, subject
            pos = _tlv(tbs, pos)[1]
        spki_end = _tlv(tbs, pos)[1]
    except ValueError:
        return None
    if tbs[pos] != 0x30 or spki_end > end:
        return None
    return tbs[pos:spki_end]


def subject_alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names, then the IP addresses, of the certificate's subjectAltName."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError, UnsupportedAlgorithm):
        return ()
    names = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return tuple(names)


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every parseable certificate of a PEM bundle (unparseable ones are skipped)."""
    certs = []
    for block in _PEM_BLOCK.findall(data):
        with _QUIET, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return certs


def system_bundle() -> str | None:
    """The path of the system's PEM trust anchors, None = none found."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_SYSTEM_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


@functools.lru_cache(maxsize=8)
def trust_anchors(ca_bundle: str | None) -> tuple[x509.Certificate, ...]:
    """System roots plus the certificates of ``ca_bundle`` (cached; blocking file reads).

    Raises :class:`~probe.errors.ProbeError` when ``ca_bundle`` is given but unreadable or
    holds no certificate: validating without the anchors the user asked for would be wrong.
    """
    anchors: list[x509.Certificate] = []
    system = system_bundle()
    if system is not None:
        with open(system, "rb") as f:
            anchors += _pem_certificates(f.read())
    if ca_bundle is not None:
        try:
            with open(ca_bundle, "rb") as f:
                extra = _pem_certificates(f.read())
        except OSError as e:
            raise ProbeError(f"cannot read CA bundle {ca_bundle}: {e.strerror}") from e
        if not extra:
            raise ProbeError(f"CA bundle {ca_bundle} holds no PEM certificate")
        anchors += extra
    return tuple(anchors)


@functools.lru_cache(maxsize=8)
def _store(ca_bundle: str | None) -> xv.Store | None:
    anchors = trust_anchors(ca_bundle)
    return xv.Store(list(anchors)) if anchors else None


def _check_server_eku(
    policy: xv.Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is None:
        return
    usages = list(eku)
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages and (
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages
    ):
        raise ValueError("leaf certificate is not for server authentication")


def _ee_policy() -> xv.ExtensionPolicy:
    return (
        xv.ExtensionPolicy.webpki_defaults_ee()
        .require_present(x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, xv.Criticality.AGNOSTIC, _check_server_eku)
    )


def _subject(name: str) -> xv.Subject:
    try:
        return xv.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return xv.DNSName(name)


def _verifies(
    store: xv.Store,
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    name: str,
    at: dt.datetime,
) -> bool:
    try:
        verifier = (
            xv.PolicyBuilder()
            .store(store)
            .time(at)
            .extension_policies(ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(),
                                ee_policy=_ee_policy())
            .build_server_verifier(_subject(name))
        )
        with _QUIET, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verifier.verify(leaf, intermediates)
    except (xv.VerificationError, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _path_to_anchor(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> list[x509.Certificate] | None:
    """A path leaf → … → trust anchor by names and signatures only (no time, no policy)."""
    path = [leaf]
    current = leaf
    for _ in range(_MAX_DEPTH):
        if current in anchors:
            return path
        anchor = next((a for a in anchors if _issued_by(current, a)), None)
        if anchor is not None:
            return [*path, anchor]
        step = next((c for c in intermediates if c not in path and _issued_by(current, c)), None)
        if step is None:
            return None
        path.append(step)
        current = step
    return None


def name_matches(name: str, sans: Sequence[str]) -> bool:
    """RFC 6125 matching of a DNS name or IP literal against subjectAltName entries: case
    insensitive, a wildcard only as the whole leftmost label, matching exactly one label."""
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        return any(_same_ip(ip, s) for s in sans)
    labels = name.lower().rstrip(".").split(".")
    for san in sans:
        pattern = san.lower().rstrip(".").split(".")
        if len(pattern) != len(labels):
            continue
        if pattern[0] == "*" and len(pattern) > 2 and pattern[1:] == labels[1:]:
            return True
        if pattern == labels:
            return True
    return False


def _same_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, san: str) -> bool:
    try:
        return ipaddress.ip_address(san) == ip
    except ValueError:
        return False


def verify_chain(
    ders: Sequence[bytes], server_name: str, at: dt.datetime, ca_bundle: str | None
) -> tuple[bool, str | None]:
    """Validate a presented chain (leaf first) for ``server_name`` at instant ``at``.

    Returns ``(True, None)`` or ``(False, failure)`` where failure is ``ssl_unknown_authority``,
    ``ssl_invalid_hostname`` or ``ssl_invalid_certificate`` (see the module docstring for the
    order). Pure apart from the cached trust store; never raises for a bad chain.
    """
    parsed = [_load_der(d) for d in ders]
    chain = [c for c in parsed if c is not None]
    if not ders or parsed[0] is None:
        return False, failures.SSL_INVALID_CERTIFICATE
    store = _store(ca_bundle)
    if store is None:
        return False, failures.SSL_UNKNOWN_AUTHORITY
    leaf, intermediates = chain[0], chain[1:]
    if _verifies(store, leaf, intermediates, server_name, at):
        return True, None
    path = _path_to_anchor(leaf, intermediates, trust_anchors(ca_bundle))
    if path is None:
        return False, failures.SSL_UNKNOWN_AUTHORITY
    if not name_matches(server_name, subject_alt_names(leaf)):
        return False, failures.SSL_INVALID_HOSTNAME
    return False, failures.SSL_INVALID_CERTIFICATE
