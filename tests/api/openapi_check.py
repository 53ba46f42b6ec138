#!/usr/bin/env python3
"""Walks every operation of a live traild's OpenAPI document and checks each
response against it: the status is documented for the operation, and the
body validates against the documented schema for its content type (JSON
Schema 2020-12, python3-jsonschema). Fails when the document is not valid
against the OpenAPI 3.1 schema, an operation of the document was not
exercised, or a response does not conform.

    openapi_check.py --port P --token T --other-token O --tenant acme --diff-sequence N
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
import warnings

import jsonschema

# Debian 12 ships jsonschema 4.10, whose RefResolver later releases deprecate.
warnings.filterwarnings("ignore", category=DeprecationWarning)

problems = []


def request(port, method, path, token=None, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def check(doc, port, method, template, path, status_expected, token=None, body=None, headers=None):
    op = doc["paths"].get(template, {}).get(method.lower())
    name = f"{method} {path}"
    if op is None:
        problems.append(f"{name}: {method} {template} is not in the document")
        return None
    status, resp_headers, data = request(port, method, path, token, body, headers)
    exercised.add((template, method.lower()))
    if status != status_expected:
        problems.append(f"{name}: status {status}, expected {status_expected}: {data[:200]!r}")
    spec = op["responses"].get(str(status))
    if spec is None:
        problems.append(f"{name}: status {status} is not documented for {op['operationId']}")
        return data
    spec = resolve(doc, spec)
    if "X-Request-Id" not in resp_headers and template.startswith("/v1/tenants"):
        problems.append(f"{name}: no X-Request-Id")
    ctype = (resp_headers.get("Content-Type") or "").split(";")[0].strip()
    content = spec.get("content", {})
    if ctype not in content:
        problems.append(f"{name}: content type {ctype!r} is not documented for status {status}")
        return data
    schema = content[ctype]["schema"]
    validator = jsonschema.Draft202012Validator(schema, resolver=jsonschema.RefResolver.from_schema(doc))
    if ctype == "application/json":
        value = json.loads(data)
        for e in validator.iter_errors(value):
            problems.append(f"{name}: {e.message} at {list(e.absolute_path)}")
    elif ctype == "application/x-ndjson":
        line_schema = "LedgerLine" if "format=ledger" in path else "CommittedEvent"
        line_validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/" + line_schema},
                                                         resolver=jsonschema.RefResolver.from_schema(doc))
        for line in data.decode().splitlines():
            for e in line_validator.iter_errors(json.loads(line)):
                problems.append(f"{name}: an NDJSON line: {e.message}")
    elif ctype == "text/csv":
        if not data.decode().startswith("sequence,"):
            problems.append(f"{name}: the CSV has no header row")
    print(f"{status} {name}")
    return data


def check_stream(doc, port, path, token):
    """A live stream answers 200 text/event-stream; its first event (after
    sequence 0) carries a committed event. Read until then, then hang up."""
    template = "/v1/tenants/{tenant_id}/events:stream"
    exercised.add((template, "get"))
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        if r.status != 200 or ctype != "text/event-stream":
            problems.append(f"GET {path}: {r.status} {ctype}")
            return
        data = None
        while data is None:
            line = r.readline().decode()
            if not line:
                break
            if line.startswith("data: "):
                data = json.loads(line[6:])
    if data is None:
        problems.append(f"GET {path}: the stream ended before an event")
        return
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/CommittedEvent"},
                                                resolver=jsonschema.RefResolver.from_schema(doc))
    for e in validator.iter_errors(data):
        problems.append(f"GET {path}: a streamed event: {e.message}")
    print(f"200 GET {path}")


def main():
    global exercised
    exercised = set()
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True, help="audit:read, audit:write and audit:export for --tenant")
    ap.add_argument("--other-token", required=True, help="a token of another tenant")
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--diff-sequence", type=int, required=True, help="an event of --tenant with changes")
    a = ap.parse_args()
    status, _, data = request(a.port, "GET", "/v1/openapi.json")
    doc = json.loads(data)
    # The document itself, against the OpenAPI 3.1 schema (what generators and
    # validators check before they read anything): tests/api/ORIGIN.md.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi-3.1-schema.json")) as f:
        oas = json.load(f)
    for error in jsonschema.Draft202012Validator(oas).iter_errors(doc):
        where = "/".join(str(p) for p in error.absolute_path)
        problems.append(f"the document is not valid OpenAPI 3.1 at /{where}: {error.message[:300]}")
    if doc.get("openapi") != "3.1.0":
        problems.append("the document is not OpenAPI 3.1.0")
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
    t, ev = a.tenant, f"/v1/tenants/{a.tenant}/events"
    p, tok = a.port, a.token
    check(doc, p, "GET", "/v1/openapi.json", "/v1/openapi.json", 200)
    check(doc, p, "GET", "/healthz", "/healthz", 200)
    check(doc, p, "GET", "/readyz", "/readyz", 200)
    T = "/v1/tenants/{tenant_id}/events"
    page = json.loads(check(doc, p, "GET", T, ev + "?page_size=2", 200, tok))
    if page.get("next_page_token"):
        check(doc, p, "GET", T, ev + "?page_size=2&page_token=" + page["next_page_token"], 200, tok)
    check(doc, p, "GET", T, ev + "?after_sequence=0&order=asc&page_size=5", 200, tok)
    check(doc, p, "GET", T, ev + "?bogus=1", 400, tok)
    check(doc, p, "GET", T, ev, 401)
    check(doc, p, "GET", T, ev, 403, a.other_token)
    S = "/v1/tenants/{tenant_id}/events/{sequence}"
    check(doc, p, "GET", S, f"{ev}/1", 200, tok)
    check(doc, p, "GET", S, f"{ev}/999999", 404, tok)
    check(doc, p, "GET", S, f"{ev}/abc", 400, tok)
    D = "/v1/tenants/{tenant_id}/events/{sequence}/diff"
    check(doc, p, "GET", D, f"{ev}/{a.diff_sequence}/diff", 200, tok)
    check(doc, p, "GET", D, f"{ev}/999999/diff", 404, tok)
    X = "/v1/tenants/{tenant_id}/export"
    check(doc, p, "GET", X, f"/v1/tenants/{t}/export?format=ndjson", 200, tok)
    check(doc, p, "GET", X, f"/v1/tenants/{t}/export?format=csv", 200, tok)
    check(doc, p, "GET", X, f"/v1/tenants/{t}/export?format=xml", 400, tok)
    check(doc, p, "GET", X, f"/v1/tenants/{t}/export?format=ledger&from_sequence=1", 200, tok)
    check(doc, p, "GET", X, f"/v1/tenants/{t}/export?format=ledger&actor_id=u", 400, tok)
    L = "/v1/tenants/{tenant_id}/events:stream"
    check_stream(doc, p, ev + ":stream?after_sequence=0", tok)
    check(doc, p, "GET", L, ev + ":stream?page_size=5", 400, tok)
    check(doc, p, "GET", L, ev + ":stream", 401)
    check(doc, p, "GET", L, ev + ":stream", 403, a.other_token)
    me = json.loads(check(doc, p, "GET", "/v1/me", "/v1/me", 200, tok))
    if me.get("tenants") != [t]:
        problems.append(f"GET /v1/me: {me}")
    check(doc, p, "GET", "/v1/me", "/v1/me", 401)
    check(doc, p, "GET", "/v1/integrity/public-key", "/v1/integrity/public-key", 200, tok)
    check(doc, p, "GET", "/v1/integrity/public-key", "/v1/integrity/public-key", 401)
    C = "/v1/tenants/{tenant_id}/checkpoints"
    cps = json.loads(check(doc, p, "GET", C, f"/v1/tenants/{t}/checkpoints?limit=1", 200, tok))
    if not cps.get("checkpoints"):
        problems.append("GET checkpoints: no checkpoint of the tenant")
    check(doc, p, "GET", C, f"/v1/tenants/{t}/checkpoints?limit=0", 400, tok)
    check(doc, p, "GET", C, f"/v1/tenants/{t}/checkpoints", 403, a.other_token)
    V = "/v1/tenants/{tenant_id}/verify"
    verdict = json.loads(check(doc, p, "GET", V, f"/v1/tenants/{t}/verify?against=broker", 200, tok))
    if not verdict.get("verified"):
        problems.append(f"GET verify: the untouched ledger does not verify: {verdict}")
    check(doc, p, "GET", V, f"/v1/tenants/{t}/verify?against=db", 400, tok)
    event = {"tenant_id": t, "action": "openapi.check", "actor": {"type": "user", "id": "checker"},
             "primary_resource": {"type": "doc", "id": "d"}}
    key = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    body = json.dumps(event).encode()
    check(doc, p, "POST", T, ev, 201, tok, body, key)
    check(doc, p, "POST", T, ev, 200, tok, body, key)
    check(doc, p, "POST", T, ev, 400, tok, b'{"tenant_id": "' + t.encode() + b'"}', {"Content-Type": "application/json"})
    B = "/v1/tenants/{tenant_id}/events:batch"
    check(doc, p, "POST", B, ev + ":batch", 200, tok, json.dumps([event, {"tenant_id": t}]).encode(),
          {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
    check(doc, p, "POST", B, ev + ":batch", 400, tok, b"[]", {"Content-Type": "application/json"})
    documented = {(path, m) for path, ops in doc["paths"].items() for m in ops if m in ("get", "post", "put", "delete", "patch")}
    for missing in sorted(documented - exercised):
        problems.append(f"{missing[1].upper()} {missing[0]}: documented but never exercised by this check")
    for pr in problems:
        print("PROBLEM:", pr)
    print(f"openapi_check: {len(exercised)} operations exercised, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
