"""probe.measure.certs: chain records and our own validation, with trustme-made chains."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probe import failures
from probe.errors import ProbeError
from probe.measure import certs

pytestmark = pytest.mark.timeout(20)

NOW = dt.datetime.now(dt.UTC)


def ders(cert: trustme.LeafCert) -> list[bytes]:
    return [
        x509.load_pem_x509_certificate(b.bytes()).public_bytes(serialization.Encoding.DER)
        for b in cert.cert_chain_pems
    ]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("pki") / "ca.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return str(path)


def test_parse_certificate_fields(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("site.test", "*.site.test", "192.0.2.1")
    der = ders(leaf)[0]
    rec = certs.parse_certificate(der)
    parsed = x509.load_der_x509_certificate(der)
    spki = parsed.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert rec.der == der
    assert rec.sha256 == hashlib.sha256(der).hexdigest()
    assert rec.spki_sha256 == hashlib.sha256(spki).hexdigest()
    assert rec.subject == parsed.subject.rfc4514_string()
    assert rec.issuer == x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject \
        .rfc4514_string()
    assert rec.not_before.endswith("Z") and rec.not_after.endswith("Z")
    assert rec.san == ("site.test", "*.site.test", "192.0.2.1")


def test_unparseable_certificate_keeps_its_bytes() -> None:
    rec = certs.parse_certificate(b"not a certificate")
    assert rec.der == b"not a certificate"
    assert rec.sha256 == hashlib.sha256(b"not a certificate").hexdigest()
    assert rec.subject == "" and rec.san == ()


def _issue(ca: trustme.CA, *names: str, **kw: dt.datetime) -> list[bytes]:
    return ders(ca.issue_cert(*names, **kw))


@pytest.mark.parametrize(
    ("case", "name", "expected"),
    [
        ("valid", "site.test", (True, None)),
        ("valid", "192.0.2.1", (True, None)),
        ("valid", "other.test", (False, failures.SSL_INVALID_HOSTNAME)),
        ("expired", "site.test", (False, failures.SSL_INVALID_CERTIFICATE)),
        ("not_yet_valid", "site.test", (False, failures.SSL_INVALID_CERTIFICATE)),
        # OpenSSL order: the name is checked before validity periods
        ("expired", "other.test", (False, failures.SSL_INVALID_HOSTNAME)),
        ("unknown_ca", "site.test", (False, failures.SSL_UNKNOWN_AUTHORITY)),
        ("unknown_ca", "other.test", (False, failures.SSL_UNKNOWN_AUTHORITY)),
        ("wildcard", "a.wild.test", (True, None)),
        ("wildcard", "wild.test", (False, failures.SSL_INVALID_HOSTNAME)),
        ("wildcard", "a.b.wild.test", (False, failures.SSL_INVALID_HOSTNAME)),
        ("intermediate_missing", "a.wild.test", (False, failures.SSL_UNKNOWN_AUTHORITY)),
    ],
)
def test_verify_chain(ca: trustme.CA, bundle: str, case: str, name: str,
                      expected: tuple[bool, str | None]) -> None:
    day = dt.timedelta(days=1)
    chains = {
        "valid": lambda: _issue(ca, "site.test", "192.0.2.1"),
        "expired": lambda: _issue(ca, "site.test", not_before=NOW - 30 * day,
                                  not_after=NOW - day),
        "not_yet_valid": lambda: _issue(ca, "site.test", not_before=NOW + day,
                                        not_after=NOW + 30 * day),
        "unknown_ca": lambda: _issue(trustme.CA(), "site.test"),
        "wildcard": lambda: ders(ca.create_child_ca().issue_cert("*.wild.test")),
        "intermediate_missing": lambda: ders(ca.create_child_ca().issue_cert("*.wild.test"))[:1],
    }
    assert certs.verify_chain(chains[case](), name, NOW, bundle) == expected


def test_verify_uses_the_handshake_instant(ca: trustme.CA, bundle: str) -> None:
    chain = _issue(ca, "site.test", not_before=NOW - dt.timedelta(days=10),
                   not_after=NOW - dt.timedelta(days=5))
    assert certs.verify_chain(chain, "site.test", NOW - dt.timedelta(days=7), bundle) == (
        True, None)


def test_empty_or_garbage_chain_is_invalid(bundle: str) -> None:
    assert certs.verify_chain([], "site.test", NOW, bundle) == (
        False, failures.SSL_INVALID_CERTIFICATE)
    assert certs.verify_chain([b"junk"], "site.test", NOW, bundle) == (
        False, failures.SSL_INVALID_CERTIFICATE)


def test_system_roots_alone_do_not_trust_a_test_ca(ca: trustme.CA) -> None:
    chain = _issue(ca, "site.test")
    assert certs.verify_chain(chain, "site.test", NOW, None) == (
        False, failures.SSL_UNKNOWN_AUTHORITY)


def test_bad_ca_bundle_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ProbeError):
        certs.trust_anchors(str(tmp_path / "missing.pem"))
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(ProbeError):
        certs.trust_anchors(str(empty))


def test_expired_leaf_under_a_younger_ca_is_invalid_not_unknown(tmp_path: Path) -> None:
    # No single instant makes both valid: the diagnosis must not call this an unknown CA.
    young = trustme.CA()
    leaf = _issue(young, "site.test", not_before=NOW - 700 * dt.timedelta(days=1),
                  not_after=NOW - 30 * dt.timedelta(days=1))
    ca_file = tmp_path / "young.pem"
    ca_file.write_bytes(young.cert_pem.bytes())
    assert certs.verify_chain(leaf, "site.test", NOW, str(ca_file)) == (
        False, failures.SSL_INVALID_CERTIFICATE)


@pytest.mark.parametrize(
    ("name", "sans", "matches"),
    [
        ("site.test", ("site.test",), True),
        ("SITE.test.", ("site.TEST",), True),
        ("a.site.test", ("*.site.test",), True),
        ("a.b.site.test", ("*.site.test",), False),
        ("site.test", ("*.site.test",), False),
        ("a.test", ("*.test",), False),  # no wildcard directly under a single label
        ("192.0.2.1", ("192.0.2.1",), True),
        ("192.0.2.1", ("192.0.2.2", "site.test"), False),
        ("[2001:db8::1]", ("2001:db8:0::1",), True),
        ("site.test", (), False),
    ],
)
def test_name_matches(name: str, sans: tuple[str, ...], matches: bool) -> None:
    assert certs.name_matches(name, sans) is matches


@pytest.mark.parametrize("key_type", [trustme.KeyType.RSA, trustme.KeyType.ECDSA])
def test_spki_is_taken_byte_for_byte_from_the_certificate(key_type: trustme.KeyType) -> None:
    der = ders(trustme.CA(key_type=key_type).issue_cert("site.test"))[0]
    cert = x509.load_der_x509_certificate(der)
    spki = certs.spki_der(cert.tbs_certificate_bytes)
    assert spki == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki is not None and spki in der


@pytest.mark.parametrize("tbs", [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\x02\x01"])
def test_spki_of_malformed_tbs_is_none(tbs: bytes) -> None:
    assert certs.spki_der(tbs) is None


def test_hostile_certificates_never_raise(tmp_path: Path) -> None:
    """The hostile world's chains: not DER, 50 intermediates deep, 2 MiB of fillers."""
    from probe.lab.world.pki import WorldPKI

    pki = WorldPKI.create(tmp_path / "pki")
    at = dt.datetime.now(dt.UTC)
    for kind, expected in (("malformed", failures.SSL_INVALID_CERTIFICATE),
                           ("long_chain", failures.SSL_UNKNOWN_AUTHORITY),
                           ("huge_chain", None)):
        chain_pem, _ = pki.issue(["hostile.test"], kind)
        ders = [_pem_der(block) for block in Path(chain_pem).read_bytes().split(b"-----END")[:-1]]
        records = [certs.parse_certificate(d) for d in ders]
        assert [r.sha256 for r in records] == [hashlib.sha256(d).hexdigest() for d in ders]
        if kind == "malformed":
            assert records[0].subject == "" and records[0].der == ders[0]
        result = certs.verify_chain(ders[:16], "hostile.test", at, pki.ca_pem)
        assert result == (expected is None, expected)


def _pem_der(block: bytes) -> bytes:
    import base64

    body = block.split(b"-----BEGIN CERTIFICATE-----", 1)[1]
    return base64.b64decode(b"".join(body.split()))
