"""``/docs`` is Swagger UI served from the package: every file it loads is same-origin, and the
OpenAPI document declares the bearer scheme that its Authorize button fills in."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

import stead
from stead.openapi import SWAGGER_UI_URL, SWAGGER_UI_VERSION

PUBLIC = {
    ("/v1/auth/login", "post"),
    ("/v1/auth/password-reset", "post"),
    ("/v1/invitations/accept", "post"),
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def test_docs_load_only_same_origin_files(http: TestClient) -> None:
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?:|//[a-z]", page.text, re.IGNORECASE), page.text
    urls = re.findall(r"""(?:href|src)=["']([^"']+)["']|url: '([^']+)'""", page.text)
    loaded = [a or b for a, b in urls]
    assert f"{SWAGGER_UI_URL}/swagger-ui-bundle.js" in loaded
    assert f"{SWAGGER_UI_URL}/swagger-ui.css" in loaded
    assert f"{SWAGGER_UI_URL}/favicon-32x32.png" in loaded
    assert "/openapi.json" in loaded
    for url in loaded:
        assert url.startswith("/") and not url.startswith("//"), url
        answer = http.get(url)
        assert answer.status_code == 200, url
        expected = CONTENT_TYPES.get(Path(url).suffix, "application/json")
        assert answer.headers["content-type"].startswith(expected), (url, answer.headers)
    bundle = http.get(f"{SWAGGER_UI_URL}/swagger-ui-bundle.js").content
    assert b"SwaggerUIBundle" in bundle and len(bundle) > 1_000_000
    assert http.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_swagger_ui_ships_with_its_licence_and_version() -> None:
    folder = Path(stead.__file__).parent / "static" / f"swagger-ui-{SWAGGER_UI_VERSION}"
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "SmartBear" in (folder / "NOTICE").read_text()


def test_openapi_declares_bearer_and_v1_routes_require_it(http: TestClient) -> None:
    document = http.get("/openapi.json").json()
    assert "contract" not in json.dumps(document).lower()  # descriptions stand on their own
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": schemes["bearer"]["description"],
        }
    }
    seen = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/") or (path, method) in PUBLIC:
                assert "security" not in operation, (path, method)
                continue
            assert operation["security"] == [{"bearer": []}], (path, method)
            seen += 1
    assert seen > 40
    for path, method in PUBLIC:
        assert method in document["paths"][path]
    token = http.get("/v1/projects")
    assert token.status_code == 401 and token.headers["www-authenticate"].startswith("Bearer")
