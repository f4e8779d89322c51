"""Field management (server-side apply) and patch formats for the fake API server.

Model (follows sigs.k8s.io/structured-merge-diff, simplified):

* A *path* is a tuple of path elements in the managedFields (FieldsV1)
  spelling: "f:<field>", "k:<json of the key fields>", "v:<json value>".
* A *field set* is a Python set of paths.  A path is a member when the manager
  owns that node (a leaf, an atomic list/map, a list item).  FieldsV1 writes a
  member that also has children as {".": {}, ...children}.
* Schema knowledge is a small table (see `Schema`): associative lists of the
  built-in types (containers by name, ports by containerPort+protocol, ...),
  "set" lists (finalizers), atomic structs/maps (LabelSelector,
  Service.spec.selector) and granular maps (labels, annotations, data, ...).
  Every other list is atomic, as it is for CRDs without x-kubernetes-list-type
  (Istio's and Gateway API's top-level lists are atomic too).
* Apply = merge config into live, the applier's set becomes the set of the
  config, fields the applier owned before and nobody owns now are pruned,
  other managers owning a field whose value changes -> conflict (unless force,
  which takes the field away from them).
* Update (POST/PUT/PATCH) = the updater gains every field it added or
  changed (leaf granularity, plus "." for newly created granular maps), other
  managers lose those fields; removed fields are removed from every manager.
"""

import copy
import json
import re

# --------------------------------------------------------------------------
# schema knowledge

_POD_SPEC_ROOTS = {
    ("apps", "deployments"): ("spec", "template", "spec"),
    ("apps", "replicasets"): ("spec", "template", "spec"),
    ("", "pods"): ("spec",),
}
_TEMPLATE_META = {
    ("apps", "deployments"): ("spec", "template", "metadata"),
    ("apps", "replicasets"): ("spec", "template", "metadata"),
}
# relative to a PodSpec
_POD_ASSOC = {
    ("containers",): (("name",), {}),
    ("initContainers",): (("name",), {}),
    ("ephemeralContainers",): (("name",), {}),
    ("containers", "ports"): (("containerPort", "protocol"), {"protocol": "TCP"}),
    ("initContainers", "ports"): (("containerPort", "protocol"), {"protocol": "TCP"}),
    ("containers", "env"): (("name",), {}),
    ("initContainers", "env"): (("name",), {}),
    ("containers", "volumeMounts"): (("mountPath",), {}),
    ("initContainers", "volumeMounts"): (("mountPath",), {}),
    ("volumes",): (("name",), {}),
    ("imagePullSecrets",): (("name",), {}),
}
_POD_GRANULAR_MAPS = {("nodeSelector",), ("containers", "resources", "limits"),
                      ("containers", "resources", "requests"),
                      ("initContainers", "resources", "limits"),
                      ("initContainers", "resources", "requests")}
_META_ASSOC = {("metadata", "ownerReferences"): (("uid",), {})}
_META_SETS = {("metadata", "finalizers")}
_GRANULAR_MAPS = {("metadata", "labels"), ("metadata", "annotations")}


class Schema:
    """Answers list/map questions for one (group, resource)."""

    def __init__(self, group, resource, builtin):
        self.gr = (group, resource)
        self.builtin = builtin
        self.pod_root = _POD_SPEC_ROOTS.get(self.gr)
        self.tmpl_meta = _TEMPLATE_META.get(self.gr)

    def _pod_rel(self, names):
        r = self.pod_root
        if r and names[:len(r)] == r:
            return names[len(r):]
        return None

    def list_type(self, names):
        """("map", keys, defaults) | ("set",) | ("atomic",) for the list at names."""
        if names in _META_ASSOC:
            k, d = _META_ASSOC[names]
            return ("map", k, d)
        if names in _META_SETS:
            return ("set",)
        if not self.builtin:
            return ("atomic",)
        if self.tmpl_meta and names[len(self.tmpl_meta):] and names[:len(self.tmpl_meta)] == self.tmpl_meta:
            rel = ("metadata",) + names[len(self.tmpl_meta):]
            if rel in _META_ASSOC:
                k, d = _META_ASSOC[rel]
                return ("map", k, d)
            if rel in _META_SETS:
                return ("set",)
        rel = self._pod_rel(names)
        if rel is not None and rel in _POD_ASSOC:
            k, d = _POD_ASSOC[rel]
            return ("map", k, d)
        if names == ("status", "conditions"):
            return ("map", ("type",), {})
        if self.gr == ("", "services") and names == ("spec", "ports"):
            return ("map", ("port", "protocol"), {"protocol": "TCP"})
        return ("atomic",)

    def atomic_map(self, names):
        if not self.builtin:
            return False
        if self.gr in (("apps", "deployments"), ("apps", "replicasets")) and names == ("spec", "selector"):
            return True  # metav1.LabelSelector is +structType=atomic
        if self.gr == ("", "services") and names == ("spec", "selector"):
            return True  # +mapType=atomic
        return False

    def granular_map(self, names):
        """Maps (as opposed to structs): get a "." member when created by an Update."""
        if names in _GRANULAR_MAPS:
            return True
        if not self.builtin:
            return False
        if self.tmpl_meta and names[:len(self.tmpl_meta)] == self.tmpl_meta:
            if ("metadata",) + names[len(self.tmpl_meta):] in _GRANULAR_MAPS:
                return True
        if names in (("spec", "selector", "matchLabels"), ("data",), ("binaryData",), ("stringData",)):
            return True
        rel = self._pod_rel(names)
        return rel is not None and rel in _POD_GRANULAR_MAPS


def key_json(d):
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_key(item, keys, defaults):
    if not isinstance(item, dict):
        return None
    k = {}
    for name in keys:
        if name in item and item[name] is not None:
            k[name] = item[name]
        elif name in defaults:
            k[name] = defaults[name]
    return "k:" + key_json(k)


# --------------------------------------------------------------------------
# field sets

def fieldset(schema, obj, mode="apply"):
    """Set of paths for obj.  mode 'apply' = ToFieldSet of an applied config,
    'compare' = what a comparison sees (adds "." members for granular maps)."""
    out = set()
    if isinstance(obj, dict):
        _walk_map(schema, obj, (), (), out, mode)
    return out


def _walk_map(schema, m, path, names, out, mode):
    for k, v in m.items():
        p = path + ("f:" + k,)
        n = names + (k,)
        _walk_value(schema, v, p, n, out, mode)


def _walk_value(schema, v, p, n, out, mode):
    if v is None:
        out.add(p)
    elif isinstance(v, dict):
        if not v or schema.atomic_map(n):
            out.add(p)
            return
        if mode == "compare" and schema.granular_map(n):
            out.add(p)
        _walk_map(schema, v, p, n, out, mode)
    elif isinstance(v, list):
        lt = schema.list_type(n)
        if lt[0] == "atomic" or not v:
            out.add(p)
        elif lt[0] == "set":
            for x in v:
                out.add(p + ("v:" + key_json(x),))
        else:
            for item in v:
                kp = item_key(item, lt[1], lt[2])
                if kp is None:
                    out.add(p)
                    return
                ip = p + (kp,)
                out.add(ip)
                if isinstance(item, dict):
                    _walk_map(schema, item, ip, n, out, mode)
    else:
        out.add(p)


def set_to_fields(paths):
    """FieldsV1 JSON object for a set of paths."""
    root = {}
    members = set(paths)
    for p in sorted(paths, key=len):
        node = root
        for el in p:
            node = node.setdefault(el, {})
    def finish(node, prefix):
        out = {}
        if prefix in members and node and prefix:
            out["."] = {}
        for k in sorted(node):
            out[k] = finish(node[k], prefix + (k,))
        return out
    return finish(root, ())


def fields_to_set(fields, prefix=()):
    out = set()
    if not isinstance(fields, dict):
        return out
    for k, v in fields.items():
        if k == ".":
            if prefix:
                out.add(prefix)
            continue
        p = prefix + (k,)
        if not v:
            out.add(p)
        else:
            out |= fields_to_set(v, p)
    return out


def path_string(p):
    """Path as structured-merge-diff prints it: .spec.containers[name="a"].image"""
    s = []
    for el in p:
        kind, _, rest = el.partition(":")
        if kind == "f":
            s.append("." + rest)
        elif kind == "k":
            kv = json.loads(rest)
            s.append("[" + ",".join("%s=%s" % (k, _tostr(kv[k])) for k in sorted(kv)) + "]")
        elif kind == "v":
            s.append("[=%s]" % _tostr(json.loads(rest)))
        elif kind == "i":
            s.append("[%s]" % rest)
    return "".join(s)


def _tostr(v):
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    return str(v)


_MISSING = object()


def _item_matches(item, kind, want):
    """Is list item the one a "k:" (key fields) or "v:" (value) element names?
    The only defaulted key field of the built-in types is protocol (TCP)."""
    if kind == "v":
        return item == want
    return isinstance(item, dict) and all(
        item.get(k, "TCP" if k == "protocol" else None) == v for k, v in want.items())


def get_path(obj, p):
    cur = obj
    for el in p:
        kind, _, rest = el.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return _MISSING
            cur = cur[rest]
        elif kind in ("k", "v"):
            if not isinstance(cur, list):
                return _MISSING
            want = json.loads(rest)
            cur = next((item for item in cur if _item_matches(item, kind, want)), _MISSING)
            if cur is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return cur


def remove_path(obj, p):
    """Remove the node at p (in place); drop maps emptied by the removal."""
    if not p:
        return
    parent = get_path(obj, p[:-1])
    if parent is _MISSING:
        return
    el = p[-1]
    kind, _, rest = el.partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        want = json.loads(rest)
        for i, item in enumerate(parent):
            if _item_matches(item, kind, want):
                del parent[i]
                break
    if len(p) > 1 and isinstance(parent, (dict, list)) and not parent and p[-2].startswith("f:"):
        remove_path(obj, p[:-1])


# --------------------------------------------------------------------------
# merging an applied configuration

def merge_apply(schema, live, cfg, names=()):
    if not isinstance(live, dict) or not isinstance(cfg, dict):
        return copy.deepcopy(cfg)
    out = copy.deepcopy(live)
    for k, v in cfg.items():
        n = names + (k,)
        lv = out.get(k, _MISSING)
        if isinstance(v, dict) and isinstance(lv, dict) and v and not schema.atomic_map(n):
            out[k] = merge_apply(schema, lv, v, n)
        elif isinstance(v, list) and isinstance(lv, list):
            lt = schema.list_type(n)
            if lt[0] == "map":
                out[k] = _merge_assoc(schema, lv, v, n, lt[1], lt[2])
            elif lt[0] == "set":
                res = list(v)
                for x in lv:
                    if x not in res:
                        res.append(x)
                out[k] = res
            else:
                out[k] = copy.deepcopy(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_assoc(schema, live, cfg, names, keys, defaults):
    live_by_key = {}
    for it in live:
        live_by_key.setdefault(item_key(it, keys, defaults), it)
    res = []
    seen = set()
    for it in cfg:
        kk = item_key(it, keys, defaults)
        seen.add(kk)
        if kk in live_by_key and isinstance(it, dict):
            res.append(merge_apply(schema, live_by_key[kk], it, names))
        else:
            res.append(copy.deepcopy(it))
    for it in live:
        if item_key(it, keys, defaults) not in seen:
            res.append(copy.deepcopy(it))
    return res


# --------------------------------------------------------------------------
# comparison

def _leaves(paths):
    parents = set()
    for p in paths:
        for i in range(1, len(p)):
            parents.add(p[:i])
    return {p for p in paths if p not in parents}


def compare(schema, old, new):
    a = fieldset(schema, old, "compare")
    b = fieldset(schema, new, "compare")
    added = b - a
    removed = a - b
    modified = set()
    for p in _leaves(a) & _leaves(b):
        if get_path(old, p) != get_path(new, p):
            modified.add(p)
    return added, modified, removed


# --------------------------------------------------------------------------
# managedFields bookkeeping

class Manager:
    __slots__ = ("manager", "operation", "api_version", "subresource", "time", "set")

    def __init__(self, manager, operation, api_version, subresource="", time=None, fset=None):
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.subresource = subresource
        self.time = time
        self.set = fset if fset is not None else set()

    @property
    def ident(self):
        # the apiVersion is part of an Update manager's identity, not an Apply one's
        return (self.manager, self.operation,
                "" if self.operation == "Apply" else self.api_version, self.subresource)

    def describe(self):
        """printManager() of k8s.io/apimachinery .../managedfields/internal/conflict.go"""
        s = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            s += " with subresource %s" % json.dumps(self.subresource)
        if self.operation == "Update":
            s += " using %s" % self.api_version
        return s

    def entry(self):
        e = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            e["time"] = self.time
        e["fieldsType"] = "FieldsV1"
        e["fieldsV1"] = set_to_fields(self.set)
        if self.subresource:
            e["subresource"] = self.subresource
        return e


def decode_managers(entries):
    out = {}
    for e in entries or []:
        if not isinstance(e, dict) or not e.get("manager") and not e.get("operation"):
            continue
        m = Manager(e.get("manager", ""), e.get("operation", "Update"), e.get("apiVersion", ""),
                    e.get("subresource", ""), e.get("time"), fields_to_set(e.get("fieldsV1") or {}))
        out[m.ident] = m
    return out


def encode_managers(managers):
    ms = [m for m in managers.values() if m.set]
    ms.sort(key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource))
    return [m.entry() for m in ms]


class ApplyConflict(Exception):
    def __init__(self, conflicts):
        # conflicts: list of (Manager, path)
        Exception.__init__(self, "conflict")
        self.conflicts = conflicts

    def status_parts(self):
        causes = [{"reason": "FieldManagerConflict", "message": "conflict with %s" % m.describe(),
                   "field": path_string(p)} for m, p in self.conflicts]
        if len(self.conflicts) == 1:
            m, p = self.conflicts[0]
            msg = "Apply failed with 1 conflict: conflict with %s: %s" % (m.describe(), path_string(p))
        else:
            by = {}
            for m, p in self.conflicts:
                by.setdefault(m.manager if m.operation == "Apply" else json.dumps(
                    {"manager": m.manager, "operation": m.operation, "apiVersion": m.api_version}), (m, []))[1].append(p)
            lines = []
            for key in sorted(by):
                m, ps = by[key]
                lines.append("conflicts with %s:" % m.describe())
                lines.extend("- %s" % path_string(p) for p in ps)
            msg = "Apply failed with %d conflicts: %s" % (len(self.conflicts), "\n".join(lines))
        return msg, causes


def _update_others(managers, me, added, modified, removed, force):
    conflicts = []
    changed = added | modified
    for ident, m in list(managers.items()):
        if ident == me:
            continue
        for p in sorted(m.set & changed, key=path_string):
            conflicts.append((m, p))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    for ident, m in list(managers.items()):
        if ident == me:
            continue
        m.set = (m.set - changed) - removed
        if not m.set:
            del managers[ident]


def apply(schema, live, cfg, manager, api_version, force, now, managers):
    """Server-side apply of cfg (already stripped) onto live (stripped, {} when
    the object does not exist).  Returns the merged object; mutates managers."""
    me = Manager(manager, "Apply", api_version, "", now, fieldset(schema, cfg, "apply"))
    last = managers.get(me.ident)
    merged = merge_apply(schema, live, cfg)
    managers[me.ident] = me
    if last is not None and last.set:
        owned = set()
        for m in managers.values():
            owned |= m.set
        for p in sorted(last.set - owned, key=len, reverse=True):
            remove_path(merged, p)
    added, modified, removed = compare(schema, live, merged)
    _update_others(managers, me.ident, added, modified, removed, force)
    if not me.set:
        del managers[me.ident]
    return merged


def update(schema, old, new, manager, api_version, now, managers, subresource=""):
    """Ownership bookkeeping for a non-apply write of new over old (both stripped)."""
    me = Manager(manager, "Update", api_version, subresource, now)
    added, modified, removed = compare(schema, old, new)
    if not (added or modified or removed):
        return
    _update_others(managers, me.ident, added, modified, removed, True)
    prev = managers.get(me.ident)
    base = prev.set if prev else set()
    me.set = (base - removed) | modified | added
    if me.set:
        managers[me.ident] = me
    elif me.ident in managers:
        del managers[me.ident]


# --------------------------------------------------------------------------
# patches

class PatchError(Exception):
    """kind: 'bad' (400 BadRequest) or 'invalid' (422 from a failing JSON patch)."""

    def __init__(self, kind, msg):
        Exception.__init__(self, msg)
        self.kind = kind


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# patchMergeKey of the lists the built-in types merge in a strategic merge patch
def _smp_key(schema, names):
    lt = schema.list_type(names)
    if lt[0] == "map":
        return lt[1][0]
    if lt[0] == "set":
        return "$set"
    return None


def strategic_merge_patch(schema, target, patch, names=()):
    """Strategic merge patch for the built-in types: like a merge patch, but the
    lists with a patchMergeKey (containers, ports, env, volumes, conditions,
    ownerReferences, ...) merge item by item; supports the $patch
    (replace/delete/merge) and $deleteFromPrimitiveList/ directives and
    ignores $setElementOrder/ and $retainKeys."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k == "$patch" or k.startswith("$setElementOrder/") or k == "$retainKeys":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list) and isinstance(v, list):
                out[f] = [x for x in out[f] if x not in v]
            continue
        n = names + (k,)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            r = strategic_merge_patch(schema, out.get(k), v, n)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list):
            key = _smp_key(schema, n)
            cur = out.get(k) if isinstance(out.get(k), list) else []
            if key == "$set":
                res = list(cur)
                for x in v:
                    if x not in res:
                        res.append(x)
                out[k] = res
            elif key:
                res = [copy.deepcopy(x) for x in cur]
                for item in v:
                    if not isinstance(item, dict):
                        raise PatchError("bad", "unable to find api field in struct for list item %r" % (item,))
                    if item.get("$patch") == "replace":
                        res = None
                        break
                    idx = next((i for i, x in enumerate(res) if isinstance(x, dict)
                                and key in item and x.get(key) == item.get(key)), None)
                    if item.get("$patch") == "delete":
                        if idx is not None:
                            del res[idx]
                        continue
                    if idx is None:
                        res.append({a: b for a, b in item.items() if not a.startswith("$")})
                    else:
                        res[idx] = strategic_merge_patch(schema, res[idx], item, n)
                if res is None:
                    res = [{a: b for a, b in i.items() if a != "$patch"} for i in v if isinstance(i, dict) and i.get("$patch") != "replace"]
                out[k] = res
            else:
                out[k] = copy.deepcopy(v)
        else:
            out[k] = v
    return out


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid", "JSON pointer must start with /: %s" % path)
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _resolve(doc, toks, op):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"/%s\": missing value" % (op, "/".join(toks)))
            cur = cur[t]
        elif isinstance(cur, list):
            if not re.match(r"^(0|[1-9][0-9]*)$", t) or int(t) >= len(cur):
                raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"/%s\": missing value" % (op, "/".join(toks)))
            cur = cur[int(t)]
        else:
            raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"/%s\": missing value" % (op, "/".join(toks)))
    return cur


def json_patch(doc, ops):
    """RFC 6902 JSON patch."""
    if not isinstance(ops, list):
        raise PatchError("bad", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("invalid", "Unexpected kind: unknown")
        kind = op["op"]
        if kind not in ("add", "remove", "replace", "move", "copy", "test"):
            raise PatchError("invalid", "Unexpected kind: %s" % kind)
        if "path" not in op:
            raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"\": missing value" % kind)
        toks = _ptr(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("invalid", "%s operation does not apply: value is missing" % kind)
        if kind == "test":
            if _resolve(doc, toks, kind) != op["value"]:
                raise PatchError("invalid", "testing value /%s failed: test failed" % "/".join(toks))
            continue
        if kind in ("move", "copy"):
            src = _ptr(op.get("from", ""))
            val = copy.deepcopy(_resolve(doc, src, kind))
            if kind == "move":
                doc = _remove(doc, src, kind)
            doc = _add(doc, toks, val, kind)
            continue
        if kind == "remove":
            doc = _remove(doc, toks, kind)
        elif kind == "replace":
            _resolve(doc, toks, kind)
            doc = _remove(doc, toks, kind)
            doc = _add(doc, toks, copy.deepcopy(op["value"]), kind)
        else:
            doc = _add(doc, toks, copy.deepcopy(op["value"]), kind)
    return doc


def _add(doc, toks, val, op):
    if not toks:
        return val
    parent = _resolve(doc, toks[:-1], op)
    t = toks[-1]
    if isinstance(parent, dict):
        parent[t] = val
    elif isinstance(parent, list):
        if t == "-":
            parent.append(val)
        elif re.match(r"^(0|[1-9][0-9]*)$", t) and int(t) <= len(parent):
            parent.insert(int(t), val)
        else:
            raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"/%s\": missing value" % (op, "/".join(toks)))
    else:
        raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"/%s\": missing value" % (op, "/".join(toks)))
    return doc


def _remove(doc, toks, op):
    if not toks:
        return None
    parent = _resolve(doc, toks[:-1], op)
    t = toks[-1]
    if isinstance(parent, dict) and t in parent:
        del parent[t]
    elif isinstance(parent, list) and re.match(r"^(0|[1-9][0-9]*)$", t) and int(t) < len(parent):
        del parent[int(t)]
    else:
        raise PatchError("invalid", "%s operation does not apply: doc is missing path: \"/%s\": missing value" % (op, "/".join(toks)))
    return doc
