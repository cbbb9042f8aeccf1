"""The floor: a bare ASGI app doing what a create or a get does at the database and nothing else.

``POST /rows`` reads the JSON body and inserts one row (one transaction); ``GET /rows/{id}``
selects it. Same driver, engine settings and thread pool as Stead (``stead.db.make_engine``,
work run in a worker thread like FastAPI's sync endpoints). Served by uvicorn with the settings
``stead serve`` uses. The database URL comes from ``FLOOR_DATABASE_URL``.

:func:`create_fastapi_app` serves the same two operations through FastAPI (sync endpoints, a
pydantic body and response model, nothing else): the framework's own share of the gap between
the floor and Stead.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select

from stead.db import make_engine, utcnow

metadata = MetaData()
rows = Table(
    "floor_rows",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255)),
    Column("created_at", DateTime(timezone=True)),
)


def _database_work() -> tuple[Callable[[str], str], Callable[[str], dict[str, Any] | None]]:
    """``(create, get)``: insert a row by name and return its id; read a row by id."""
    engine = make_engine(os.environ["FLOOR_DATABASE_URL"])
    metadata.create_all(engine)

    def create(name: str) -> str:
        row_id = str(uuid.uuid4())
        with engine.connect().execution_options(stead_write=True) as conn, conn.begin():
            conn.execute(insert(rows).values(id=row_id, name=name, created_at=utcnow()))
        return row_id

    def get(row_id: str) -> dict[str, Any] | None:
        with engine.connect() as conn:
            row = conn.execute(select(rows).where(rows.c.id == row_id)).first()
        return None if row is None else {"id": row.id, "name": row.name}

    return create, get


def create_app() -> Any:
    """The floor ASGI app (uvicorn ``--factory``)."""
    create, get = _database_work()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            row_id = await to_thread.run_sync(create, json.loads(body)["name"])
            status, payload = 201, {"id": row_id}
        else:
            found = await to_thread.run_sync(get, scope["path"].rsplit("/", 1)[-1])
            status, payload = (200, found) if found else (404, {})
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    return app


class _Row(BaseModel):
    name: str


class _Created(BaseModel):
    id: str


def create_fastapi_app() -> Any:
    """The floor's two operations as FastAPI routes (uvicorn ``--factory``)."""
    create, get = _database_work()
    app = FastAPI()

    @app.post("/rows", status_code=201, response_model=_Created)
    def post_row(row: _Row) -> _Created:
        return _Created(id=create(row.name))

    @app.get("/rows/{row_id}")
    def get_row(row_id: str) -> dict[str, Any]:
        found = get(row_id)
        if found is None:
            raise HTTPException(404)
        return found

    return app
