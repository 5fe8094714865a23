"""The committed OpenAPI documents are current and describe exactly the routes served."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ingest import openapi as ingest_openapi
from ingest.app import create_app as create_ingest
from ingest.settings import IngestSettings
from processors import openapi as processors_openapi
from processors.app import create_app as create_processors
from processors.settings import ProcessorSettings
from tests.unit.test_ingest_http import FakePublisher

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
Routes = set[tuple[str, str]]


def documented(doc: dict[str, object]) -> Routes:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(path, m.upper()) for path, item in paths.items() for m in item if m in METHODS}


def without_implicit_head(routes: Routes) -> Routes:
    """aiohttp and Faust add HEAD to every GET (and Faust to every view): not documented."""
    gets = {path for path, method in routes if method == "GET"}
    return {(p, m) for p, m in routes if m != "HEAD" or p not in gets}


@pytest.mark.parametrize("module", [ingest_openapi, processors_openapi])
def test_committed_document_is_current_openapi_31(module: ModuleType) -> None:
    doc = module.document()
    file: Path = module.FILE
    assert file.read_text(encoding="utf-8") == ingest_openapi.render(doc), (
        f"stale {file.name}: run `python -m {module.__name__}` and commit"
    )
    assert doc["openapi"] == "3.1.0"
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"], ref


def test_ingest_documents_every_route_it_registers_and_serves_the_document() -> None:
    app = create_ingest(IngestSettings(sources={}), publisher=FakePublisher())
    registered = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
    }
    assert without_implicit_head(registered) == documented(ingest_openapi.document())


async def test_ingest_serves_the_committed_document() -> None:
    app = create_ingest(IngestSettings(sources={}), publisher=FakePublisher())
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/openapi.json")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.read() == ingest_openapi.FILE.read_bytes()


def test_processors_document_every_page_they_register(tmp_path: Path) -> None:
    settings = ProcessorSettings(datadir=tmp_path, admin_token=None)
    app, _ = create_processors(settings)
    # Faust lists HEAD for every view whether it implements it or not (none of ours does).
    registered = {
        (path, method)
        for path, view in app.web.views.items()
        for method in view.get_methods() - {"HEAD"}
    }
    assert registered == documented(processors_openapi.document())
    # What the router serves is what the views say (no page registered another way).
    router: Any = app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver
    routed = {(r.resource.canonical, r.method) for r in router.routes()}
    assert without_implicit_head(routed) - {(p, "HEAD") for p, _ in routed} == registered


async def test_ingest_index_lists_every_documented_route_and_the_docs() -> None:
    app = create_ingest(IngestSettings(sources={}), publisher=FakePublisher())
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        index = await resp.json()
        jsonschema.validate(index, ingest_openapi.INDEX_SCHEMA)
        assert index["service"] == "mailpulse ingest"
        listed = {(r["path"], r["method"]) for r in index["routes"]}
        assert listed == documented(ingest_openapi.document())
        assert all(r["summary"] for r in index["routes"])
        docs = await client.get(index["docs"]["openapi"])
        assert docs.status == 200
        assert (await client.get("/no-such-page")).status == 404
