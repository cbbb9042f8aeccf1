"""The console's words for the API's field names (``stead.console.wording``): every
connection property has a label, paths and messages come out in those labels."""

from __future__ import annotations

import re

import pytest

from stead.console.wording import PROPERTY_LABELS, access_level, label, property_hint, reword
from stead.warehouses import spec_for

_CAMEL = re.compile(r"\b[a-z]+[A-Z]\w*\b")


@pytest.mark.parametrize("warehouse", ["REDSHIFT", "SNOWFLAKE"])
def test_every_property_has_a_label_and_a_hint_in_words(warehouse: str) -> None:
    spec = spec_for(warehouse)
    for key in spec.keys:
        assert key in PROPERTY_LABELS, key
        hint = property_hint(spec, key)
        assert hint is None or not _CAMEL.search(hint), (key, hint)
        assert hint is None or "`" not in hint and "as a string" not in hint, (key, hint)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("environment.connectionProperties.port.value", "Port"),
        ("connectionOverrides[0].connectionProperties.url", "Host"),
        ("environment.connectionProperties.privateKey.secretName", "Private key"),
        ("environment.connectionProperties", "Connection properties"),
        ("secretReference.secretName", "Secret name"),
        ("project.name", "Project name"),
        ("defaultAgentId", "Agent"),
        ("confirmPassword", "Password again"),
        ("someNewField", "Some new field"),
    ],
)
def test_a_path_becomes_the_label_a_person_sees(path: str, words: str) -> None:
    assert label(path) == words


def test_wire_names_in_a_message_become_labels() -> None:
    assert (
        reword("must be a host name without a port; give the port in 'port'")
        == "must be a host name without a port; give the port in 'Port'"
    )
    assert (
        reword("set defaultDatabase, connectionOverrides[0].connectionProperties.url")
        == "set Default database, Host"
    )
    # other words, quotes and apostrophes are left alone
    assert reword("the cluster's 'fooBar' and iPhone") == "the cluster's 'fooBar' and iPhone"


def test_access_levels_in_words() -> None:
    assert access_level("readOnly") == "Read only (Viewer)"
    assert access_level("noAccess") == "No access"
    assert access_level("somethingNew") == "somethingNew"  # shown as it is, not hidden
