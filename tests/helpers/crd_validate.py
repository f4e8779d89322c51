#!/usr/bin/python3
"""Validates rendered manifests against a CustomResourceDefinition schema.

Reads one JSON request on stdin:

    {"schema": <the openAPIV3Schema of one served CRD version>,
     "strict": true,
     "documents": [{"name": "vs", "value": <manifest or spec>}, ...]}

and writes one JSON answer on stdout:

    {"results": [{"name": "vs", "valid": false,
                  "errors": [{"path": ".spec.http[0].route[0].weight",
                              "message": "'50' is not of type 'integer'"}]}]}

Exit status 0 when every document was checked (valid or not), 2 when the
request itself is unusable.  The CRD YAML is parsed by the caller (rollout's
own YAML reader), so this needs only Debian's python3-jsonschema.

How the Kubernetes dialect of OpenAPI v3 (structural schemas) is mapped to
JSON Schema (Draft 4, whose boolean exclusiveMinimum/Maximum and `nullable`-
free typing are what OpenAPI 3.0 inherits):

* `nullable: true` -> null is also accepted for that node;
* `x-kubernetes-int-or-string: true` -> integer or string (the CRDs also
  spell this as anyOf, which is kept);
* `x-kubernetes-preserve-unknown-fields: true` -> unknown fields allowed
  under that node;
* apiVersion, kind and metadata are implied at the root (as the API server
  does: Istio's schemas only describe spec and status);
* strict (the default): every other object with `properties` refuses
  unknown fields (`additionalProperties: false`), which is what the API
  server does with `fieldValidation=Strict` (without it, it prunes them
  silently: a typo would vanish instead of failing);
* formats `int32`/`int64` are checked as ranges; other formats are not
  checked (the API server checks only a few of them);
* `x-kubernetes-validations` (CEL rules), `x-kubernetes-list-type`,
  `x-kubernetes-list-map-keys`, `x-kubernetes-map-type` and
  `x-kubernetes-embedded-resource` are ignored: they need a CEL evaluator
  or describe merge semantics, not shape.
"""
import json
import sys

import jsonschema

INT_RANGES = {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}


def convert(node, strict):
    """A Draft 4 schema from a Kubernetes structural schema node."""
    if isinstance(node, list):
        return [convert(x, strict) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: convert(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = convert(value, strict)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if strict and not preserve and "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("nullable") is True and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
    return out


def format_checker():
    checker = jsonschema.FormatChecker(formats=())

    def ranged(lo, hi):
        def check(value):
            if isinstance(value, bool) or not isinstance(value, int):
                return True  # the type keyword judges non-integers
            return lo <= value <= hi
        return check

    for name, (lo, hi) in INT_RANGES.items():
        checker.checks(name)(ranged(lo, hi))
    return checker


def path_of(error):
    out = ""
    for p in error.absolute_path:
        out += "[%d]" % p if isinstance(p, int) else "." + str(p)
    return out or "."


def main():
    try:
        req = json.load(sys.stdin)
        schema = req["schema"]
        docs = req["documents"]
        strict = req.get("strict", True)
        if not isinstance(schema, dict) or not isinstance(docs, list):
            raise ValueError("schema must be an object and documents a list")
    except (ValueError, KeyError, TypeError) as e:
        sys.stderr.write("crd_validate: bad request: %s\n" % e)
        return 2
    draft = convert(schema, strict)
    props = draft.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props.setdefault("metadata", {"type": "object"})
    try:
        jsonschema.Draft4Validator.check_schema(draft)
    except jsonschema.exceptions.SchemaError as e:
        sys.stderr.write("crd_validate: the schema is not valid JSON Schema: %s\n" % e.message)
        return 2
    validator = jsonschema.Draft4Validator(draft, format_checker=format_checker())
    results = []
    for i, doc in enumerate(docs):
        name = doc.get("name", "document %d" % (i + 1)) if isinstance(doc, dict) else "document %d" % (i + 1)
        value = doc.get("value") if isinstance(doc, dict) else None
        errors = sorted(validator.iter_errors(value), key=lambda e: (path_of(e), e.message))
        results.append({"name": name, "valid": not errors,
                        "errors": [{"path": path_of(e), "message": e.message} for e in errors]})
    json.dump({"results": results}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
