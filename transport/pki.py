"""Certificates in the CSIP / IEEE 2030.5 profile: mint a SERCA -> MCA -> MICA -> device chain and
server certificates, serialise them, and load PEM chains and (encrypted) keys.

IEEE 2030.5 §6.11 and CSIP §5.2.2: ECDSA on P-256 with ecdsa-with-SHA256, ``notAfter``
99991231235959Z (no expiry; revocation is by other means), critical key usage, certificate
policies, and device certificates with an empty subject and a critical SubjectAltName holding a
hardwareModuleName (RFC 4108). Time and serial numbers are arguments or derived from the key, so
minting is deterministic given the keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "HARDWARE_MODULE_NAME_OID",
    "NOT_AFTER",
    "POLICY_DEVICE_GENERIC",
    "POLICY_TEST",
    "BadPem",
    "CertKind",
    "DemoPki",
    "Issued",
    "KeyPasswordError",
    "PkiError",
    "UnsupportedKey",
    "certificate_der",
    "chain_pem",
    "generate_key",
    "hardware_module_name",
    "issue",
    "load_pem_chain",
    "load_private_key",
    "mint_demo_pki",
    "private_key_pem",
    "profile_violations",
]

NOT_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
HARDWARE_MODULE_NAME_OID = ObjectIdentifier("1.3.6.1.5.5.7.8.4")  # RFC 4108 hardwareModuleName
POLICY_DEVICE_GENERIC = ObjectIdentifier("1.3.6.1.4.1.40732.1.1")  # 2030.5 id-sep2-device-generic
POLICY_TEST = ObjectIdentifier("1.3.6.1.4.1.40732.2.1")  # 2030.5 test certificate
# hwType of the demo PKI's devices: an arc of the same 2030.5 enterprise number, marking "demo".
DEMO_HW_TYPE = ObjectIdentifier("1.3.6.1.4.1.40732.99.1")


class PkiError(ValueError):
    """A certificate or key cannot be used; the message says which and why."""


class BadPem(PkiError):
    pass


class KeyPasswordError(PkiError):
    pass


class UnsupportedKey(PkiError):
    pass


class CertKind(Enum):
    SERCA = "serca"
    MCA = "mca"
    MICA = "mica"
    DEVICE = "device"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (CSIP: ECDSA with curve secp256r1 only)."""
    return ec.generate_private_key(ec.SECP256R1())


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_oid(oid: ObjectIdentifier) -> bytes:
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return b"\x06" + _der_length(len(body)) + bytes(body)


def hardware_module_name(hw_type: ObjectIdentifier, hw_serial: bytes) -> x509.OtherName:
    """RFC 4108 HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET
    STRING }, as the otherName of a SubjectAltName (2030.5 §6.11.8.3 device certificates)."""
    octets = b"\x04" + _der_length(len(hw_serial)) + hw_serial
    inner = _der_oid(hw_type) + octets
    return x509.OtherName(HARDWARE_MODULE_NAME_OID, b"\x30" + _der_length(len(inner)) + inner)


def _serial_for(public_key: ec.EllipticCurvePublicKey) -> int:
    # Derived from the key rather than drawn: deterministic, unique per key, positive, < 2**159.
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return int.from_bytes(hashlib.sha256(spki).digest()[:19], "big") | 1


def issue(
    kind: CertKind,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: Issued | None,
    not_before: dt.datetime,
    common_name: str = "",
    hw_serial: bytes = b"",
    hw_type: ObjectIdentifier = DEMO_HW_TYPE,
    dns_names: Sequence[str] = (),
    policies: Sequence[ObjectIdentifier] = (POLICY_DEVICE_GENERIC,),
) -> Issued:
    """Issue one certificate of ``kind`` in the CSIP profile (self-signed when ``issuer`` is None,
    which only a SERCA may be)."""
    if kind is CertKind.SERCA and issuer is not None:
        raise PkiError("a SERCA is self-signed: pass issuer=None")
    if kind is not CertKind.SERCA and issuer is None:
        raise PkiError(f"a {kind.value} certificate must be issued by a CA: pass issuer=")
    if not_before.tzinfo is None:
        raise PkiError("not_before must be timezone-aware (UTC)")
    public = key.public_key()
    if kind is CertKind.DEVICE:
        subject = x509.Name([])  # 2030.5 device certificates identify by SAN only
    else:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or kind.value)])
    signer = issuer.key if issuer is not None else key
    issuer_name = issuer.certificate.subject if issuer is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(_serial_for(public))
        .not_valid_before(not_before)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(p, None) for p in policies]),
            critical=True,
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    is_ca = kind in (CertKind.SERCA, CertKind.MCA, CertKind.MICA)
    path_length = {CertKind.SERCA: None, CertKind.MCA: 1, CertKind.MICA: 0}.get(kind)
    builder = builder.add_extension(
        x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True
    )
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=not is_ca,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=not is_ca,
            key_cert_sign=is_ca,
            crl_sign=is_ca,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if kind in (CertKind.DEVICE, CertKind.SERVER):
        names: list[x509.GeneralName] = [hardware_module_name(hw_type, hw_serial or b"0")]
        names.extend(x509.DNSName(n) for n in dns_names)
        # RFC 5280 §4.2.1.6: SAN is critical when the subject is empty.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=kind is CertKind.DEVICE
        )
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass(frozen=True, slots=True)
class DemoPki:
    serca: Issued
    mca: Issued
    mica: Issued
    device: Issued
    server: Issued

    def device_chain(self) -> list[x509.Certificate]:
        """What the device presents: its certificate, then MICA and MCA (the root is not sent)."""
        return [self.device.certificate, self.mica.certificate, self.mca.certificate]

    def server_chain(self) -> list[x509.Certificate]:
        return [self.server.certificate, self.mca.certificate]


def mint_demo_pki(
    not_before: dt.datetime, *, device_serial: bytes = b"SEP2GW-DEMO-0001",
    server_names: Sequence[str] = ("localhost",),
) -> DemoPki:
    """A complete demo PKI in the CSIP profile, marked with the 2030.5 test policy."""
    policies = (POLICY_DEVICE_GENERIC, POLICY_TEST)
    serca = issue(CertKind.SERCA, generate_key(), issuer=None, not_before=not_before,
                  common_name="sep2gw demo SERCA", policies=policies)
    mca = issue(CertKind.MCA, generate_key(), issuer=serca, not_before=not_before,
                common_name="sep2gw demo MCA", policies=policies)
    mica = issue(CertKind.MICA, generate_key(), issuer=mca, not_before=not_before,
                 common_name="sep2gw demo MICA", policies=policies)
    device = issue(CertKind.DEVICE, generate_key(), issuer=mica, not_before=not_before,
                   hw_serial=device_serial, policies=policies)
    server = issue(CertKind.SERVER, generate_key(), issuer=mca, not_before=not_before,
                   common_name="sep2gw demo server", hw_serial=b"SEP2GW-DEMO-SERVER",
                   dns_names=server_names, policies=policies)
    return DemoPki(serca, mca, mica, device, server)


def certificate_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def chain_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def private_key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def load_pem_chain(data: bytes, *, source: str = "PEM data") -> list[x509.Certificate]:
    """All certificates of a PEM bundle, leaf first as written."""
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise BadPem(f"{source}: no readable PEM certificate ({exc})") from exc
    return chain


def load_private_key(
    data: bytes, password: bytes | None = None, *, source: str = "key"
) -> ec.EllipticCurvePrivateKey:
    """A PEM private key, decrypting it with ``password`` when it is encrypted; only P-256 keys are
    accepted (CSIP)."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # encrypted but no password, or a password for a plain key
        raise KeyPasswordError(f"{source}: {exc}") from exc
    except ValueError as exc:
        if b"ENCRYPTED" in data and password is not None:
            raise KeyPasswordError(f"{source}: wrong password or damaged key ({exc})") from exc
        raise BadPem(f"{source}: not a readable PEM private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UnsupportedKey(
            f"{source}: CSIP requires an ECDSA P-256 key, got {type(key).__name__}"
        )
    return key


def profile_violations(certificate: x509.Certificate) -> list[str]:
    """Where a certificate departs from the CSIP profile (empty when it conforms): curve, signature
    algorithm, notAfter, key usage criticality, certificate policies."""
    problems: list[str] = []
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve,
                                                                            ec.SECP256R1):
        problems.append("key is not ECDSA P-256")
    if certificate.signature_hash_algorithm is None or not isinstance(
        certificate.signature_hash_algorithm, hashes.SHA256
    ):
        problems.append("signature is not ecdsa-with-SHA256")
    if certificate.not_valid_after_utc != NOT_AFTER:
        problems.append(f"notAfter is {certificate.not_valid_after_utc:%Y-%m-%d}, not 9999-12-31")
    try:
        if not certificate.extensions.get_extension_for_class(x509.KeyUsage).critical:
            problems.append("key usage is not critical")
    except x509.ExtensionNotFound:
        problems.append("no key usage extension")
    try:
        certificate.extensions.get_extension_for_class(x509.CertificatePolicies)
    except x509.ExtensionNotFound:
        problems.append("no certificate policies")
    return problems
