"""The warehouse property tables in docs/warehouses.md and in the OpenAPI document are the
code's specs, so neither can drift from what the server accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stead.warehouses import WarehouseSpec, properties_table, redshift, snowflake

DOC = Path(__file__).parents[2] / "docs" / "warehouses.md"


@pytest.mark.parametrize("spec", [snowflake.SPEC, redshift.SPEC], ids=lambda s: s.name)
def test_docs_hold_each_warehouse_table(spec: WarehouseSpec) -> None:
    table = properties_table(spec)
    assert table in DOC.read_text(encoding="utf-8")
    rows = table.splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(spec.keys)
    for key in spec.sensitive:
        assert f"| `{key}` |" in table and "always" in next(r for r in rows if f"`{key}`" in r)


def test_table_says_required_default_and_format() -> None:
    table = properties_table(redshift.SPEC)
    assert "| `url` | yes | the cluster's host name" in table
    assert "| `defaultSchema` | no (default `public`) | text | may |" in table
    assert "| `password` | yes | text | always" in table


def test_openapi_describes_connection_properties(http: TestClient) -> None:
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    for name in ("ConnectionOverride", "ConnectionOverrideUpdate"):
        description = schemas[name]["properties"]["connectionProperties"]["description"]
        assert properties_table(snowflake.SPEC) in description
        assert properties_table(redshift.SPEC) in description
        assert "contract" not in description.lower()
