"""/docs and /redoc work offline: the pages and their assets come from the edge itself,
the OpenAPI document declares the bearer scheme and Courier's error envelope on every
route (never FastAPI's 422 shape), its examples are accepted as they stand, and
COURIER_API_DOCS=false turns it all off (issue 11: 7)."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import EdgeFactory, Node

UNAUTHENTICATED = {"/healthz", "/readyz", "/metrics"}


async def assets(node: Node, path: str) -> list[str]:
    r = await node.http.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://", html), "a page must not load anything from outside"
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    for url in urls:
        assert url.startswith("/docs-assets/"), url
        got = await node.http.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 1000, url
    return urls


async def test_docs_and_redoc_are_served_by_the_edge(edge: EdgeFactory) -> None:
    node = await edge()
    swagger = await assets(node, "/docs")
    assert {u.rsplit("/", 1)[1] for u in swagger} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    redoc = await assets(node, "/redoc")
    assert any(u.endswith("/redoc.standalone.js") for u in redoc)
    page = (await node.http.get("/docs")).text
    assert '"persistAuthorization": true' in page and '"validatorUrl": null' in page


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


async def test_openapi_declares_bearer_and_the_error_envelope_everywhere(
    edge: EdgeFactory,
) -> None:
    node = await edge()
    doc = (await node.http.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT: `courier token backend --role service` (or `--role admin`).",
    }
    assert "HTTPValidationError" not in str(doc) and "ValidationError" not in str(
        doc["components"]["schemas"]
    )
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert doc["components"]["schemas"]["ErrorEnvelope"]["required"] == ["error"]
    seen = 0
    for method, path, op in operations(doc):
        if path in UNAUTHENTICATED:
            assert "security" not in op, path
            continue
        seen += 1
        assert op["security"] == [{"bearer": []}], (method, path)
        statuses = set(op["responses"])
        assert {"401", "503"} <= statuses, (method, path, statuses)
        for status, resp in op["responses"].items():
            if status.startswith(("4", "5")):
                content = resp["content"]["application/json"]
                assert content["schema"] == envelope, (method, path, status)
                assert set(content["example"]["error"]) == {"code", "detail"}
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, (method, path)
    assert seen >= 13


async def test_what_the_docs_promise_is_what_the_api_answers(edge: EdgeFactory) -> None:
    node = await edge()
    doc = (await node.http.get("/openapi.json")).json()
    op = doc["paths"]["/v1/messages"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    service = {"Authorization": f"Bearer {node.token('backend', role='service')}"}
    for name, example in examples.items():  # "Try it out" with the Authorize button
        r = await node.http.post("/v1/messages", json=example["value"], headers=service)
        assert str(r.status_code) in op["responses"] and r.status_code == 202, (name, r.text)
    answers = {
        "401": await node.http.post("/v1/messages", json=examples["one user"]["value"]),
        "403": await node.http.post(
            "/v1/messages",
            json=examples["one user"]["value"],
            headers={"Authorization": f"Bearer {node.token('alice')}"},
        ),
        "422": await node.http.post("/v1/messages", json={"user_id": "a"}, headers=service),
        "400": await node.http.post(
            "/v1/messages",
            content=b'{"user_id": "alice", "payload": ',
            headers={**service, "Content-Type": "application/json"},
        ),
    }
    for status, r in answers.items():
        assert str(r.status_code) == status and status in op["responses"], (status, r.text)
        assert set(r.json()["error"]) == {"code", "detail"}
        assert (
            r.json()["error"]["code"]
            == op["responses"][status]["content"]["application/json"]["example"]["error"]["code"]
        )


async def test_docs_can_be_turned_off(edge: EdgeFactory) -> None:
    node = await edge(api_docs=False)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui.css"):
        r = await node.http.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    assert (await node.http.get("/healthz")).status_code == 200
