"""/api/docs: a readable reference of the API, rendered on the server from the same
OpenAPI document (no JavaScript, no CDN)."""

from __future__ import annotations

import html
from typing import Any

import orjson
from aiohttp import web

from taskflowd.api.openapi import REGISTRY_KEY

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;
color:#1b1f24;background:#fff}
@media (prefers-color-scheme:dark){body{color:#e6e8eb;background:#15181c}
pre,code{background:#22272e!important}}
h2{margin-top:2.5rem;border-bottom:1px solid #8884}
.op{margin:1rem 0;padding:.5rem 1rem;border-left:4px solid #3b6fd8}
.m{font-weight:700;font-family:ui-monospace,monospace;margin-right:.5rem}
pre,code{background:#f3f4f6;border-radius:4px;padding:.1rem .3rem;overflow-x:auto}
pre{padding:.6rem}
"""


def _ref_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else ""


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    parts = [
        f'<div class="op" id="{html.escape(op.get("operationId", ""))}">',
        f'<p><span class="m">{method.upper()}</span><code>{html.escape(path)}</code> — '
        f"{html.escape(op.get('summary', ''))}</p>",
    ]
    params = op.get("parameters", [])
    if params:
        names = ", ".join(
            f"<code>{html.escape(p['name'])}</code> ({html.escape(p['in'])})" for p in params
        )
        parts.append(f"<p>Parameters: {names}</p>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        parts.append(
            f"<p>Body: <a href='#{_ref_name(body.get('schema'))}'>"
            f"{html.escape(_ref_name(body.get('schema')))}</a></p>"
        )
    statuses = ", ".join(html.escape(code) for code in op.get("responses", {}))
    parts.append(f"<p>Responses: {statuses}</p></div>")
    return "".join(parts)


def render(document: dict[str, Any]) -> str:
    sections: dict[str, list[str]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            sections.setdefault(tag, []).append(_operation(method, path, op))
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{html.escape(document['info']['title'])} API</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(document['info']['title'])} API "
        f"{html.escape(document['info']['version'])}</h1>",
        "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a>. "
        "Send <code>Authorization: Bearer &lt;accessToken&gt;</code> from "
        "<code>POST /api/v1/auth/login</code>. Errors are RFC 9457 problem details.</p>",
    ]
    for tag, operations in sections.items():
        out.append(f"<h2>{html.escape(tag)}</h2>")
        out.extend(operations)
    out.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        pretty = orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()
        out.append(f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3>")
        out.append(f"<pre>{html.escape(pretty)}</pre>")
    out.append("</body></html>")
    return "".join(out)


async def api_docs(request: web.Request) -> web.Response:
    page = render(await request.app[REGISTRY_KEY].served_document())
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def install(app: web.Application) -> None:
    app.router.add_get("/api/docs", api_docs)
