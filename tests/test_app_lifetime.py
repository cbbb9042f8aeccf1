"""An app built and closed leaves nothing alive: FastAPI keeps every endpoint it has analysed in
process-wide caches, so a route whose endpoint closes over its app would keep every app built in
a process (its engines, pools and routes) alive; the suite builds one per test."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

from fastapi.testclient import TestClient

from stead.app import create_app
from stead.settings import Settings


def test_a_closed_app_is_collected(sqlite_template: Path, tmp_path: Path) -> None:
    refs = []
    for n in range(3):
        data = tmp_path / f"app-{n}"
        data.mkdir()
        shutil.copy(sqlite_template, data / "stead.db")
        app = create_app(Settings(data_dir=data, database_url=""))
        with TestClient(app) as client:
            # every route the app itself adds: the service routes, /docs and the document
            for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
                assert client.get(path).status_code == 200, path
        refs.append(weakref.ref(app))
        del app, client
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
