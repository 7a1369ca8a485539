"""The OpenAPI document: well-formed, every API route described, every reference resolvable."""
import re

from app import create_app
from app.openapi import openapi_document
from pipeline.settings import Settings


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def test_oapi001_document_shape_and_references():
    doc = openapi_document()
    assert doc["openapi"].startswith("3.0")
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert method in ("get", "post", "delete") and op["summary"]
            assert any(code in op["responses"] for code in ("200", "201", "202")), (path, method)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path


def test_oapi002_every_api_route_is_documented(tmp_path):
    server = create_app(Settings.from_env({}, redis_url="redis://127.0.0.1:1/0", database_url="",
                                          home=str(tmp_path)))
    documented = {(p, m.upper()) for p, ops in openapi_document()["paths"].items() for m in ops}
    routes = set()
    for rule in server.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint not in ("api.unknown", "api.openapi"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1"):])
            routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented
