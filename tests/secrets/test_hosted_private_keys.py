"""Private-key checks (docs/warehouses.md): every PEM form Snowflake's key-pair
guide accepts opens and gets the fingerprint ``openssl`` computes; every failure has its own
message and names the field at fault. All keys are generated here."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fastapi.testclient import TestClient

from stead.secrets import keys
from stead.secrets.keys import UNKNOWN_PASSPHRASE, KeyProblem, check_private_key
from tests.support.factories import assert_problem, example
from tests.support.keys import (
    certificate,
    openssh_private,
    openssh_public,
    openssl_fingerprint,
    openssl_legacy,
    openssl_pkcs8,
    pkcs1,
    pkcs8,
    pkcs8_encrypted,
    public_pem,
    rsa_key,
)

PASSPHRASE = "pässwörd-本番-🔑"  # non-ASCII: passphrases are UTF-8
LEGACY_PROVIDER = ("-provider", "legacy", "-provider", "default")


def _plain() -> str:
    return pkcs8(rsa_key())


ACCEPTED: dict[str, Callable[[], tuple[str, str | None]]] = {
    "pkcs8": lambda: (_plain(), None),
    "pkcs1": lambda: (pkcs1(rsa_key()), None),
    "pkcs8 crlf": lambda: (_plain().replace("\n", "\r\n"), None),
    "pkcs1 crlf": lambda: (pkcs1(rsa_key()).replace("\n", "\r\n"), None),
    "literal backslash-n": lambda: (_plain().replace("\n", "\\n"), None),
    "surrounding whitespace": lambda: ("\n  " + _plain() + "  \n\n", None),
    "4096-bit": lambda: (pkcs8(rsa_key(4096)), None),
    "pbes2 aes-256-cbc (cryptography)": lambda: (
        pkcs8_encrypted(rsa_key(), PASSPHRASE),
        PASSPHRASE,
    ),
    "pbes2 aes-256-cbc (openssl)": lambda: (
        openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "aes-256-cbc"),
        PASSPHRASE,
    ),
    "pbes2 aes-128-cbc": lambda: (
        openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "aes-128-cbc"),
        PASSPHRASE,
    ),
    "pbes2 des3": lambda: (openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "des3"), PASSPHRASE),
    "pbes2 hmacWithSHA1 prf": lambda: (
        openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1"),
        PASSPHRASE,
    ),
    "pbes1 sha1 3des (openssl)": lambda: (
        openssl_pkcs8(_plain(), PASSPHRASE, "-v1", "PBE-SHA1-3DES"),
        PASSPHRASE,
    ),
    "pbes1 md5 des": lambda: (
        # OpenSSL 3 keeps PBKDF1 in its legacy provider
        openssl_pkcs8(_plain(), PASSPHRASE, "-v1", "PBE-MD5-DES", *LEGACY_PROVIDER),
        PASSPHRASE,
    ),
    "scrypt": lambda: (openssl_pkcs8(_plain(), PASSPHRASE, "-scrypt"), PASSPHRASE),
    "encrypted pkcs8 crlf": lambda: (
        pkcs8_encrypted(rsa_key(), PASSPHRASE).replace("\n", "\r\n"),
        PASSPHRASE,
    ),
    "encrypted pkcs8 literal backslash-n": lambda: (
        pkcs8_encrypted(rsa_key(), PASSPHRASE).replace("\n", "\\n"),
        PASSPHRASE,
    ),
    "legacy pkcs1 aes-256": lambda: (
        openssl_legacy(_plain(), "legacy-pass", "aes256"),
        "legacy-pass",
    ),
    "legacy pkcs1 des3": lambda: (openssl_legacy(_plain(), "legacy-pass", "des3"), "legacy-pass"),
}


@pytest.mark.parametrize("form", ACCEPTED)
def test_accepted_forms_open_with_snowflakes_fingerprint(form: str) -> None:
    text, passphrase = ACCEPTED[form]()
    checked = check_private_key(text, passphrase)
    assert checked.encrypted == (passphrase is not None)
    # the fingerprint is the one Snowflake's guide computes with openssl
    assert checked.fingerprint == openssl_fingerprint(
        pkcs8(rsa_key(4096 if "4096" in form else 2048))
    )
    assert checked.pem.endswith("-----\n") and "\r" not in checked.pem
    assert "\\n" not in checked.pem and checked.pem.startswith("-----BEGIN")
    # the passphrase's value may be unknown (an external store): still checked, no fingerprint
    unknown = check_private_key(text, UNKNOWN_PASSPHRASE)
    assert unknown.encrypted == checked.encrypted
    assert unknown.fingerprint == (None if checked.encrypted else checked.fingerprint)


def _cut_body(pem: str) -> str:
    lines = pem.splitlines()
    return "\n".join(lines[:5] + lines[-1:]) + "\n"


def _bad_base64(pem: str) -> str:
    lines = pem.splitlines()
    lines[3] = "!!!!" + lines[3][4:]
    return "\n".join(lines) + "\n"


def _wrong_der(pem: str) -> str:
    lines = pem.splitlines()
    return "\n".join([lines[0], "QUJDREVGR0hJSktMTU5PUA==", lines[-1]]) + "\n"


FAILURES: dict[str, tuple[Callable[[], tuple[str, str | None]], str, bool]] = {
    "public key": (lambda: (public_pem(rsa_key()), None), keys.PUBLIC_KEY, False),
    "ssh public key line": (lambda: (openssh_public(rsa_key()), None), keys.PUBLIC_KEY, False),
    "openssh private key": (lambda: (openssh_private(rsa_key()), None), keys.OPENSSH, False),
    "certificate": (lambda: (certificate(rsa_key()), None), keys.CERTIFICATE, False),
    "key and certificate": (
        lambda: (_plain() + certificate(rsa_key()), None),
        keys.SEVERAL,
        False,
    ),
    "no END line": (lambda: (_plain().split("-----END")[0], None), keys.TRUNCATED, False),
    "body cut short": (lambda: (_cut_body(_plain()), None), keys.TRUNCATED, False),
    "not base64": (lambda: (_bad_base64(_plain()), None), keys.GARBLED, False),
    "base64 but not a key": (lambda: (_wrong_der(_plain()), None), keys.GARBLED, False),
    "not PEM": (lambda: ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", None), keys.NOT_PEM, False),
    "other PEM block": (
        lambda: ("-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n", None),
        keys.NOT_PEM,
        False,
    ),
    "ec pkcs8": (
        lambda: (pkcs8(ec.generate_private_key(ec.SECP256R1())), None),
        keys.NOT_RSA.format(kind="an EC"),
        False,
    ),
    "ec traditional": (
        lambda: ("-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n", None),
        keys.NOT_RSA.format(kind="an EC"),
        False,
    ),
    "ed25519": (
        lambda: (pkcs8(ed25519.Ed25519PrivateKey.generate()), None),
        keys.NOT_RSA.format(kind="an Ed25519"),
        False,
    ),
    "rsa 1024": (
        lambda: (pkcs8(rsa_key(1024)), None),
        keys.TOO_SMALL.format(bits=1024),
        False,
    ),
    "passphrase missing": (
        lambda: (pkcs8_encrypted(rsa_key(), PASSPHRASE), None),
        keys.PASSPHRASE_MISSING,
        True,
    ),
    "wrong passphrase": (
        lambda: (pkcs8_encrypted(rsa_key(), PASSPHRASE), "pässwörd"),
        keys.WRONG_PASSPHRASE,
        True,
    ),
    "wrong passphrase, legacy pkcs1": (
        lambda: (openssl_legacy(_plain(), "legacy-pass", "aes256"), "other"),
        keys.WRONG_PASSPHRASE,
        True,
    ),
    "passphrase for an unencrypted key": (
        lambda: (_plain(), PASSPHRASE),
        keys.PASSPHRASE_NOT_NEEDED,
        True,
    ),
    "unsupported cipher camellia": (
        lambda: (openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "camellia-256-cbc"), PASSPHRASE),
        keys.UNSUPPORTED_CIPHER,
        False,
    ),
    "unsupported cipher aria": (
        lambda: (openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "aria-256-cbc"), PASSPHRASE),
        keys.UNSUPPORTED_CIPHER,
        False,
    ),
    "unsupported legacy cipher": (
        lambda: (openssl_legacy(_plain(), "legacy-pass", "camellia256"), "legacy-pass"),
        keys.UNSUPPORTED_CIPHER,
        False,
    ),
}


@pytest.mark.parametrize("case", FAILURES)
def test_each_failure_has_its_own_message(case: str) -> None:
    make, message, passphrase_at_fault = FAILURES[case]
    text, passphrase = make()
    with pytest.raises(KeyProblem) as caught:
        check_private_key(text, passphrase)
    assert str(caught.value) == message
    assert caught.value.passphrase is passphrase_at_fault
    # no line of the key and nothing of the passphrase is repeated
    body = [line for line in text.splitlines() if len(line) > 8 and "-----" not in line]
    assert not any(line in str(caught.value) for line in body)
    assert passphrase is None or passphrase not in str(caught.value)


def test_every_message_is_distinct_and_tested() -> None:
    messages = [
        keys.NOT_PEM,
        keys.PUBLIC_KEY,
        keys.OPENSSH,
        keys.CERTIFICATE,
        keys.SEVERAL,
        keys.TRUNCATED,
        keys.GARBLED,
        keys.NOT_RSA,
        keys.TOO_SMALL,
        keys.UNSUPPORTED_CIPHER,
        keys.PASSPHRASE_MISSING,
        keys.WRONG_PASSPHRASE,
        keys.PASSPHRASE_NOT_NEEDED,
    ]
    assert len(set(messages)) == len(messages)
    tested = {message for _, message, _ in FAILURES.values()}
    # templates ("is a {bits}-bit RSA key; ...") are compared by what follows the placeholder
    assert all(any(t.endswith(m.split("}")[-1]) for t in tested) for m in messages)


def test_unsupported_cipher_found_without_the_passphrase() -> None:
    text = openssl_pkcs8(_plain(), PASSPHRASE, "-v2", "camellia-256-cbc")
    with pytest.raises(KeyProblem) as caught:
        check_private_key(text, UNKNOWN_PASSPHRASE)
    assert str(caught.value) == keys.UNSUPPORTED_CIPHER


def test_hosted_private_key_secrets_are_checked(http: TestClient, admin: dict[str, str]) -> None:
    resp = http.post("/v1/projects", json=example("01-create-project-snowflake"), headers=admin)
    base = f"/v1/projects/{resp.json()['projectId']}/secrets"
    encrypted = pkcs8_encrypted(rsa_key(), PASSPHRASE)
    for name, value in [("plain", _plain().replace("\n", "\\n")), ("encrypted", encrypted)]:
        body = {"name": name, "type": "private_key", "value": value}
        resp = http.post(base, json=body, headers=admin)
        assert resp.status_code == 201, resp.text
        assert resp.json()["type"] == "PRIVATE_KEY"
    for make, message, _ in [
        FAILURES["public key"],
        FAILURES["openssh private key"],
        FAILURES["rsa 1024"],
        FAILURES["unsupported cipher aria"],
        FAILURES["body cut short"],
    ]:
        body = {"name": "bad", "type": "PRIVATE_KEY", "value": make()[0]}
        problem = assert_problem(http.post(base, json=body, headers=admin), 400, "value")
        assert problem["violations"] == [f"value: {message}"]
        # a new version is checked too
        resp = http.put(f"{base}/plain", json={"value": make()[0]}, headers=admin)
        assert assert_problem(resp, 400, "value")["violations"] == [f"value: {message}"]
    assert http.get(base, headers=admin).json()["total"] == 2
    assert http.get(f"{base}/plain", headers=admin).json()["version"] == 1


def _inconsistent(key: rsa.RSAPrivateKey) -> str:
    """``key`` with a wrong CRT coefficient: well-formed PEM whose numbers do not agree."""
    numbers = key.private_numbers()
    wrong = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d,
        dmp1=numbers.dmp1,
        dmq1=numbers.dmq1,
        iqmp=numbers.iqmp + 1,
        public_numbers=numbers.public_numbers,
    )
    return pkcs8(wrong.private_key(unsafe_skip_rsa_key_validation=True))


def test_a_key_is_validated_once_and_an_inconsistent_key_never_passes() -> None:
    text = pkcs8_encrypted(rsa_key(number=7), PASSPHRASE)
    first = check_private_key(text, PASSPHRASE)
    again = check_private_key(text, PASSPHRASE)  # remembered: opened without the RSA check
    assert again == first and again.fingerprint == openssl_fingerprint(pkcs8(rsa_key(number=7)))
    # the key opened the second time signs what its public key verifies
    assert again.key is not None
    signature = again.key.sign(b"stead", padding.PKCS1v15(), hashes.SHA256())
    rsa_key(number=7).public_key().verify(signature, b"stead", padding.PKCS1v15(), hashes.SHA256())
    # remembering is per key text and passphrase: a wrong passphrase still fails
    with pytest.raises(KeyProblem) as caught:
        check_private_key(text, PASSPHRASE + "x")
    assert str(caught.value) == keys.WRONG_PASSPHRASE
    # numbers that do not agree are refused however often they come, after the good key too
    bad = _inconsistent(rsa_key(number=7))
    for _ in range(2):
        with pytest.raises(KeyProblem) as caught:
            check_private_key(bad, None)
        assert str(caught.value) == keys.GARBLED
