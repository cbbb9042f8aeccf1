"""The TLS context of Stead's HTTPS clients: one per process, shared by every httpx client."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """The certificate-verifying client context that every httpx client Stead makes passes as
    ``verify=`` (the git providers', single sign-on's, the SDK's, ``stead demo``'s).

    It is the context httpx would build for a client of its own (``httpx.create_ssl_context()``:
    certifi's CA bundle, or the bundle ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` names), built once
    on first use instead of once per client: building one parses the whole CA bundle, which
    costs more CPU than a short API call (figures in docs/decisions.md, "Outbound policy").
    Variables set after the first use are not read again. A context may serve many
    connections on many threads at once (Python's :mod:`ssl`; httpx's own clients share
    theirs across threads), and no caller changes its verification settings.
    """
    return httpx.create_ssl_context()
