"""CSIP certificate profile: the minted chain verifies, carries the profile's extensions, and PEM
chains / encrypted keys load with typed errors."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from transport.pki import (
    HARDWARE_MODULE_NAME_OID,
    NOT_AFTER,
    POLICY_DEVICE_GENERIC,
    BadPem,
    CertKind,
    KeyPasswordError,
    PkiError,
    UnsupportedKey,
    chain_pem,
    generate_key,
    issue,
    load_pem_chain,
    load_private_key,
    mint_demo_pki,
    private_key_pem,
    profile_violations,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    return mint_demo_pki(NOW)


def _read_der_tlv(data: bytes, at: int) -> tuple[int, bytes, int]:
    tag = data[at]
    length = data[at + 1]
    at += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[at : at + n], "big")
        at += n
    return tag, data[at : at + length], at + length


def test_device_certificate_follows_csip_profile(pki) -> None:  # type: ignore[no-untyped-def]
    cert = pki.device.certificate
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.not_valid_after_utc == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert cert.subject == x509.Name([])
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_agreement
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert POLICY_DEVICE_GENERIC in [p.policy_identifier for p in policies.value]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # RFC 5280: critical when the subject is empty
    (other,) = san.value.get_values_for_type(x509.OtherName)
    assert other.type_id == HARDWARE_MODULE_NAME_OID
    # Decode HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING } by hand.
    tag, seq, _ = _read_der_tlv(other.value, 0)
    assert tag == 0x30
    oid_tag, _, after = _read_der_tlv(seq, 0)
    serial_tag, serial, _ = _read_der_tlv(seq, after)
    assert (oid_tag, serial_tag, serial) == (0x06, 0x04, b"SEP2GW-DEMO-0001")
    assert profile_violations(cert) == []


def test_ca_certificates_are_cas_with_critical_key_cert_sign(pki) -> None:  # type: ignore[no-untyped-def]
    for issued, path_length in ((pki.serca, None), (pki.mca, 1), (pki.mica, 0)):
        bc = issued.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_length
        ku = issued.certificate.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign
        assert issued.certificate.not_valid_after_utc == NOT_AFTER


def test_device_and_server_chains_are_signed_up_to_serca(pki) -> None:  # type: ignore[no-untyped-def]
    # Signature and issuer-name checks link by link (cryptography's own, not OpenSSL's path
    # validation, which the TLS tests exercise).
    for chain in (pki.device_chain(), pki.server_chain()):
        full = [*chain, pki.serca.certificate]
        for child, parent in zip(full, full[1:], strict=False):
            child.verify_directly_issued_by(parent)
    pki.serca.certificate.verify_directly_issued_by(pki.serca.certificate)


def test_serca_must_be_self_signed_and_others_issued() -> None:
    key = generate_key()
    with pytest.raises(PkiError, match="issued by a CA"):
        issue(CertKind.DEVICE, key, issuer=None, not_before=NOW)
    with pytest.raises(PkiError, match="timezone-aware"):
        issue(CertKind.SERCA, key, issuer=None, not_before=NOW.replace(tzinfo=None))


def test_pem_chain_round_trips_leaf_first(pki) -> None:  # type: ignore[no-untyped-def]
    chain = pki.device_chain()
    assert load_pem_chain(chain_pem(chain)) == chain


def test_unreadable_pem_chain_is_a_bad_pem() -> None:
    with pytest.raises(BadPem, match="device.pem"):
        load_pem_chain(b"not a certificate", source="device.pem")


def test_encrypted_key_loads_with_password_only(pki) -> None:  # type: ignore[no-untyped-def]
    pem = private_key_pem(pki.device.key, b"s3cret")
    assert b"ENCRYPTED" in pem
    loaded = load_private_key(pem, b"s3cret")
    assert loaded.private_numbers() == pki.device.key.private_numbers()
    with pytest.raises(KeyPasswordError):
        load_private_key(pem, None)
    with pytest.raises(KeyPasswordError, match="wrong password"):
        load_private_key(pem, b"wrong")


def test_non_p256_key_is_unsupported() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(UnsupportedKey, match="P-256"):
        load_private_key(rsa_pem)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(UnsupportedKey, match="P-256"):
        load_private_key(p384)


def test_profile_violations_name_each_departure() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=365))
        .sign(key, hashes.SHA384())
    )
    problems = profile_violations(cert)
    assert "key is not ECDSA P-256" in problems
    assert "signature is not ecdsa-with-SHA256" in problems
    assert any("notAfter" in p for p in problems)
    assert "no key usage extension" in problems
    assert "no certificate policies" in problems
