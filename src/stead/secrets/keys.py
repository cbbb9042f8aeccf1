"""Private keys for Snowflake key-pair authentication, checked when they are submitted
(docs/warehouses.md).

What is accepted follows Snowflake's "Key-pair authentication and key-pair rotation" guide
(docs.snowflake.com/en/user-guide/key-pair-auth): an RSA key of at least 2048 bits in PEM, as
PKCS#8 (``BEGIN PRIVATE KEY``), encrypted PKCS#8 (``BEGIN ENCRYPTED PRIVATE KEY``: PBES2 with
AES-256-CBC, AES-128-CBC or DES3, scrypt, and the PBES1 schemes ``cryptography`` opens) or PKCS#1
(``BEGIN RSA PRIVATE KEY``, also with OpenSSL's legacy ``Proc-Type`` encryption), with LF or
CRLF line ends. A key pasted with literal ``\\n`` sequences is normalised. Passphrases are
UTF-8. The fingerprint is Snowflake's ``RSA_PUBLIC_KEY_FP``: ``SHA256:`` and the base64 SHA-256
of the DER SubjectPublicKeyInfo.

Every failure has its own message, and no message repeats any part of the key or passphrase.
Parsing and decryption are ``cryptography``'s; this module only tells the cases apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

MIN_RSA_BITS = 2048

NOT_PEM = (
    "is not a PEM private key; expected -----BEGIN PRIVATE KEY-----, "
    "-----BEGIN ENCRYPTED PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----"
)
PUBLIC_KEY = "is a public key; give the private key (-----BEGIN PRIVATE KEY-----)"
OPENSSH = "is an OpenSSH private key; convert it to PEM PKCS#8 (ssh-keygen -p -m PKCS8 -f KEYFILE)"
CERTIFICATE = "is a certificate, not a private key"
SEVERAL = "holds more than one PEM block; give only the private key"
TRUNCATED = "is truncated: the PEM block or the key inside it is cut short"
GARBLED = "is damaged: the PEM block does not hold a readable private key"
NOT_RSA = "is {kind} key; Snowflake key-pair authentication needs an RSA key"
TOO_SMALL = "is a {bits}-bit RSA key; at least 2048 bits are required"
UNSUPPORTED_CIPHER = (
    "is encrypted with a cipher that cannot be opened; re-encrypt it as PKCS#8 with "
    "AES-256-CBC (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
)
PASSPHRASE_MISSING = "required: the private key is encrypted"
WRONG_PASSPHRASE = "does not open the private key"
PASSPHRASE_NOT_NEEDED = "is given but the private key is not encrypted"

_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_END = re.compile(r"-----END ([A-Z0-9 ]+)-----")
_PRIVATE_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY")
_OTHER_PRIVATE = {"EC PRIVATE KEY": "an EC", "DSA PRIVATE KEY": "a DSA"}
_SSH_PUBLIC = ("ssh-rsa ", "ssh-dss ", "ssh-ed25519 ", "ecdsa-sha2-", "---- BEGIN SSH2 PUBLIC KEY")
# A password nobody types: opening an encrypted key with it tells an unsupported cipher
# ("unknown cipher") apart from a supported one ("incorrect password").
_PROBE = b"\x00stead-probe\x00"


class _Unknown(Enum):
    PASSPHRASE = "unknown"


#: The passphrase exists but its value is not at hand (it lives in an external store).
UNKNOWN_PASSPHRASE = _Unknown.PASSPHRASE
Passphrase = str | None | Literal[_Unknown.PASSPHRASE]


class KeyProblem(ValueError):
    """A private key, or its passphrase, that cannot be used.

    Attributes:
        passphrase: True when the passphrase is at fault (missing, wrong, not needed), False when
            the key is.
    """

    def __init__(self, message: str, *, passphrase: bool = False) -> None:
        super().__init__(message)
        self.passphrase = passphrase


@dataclass(frozen=True)
class CheckedKey:
    """A private key that passed the checks.

    Attributes:
        pem: the key text, normalised (real LF line ends, one trailing newline).
        encrypted: whether it needs a passphrase.
        fingerprint: ``SHA256:<base64>`` of its public key; None for an encrypted key whose
            passphrase was not at hand.
        key: the opened key (what a driver signs with); None where ``fingerprint`` is.
    """

    pem: str
    encrypted: bool
    fingerprint: str | None
    key: rsa.RSAPrivateKey | None = field(default=None, compare=False, repr=False)


class _Validated:
    """The keys this process has already opened and validated, so that the same key and
    passphrase are not validated again (OpenSSL's RSA consistency check, which tests the
    primes, costs tens of milliseconds of CPU per key, docs/decisions.md; a key is checked when
    an environment is created or changed and on every connection test).

    Entries are HMAC-SHA-256 digests of the key text and passphrase under a random key made
    for this process, so nothing kept here reveals or identifies a key outside the process.
    The most recent ``limit`` entries are kept.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._secret = secrets.token_bytes(32)
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def digest(self, pem: str, password: bytes | None) -> bytes:
        """The entry for ``pem`` opened with ``password`` (None: not encrypted)."""
        marker = b"-" if password is None else b"+" + password
        return hmac.digest(self._secret, pem.encode() + b"\0" + marker, "sha256")

    def __contains__(self, digest: bytes) -> bool:
        with self._lock:
            return digest in self._digests

    def add(self, digest: bytes) -> None:
        """Remember a validated key, forgetting the oldest beyond the limit."""
        with self._lock:
            self._digests[digest] = None
            self._digests.move_to_end(digest)
            while len(self._digests) > self._limit:
                self._digests.popitem(last=False)


_VALIDATED = _Validated()


def normalise_pem(text: str) -> str:
    """Literal ``\\n`` (and ``\\r\\n``) sequences become line ends, CRLF becomes LF, surrounding
    whitespace goes, and one newline ends the text. Base64 never holds a backslash, so a literal
    ``\\n`` can only be a pasted line end."""
    text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    return text.replace("\r\n", "\n").replace("\r", "\n").strip() + "\n"


def fingerprint(key: rsa.RSAPrivateKey) -> str:
    """Snowflake's ``RSA_PUBLIC_KEY_FP``: ``SHA256:`` + base64(SHA-256 of the DER public key)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _der_length(der: bytes) -> int | None:
    """The length a DER SEQUENCE at the start of ``der`` declares for itself, header included;
    None if ``der`` does not start with one."""
    if len(der) < 2 or der[0] != 0x30:
        return None
    first = der[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count:
        return None
    return 2 + count + int.from_bytes(der[2 : 2 + count], "big")


def _block(pem: str) -> bool:
    """Check the PEM structure of a private-key block; return whether it is encrypted.

    Raises:
        KeyProblem: not PEM, a public key, OpenSSH, a certificate, several blocks, a non-RSA
            key type, or a truncated or damaged block.
    """
    if pem.startswith(_SSH_PUBLIC):
        raise KeyProblem(PUBLIC_KEY)
    begins = _BEGIN.findall(pem)
    if not begins:
        raise KeyProblem(NOT_PEM)
    label = begins[0]
    if len(begins) > 1:
        raise KeyProblem(SEVERAL)
    if label == "OPENSSH PRIVATE KEY":
        raise KeyProblem(OPENSSH)
    if "PUBLIC KEY" in label:
        raise KeyProblem(PUBLIC_KEY)
    if "CERTIFICATE" in label:
        raise KeyProblem(CERTIFICATE)
    if label in _OTHER_PRIVATE:
        raise KeyProblem(NOT_RSA.format(kind=_OTHER_PRIVATE[label]))
    if label not in _PRIVATE_LABELS:
        raise KeyProblem(NOT_PEM)
    ends = _END.findall(pem)
    if ends != [label]:
        raise KeyProblem(TRUNCATED)
    body = pem[pem.index("-----", pem.index(label)) + 5 : pem.index("-----END")]
    lines = [line.strip() for line in body.strip().split("\n")]
    legacy_encrypted = any(line.startswith("Proc-Type:") and "ENCRYPTED" in line for line in lines)
    data = "".join(line for line in lines if ":" not in line)
    try:
        der = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem(GARBLED) from None
    if not legacy_encrypted:  # a legacy-encrypted body is ciphertext, not DER
        declared = _der_length(der)
        if declared is None or declared < len(der):
            raise KeyProblem(GARBLED)
        if declared > len(der):
            raise KeyProblem(TRUNCATED)
    return label == "ENCRYPTED PRIVATE KEY" or legacy_encrypted


def _unsupported_cipher(exc: ValueError) -> bool:
    # cryptography's words for a PKCS#8 scheme and a legacy PEM cipher it cannot open
    message = str(exc).lower()
    return "unknown key encryption algorithm" in message or "unknown cipher" in message


def _kind(key: object) -> str:
    kinds: list[tuple[type, str]] = [
        (ec.EllipticCurvePrivateKey, "an EC"),
        (dsa.DSAPrivateKey, "a DSA"),
        (ed25519.Ed25519PrivateKey, "an Ed25519"),
        (ed448.Ed448PrivateKey, "an Ed448"),
    ]
    return next((name for cls, name in kinds if isinstance(key, cls)), "a non-RSA")


def check_private_key(text: str, passphrase: Passphrase) -> CheckedKey:
    """Check a private key for Snowflake key-pair authentication (see the module docstring).

    Args:
        text: the key as submitted.
        passphrase: its passphrase; None when there is none; :data:`UNKNOWN_PASSPHRASE` when one
            exists but its value is not at hand (an encrypted key is then checked as far as
            possible without opening it, and gets no fingerprint).

    OpenSSL validates an RSA key's numbers when it is opened, once per process for the same
    key text and passphrase (:class:`_Validated`).

    Raises:
        KeyProblem: with the first problem found; ``passphrase`` says which field is at fault.
    """
    pem = normalise_pem(text)
    encrypted = _block(pem)
    password: bytes | None = None
    if encrypted:
        if passphrase is None:
            raise KeyProblem(PASSPHRASE_MISSING, passphrase=True)
        password = _PROBE if passphrase is UNKNOWN_PASSPHRASE else passphrase.encode()
    digest = _VALIDATED.digest(pem, password)
    try:
        key = serialization.load_pem_private_key(
            pem.encode(), password, unsafe_skip_rsa_key_validation=digest in _VALIDATED
        )
    except UnsupportedAlgorithm:
        raise KeyProblem(NOT_RSA.format(kind="an unsupported")) from None
    except ValueError as exc:
        if _unsupported_cipher(exc):
            raise KeyProblem(UNSUPPORTED_CIPHER) from None
        if not encrypted:
            raise KeyProblem(GARBLED) from None
        if passphrase is UNKNOWN_PASSPHRASE:
            return CheckedKey(pem=pem, encrypted=True, fingerprint=None)
        raise KeyProblem(WRONG_PASSPHRASE, passphrase=True) from None
    except TypeError:
        raise KeyProblem(GARBLED) from None  # the PEM header and its content disagree
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyProblem(NOT_RSA.format(kind=_kind(key)))
    if key.key_size < MIN_RSA_BITS:
        raise KeyProblem(TOO_SMALL.format(bits=key.key_size))
    if not encrypted and isinstance(passphrase, str):
        raise KeyProblem(PASSPHRASE_NOT_NEEDED, passphrase=True)
    _VALIDATED.add(digest)
    return CheckedKey(pem=pem, encrypted=encrypted, fingerprint=fingerprint(key), key=key)


def check_key_pair(
    text: str, passphrase: Passphrase, *, key_field: str, phrase_field: str
) -> CheckedKey | str:
    """:func:`check_private_key`, answered as an environment's ``privateKey`` and ``passphrase``
    properties are (docs/warehouses.md), including a passphrase held in a secret
    (:data:`UNKNOWN_PASSPHRASE`) given for a key that is not encrypted.

    Args:
        key_field, phrase_field: the JSON paths of the two properties, named by the violation.

    Returns:
        the checked key for a usable pair, else the violation ``"<field>: <message>"``.
    """
    try:
        checked = check_private_key(text, passphrase)
    except KeyProblem as exc:
        return f"{phrase_field if exc.passphrase else key_field}: {exc}"
    if passphrase is UNKNOWN_PASSPHRASE and not checked.encrypted:
        return f"{phrase_field}: {PASSPHRASE_NOT_NEEDED}"
    return checked
