#!/usr/bin/env python3
"""Trims a vendor's OpenAPI description to the operations keyaudit calls.

    scripts/trim-openapi.py [--responses EXTRA.json] FULL.json OUT.json 'GET /orgs/{org}/audit-log' ...

Keeps the named operations (method and path exactly as the description spells the path),
every component they reference (transitively: schemas, parameters, responses, headers,
request bodies, examples), the security schemes, `openapi`, `info` and `servers`.
Everything else is dropped. JSON in, JSON out (Prism reads both); standard library only.

`--responses EXTRA.json` adds, to every kept operation that does not describe it, each
response of EXTRA.json (an object: status code to response object, which may reference
the description's own components). It is for answers a vendor documents outside its
description (an error-codes page) and must say so in its own `description`s.
Exits non-zero, naming it, when an operation is not in the description.
"""

import json
import sys

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def refs(node, out):
    """Collects every local `$ref` under `node` into `out`."""
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/"):
            out.add(r)
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def resolve(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def trim(doc, wanted):
    paths = {}
    missing = []
    for spec in wanted:
        method, _, path = spec.partition(" ")
        method = method.lower()
        item = doc.get("paths", {}).get(path)
        if method not in METHODS or item is None or method not in item:
            missing.append(spec)
            continue
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k not in METHODS})
        kept[method] = item[method]
    if missing:
        sys.exit("not in the description: " + ", ".join(missing))
    out = {k: doc[k] for k in ("openapi", "info", "servers", "security") if k in doc}
    out["paths"] = paths
    seen = set()
    todo = set()
    refs(paths, todo)
    schemes = doc.get("components", {}).get("securitySchemes")
    while todo:
        r = todo.pop()
        if r in seen:
            continue
        seen.add(r)
        refs(resolve(doc, r), todo)
    components = {}
    for r in sorted(seen):
        parts = r[2:].split("/")
        if parts[0] != "components" or len(parts) != 3:
            continue
        components.setdefault(parts[1], {})[parts[2]] = resolve(doc, r)
    if schemes:
        components["securitySchemes"] = schemes
    if components:
        out["components"] = components
    return out


def add_responses(doc, extra):
    """Adds the responses of `extra` to every operation that lacks their status code."""
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            if method not in METHODS:
                continue
            responses = op.setdefault("responses", {})
            for status, response in extra.items():
                responses.setdefault(status, response)


def main():
    args = sys.argv[1:]
    extra = None
    if len(args) >= 2 and args[0] == "--responses":
        with open(args[1], encoding="utf-8") as f:
            extra = json.load(f)
        args = args[2:]
    if len(args) < 3:
        sys.exit(__doc__)
    with open(args[0], encoding="utf-8") as f:
        doc = json.load(f)
    if extra:
        add_responses(doc, extra)
    out = trim(doc, args[2:])
    with open(args[1], "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
