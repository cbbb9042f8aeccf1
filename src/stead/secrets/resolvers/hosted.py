"""The hosted store: secrets Stead keeps itself, encrypted (docs/api.md, Secrets; ``store.py``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from stead.errors import NotFound
from stead.secrets import store
from stead.secrets.resolvers.base import not_found, pick, unreachable

STORE = "the hosted store"


class HostedResolver:
    """Reads the project's hosted secrets through :func:`stead.secrets.store.read_value`."""

    store = STORE

    def __init__(self, session: Session, *, project_id: str) -> None:
        self.session = session
        self.project_id = project_id

    def resolve(self, name: str, *, key: str | None) -> str:
        """The latest value of hosted secret ``name``, or its JSON member ``key``.

        Raises:
            SecretNotFound: no such hosted secret, or no such key in it.
            UpstreamError: the value cannot be decrypted (its master key is not configured, or
                the row fails authentication).
        """
        try:
            value = store.read_value(self.session, project_id=self.project_id, name=name)
        except NotFound:
            raise not_found(STORE, name) from None
        except store.SecretUnreadable:
            raise unreachable(STORE, "the stored value cannot be decrypted") from None
        return pick(STORE, name, value, key)
