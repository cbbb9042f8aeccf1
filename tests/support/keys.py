"""Private keys made inside the tests (never committed): RSA keys in every PEM form Snowflake's
key-pair guide mentions, with ``cryptography`` and the ``openssl`` command line."""

from __future__ import annotations

import base64
import datetime
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

_KEYS: dict[tuple[int, int], rsa.RSAPrivateKey] = {}


def rsa_key(bits: int = 2048, number: int = 0) -> rsa.RSAPrivateKey:
    """An RSA key, made once per ``(bits, number)`` for the test session."""
    if (bits, number) not in _KEYS:
        _KEYS[bits, number] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _KEYS[bits, number]


def pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """Unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pkcs1(key: rsa.RSAPrivateKey) -> str:
    """PKCS#1 PEM (``BEGIN RSA PRIVATE KEY``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def pkcs8_encrypted(key: rsa.RSAPrivateKey, passphrase: str) -> str:
    """Encrypted PKCS#8 PEM from ``cryptography``'s best available encryption (PBES2 with
    AES-256-CBC)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()


def openssl(pem: str, *args: str, passphrase: str = "") -> str:
    """Run ``openssl <args>`` on ``pem`` (stdin); the passphrase travels in the environment."""
    env = {**os.environ, "STEAD_TEST_PASS": passphrase}
    result = subprocess.run(
        ["openssl", *args], input=pem.encode(), capture_output=True, check=True, env=env
    )
    return result.stdout.decode()


def openssl_pkcs8(pem: str, passphrase: str, *scheme: str) -> str:
    """``openssl pkcs8 -topk8 <scheme>``, e.g. ``-v2 aes-128-cbc`` or ``-v1 PBE-SHA1-3DES``."""
    return openssl(
        pem, "pkcs8", "-topk8", *scheme, "-passout", "env:STEAD_TEST_PASS", passphrase=passphrase
    )


def openssl_legacy(pem: str, passphrase: str, cipher: str) -> str:
    """PKCS#1 with OpenSSL's legacy ``Proc-Type: 4,ENCRYPTED`` header (``-aes256``, ``-des3``)."""
    return openssl(
        pem,
        "rsa",
        "-traditional",
        f"-{cipher}",
        "-passout",
        "env:STEAD_TEST_PASS",
        passphrase=passphrase,
    )


def openssl_fingerprint(pem: str, passphrase: str = "") -> str:
    """Snowflake's fingerprint computed as its guide does: ``openssl rsa -pubout -outform DER |
    openssl dgst -sha256 -binary | openssl enc -base64``."""
    der = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER", "-passin", "env:STEAD_TEST_PASS"],
        input=pem.encode(),
        capture_output=True,
        check=True,
        env={**os.environ, "STEAD_TEST_PASS": passphrase},
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True
    ).stdout
    return "SHA256:" + base64.b64encode(digest).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    """The public key as PEM (``BEGIN PUBLIC KEY``)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def openssh_private(key: rsa.RSAPrivateKey) -> str:
    """The key in OpenSSH's own format (``BEGIN OPENSSH PRIVATE KEY``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def openssh_public(key: rsa.RSAPrivateKey) -> str:
    """The public key line of ``~/.ssh/id_rsa.pub`` (``ssh-rsa AAAA...``)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def certificate(key: rsa.RSAPrivateKey) -> str:
    """A self-signed certificate for the key (``BEGIN CERTIFICATE``)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stead test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
