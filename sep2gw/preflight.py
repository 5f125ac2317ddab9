"""What ``run`` needs, checked before it starts: ``check-config`` reports it all, ``run`` refuses
with the same words instead of a traceback from deep inside the TLS stack.

The identity is loaded as ``run`` loads it — certificate chain, private key (decrypted with the
password from ``tls.key_password_env``, never a prompt), CA — and checked: the key matches the
certificate, both are ECDSA P-256 (PROTOCOL.md §3), the chain verifies to the configured CA, every
certificate is inside its validity window, and the key file is not readable by group or others.
``check-config`` adds the registration PIN's check digit and the log: its folder writable, no other
writer holding it, and the log (if it exists) opening and verifying.

Findings name the configuration key they concern. Errors make ``run`` refuse and ``check-config``
exit 2; warnings are printed and nothing else.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from events.errors import EventLogError
from events.log_lock import holder_of
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.config import Config, TlsConfig, der_keys
from sep2gw.profiles import deprecation_of
from sep2gw.projections import PROJECTIONS
from transport.identity import IdentityError, verify_pin
from transport.pki import profile_violations
from transport.tls import TlsConfigError, TlsMaterial, client_context

__all__ = [
    "Finding",
    "PreflightFailed",
    "check_identity",
    "check_driver",
    "check_log",
    "check_pin",
    "check_profile",
    "check_site",
    "errors_of",
    "load_key_password",
    "tls_key_password",
]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong (or worth a warning) with a configuration, naming its key."""

    key: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{'warning: ' if self.warning else ''}{self.key}: {self.message}"


class PreflightFailed(Exception):
    """The configuration cannot run: every error found, each naming its key."""

    def __init__(self, source: str, findings: list[Finding]) -> None:
        super().__init__(
            f"{source}: cannot run: " + "; ".join(str(f) for f in findings if not f.warning)
        )
        self.source = source
        self.findings = findings


def errors_of(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.warning]


def load_key_password(config: Config, environ: Mapping[str, str]) -> bytes | None:
    """The key's password from the environment variable ``tls.key_password_env`` names (``None``
    when no variable is configured). A configured variable that is unset or empty is an error:
    sep2gw never prompts for a password."""
    return tls_key_password(config.tls, environ)


def tls_key_password(tls: TlsConfig, environ: Mapping[str, str]) -> bytes | None:
    """:func:`load_key_password` for a ``[tls]`` section itself (a fleet's aggregator key is its
    file's ``[tls]``, whatever any site's own certificate says)."""
    name = tls.key_password_env
    if not name:
        return None
    value = environ.get(name)
    if not value:
        raise PreflightFailed(
            "tls.key_password_env",
            [
                Finding(
                    key="tls.key_password_env",
                    message=f"the environment variable {name} is unset or empty",
                )
            ],
        )
    return value.encode()


def check_site(config: Config, *, now: float, environ: Mapping[str, str]) -> list[Finding]:
    """Everything ``check-config`` checks offline: identity, battery driver, PIN and log."""
    return [
        *check_identity(config, now=now, environ=environ),
        *check_driver(config),
        *check_profile(config),
        *check_pin(config),
        *check_log(config),
    ]


def check_profile(config: Config) -> list[Finding]:
    """A deprecated spelling of ``server.profile`` works, with a warning naming the new one."""
    warning = deprecation_of(config.server.profile)
    return [] if warning is None else [Finding(key="server.profile", message=warning, warning=True)]


def check_driver(config: Config) -> list[Finding]:
    """``sep2gw run`` makes only the SunSpec driver from a configuration; the others are objects
    an embedding application hands in (``Gateway(config, driver=...)``)."""
    return [
        Finding(
            key=f"{key}.driver",
            message=f"{der.driver!r} needs a driver object from the embedding application "
            "(Gateway(config, driver=...)); sep2gw run drives only 'sunspec'",
        )
        for key, der in der_keys(config)
        if der.driver != "sunspec"
    ]


def check_pin(config: Config) -> list[Finding]:
    """PROTOCOL.md §3 / IEEE 2030.5 §6.3.3: the registration PIN's last digit is the sum-of-digits
    check digit of the first five (the server's Registration.pIN is compared with it)."""
    pin = config.server.pin
    if pin is None:
        return []
    try:
        ok = verify_pin(pin)
    except IdentityError as exc:
        return [Finding(key="server.pin", message=str(exc))]
    if ok:
        return []
    text = f"{pin:06d}"
    return [
        Finding(
            key="server.pin",
            message=f"{text}: the last digit is not the check digit of {text[:5]} "
            "(the PIN is 5 digits and a check digit, as the utility issues it)",
        )
    ]


def check_identity(config: Config, *, now: float, environ: Mapping[str, str]) -> list[Finding]:
    """The device identity as ``run`` loads it (PROTOCOL.md §3: ECDSA P-256 certificates, the
    server's chain verified against the configured root): certificate chain, key, CA, their
    agreement, validity windows and the key file's permissions. ``now``: UTC epoch seconds."""
    findings: list[Finding] = []
    cert_path = config.path(config.tls.certificate)
    key_path = config.path(config.tls.key)
    ca_path = config.path(config.tls.ca)
    chain = _certificates("tls.certificate", cert_path, findings)
    roots = _certificates("tls.ca", ca_path, findings)
    key = _private_key(config, key_path, environ, findings)
    findings.extend(_key_permissions(key_path))
    if key is not None:
        problem = _not_p256(key.public_key())
        if problem:
            findings.append(
                Finding(
                    key="tls.key",
                    message=f"{key_path} is {problem}; IEEE 2030.5 and CSIP require an ECDSA "
                    "P-256 (secp256r1) key (IEEE 2030.5-2018 security: TLS with ECDSA P-256 certificates)",
                )
            )
    if chain:
        leaf = chain[0]
        problem = _not_p256(leaf.public_key())
        if problem:
            findings.append(
                Finding(
                    key="tls.certificate",
                    message=f"{cert_path}: the device certificate holds {problem}; IEEE 2030.5 "
                    "and CSIP require ECDSA P-256 (IEEE 2030.5-2018 security: TLS with ECDSA P-256 "
                    "certificates)",
                )
            )
        else:
            for violation in profile_violations(leaf):
                findings.append(
                    Finding(
                        key="tls.certificate",
                        message=f"the device certificate departs from the CSIP profile: "
                        f"{violation}",
                        warning=True,
                    )
                )
        if key is not None and _spki(key.public_key()) != _spki(leaf.public_key()):
            findings.append(
                Finding(
                    key="tls.key",
                    message=f"{key_path} does not match the certificate {cert_path} (their public "
                    "keys differ)",
                )
            )
        findings.extend(_validity(chain, roots, now))
        if roots:
            findings.extend(_chain_to_roots(chain, roots, cert_path, ca_path))
    if not errors_of(findings):
        # Last, exactly what run does: whatever OpenSSL still refuses is reported, not raised.
        try:
            password = load_key_password(config, environ)
            client_context(
                TlsMaterial(str(cert_path), str(key_path), str(ca_path), password),
                extra_ciphers=tuple(config.tls.extra_ciphers),
            )
        except TlsConfigError as exc:
            findings.append(Finding(key="tls", message=str(exc)))
        except PreflightFailed as exc:
            findings.extend(exc.findings)
    return findings


def check_log(config: Config) -> list[Finding]:
    """The log ``run`` will write: its folder writable, no other writer holding it, and an existing
    log opening and verifying end to end (as ``sep2gw log verify``)."""
    path = config.path(config.log.path)
    folder = path.parent
    if not folder.is_dir():
        return [Finding(key="log.path", message=f"the folder {folder} does not exist")]
    if not os.access(folder, os.W_OK | os.X_OK) or _read_only_fs(folder):
        return [Finding(key="log.path", message=f"cannot write in the folder {folder}")]
    findings: list[Finding] = []
    holder = holder_of(path)
    if holder is not None:
        findings.append(
            Finding(
                key="log.path",
                message=f"{path} is in use by another writer ({holder}); run would be refused",
            )
        )
    if path.exists():
        try:
            with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
                report = store.verify(PROJECTIONS)
        except EventLogError as exc:
            findings.append(Finding(key="log.path", message=str(exc)))
        else:
            if not report.ok:
                findings.append(
                    Finding(key="log.path", message=f"the log does not verify: {report.describe()}")
                )
    return findings


# -- helpers ---------------------------------------------------------------------------------------


def _certificates(key: str, path: Path, findings: list[Finding]) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        findings.append(Finding(key=key, message=f"cannot read {path}: {exc.strerror or exc}"))
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        pass
    if b"PRIVATE KEY-----" in data:
        what = "it holds a private key"
    elif b"-----BEGIN" in data:
        what = "it holds PEM data but no readable certificate"
    else:
        what = "it is not PEM data"
    findings.append(Finding(key=key, message=f"{path} is not a PEM certificate: {what}"))
    return []


def _private_key(
    config: Config, path: Path, environ: Mapping[str, str], findings: list[Finding]
) -> PrivateKeyTypes | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        findings.append(
            Finding(key="tls.key", message=f"cannot read {path}: {exc.strerror or exc}")
        )
        return None
    encrypted = b"ENCRYPTED" in data
    if encrypted and not config.tls.key_password_env:
        findings.append(
            Finding(
                key="tls.key",
                message=f"{path} is encrypted and tls.key_password_env is not set: name the "
                "environment variable that holds its password (sep2gw never prompts for it)",
            )
        )
        return None
    try:
        password = load_key_password(config, environ) if encrypted else None
    except PreflightFailed as exc:
        findings.extend(exc.findings)
        return None
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        findings.append(Finding(key="tls.key", message=f"{path}: {exc}"))
    except ValueError:
        if encrypted:
            why = "wrong password (tls.key_password_env) or a damaged key"
        elif b"CERTIFICATE-----" in data:
            why = "it holds a certificate, not a private key"
        else:
            why = "not a readable PEM private key"
        findings.append(Finding(key="tls.key", message=f"{path}: {why}"))
    except Exception as exc:  # an unsupported key type: cryptography's own wording
        findings.append(Finding(key="tls.key", message=f"{path}: {type(exc).__name__}: {exc}"))
    return None


def _key_permissions(path: Path) -> list[Finding]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return []
    if mode & 0o077:
        return [
            Finding(
                key="tls.key",
                message=f"{path} is readable by group or others (mode {mode:04o}): "
                f"chmod 600 {path}",
                warning=True,
            )
        ]
    return []


def _not_p256(public: object) -> str | None:
    """What the key is when it is not ECDSA P-256, else ``None``."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return (
            None if isinstance(public.curve, ec.SECP256R1) else f"an EC key on {public.curve.name}"
        )
    if isinstance(public, rsa.RSAPublicKey):
        return f"an RSA key ({public.key_size} bits)"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(public, ed448.Ed448PublicKey):
        return "an Ed448 key"
    return f"a {type(public).__name__}"


def _spki(public: Any) -> bytes:
    """A public key's SubjectPublicKeyInfo (DER): equal exactly when the keys are."""
    data: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _validity(
    chain: list[x509.Certificate], roots: list[x509.Certificate], now: float
) -> list[Finding]:
    at = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    findings: list[Finding] = []
    for key, certs in (("tls.certificate", chain), ("tls.ca", roots)):
        for cert in certs:
            if cert.not_valid_after_utc < at:
                findings.append(
                    Finding(
                        key=key,
                        message=f"{_subject(cert)} expired on "
                        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}",
                    )
                )
            elif cert.not_valid_before_utc > at:
                findings.append(
                    Finding(
                        key=key,
                        message=f"{_subject(cert)} is not valid before "
                        f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ} (is this clock right?)",
                    )
                )
    return findings


def _chain_to_roots(
    chain: list[x509.Certificate], roots: list[x509.Certificate], cert_path: Path, ca_path: Path
) -> list[Finding]:
    """PROTOCOL.md §3: the device chain (leaf first, then MICA/MCA) must lead, signature by
    signature, to a root in the CA file: the server verifies us against the same SERCA."""
    pool = chain[1:] + roots
    current = chain[0]
    for _ in range(len(pool) + 1):
        if any(_issued_by(current, root) for root in roots):
            return []
        issuers = [c for c in pool if c.subject == current.issuer and c is not current]
        if not issuers:
            return [
                Finding(
                    key="tls.certificate",
                    message=f"the chain in {cert_path} does not lead to the CA in {ca_path}: "
                    f"{_subject(current)} is issued by {current.issuer.rfc4514_string()}, which "
                    "is in neither file",
                )
            ]
        signer = next((c for c in issuers if _issued_by(current, c)), None)
        if signer is None:
            return [
                Finding(
                    key="tls.certificate",
                    message=f"{_subject(current)}: the signature of its issuer "
                    f"{current.issuer.rfc4514_string()} does not verify",
                )
            ]
        current = signer
    return [Finding(key="tls.certificate", message=f"the chain in {cert_path} loops")]


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
