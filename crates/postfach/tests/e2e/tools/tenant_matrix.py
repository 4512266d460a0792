#!/usr/bin/env python3
"""Tenant isolation matrix (M1): every operation of the OpenAPI document, called by every
actor, on the objects of both organizations. Prints a JSON report:

  {"calls": N, "breaches": [...], "in_tenant_refusals": [...], "skipped": [...]}

A breach is a 2xx answer to an actor acting on the other organization's objects, a 2xx
answer to an external member without grants acting on its own organization's mail service,
or a list that names the other organization's things. An in-tenant refusal is a 403 to an
administrator or legal representative acting on its own organization (operator-only
operations excepted).

Usage: tenant_matrix.py BASE_URL SETUP_JSON
SETUP_JSON: {"actors": {name: {"token": T, "home": "A"|"B", "kind": "manager"|"external"}},
             "objects": {"A": {...}, "B": {...}}}  (see fill() for the object names)
"""
import json
import re
import sys
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
SETUP = json.load(open(sys.argv[2]))
PW = "G7#kq2LmWz-x-Matrix"

# Not tied to an organization's objects (the caller's own account, public endpoints).
UNTENANTED = re.compile(
    r"^/api/v1/(auth/|invitations/activate|me(/|$)|openapi\.json|healthz)"
)
# Operations that only the platform operator (or, for an account's credentials, the account
# itself) may perform: administrators get 403 by design.
OPERATOR_ONLY = {
    ("post", "/api/v1/orgs"),
    ("post", "/api/v1/orgs/{org}/users"),
    ("put", "/api/v1/users/{login}/password"),
    ("get", "/api/v1/users/{login}/api-keys"),
    ("post", "/api/v1/users/{login}/api-keys"),
    ("delete", "/api/v1/users/{login}/api-keys/{id}"),
}


def call(method, path, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method.upper())
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def get_spec():
    with urllib.request.urlopen(BASE + "/api/v1/openapi.json", timeout=30) as r:
        return json.load(r)


SPEC = get_spec()


def resolve(schema):
    while isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = SPEC["components"]["schemas"][name]
    return schema


# Values by property name: what a real client would send, within the caller's objects.
def value_for(name, schema, objs):
    s = resolve(schema)
    if "oneOf" in s or "anyOf" in s:
        options = s.get("oneOf") or s.get("anyOf")
        options = [o for o in options if resolve(o).get("type") != "null"]
        return value_for(name, options[0], objs) if options else None
    by_name = {
        "password": PW,
        "new_password": PW,
        "local_part": "matrix",
        "name": "matrix",
        "login": objs["member"],
        "role": "external",
        "level": "use",
        "offer": "standard",
        "domain": objs["domain"],
        "org": objs["org"],
        "alias": "matrix-alias",
        "target": objs["address"],
        "to": "matrix-renamed",
        "new": "matrix-renamed",
        "folder": "INBOX",
        "entry": "someone@example.org",
        "kind": "allow",
        "source": "require \"fileinto\";\nkeep;\n",
        "text": "matrix",
        "message": "matrix",
        "subject": "matrix",
        "active": False,
        "activate": False,
        "csv": "local_part,password\n",
    }
    if name in by_name:
        v = by_name[name]
        if "enum" in s and v not in s["enum"]:
            return s["enum"][0]
        return v
    if "enum" in s:
        return s["enum"][0]
    t = s.get("type")
    if isinstance(t, list):
        t = [x for x in t if x != "null"][0]
    if t == "string":
        return "matrix"
    if t == "integer":
        return 1
    if t == "boolean":
        return False
    if t == "array":
        return []
    if t == "object" or "properties" in s:
        return body_for(s, objs)
    return None


def body_for(schema, objs):
    s = resolve(schema)
    out = {}
    for prop in s.get("required", []):
        out[prop] = value_for(prop, s["properties"][prop], objs)
    return out


def fill(path, objs):
    """The path with its parameters set to one organization's objects."""
    if "/domains/{name}" in path:
        path = path.replace("{name}", objs["domain"])
    if "/templates/{name}" in path:
        path = path.replace("{name}", objs["template"])
    if "/sieve/{target}/{name}" in path:
        path = path.replace("{name}", objs["script"])
    if "/autoreplies/{name}" in path:
        path = path.replace("{name}", objs["autoreply"])
    return (
        path.replace("{org}", objs["org"])
        .replace("{domain}", objs["domain"])
        .replace("{address}", objs["address"])
        .replace("{alias}", objs["alias"])
        .replace("{login}", objs["member"])
        .replace("{id}", str(objs["key_id"]))
        .replace("{target}", objs["address"])
        .replace("{kind}", "allow")
        .replace("{entry}", "listed@example.org")
    )


def operations():
    order = {"get": 0, "head": 0, "post": 1, "put": 1, "patch": 1, "delete": 2}
    ops = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method not in order:
                continue
            ops.append((order[method], method, path, op))
    ops.sort(key=lambda o: (o[0], o[2]))
    return [(m, p, op) for _, m, p, op in ops]


def body_of(op, objs):
    rb = op.get("requestBody")
    if not rb:
        return None
    content = rb.get("content", {})
    if "application/json" in content:
        return body_for(content["application/json"]["schema"], objs)
    return None


def names_of(objs):
    return [objs["org"], objs["domain"], objs["address"], objs["alias"]]


def must_fail(report, name, actor, method, path, op, target, body_objs):
    """Calls `path` on `target`'s objects (body from `body_objs`); a success is a breach."""
    url = fill(path, target)
    status, text = call(method, url, actor["token"], body_of(op, body_objs))
    report["calls"] += 1
    if 200 <= status < 300:
        report["breaches"].append(
            {"actor": name, "call": f"{method.upper()} {url}", "status": status,
             "answer": text[:300]}
        )


def main():
    report = {"calls": 0, "breaches": [], "in_tenant_refusals": [], "skipped": []}
    ops = operations()
    actors = SETUP["actors"]
    objects = SETUP["objects"]

    def other(home):
        return "B" if home == "A" else "A"

    # 0. Lists must not name the other organization's things (asked before the actors have
    # typed those names themselves: their own activity log then shows their attempts).
    for name, actor in actors.items():
        theirs = objects[other(actor["home"])]
        for method, path, op in ops:
            if UNTENANTED.match(path) or "{" in path or method != "get":
                continue
            status, text = call(method, path, actor["token"])
            report["calls"] += 1
            leaked = [n for n in names_of(theirs) if n in text]
            if 200 <= status < 300 and leaked:
                report["breaches"].append(
                    {"actor": name, "call": f"{method.upper()} {path}", "leaked": leaked}
                )
    # 1. Every actor on the other organization's objects: nothing may succeed.
    for name, actor in actors.items():
        theirs = objects[other(actor["home"])]
        mine = objects[actor["home"]]
        for method, path, op in ops:
            if UNTENANTED.match(path) or "{" not in path:
                continue
            must_fail(report, name, actor, method, path, op, theirs, mine)
    # 2. An external member without grants on its own organization's mail service.
    for name, actor in actors.items():
        if actor["kind"] != "external":
            continue
        mine = objects[actor["home"]]
        for method, path, op in ops:
            if UNTENANTED.match(path) or "{" not in path:
                continue
            if path.startswith("/api/v1/orgs/{org}/users") and method == "get":
                continue  # lists the member itself
            if path.startswith("/api/v1/users/{login}") and mine["member"] == actor.get("login"):
                continue
            must_fail(report, name, actor, method, path, op, mine, mine)
    # 3. Managers on their own organization: no 403 (operator-only operations excepted).
    for name, actor in actors.items():
        if actor["kind"] != "manager":
            continue
        mine = objects[actor["home"]]
        for method, path, op in ops:
            if UNTENANTED.match(path) or "{" not in path:
                continue
            if (method, path) in OPERATOR_ONLY:
                report["skipped"].append(f"{method.upper()} {path}")
                continue
            url = fill(path, mine)
            status, text = call(method, url, actor["token"], body_of(op, mine))
            report["calls"] += 1
            if status == 403:
                report["in_tenant_refusals"].append(
                    {"actor": name, "call": f"{method.upper()} {url}", "answer": text[:300]}
                )
    print(json.dumps(report))


main()
