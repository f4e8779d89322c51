#!/usr/bin/python3
"""Fake Kubernetes API server (+ simulated controllers and an Istio-like stub
gateway) for rollout's tests.  Python 3 standard library only.

See tests/fakes/README.md for the flags, what is real and what is simplified.
Formats follow k8s.io/apimachinery and k8s.io/apiserver (Status objects,
managedFields/FieldsV1, watch framing, Table, discovery); nothing here talks
to anything but 127.0.0.1.
"""

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import http.server
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # keep tests/fakes free of __pycache__
sys.path.insert(0, HERE)

import fakeyaml  # noqa: E402
import istio_rules  # noqa: E402
import kube_ssa as ssa  # noqa: E402

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10b2c1a1",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(s):
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return time.time()


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration"""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm" % m if s % 60 == 0 else "%dm%ds" % (m, s % 60)
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh" % h if m % 60 == 0 else "%dh%dm" % (h, m % 60)
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd" % (h // 24) if h % 24 == 0 else "%dd%dh" % (h // 24, h % 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return "%dy" % (h // 24 // 365) if dy == 0 else "%dy%dd" % (h // 24 // 365, dy)
    return "%dy" % (h // 24 // 365)


_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(s):
    """k8s.io/apimachinery/pkg/util/rand.SafeEncodeString"""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in s)


def rand_suffix(n=5):
    return "".join(random.choice(_SAFE_ALPHABET) for _ in range(n))


# ---------------------------------------------------------------------------
# resources


class Res:
    def __init__(self, group, versions, plural, kind, namespaced, short=(), categories=(),
                 builtin=True, status_sub=True, has_generation=False, subresources=(),
                 gc_dependents=False):
        self.group = group
        self.versions = versions          # served versions, preferred first
        self.plural = plural
        self.kind = kind
        self.list_kind = kind + "List"
        self.namespaced = namespaced
        self.short = list(short)
        self.categories = list(categories)
        self.builtin = builtin
        self.status_sub = status_sub
        self.has_generation = has_generation
        self.subresources = list(subresources)
        self.singular = kind.lower()
        self.schema = ssa.Schema(group, plural, builtin)

    @property
    def gr(self):
        return (self.group, self.plural)

    def qualified(self):
        """schema.GroupResource.String(): deployments.apps / pods"""
        return self.plural + ("." + self.group if self.group else "")

    def qualified_kind(self):
        return self.kind + ("." + self.group if self.group else "")

    def api_version(self, version):
        return (self.group + "/" + version) if self.group else version


RESOURCES = [
    Res("", ["v1"], "namespaces", "Namespace", False, ["ns"], status_sub=True,
        subresources=["status", "finalize"]),
    Res("", ["v1"], "services", "Service", True, ["svc"], ["all"], subresources=["status"]),
    Res("", ["v1"], "pods", "Pod", True, ["po"], ["all"], subresources=["log", "status"]),
    Res("", ["v1"], "events", "Event", True, ["ev"], status_sub=False),
    Res("", ["v1"], "configmaps", "ConfigMap", True, ["cm"], status_sub=False),
    Res("", ["v1"], "secrets", "Secret", True, status_sub=False),
    Res("apps", ["v1"], "deployments", "Deployment", True, ["deploy"], ["all"], has_generation=True,
        subresources=["scale", "status"]),
    Res("apps", ["v1"], "replicasets", "ReplicaSet", True, ["rs"], ["all"], has_generation=True,
        subresources=["scale", "status"]),
    Res("networking.istio.io", ["v1", "v1beta1"], "virtualservices", "VirtualService", True, ["vs"],
        ["istio-io", "networking-istio-io"], builtin=False, has_generation=True, subresources=["status"]),
    Res("networking.istio.io", ["v1", "v1beta1"], "destinationrules", "DestinationRule", True, ["dr"],
        ["istio-io", "networking-istio-io"], builtin=False, has_generation=True, subresources=["status"]),
    Res("gateway.networking.k8s.io", ["v1"], "httproutes", "HTTPRoute", True, [], ["gateway-api"],
        builtin=False, has_generation=True, subresources=["status"]),
]
BY_GR = {r.gr: r for r in RESOURCES}
GROUPS = {}


def compute_groups():
    GROUPS.clear()
    for r in RESOURCES:
        for v in r.versions:
            GROUPS.setdefault(r.group, [])
            if v not in GROUPS[r.group]:
                GROUPS[r.group].append(v)


compute_groups()
ISTIO_VERSION = [(1, 24)]   # set by --istio-version


def configure_istio(version):
    """--istio-version: the networking.istio.io versions served (istio_rules.served_versions)
    and the webhook's weight rules; "none": no Istio CRDs at all."""
    if version == "none":
        versions = []
        ISTIO_VERSION[0] = (0, 0)
    else:
        ISTIO_VERSION[0] = istio_rules.parse_version(version)
        versions = istio_rules.served_versions(ISTIO_VERSION[0])
    for r in RESOURCES:
        if r.group == "networking.istio.io":
            r.versions = list(versions)
    compute_groups()

NS_RES = BY_GR[("", "namespaces")]
POD_RES = BY_GR[("", "pods")]
EVENT_RES = BY_GR[("", "events")]
DEPLOY_RES = BY_GR[("apps", "deployments")]
RS_RES = BY_GR[("apps", "replicasets")]
SVC_RES = BY_GR[("", "services")]
VS_RES = BY_GR[("networking.istio.io", "virtualservices")]
DR_RES = BY_GR[("networking.istio.io", "destinationrules")]
ROUTE_RES = BY_GR[("gateway.networking.k8s.io", "httproutes")]


def find_res(group, version, plural):
    r = BY_GR.get((group, plural))
    if r is None or version not in r.versions:
        return None
    return r


# ---------------------------------------------------------------------------
# Status errors (k8s.io/apimachinery/pkg/api/errors)


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        Exception.__init__(self, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def _details(res, name, **extra):
    d = {}
    if name:
        d["name"] = name
    if res is not None and res.group:
        d["group"] = res.group
    if res is not None:
        d["kind"] = res.plural
    d.update(extra)
    return d


def err_not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified(), name), _details(res, name))


def err_already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified(), name),
                    _details(res, name))


def err_conflict(res, name, why):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (res.qualified(), name, why),
                    _details(res, name))


MODIFIED_MSG = "the object has been modified; please apply your changes to the latest version and try again"


def err_forbidden(res, name, msg):
    if res is None:
        return ApiError(403, "Forbidden", "forbidden: %s" % msg, {})
    if name:
        m = '%s "%s" is forbidden: %s' % (res.qualified(), name, msg)
    else:
        m = "%s is forbidden: %s" % (res.qualified(), msg)
    return ApiError(403, "Forbidden", m, _details(res, name))


def err_invalid(group, kind, name, causes):
    """causes: list of (reason, field, body) like field.Error"""
    qk = kind + ("." + group if group else "")
    agg = ", ".join("%s: %s" % (f, b) for _, f, b in causes)
    if len(causes) > 1:
        agg = "[" + agg + "]"
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    d["causes"] = [{"reason": r, "message": b, "field": f} for r, f, b in causes]
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (qk, name, agg), d)


def err_bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def err_unsupported_media(accepted):
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(accepted))


def err_not_acceptable(accepted):
    return ApiError(406, "NotAcceptable", "only the following media types are accepted: " + ", ".join(accepted))


def err_method_not_allowed():
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def err_path_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def err_expired(msg):
    return ApiError(410, "Expired", msg)


ERR_UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def goq(s):
    """Go's %q for the strings we print."""
    return json.dumps(s, ensure_ascii=False)


# ---------------------------------------------------------------------------
# selectors


class SelectorError(Exception):
    pass


def parse_label_selector(s):
    """labels.Parse: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k, k>1, k<1"""
    reqs = []
    if s is None:
        return reqs
    s = s.strip()
    if not s:
        return reqs
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    key_re = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
    for p in parts:
        p = p.strip()
        m = re.match(r"^(%s)\s+(in|notin)\s+\(([^)]*)\)$" % key_re, p)
        if m:
            vals = {v.strip() for v in m.group(4).split(",")}
            if vals == {""}:
                raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
            reqs.append((m.group(1), m.group(3), vals))
            continue
        m = re.match(r"^(%s)\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)$" % key_re, p)
        if m:
            op = {"=": "=", "==": "=", "!=": "!="}[m.group(3)]
            reqs.append((m.group(1), op, m.group(4)))
            continue
        m = re.match(r"^(%s)\s*(>|<)\s*(-?[0-9]+)$" % key_re, p)
        if m:
            reqs.append((m.group(1), m.group(3), int(m.group(4))))
            continue
        m = re.match(r"^(!)?\s*(%s)$" % key_re, p)
        if m:
            reqs.append((m.group(2), "!" if m.group(1) else "exists", None))
            continue
        raise SelectorError("unable to parse requirement: found '%s', expected: in, notin, =, ==, !=, gt, lt" % p)
    return reqs


def label_match(reqs, labels):
    labels = labels or {}
    for key, op, val in reqs:
        have = key in labels
        v = labels.get(key)
        if op == "=":
            if not have or v != val:
                return False
        elif op == "!=":
            if have and v == val:
                return False
        elif op == "in":
            if not have or v not in val:
                return False
        elif op == "notin":
            if have and v in val:
                return False
        elif op == "exists":
            if not have:
                return False
        elif op == "!":
            if have:
                return False
        elif op in (">", "<"):
            try:
                n = int(v)
            except (TypeError, ValueError):
                return False
            if (op == ">" and not n > val) or (op == "<" and not n < val):
                return False
    return True


FIELD_SELECTORS = {
    ("", "pods"): {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    ("", "events"): {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    ("", "namespaces"): {"status.phase"},
    ("", "secrets"): {"type"},
    ("apps", "replicasets"): {"status.replicas"},
}


def parse_field_selector(res, s):
    reqs = []
    if not s:
        return reqs
    for p in s.split(","):
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", p)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (s, p))
        f, op, v = m.group(1), m.group(2), m.group(3)
        allowed = {"metadata.name", "metadata.namespace"} | FIELD_SELECTORS.get(res.gr, set())
        if f not in allowed:
            if res.builtin:
                raise SelectorError("field label not supported: %s" % f)
            raise SelectorError('"%s" is not a known field selector: only "metadata.name", "metadata.namespace"' % f)
        reqs.append((f, "!=" if op == "!=" else "=", v))
    return reqs


def field_value(obj, f):
    if f == "source":
        return (obj.get("source") or {}).get("component", "")
    cur = obj
    for part in f.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_match(reqs, obj):
    for f, op, v in reqs:
        have = field_value(obj, f)
        if (op == "=" and have != v) or (op == "!=" and have == v):
            return False
    return True


# ---------------------------------------------------------------------------
# defaulting & validation of the built-in types (the parts rollout can see)


def default_container(c):
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    img = c.get("image") or ""
    tag = img.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in c:
        c["imagePullPolicy"] = "Always" if ("@" not in tag and (":" not in tag or tag.endswith(":latest"))) \
            else "IfNotPresent"
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec):
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            default_container(c)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def apply_defaults(res, obj, store):
    spec = obj.get("spec")
    if res is DEPLOY_RES and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        st = spec.setdefault("strategy", {})
        if isinstance(st, dict):
            st.setdefault("type", "RollingUpdate")
            if st["type"] == "RollingUpdate":
                ru = st.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        tpl = spec.get("template")
        if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
            default_pod_spec(tpl["spec"])
    elif res is RS_RES and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        tpl = spec.get("template")
        if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
            default_pod_spec(tpl["spec"])
    elif res is POD_RES and isinstance(spec, dict):
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", "default")
    elif res is SVC_RES and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
        if spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer") and "clusterIP" not in spec:
            spec["clusterIP"] = store.alloc_cluster_ip()
        if spec.get("clusterIP") and "clusterIPs" not in spec:
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    elif res is NS_RES:
        md = obj.setdefault("metadata", {})
        md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md.get("name")
        if not isinstance(obj.get("spec"), dict):
            obj["spec"] = {"finalizers": ["kubernetes"]}
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif res.gr == ("", "secrets"):
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.setdefault("data", {})
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


def validate(res, obj, old):
    """Raise 422 Invalid for the mistakes a chart/manifest generator can make."""
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    causes = []
    if res is NS_RES or res is SVC_RES:
        rx, msg = (DNS1123_LABEL, MSG_LABEL) if res is NS_RES else (DNS1035_LABEL, MSG_1035)
        if not rx.match(name) or len(name) > 63:
            causes.append(("FieldValueInvalid", "metadata.name", "Invalid value: %s: %s" % (goq(name), msg)))
    elif not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        causes.append(("FieldValueInvalid", "metadata.name", "Invalid value: %s: %s" % (goq(name), MSG_SUBDOMAIN)))
    for k, v in (md.get("labels") or {}).items():
        if not isinstance(v, str):
            raise err_bad_request("json: cannot unmarshal %s into Go struct field ObjectMeta.metadata.labels of type string"
                                  % ("number" if isinstance(v, (int, float)) else type(v).__name__))
        if len(v) > 63 or not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", v):
            causes.append(("FieldValueInvalid", "metadata.labels", "Invalid value: %s: a valid label must be an empty "
                           "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                           "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
                           "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')" % goq(v)))
    if res in (DEPLOY_RES, RS_RES):
        spec = obj.get("spec") or {}
        sel = spec.get("selector")
        tpl = spec.get("template") or {}
        tlabels = ((tpl.get("metadata") or {}).get("labels")) or {}
        if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        else:
            reqs = [(k, "=", v) for k, v in (sel.get("matchLabels") or {}).items()]
            for e in sel.get("matchExpressions") or []:
                op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(e.get("operator"))
                reqs.append((e.get("key"), op, set(e.get("values") or [])))
            if not label_match(reqs, tlabels):
                causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                               "Invalid value: map[string]string{%s}: `selector` does not match template `labels`"
                               % ", ".join("%s:%s" % (goq(k), goq(v)) for k, v in sorted(tlabels.items()))))
            if old is not None and res is DEPLOY_RES and (old.get("spec") or {}).get("selector") != sel:
                causes.append(("FieldValueInvalid", "spec.selector",
                               "Invalid value: %s: field is immutable" % json.dumps(sel, separators=(",", ":"))))
        containers = (tpl.get("spec") or {}).get("containers")
        if not containers:
            causes.append(("FieldValueRequired", "spec.template.spec.containers", "Required value"))
        else:
            for i, c in enumerate(containers):
                if not isinstance(c, dict) or not c.get("name"):
                    causes.append(("FieldValueRequired", "spec.template.spec.containers[%d].name" % i, "Required value"))
                if not isinstance(c, dict) or not c.get("image"):
                    causes.append(("FieldValueRequired", "spec.template.spec.containers[%d].image" % i, "Required value"))
        r = spec.get("replicas")
        if isinstance(r, int) and r < 0:
            causes.append(("FieldValueInvalid", "spec.replicas",
                           "Invalid value: %d: must be greater than or equal to 0" % r))
    if res is SVC_RES:
        ports = (obj.get("spec") or {}).get("ports")
        if not ports and (obj.get("spec") or {}).get("type", "ClusterIP") != "ExternalName" \
                and (obj.get("spec") or {}).get("clusterIP") != "None":
            causes.append(("FieldValueRequired", "spec.ports", "Required value"))
    if causes:
        raise err_invalid(res.group, res.kind, name, causes)


# ---------------------------------------------------------------------------
# the store


STRIP_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
              "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName")


def strip_for_fields(res, obj, keep_status=False):
    """The part of an object field management looks at."""
    o = copy.deepcopy(obj) if obj else {}
    o.pop("apiVersion", None)
    o.pop("kind", None)
    if res.status_sub and not keep_status:
        o.pop("status", None)
    md = o.get("metadata")
    if isinstance(md, dict):
        for k in STRIP_META:
            md.pop(k, None)
        if not md:
            o.pop("metadata", None)
    return o


def spec_part(res, obj):
    """What bumps metadata.generation."""
    if res.builtin:
        return obj.get("spec")
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self, history_max=2000):
        self.cond = threading.Condition(threading.RLock())
        self.data = {r.gr: {} for r in RESOURCES}
        self.rv = 100
        self.hist = []        # (rv, gr, ns, type, obj, prev)
        self.hist_rvs = []
        self.compacted = 0    # events with rv <= compacted are gone
        self.history_max = history_max
        self.ip_n = 10
        self.pod_ip_n = 10
        with self.cond:
            self._seed()

    def _seed(self):
        now = now_ts()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            obj = {"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": ns, "uid": str(uuid.uuid4()), "creationTimestamp": now,
                                "labels": {"kubernetes.io/metadata.name": ns}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            obj["metadata"]["managedFields"] = [ssa.Manager(
                "kube-apiserver", "Update", "v1", "", now,
                {("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:kubernetes.io/metadata.name")}).entry()]
            self._put(NS_RES, obj, "ADDED", None)
        svc = {"kind": "Service", "apiVersion": "v1",
               "metadata": {"name": "kubernetes", "namespace": "default", "uid": str(uuid.uuid4()),
                            "creationTimestamp": now, "labels": {"component": "apiserver",
                                                                 "provider": "kubernetes"}},
               "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                        "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "type": "ClusterIP",
                        "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                        "internalTrafficPolicy": "Cluster"},
               "status": {"loadBalancer": {}}}
        self._put(SVC_RES, svc, "ADDED", None)

    def alloc_cluster_ip(self):
        self.ip_n += 1
        return "10.96.%d.%d" % (self.ip_n // 250, self.ip_n % 250 + 1)

    def alloc_pod_ip(self):
        self.pod_ip_n += 1
        return "10.244.%d.%d" % (self.pod_ip_n // 250, self.pod_ip_n % 250 + 1)

    # all methods below must be called with self.cond held
    def get(self, res, ns, name):
        return self.data[res.gr].get((ns or "", name))

    def items(self, res, ns=None):
        d = self.data[res.gr]
        keys = sorted(d)
        if ns:
            return [d[k] for k in keys if k[0] == ns]
        return [d[k] for k in keys]

    def _record(self, res, ns, typ, obj, prev):
        self.hist.append((self.rv, res.gr, ns, typ, obj, prev))
        self.hist_rvs.append(self.rv)
        if len(self.hist) > self.history_max:
            cut = len(self.hist) - self.history_max // 2
            self.compacted = self.hist_rvs[cut - 1]
            del self.hist[:cut]
            del self.hist_rvs[:cut]
        self.cond.notify_all()

    def _put(self, res, obj, typ, prev):
        self.rv += 1
        md = obj["metadata"]
        md["resourceVersion"] = str(self.rv)
        ns = md.get("namespace", "") if res.namespaced else ""
        self.data[res.gr][(ns, md["name"])] = obj
        self._record(res, ns, typ, obj, prev)
        return obj

    def put(self, res, obj, prev):
        return self._put(res, obj, "MODIFIED" if prev is not None else "ADDED", prev)

    def remove(self, res, ns, name):
        ns = ns if res.namespaced else ""
        old = self.data[res.gr].pop((ns, name), None)
        if old is None:
            return None
        self.rv += 1
        gone = dict(old)
        gone["metadata"] = dict(old["metadata"])
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._record(res, ns, "DELETED", gone, old)
        return gone

    def compact(self):
        """Drop all history (for tests of 410 Expired)."""
        self.compacted = self.rv
        self.hist = []
        self.hist_rvs = []

    def events_after(self, rv, gr):
        i = bisect.bisect_right(self.hist_rvs, rv)
        return [e for e in self.hist[i:] if e[1] == gr]


# ---------------------------------------------------------------------------
# object lifecycle shared by the HTTP verbs and the controllers


class Api:
    def __init__(self, store, ready_delay):
        self.store = store
        self.ready_delay = ready_delay

    def served(self, res, obj, version):
        o = dict(obj)
        o["apiVersion"] = res.api_version(version)
        o["kind"] = res.kind
        # kind/apiVersion first, like the real encoder
        out = {"kind": o.pop("kind"), "apiVersion": o.pop("apiVersion")}
        out.update(o)
        return out

    def check_namespace(self, res, ns, creating=True):
        if not res.namespaced:
            return
        nso = self.store.get(NS_RES, "", ns)
        if nso is None:
            raise err_not_found(NS_RES, ns)
        if creating and (nso.get("status") or {}).get("phase") == "Terminating":
            raise err_forbidden(res, "", "unable to create new content in namespace %s because it is being terminated"
                                % ns)

    def finish_write(self, res, new, old, version, manager, managers, op, subresource="", now=None):
        """Common tail of create/update/patch/apply: defaults, validation,
        generation, managedFields, no-op detection, store."""
        now = now or now_ts()
        apply_defaults(res, new, self.store)
        validate(res, new, old)
        if res is VS_RES or res is DR_RES:
            # istiod's validating webhook (istio_rules), called by the API
            # server for create, update, patch and apply - dry runs too
            spec = new.get("spec")
            errs = istio_rules.validate_virtual_service(spec, ISTIO_VERSION[0]) if res is VS_RES \
                else istio_rules.validate_destination_rule(spec)
            if errs:
                code, st = istio_rules.deny(res.qualified(), res.group, res.plural,
                                            (new.get("metadata") or {}).get("name"), errs)
                raise ApiError(code, st["reason"], st["message"], st["details"])
        md = new["metadata"]
        if op != "apply":
            keep_status = subresource == "status"
            ssa.update(res.schema, strip_for_fields(res, old, keep_status) if old else {},
                       strip_for_fields(res, new, keep_status), manager, res.api_version(version), now, managers,
                       subresource)
        md["managedFields"] = ssa.encode_managers(managers)
        if not md["managedFields"]:
            del md["managedFields"]
        if res.has_generation:
            if old is None:
                md["generation"] = 1
            else:
                md["generation"] = old["metadata"].get("generation", 1)
                if spec_part(res, old) != spec_part(res, new):
                    md["generation"] += 1
        if old is not None:
            cmp_old = dict(old)
            cmp_old["metadata"] = dict(old["metadata"])
            cmp_new = dict(new)
            cmp_new["metadata"] = dict(md)
            for x in (cmp_old, cmp_new):
                x.pop("apiVersion", None)
                x.pop("kind", None)
                x["metadata"].pop("resourceVersion", None)
                x["metadata"]["managedFields"] = [
                    {k: v for k, v in e.items() if k != "time"} for e in x["metadata"].get("managedFields") or []]
            if cmp_old == cmp_new:
                return old, False
        new["apiVersion"] = res.api_version(res.versions[0])
        new["kind"] = res.kind
        return self.store.put(res, new, old), True

    def new_meta(self, res, ns, obj, now):
        md = obj.setdefault("metadata", {})
        if res.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now
        for k in ("resourceVersion", "generation", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        if res.status_sub and res is not NS_RES:
            obj.pop("status", None)

    def create(self, res, ns, obj, version, manager, now=None):
        now = now or now_ts()
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise err_bad_request("metadata must be an object")
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + rand_suffix(5)
            else:
                raise err_invalid(res.group, res.kind, "", [(
                    "FieldValueRequired", "metadata.name", "Required value: name or generateName is required")])
        name = md["name"]
        self.check_namespace(res, ns)
        if self.store.get(res, ns, name) is not None:
            raise err_already_exists(res, name)
        md.pop("managedFields", None)
        self.new_meta(res, ns, obj, now)
        obj, _ = self.finish_write(res, obj, None, version, manager, {}, "create", now=now)
        return obj

    def update(self, res, ns, name, obj, version, manager, subresource="", now=None):
        now = now or now_ts()
        old = self.store.get(res, ns, name)
        if old is None:
            raise err_not_found(res, name)
        new = copy.deepcopy(obj)
        md = new.setdefault("metadata", {})
        rv = md.get("resourceVersion")
        if rv not in (None, "") and rv != old["metadata"]["resourceVersion"]:
            raise err_conflict(res, name, MODIFIED_MSG)
        if md.get("uid") and md["uid"] != old["metadata"]["uid"]:
            raise err_conflict(res, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (md["uid"], old["metadata"]["uid"]))
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in old["metadata"]:
                md[k] = old["metadata"][k]
            else:
                md.pop(k, None)
        md["name"] = name
        if res.namespaced:
            md["namespace"] = ns
        if subresource == "status":
            # only .status may change through /status
            keep = new.get("status")
            new = copy.deepcopy(old)
            if keep is None:
                new.pop("status", None)
            else:
                new["status"] = keep
            md = new["metadata"]
        elif res.status_sub:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        incoming_mf = md.pop("managedFields", None)
        if incoming_mf == [{}] or incoming_mf == []:
            managers = {}
        else:
            managers = ssa.decode_managers(old["metadata"].get("managedFields"))
        obj, changed = self.finish_write(res, new, old, version, manager, managers, "update", subresource, now)
        return obj

    def apply(self, res, ns, name, cfg, version, manager, force, now=None):
        now = now or now_ts()
        if not isinstance(cfg, dict):
            raise err_bad_request("error decoding patch: json: cannot unmarshal %s into Go value of type "
                                  "map[string]interface {}" % ("array" if isinstance(cfg, list) else "string"))
        api_version = cfg.get("apiVersion")
        kind = cfg.get("kind")
        if not kind:
            raise err_bad_request("Object 'Kind' is missing in '%s'" % json.dumps(cfg, separators=(",", ":")))
        if not api_version:
            raise err_bad_request("Object 'apiVersion' is missing in '%s'" % json.dumps(cfg, separators=(",", ":")))
        if api_version != res.api_version(version) or kind != res.kind:
            raise err_bad_request("error decoding patch: the object provided is unrecognized (must be of type %s): "
                                  "unexpected kind/apiVersion %s, %s" % (res.kind, kind, api_version))
        md = cfg.get("metadata") or {}
        if not isinstance(md, dict):
            raise err_bad_request("error decoding patch: metadata must be an object")
        if md.get("name") and md["name"] != name:
            raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (md["name"], name))
        if res.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
        old = self.store.get(res, ns, name)
        if old is not None and md.get("resourceVersion") not in (None, "") \
                and md["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise err_conflict(res, name, MODIFIED_MSG)
        if old is not None and md.get("uid") and md["uid"] != old["metadata"]["uid"]:
            raise err_conflict(res, name, "uid mismatch: the provided object specified uid %s, and the existing "
                               "object has uid %s" % (md["uid"], old["metadata"]["uid"]))
        cfg_s = strip_for_fields(res, cfg)
        if old is None:
            self.check_namespace(res, ns)
            managers = {}
            live_s = {}
        else:
            managers = ssa.decode_managers(old["metadata"].get("managedFields"))
            live_s = strip_for_fields(res, old)
        try:
            merged = ssa.apply(res.schema, live_s, cfg_s, manager, res.api_version(version), force, now, managers)
        except ssa.ApplyConflict as c:
            msg, causes = c.status_parts()
            raise ApiError(409, "Conflict", msg, {"causes": causes})
        new = merged
        nmd = new.setdefault("metadata", {})
        nmd["name"] = name
        if res.namespaced:
            nmd["namespace"] = ns
        if old is None:
            self.new_meta(res, ns, new, now)
        else:
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation", "resourceVersion"):
                if k in old["metadata"]:
                    nmd[k] = old["metadata"][k]
            if res.status_sub and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        # keep key order stable: metadata first
        ordered = {"metadata": new.pop("metadata")}
        ordered.update(new)
        obj, _ = self.finish_write(res, ordered, old, version, manager, managers, "apply", now=now)
        return obj, old is None

    def patch(self, res, ns, name, ptype, body, version, manager, subresource="", now=None):
        old = self.store.get(res, ns, name)
        if old is None:
            raise err_not_found(res, name)
        try:
            patch = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        except (ValueError, UnicodeDecodeError) as e:
            raise err_bad_request("error decoding patch: %s" % e)
        current = self.served(res, old, version)
        try:
            if ptype == "application/json-patch+json":
                patched = ssa.json_patch(current, patch)
            elif ptype == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise err_bad_request("Invalid JSON Patch")
                patched = ssa.merge_patch(current, patch)
            else:
                if not isinstance(patch, dict):
                    raise err_bad_request("error decoding patch: json: cannot unmarshal array into Go value of type "
                                          "map[string]interface {}")
                patched = ssa.strategic_merge_patch(res.schema, current, patch)
        except ssa.PatchError as e:
            if e.kind == "bad":
                raise err_bad_request(str(e))
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
        if not isinstance(patched, dict):
            raise err_bad_request("patched object is not an object")
        pmd = patched.get("metadata") or {}
        if pmd.get("name") not in (None, name):
            raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (pmd.get("name"), name))
        if patched.get("apiVersion") != res.api_version(version) or patched.get("kind") != res.kind:
            raise err_bad_request("the object provided is unrecognized (must be of type %s)" % res.kind)
        # the patched object's managedFields are only honoured when the patch changed them
        if pmd.get("managedFields") == current["metadata"].get("managedFields"):
            pmd.pop("managedFields", None)
        return self.update(res, ns, name, patched, version, manager, subresource, now)

    def delete(self, res, ns, name, policy=None, preconditions=None):
        old = self.store.get(res, ns, name)
        if old is None:
            raise err_not_found(res, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise err_conflict(res, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], old["metadata"]["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise err_conflict(res, name, "Precondition failed: ResourceVersion in precondition: %s, "
                               "ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], old["metadata"]["resourceVersion"]))
        if res is NS_RES:
            if name in ("default", "kube-system", "kube-public"):
                raise err_forbidden(res, name, "this namespace may not be deleted")
            if (old.get("status") or {}).get("phase") == "Terminating":
                return self.served(res, old, "v1")
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_ts()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            obj = self.store.put(res, new, old)
            return self.served(res, obj, "v1")
        if policy == "Orphan":
            self.orphan_dependents(old)
        if policy == "Foreground" and self.dependents(old):
            if old["metadata"].get("deletionTimestamp"):
                return self.served(res, old, res.versions[0])
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_ts()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            fz = new["metadata"].setdefault("finalizers", [])
            if "foregroundDeletion" not in fz:
                fz.append("foregroundDeletion")
            obj = self.store.put(res, new, old)
            return self.served(res, obj, res.versions[0])
        gone = self.store.remove(res, ns, name)
        if res is POD_RES:
            g = copy.deepcopy(gone)
            g["metadata"]["deletionTimestamp"] = now_ts()
            g["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.served(res, g, "v1")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": _details(res, name, uid=old["metadata"]["uid"])}

    def dependents(self, owner):
        uid = owner["metadata"]["uid"]
        ns = owner["metadata"].get("namespace", "")
        out = []
        for res in (RS_RES, POD_RES):
            for o in self.store.items(res, ns):
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []):
                    out.append((res, o))
        return out

    def orphan_dependents(self, owner):
        uid = owner["metadata"]["uid"]
        for res, o in self.dependents(owner):
            new = copy.deepcopy(o)
            new["metadata"]["ownerReferences"] = [r for r in new["metadata"].get("ownerReferences") or []
                                                  if r.get("uid") != uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self.store.put(res, new, o)


# ---------------------------------------------------------------------------
# simulated controllers: deployment, replicaset, kubelet, garbage collector,
# namespace lifecycle


def template_hash(tpl):
    h = hashlib.sha256(json.dumps(tpl, sort_keys=True).encode()).digest()
    return safe_encode(str(int.from_bytes(h[:4], "big")))


def percent_or_int(v, total, round_up):
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.endswith("%"):
        try:
            p = int(v[:-1])
        except ValueError:
            return 0
        x = p * total / 100.0
        return int(-(-x // 1)) if round_up else int(x // 1)
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def pod_ready(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def is_broken_image(image):
    return ":broken" in (image or "")


def full_image(image):
    name = image or ""
    first = name.split("/", 1)[0]
    if "/" not in name:
        return "docker.io/library/" + name
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + name
    return name


def controller_of(obj):
    for r in obj["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            return r
    return None


class Controller:
    def __init__(self, api, ready_delay, tick=0.05):
        self.api = api
        self.store = api.store
        self.ready_delay = ready_delay
        self.tick = tick
        self.born = {}        # pod uid -> monotonic creation time
        self.progress = {}    # deployment uid -> (counts, time, reason)
        self.last_error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="controller", daemon=True)

    def start(self):
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                with self.store.cond:
                    self.reconcile()
            except ApiError as e:  # e.g. a user-made object the controller cannot update
                if e.message != self.last_error:
                    sys.stderr.write("controller: %s\n" % e.message)
                self.last_error = e.message
            except Exception as e:  # a bug in the fake: keep it alive, but say what broke
                sys.stderr.write("controller error: %r\n" % (e,))
                import traceback
                traceback.print_exc()
            self.stop.wait(self.tick)

    # -- helpers ------------------------------------------------------------
    def event(self, involved_res, obj, typ, reason, message, component, field_path=None):
        md = obj["metadata"]
        ev = {
            "metadata": {"name": "%s.%016x" % (md["name"], random.getrandbits(64)), "namespace": md.get("namespace")},
            "involvedObject": {"kind": involved_res.kind, "namespace": md.get("namespace"), "name": md["name"],
                               "uid": md["uid"], "apiVersion": involved_res.api_version(involved_res.versions[0]),
                               "resourceVersion": md.get("resourceVersion")},
            "reason": reason, "message": message,
            "source": {"component": component},
            "firstTimestamp": now_ts(), "lastTimestamp": now_ts(), "count": 1, "type": typ,
            "eventTime": None, "reportingComponent": component, "reportingInstance": "",
        }
        if field_path:
            ev["involvedObject"]["fieldPath"] = field_path
        if component == "kubelet":
            ev["source"]["host"] = "fake-node"
            ev["reportingInstance"] = "fake-node"
        try:
            self.api.create(EVENT_RES, md.get("namespace"), ev, "v1", component)
        except ApiError:
            pass

    def write(self, res, old, new, manager, subresource=""):
        """Controller write through the same bookkeeping as an HTTP Update."""
        return self.api.update(res, old["metadata"].get("namespace", ""), old["metadata"]["name"], new,
                               res.versions[0], manager, subresource)

    def set_status(self, res, obj, status, manager):
        if obj.get("status") == status:
            return obj
        new = copy.deepcopy(obj)
        new["status"] = status
        return self.write(res, obj, new, manager, "status")

    # -- main loop ----------------------------------------------------------
    def reconcile(self):
        self.namespaces()
        self.garbage_collect()
        for d in self.store.items(DEPLOY_RES):
            if not d["metadata"].get("deletionTimestamp"):
                self.sync_deployment(d)
        for rs in self.store.items(RS_RES):
            if not rs["metadata"].get("deletionTimestamp"):
                self.sync_replicaset(rs)
        for pod in self.store.items(POD_RES):
            self.kubelet(pod)
        for rs in self.store.items(RS_RES):
            self.replicaset_status(rs)
        for d in self.store.items(DEPLOY_RES):
            self.deployment_status(d)

    def namespaces(self):
        for ns in self.store.items(NS_RES):
            if (ns.get("status") or {}).get("phase") != "Terminating":
                continue
            name = ns["metadata"]["name"]
            for res in RESOURCES:
                if res.namespaced:
                    for o in self.store.items(res, name):
                        self.store.remove(res, name, o["metadata"]["name"])
            self.store.remove(NS_RES, "", name)

    def garbage_collect(self):
        uids = {}
        for res in (DEPLOY_RES, RS_RES):
            for o in self.store.items(res):
                uids[o["metadata"]["uid"]] = o
        # foreground deletion: dependents first, then the owner
        for res in (DEPLOY_RES, RS_RES):
            for o in self.store.items(res):
                md = o["metadata"]
                if md.get("deletionTimestamp") and "foregroundDeletion" in (md.get("finalizers") or []):
                    for dres, dep in self.api.dependents(o):
                        for gres, grand in self.api.dependents(dep):
                            self.store.remove(gres, grand["metadata"]["namespace"], grand["metadata"]["name"])
                        self.store.remove(dres, dep["metadata"]["namespace"], dep["metadata"]["name"])
                    self.store.remove(res, md["namespace"], md["name"])
        for res in (RS_RES, POD_RES):
            for o in self.store.items(res):
                refs = o["metadata"].get("ownerReferences") or []
                if refs and all(r.get("uid") not in uids for r in refs
                                if r.get("kind") in ("Deployment", "ReplicaSet")) and \
                        any(r.get("kind") in ("Deployment", "ReplicaSet") for r in refs):
                    self.store.remove(res, o["metadata"]["namespace"], o["metadata"]["name"])
                    self.born.pop(o["metadata"]["uid"], None)

    def owned_rs(self, d):
        uid = d["metadata"]["uid"]
        return [rs for rs in self.store.items(RS_RES, d["metadata"]["namespace"])
                if (controller_of(rs) or {}).get("uid") == uid]

    def pods_of(self, rs):
        uid = rs["metadata"]["uid"]
        return [p for p in self.store.items(POD_RES, rs["metadata"]["namespace"])
                if (controller_of(p) or {}).get("uid") == uid]

    def sync_deployment(self, d):
        md = d["metadata"]
        ns, name = md["namespace"], md["name"]
        spec = d.get("spec") or {}
        tpl = copy.deepcopy(spec.get("template") or {})
        replicas = spec.get("replicas", 1)
        h = template_hash(tpl)
        rs_name = "%s-%s" % (name, h)
        owned = self.owned_rs(d)
        new_rs = next((r for r in owned if r["metadata"]["name"] == rs_name), None)
        revs = [int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0") or 0)
                for r in owned]
        max_rev = max(revs) if revs else 0
        if new_rs is None:
            labels = dict((tpl.get("metadata") or {}).get("labels") or {})
            labels["pod-template-hash"] = h
            tpl.setdefault("metadata", {})["labels"] = labels
            sel = copy.deepcopy(spec.get("selector") or {})
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            rs = {
                "metadata": {
                    "name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                    "deployment.kubernetes.io/max-replicas": str(
                                        replicas + percent_or_int((spec.get("strategy") or {}).get(
                                            "rollingUpdate", {}).get("maxSurge", "25%"), replicas, True)),
                                    "deployment.kubernetes.io/revision": str(max_rev + 1)},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                         "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}],
                },
                "spec": {"replicas": replicas, "selector": sel, "template": tpl},
            }
            try:
                new_rs = self.api.create(RS_RES, ns, rs, "v1", "kube-controller-manager")
            except ApiError as e:
                sys.stderr.write("controller: cannot create replicaset: %s\n" % e.message)
                return
            self.event(DEPLOY_RES, d, "Normal", "ScalingReplicaSet",
                       "Scaled up replica set %s from 0 to %d" % (rs_name, replicas), "deployment-controller")
            self.progress[md["uid"]] = (None, time.monotonic(), "NewReplicaSetCreated")
        else:
            rev = int((new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0") or 0)
            changed = copy.deepcopy(new_rs)
            if rev < max_rev:      # rollback to an older template: it becomes the newest revision
                changed["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(max_rev + 1)
            if (new_rs.get("spec") or {}).get("replicas") != replicas:
                old_n = (new_rs.get("spec") or {}).get("replicas", 0)
                changed["spec"]["replicas"] = replicas
                changed["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = \
                    str(replicas)
                self.event(DEPLOY_RES, d, "Normal", "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d" % (
                    "up" if replicas > old_n else "down", rs_name, old_n, replicas), "deployment-controller")
            if changed != new_rs:
                new_rs = self.write(RS_RES, new_rs, changed, "kube-controller-manager")
        # old replica sets go away once the new one is fully available
        new_ready = sum(1 for p in self.pods_of(new_rs) if pod_ready(p))
        if new_ready >= replicas:
            for r in owned:
                if r["metadata"]["name"] != rs_name and (r.get("spec") or {}).get("replicas", 0) > 0:
                    old_n = r["spec"]["replicas"]
                    changed = copy.deepcopy(r)
                    changed["spec"]["replicas"] = 0
                    self.write(RS_RES, r, changed, "kube-controller-manager")
                    self.event(DEPLOY_RES, d, "Normal", "ScalingReplicaSet", "Scaled down replica set %s from %d to 0"
                               % (r["metadata"]["name"], old_n), "deployment-controller")
        # the revision annotation of the deployment follows its newest replica set
        want_rev = (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        cur = self.store.get(DEPLOY_RES, ns, name)
        if want_rev and (cur["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != want_rev:
            changed = copy.deepcopy(cur)
            changed["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = want_rev
            self.write(DEPLOY_RES, cur, changed, "kube-controller-manager")

    def sync_replicaset(self, rs):
        want = (rs.get("spec") or {}).get("replicas", 1)
        pods = [p for p in self.pods_of(rs) if not p["metadata"].get("deletionTimestamp")]
        md = rs["metadata"]
        if len(pods) < want:
            tpl = (rs.get("spec") or {}).get("template") or {}
            for _ in range(want - len(pods)):
                tmd = tpl.get("metadata") or {}
                pod = {
                    "metadata": {
                        "name": "%s-%s" % (md["name"], rand_suffix(5)), "generateName": md["name"] + "-",
                        "namespace": md["namespace"], "labels": dict(tmd.get("labels") or {}),
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md["name"],
                                             "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}],
                    },
                    "spec": copy.deepcopy(tpl.get("spec") or {}),
                }
                if tmd.get("annotations"):
                    pod["metadata"]["annotations"] = dict(tmd["annotations"])
                pod["spec"]["nodeName"] = "fake-node"
                try:
                    p = self.api.create(POD_RES, md["namespace"], pod, "v1", "kube-controller-manager")
                except ApiError as e:
                    sys.stderr.write("controller: cannot create pod: %s\n" % e.message)
                    return
                self.born[p["metadata"]["uid"]] = time.monotonic()
                self.event(RS_RES, rs, "Normal", "SuccessfulCreate", "Created pod: %s" % p["metadata"]["name"],
                           "replicaset-controller")
                self.event(POD_RES, p, "Normal", "Scheduled", "Successfully assigned %s/%s to fake-node"
                           % (md["namespace"], p["metadata"]["name"]), "default-scheduler")
        elif len(pods) > want:
            # delete not-ready and newest pods first
            pods.sort(key=lambda p: (pod_ready(p), -self.born.get(p["metadata"]["uid"], 0)))
            for p in pods[:len(pods) - want]:
                self.store.remove(POD_RES, p["metadata"]["namespace"], p["metadata"]["name"])
                self.born.pop(p["metadata"]["uid"], None)
                self.event(RS_RES, rs, "Normal", "SuccessfulDelete", "Deleted pod: %s" % p["metadata"]["name"],
                           "replicaset-controller")

    def kubelet(self, pod):
        md = pod["metadata"]
        uid = md["uid"]
        born = self.born.setdefault(uid, time.monotonic())
        age = time.monotonic() - born
        containers = (pod.get("spec") or {}).get("containers") or []
        status = copy.deepcopy(pod.get("status") or {})
        phase = status.get("phase")
        now = now_ts()
        broken = [c for c in containers if is_broken_image(c.get("image"))]
        if phase is None:
            status = {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None,
                     "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                    {"type": "Ready", "status": "False", "lastProbeTime": None, "lastTransitionTime": now,
                     "reason": "ContainersNotReady",
                     "message": "containers with unready status: [%s]" % " ".join(c.get("name", "") for c in containers)},
                    {"type": "ContainersReady", "status": "False", "lastProbeTime": None, "lastTransitionTime": now,
                     "reason": "ContainersNotReady",
                     "message": "containers with unready status: [%s]" % " ".join(c.get("name", "") for c in containers)},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
                ],
                "hostIP": "172.18.0.2", "hostIPs": [{"ip": "172.18.0.2"}],
                "startTime": now,
                "containerStatuses": [
                    {"name": c.get("name"), "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
                     "ready": False, "restartCount": 0, "image": c.get("image"), "imageID": "", "started": False}
                    for c in containers],
                "qosClass": "BestEffort",
            }
            self.set_status(POD_RES, pod, status, "kubelet")
            return
        if phase != "Pending" or age < self.ready_delay:
            return
        waiting = [cs for cs in status.get("containerStatuses") or [] if "waiting" in (cs.get("state") or {})]
        if broken:
            if any(cs["state"]["waiting"].get("reason") == "ImagePullBackOff" for cs in waiting):
                return
            status["podIP"] = status.get("podIP") or self.store.alloc_pod_ip()
            status["podIPs"] = [{"ip": status["podIP"]}]
            for c, cs in zip(containers, status.get("containerStatuses") or []):
                if is_broken_image(c.get("image")):
                    cs["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                               "message": 'Back-off pulling image "%s"' % c.get("image")}}
            for cond in status["conditions"]:
                if cond["type"] == "PodReadyToStartContainers":
                    cond["status"] = "True"
            pod = self.set_status(POD_RES, pod, status, "kubelet")
            for c in broken:
                img = c.get("image")
                fp = "spec.containers{%s}" % c.get("name")
                ref = full_image(img)
                self.event(POD_RES, pod, "Normal", "Pulling", 'Pulling image "%s"' % img, "kubelet", fp)
                self.event(POD_RES, pod, "Warning", "Failed",
                           'Failed to pull image "%s": rpc error: code = NotFound desc = failed to pull and unpack '
                           'image "%s": failed to resolve reference "%s": %s: not found' % (img, ref, ref, ref),
                           "kubelet", fp)
                self.event(POD_RES, pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet", fp)
                self.event(POD_RES, pod, "Normal", "BackOff", 'Back-off pulling image "%s"' % img, "kubelet", fp)
                self.event(POD_RES, pod, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet", fp)
            return
        status["phase"] = "Running"
        status["podIP"] = status.get("podIP") or self.store.alloc_pod_ip()
        status["podIPs"] = [{"ip": status["podIP"]}]
        for cond in status["conditions"]:
            if cond["status"] != "True":
                cond["status"] = "True"
                cond["lastTransitionTime"] = now
                cond.pop("reason", None)
                cond.pop("message", None)
        for c, cs in zip(containers, status.get("containerStatuses") or []):
            digest = hashlib.sha256((c.get("image") or "").encode()).hexdigest()
            cs["state"] = {"running": {"startedAt": now}}
            cs["ready"] = True
            cs["started"] = True
            cs["imageID"] = "%s@sha256:%s" % (full_image(c.get("image")).rsplit(":", 1)[0]
                                              if ":" in full_image(c.get("image")).rsplit("/", 1)[-1]
                                              else full_image(c.get("image")), digest)
            cs["containerID"] = "containerd://" + hashlib.sha256((uid + c.get("name", "")).encode()).hexdigest()
        pod = self.set_status(POD_RES, pod, status, "kubelet")
        for c in containers:
            fp = "spec.containers{%s}" % c.get("name")
            self.event(POD_RES, pod, "Normal", "Pulled", 'Container image "%s" already present on machine'
                       % c.get("image"), "kubelet", fp)
            self.event(POD_RES, pod, "Normal", "Created", "Created container: %s" % c.get("name"), "kubelet", fp)
            self.event(POD_RES, pod, "Normal", "Started", "Started container %s" % c.get("name"), "kubelet", fp)

    def replicaset_status(self, rs):
        pods = self.pods_of(rs)
        ready = sum(1 for p in pods if pod_ready(p))
        st = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
              "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        st = {k: v for k, v in st.items() if v or k == "replicas"}
        self.set_status(RS_RES, rs, st, "kube-controller-manager")

    def deployment_status(self, d):
        md = d["metadata"]
        if md.get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        replicas = spec.get("replicas", 1)
        tpl_hash = template_hash(copy.deepcopy(spec.get("template") or {}))
        rs_name = "%s-%s" % (md["name"], tpl_hash)
        total = updated = ready = 0
        for rs in self.owned_rs(d):
            for p in self.pods_of(rs):
                total += 1
                r = pod_ready(p)
                ready += r
                if rs["metadata"]["name"] == rs_name:
                    updated += 1
        max_unavail = percent_or_int(((spec.get("strategy") or {}).get("rollingUpdate") or {}).get(
            "maxUnavailable", "25%"), replicas, False)
        available = ready
        old = d.get("status") or {}
        conds = {c["type"]: c for c in old.get("conditions") or []}
        now = now_ts()

        def cond(typ, status, reason, message):
            c = conds.get(typ)
            if c and c["status"] == status and c["reason"] == reason and c["message"] == message:
                return c
            return {"type": typ, "status": status,
                    "lastUpdateTime": now,
                    "lastTransitionTime": c["lastTransitionTime"] if c and c["status"] == status else now,
                    "reason": reason, "message": message}

        if available >= replicas - max_unavail:
            avail_c = cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            avail_c = cond("Available", "False", "MinimumReplicasUnavailable",
                           "Deployment does not have minimum availability.")
        counts = (total, updated, ready)
        prog = self.progress.get(md["uid"])
        if prog is None or prog[0] != counts:
            reason = prog[2] if prog and prog[0] is None else "ReplicaSetUpdated"
            self.progress[md["uid"]] = prog = (counts, time.monotonic(), reason)
        complete = updated == replicas and total == replicas and available == replicas
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            prog_c = cond("Progressing", "True", "NewReplicaSetAvailable",
                          'ReplicaSet "%s" has successfully progressed.' % rs_name)
        elif time.monotonic() - prog[1] > deadline:
            prog_c = cond("Progressing", "False", "ProgressDeadlineExceeded",
                          'ReplicaSet "%s" has timed out progressing.' % rs_name)
        elif prog[2] == "NewReplicaSetCreated" and (conds.get("Progressing") or {}).get("reason") in (
                None, "NewReplicaSetCreated"):
            prog_c = cond("Progressing", "True", "NewReplicaSetCreated", 'Created new replica set "%s"' % rs_name)
        else:
            prog_c = cond("Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "%s" is progressing.' % rs_name)
        st = {"observedGeneration": md.get("generation", 1), "replicas": total, "updatedReplicas": updated,
              "readyReplicas": ready, "availableReplicas": available,
              "unavailableReplicas": max(0, replicas - available), "conditions": [avail_c, prog_c]}
        st = {k: v for k, v in st.items() if v or k == "observedGeneration"}
        self.set_status(DEPLOY_RES, d, st, "kube-controller-manager")

    def pod_log(self, pod, container, tail, timestamps, previous):
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        if container is None:
            if len(names) != 1:
                raise err_bad_request("a container name must be specified for pod %s, choose one of: [%s]"
                                      % (pod["metadata"]["name"], " ".join(names)))
            container = names[0]
        if container not in names:
            raise err_bad_request("container %s is not valid for pod %s" % (container, pod["metadata"]["name"]))
        if previous:
            raise err_bad_request('previous terminated container "%s" in pod "%s" not found'
                                  % (container, pod["metadata"]["name"]))
        cs = next((c for c in (pod.get("status") or {}).get("containerStatuses") or [] if c.get("name") == container),
                  None)
        waiting = (cs or {}).get("state", {}).get("waiting") if cs else {"reason": "ContainerCreating"}
        if waiting:
            reason = waiting.get("reason", "ContainerCreating")
            why = {"ImagePullBackOff": "trying and failing to pull image",
                   "ErrImagePull": "image can't be pulled"}.get(reason, reason)
            raise err_bad_request('container "%s" in pod "%s" is waiting to start: %s'
                                  % (container, pod["metadata"]["name"], why))
        c = next(c for c in spec.get("containers") if c.get("name") == container)
        started = (cs.get("state", {}).get("running") or {}).get("startedAt") or now_ts()
        version = (pod["metadata"].get("labels") or {}).get("version", "unknown")
        port = ((c.get("ports") or [{}])[0]).get("containerPort", 8080)
        lines = ["starting %s version=%s image=%s" % (container, version, c.get("image")),
                 "listening on 0.0.0.0:%s" % port]
        lines += ['GET /healthz 200 "kube-probe/1.32"'] * 3
        lines.append('GET /api/version 200 "curl/7.88.1"')
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail else []
        if timestamps:
            lines = [started.replace("Z", ".000000000Z") + " " + l for l in lines]
        return "".join(l + "\n" for l in lines)


# ---------------------------------------------------------------------------
# Table (server-side printing, meta.k8s.io/v1)

_DESC_NAME = ("Name must be unique within a namespace. Is required when creating resources, although some "
              "resources may allow a client to request the generation of an appropriate name automatically. Name "
              "is primarily intended for creation idempotence and configuration definition. Cannot be updated. "
              "More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_DESC_AGE = ("CreationTimestamp is a timestamp representing the server time when this object was created. It is "
             "not guaranteed to be set in happens-before order across separate operations. Clients may not set "
             "this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. "
             "Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
             "api-conventions.md#metadata")


def _col(name, typ="string", fmt="", desc="", prio=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": prio}


def _age(o):
    return human_duration(time.time() - parse_ts(o["metadata"].get("creationTimestamp")))


def _pod_status_reason(p):
    if p["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = p.get("status") or {}
    reason = st.get("phase") or "Pending"
    for cs in st.get("containerStatuses") or []:
        w = (cs.get("state") or {}).get("waiting")
        if w and w.get("reason"):
            reason = w["reason"]
    return reason


def _containers(o):
    return (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []


def _sel_str(sel):
    if not sel:
        return "<none>"
    if "matchLabels" in sel or "matchExpressions" in sel:
        parts = ["%s=%s" % kv for kv in sorted((sel.get("matchLabels") or {}).items())]
        for e in sel.get("matchExpressions") or []:
            parts.append("%s %s (%s)" % (e.get("key"), (e.get("operator") or "").lower(), ",".join(e.get("values") or [])))
        return ",".join(parts)
    return ",".join("%s=%s" % kv for kv in sorted(sel.items()))


def _jsonlist(v):
    return json.dumps(v, separators=(",", ":")) if v is not None else None


TABLE_COLUMNS = {
    ("", "namespaces"): ([_col("Name", fmt="name", desc=_DESC_NAME), _col("Status", desc="The status of the namespace"),
                          _col("Age", desc=_DESC_AGE)],
                         lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _age(o)]),
    ("", "pods"): ([_col("Name", fmt="name", desc=_DESC_NAME),
                    _col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
                    _col("Status", desc="The aggregate status of the containers in this pod."),
                    _col("Restarts", desc="The number of times the containers in this pod have been restarted and "
                         "when the last container in this pod has restarted."),
                    _col("Age", desc=_DESC_AGE),
                    _col("IP", desc="IP address allocated to the pod. Routable at least within the cluster. Empty "
                         "if not yet allocated.", prio=1),
                    _col("Node", desc="NodeName is a request to schedule this pod onto a specific node.", prio=1),
                    _col("Nominated Node", desc="nominatedNodeName is set only when this pod preempts other pods "
                         "on the node.", prio=1),
                    _col("Readiness Gates", desc="If specified, all readiness gates will be evaluated for pod "
                         "readiness.", prio=1)],
              lambda o: [o["metadata"]["name"],
                         "%d/%d" % (sum(1 for c in (o.get("status") or {}).get("containerStatuses") or []
                                        if c.get("ready")), len((o.get("spec") or {}).get("containers") or [])),
                         _pod_status_reason(o),
                         sum(c.get("restartCount", 0) for c in (o.get("status") or {}).get("containerStatuses") or []),
                         _age(o), (o.get("status") or {}).get("podIP") or "<none>",
                         (o.get("spec") or {}).get("nodeName") or "<none>", "<none>", "<none>"]),
    ("", "services"): ([_col("Name", fmt="name", desc=_DESC_NAME),
                        _col("Type", desc="type determines how the Service is exposed."),
                        _col("Cluster-IP", desc="clusterIP is the IP address of the service."),
                        _col("External-IP", desc="List of IP addresses for which nodes in the cluster will also "
                             "accept traffic for this service."),
                        _col("Port(s)", desc="The list of ports that are exposed by this service."),
                        _col("Age", desc=_DESC_AGE),
                        _col("Selector", desc="Route service traffic to pods with label keys and values matching "
                             "this selector.", prio=1)],
                       lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("type", ""),
                                  (o.get("spec") or {}).get("clusterIP", "<none>"), "<none>",
                                  ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
                                           for p in (o.get("spec") or {}).get("ports") or []) or "<none>",
                                  _age(o), _sel_str((o.get("spec") or {}).get("selector"))]),
    ("", "events"): ([_col("Last Seen", desc="Time when last event occurred"),
                      _col("Type", desc="Type of this event."), _col("Reason", desc="Short, machine understandable "
                                                                      "string that gives the reason for this event."),
                      _col("Object", desc="The object this Event is about."),
                      _col("Message", desc="A human-readable description of the status of this operation."),
                      _col("Name", fmt="name", desc=_DESC_NAME, prio=1)],
                     lambda o: [human_duration(time.time() - parse_ts(o.get("lastTimestamp"))), o.get("type", ""),
                                o.get("reason", ""), "%s/%s" % ((o.get("involvedObject") or {}).get("kind", "").lower(),
                                                                (o.get("involvedObject") or {}).get("name", "")),
                                o.get("message", ""), o["metadata"]["name"]]),
    ("", "configmaps"): ([_col("Name", fmt="name", desc=_DESC_NAME), _col("Data", typ="integer"),
                          _col("Age", desc=_DESC_AGE)],
                         lambda o: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                    _age(o)]),
    ("", "secrets"): ([_col("Name", fmt="name", desc=_DESC_NAME), _col("Type"), _col("Data", typ="integer"),
                       _col("Age", desc=_DESC_AGE)],
                      lambda o: [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}), _age(o)]),
    ("apps", "deployments"): ([_col("Name", fmt="name", desc=_DESC_NAME),
                               _col("Ready", desc="Number of the pod with ready state"),
                               _col("Up-to-date", typ="integer", desc="Total number of non-terminated pods targeted "
                                    "by this deployment that have the desired template spec."),
                               _col("Available", typ="integer", desc="Total number of available pods (ready for at "
                                    "least minReadySeconds) targeted by this deployment."),
                               _col("Age", desc=_DESC_AGE),
                               _col("Containers", desc="Names of each container in the template.", prio=1),
                               _col("Images", desc="Images referenced by each container in the template.", prio=1),
                               _col("Selector", desc="Label selector for pods.", prio=1)],
                              lambda o: [o["metadata"]["name"],
                                         "%d/%d" % ((o.get("status") or {}).get("readyReplicas", 0),
                                                    (o.get("spec") or {}).get("replicas", 0)),
                                         (o.get("status") or {}).get("updatedReplicas", 0),
                                         (o.get("status") or {}).get("availableReplicas", 0), _age(o),
                                         ",".join(c.get("name", "") for c in _containers(o)),
                                         ",".join(c.get("image", "") for c in _containers(o)),
                                         _sel_str((o.get("spec") or {}).get("selector"))]),
    ("apps", "replicasets"): ([_col("Name", fmt="name", desc=_DESC_NAME),
                               _col("Desired", typ="integer", desc="Replicas is the number of desired replicas."),
                               _col("Current", typ="integer", desc="Replicas is the most recently observed number "
                                    "of replicas."),
                               _col("Ready", typ="integer", desc="The number of ready replicas for this replica set."),
                               _col("Age", desc=_DESC_AGE),
                               _col("Containers", prio=1), _col("Images", prio=1), _col("Selector", prio=1)],
                              lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("replicas", 0),
                                         (o.get("status") or {}).get("replicas", 0),
                                         (o.get("status") or {}).get("readyReplicas", 0), _age(o),
                                         ",".join(c.get("name", "") for c in _containers(o)),
                                         ",".join(c.get("image", "") for c in _containers(o)),
                                         _sel_str((o.get("spec") or {}).get("selector"))]),
    ("networking.istio.io", "virtualservices"): (
        [_col("Name", fmt="name", desc=_DESC_NAME),
         _col("Gateways", desc="The names of gateways and sidecars that should apply these routes"),
         _col("Hosts", desc="The destination hosts to which traffic is being sent"),
         _col("Age", typ="date", desc=_DESC_AGE)],
        lambda o: [o["metadata"]["name"], _jsonlist((o.get("spec") or {}).get("gateways")),
                   _jsonlist((o.get("spec") or {}).get("hosts")), _age(o)]),
    ("networking.istio.io", "destinationrules"): (
        [_col("Name", fmt="name", desc=_DESC_NAME),
         _col("Host", desc="The name of a service from the service registry"),
         _col("Age", typ="date", desc=_DESC_AGE)],
        lambda o: [o["metadata"]["name"], (o.get("spec") or {}).get("host"), _age(o)]),
    ("gateway.networking.k8s.io", "httproutes"): (
        [_col("Name", fmt="name", desc=_DESC_NAME), _col("Hostnames"), _col("Age", typ="date", desc=_DESC_AGE)],
        lambda o: [o["metadata"]["name"], _jsonlist((o.get("spec") or {}).get("hostnames")), _age(o)]),
}


def partial_metadata(obj):
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def to_table(res, objs, rv, include_object, served, headers=True):
    cols, row = TABLE_COLUMNS[res.gr]
    rows = []
    for o in objs:
        r = {"cells": row(o)}
        if include_object == "Object":
            r["object"] = served(o)
        elif include_object != "None":
            r["object"] = partial_metadata(o)
        rows.append(r)
    t = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}}
    if headers:
        t["columnDefinitions"] = cols
    t["rows"] = rows
    return t


# ---------------------------------------------------------------------------
# discovery and OpenAPI v3 (the parts kubectl reads)


def storage_hash(res):
    return base64.b64encode(hashlib.sha256(("%s/%s" % res.gr).encode()).digest()[:8]).decode()


def resource_list(group, version):
    out = []
    for r in RESOURCES:
        if r.group != group or version not in r.versions:
            continue
        e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
             "verbs": VERBS_ALL if r is not NS_RES else ["create", "delete", "get", "list", "patch", "update", "watch"]}
        if r.short:
            e["shortNames"] = r.short
        if r.categories:
            e["categories"] = r.categories
        e["storageVersionHash"] = storage_hash(r)
        out.append(e)
        for sub in r.subresources:
            verbs = {"log": ["get"], "status": ["get", "patch", "update"], "finalize": ["update"],
                     "scale": ["get", "patch", "update"]}[sub]
            e = {"name": "%s/%s" % (r.plural, sub), "singularName": "", "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": verbs}
            if sub == "scale":
                e.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
            out.append(e)
    doc = {"kind": "APIResourceList", "groupVersion": (group + "/" + version) if group else version,
           "resources": out}
    if group:
        doc = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group + "/" + version, "resources": out}
    return doc


def api_group(group):
    vs = GROUPS[group]
    return {"name": group, "versions": [{"groupVersion": group + "/" + v, "version": v} for v in vs],
            "preferredVersion": {"groupVersion": group + "/" + vs[0], "version": vs[0]}}


def openapi_root():
    paths = {}
    for g, vs in GROUPS.items():
        for v in vs:
            key = ("apis/%s/%s" % (g, v)) if g else "api/" + v
            h = hashlib.sha256(key.encode() + KUBE_VERSION["gitVersion"].encode()).hexdigest().upper()[:64]
            paths[key] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (key, h)}
    return {"paths": paths}


def openapi_gv(group, version):
    """A minimal but honest OpenAPI v3 document: the object paths with their
    operations and query parameters (no schemas).  kubectl reads it to learn
    that PATCH supports fieldValidation, so it leaves validation to the
    server."""
    paths = {}
    qp = lambda n, d: {"name": n, "in": "query", "description": d, "schema": {"type": "string", "uniqueItems": True}}
    for r in RESOURCES:
        if r.group != group or version not in r.versions:
            continue
        base = ("/apis/%s/%s" % (group, version)) if group else "/api/" + version
        coll = base + ("/namespaces/{namespace}/" if r.namespaced else "/") + r.plural
        gvk = {"group": group, "version": version, "kind": r.kind}
        op_id = lambda verb: "%s%s%s%s" % (verb, "".join(p.capitalize() for p in re.split(r"[.-]", group or "core")),
                                           version.capitalize(), ("Namespaced" if r.namespaced else "") + r.kind)
        params = [qp("dryRun", "When present, indicates that modifications should not be persisted."),
                  qp("fieldManager", "fieldManager is a name associated with the actor or entity that is making "
                     "these changes."),
                  qp("fieldValidation", "fieldValidation instructs the server on how to handle objects in the "
                     "request containing unknown or duplicate fields.")]
        item = {
            "get": {"operationId": op_id("read"), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk,
                    "responses": {"200": {"description": "OK"}}},
            "put": {"operationId": op_id("replace"), "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": params,
                    "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}}},
            "patch": {"operationId": op_id("patch"), "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk,
                      "parameters": params + [qp("force", "Force is going to \"force\" Apply requests.")],
                      "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in (
                          ["application/apply-patch+yaml", "application/json-patch+json",
                           "application/merge-patch+json"] + (["application/strategic-merge-patch+json"]
                                                             if r.builtin else []))}},
                      "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}}},
            "delete": {"operationId": op_id("delete"), "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        }
        paths[coll + "/{name}"] = item
        paths[coll] = {
            "get": {"operationId": op_id("list"), "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
            "post": {"operationId": op_id("create"), "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "parameters": params,
                     "responses": {"201": {"description": "Created"}}},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


# ---------------------------------------------------------------------------
# authentication / authorization


class Tokens:
    """--token TOKEN[=USER] flags plus an optional --token-file re-read on change."""

    def __init__(self, tokens, path):
        self.static = {}
        for t in tokens:
            tok, _, user = t.partition("=")
            self.static[tok] = user or "rollout-token"
        self.path = path
        self.mtime = None
        self.file_tokens = {}
        self.lock = threading.Lock()

    def lookup(self, tok):
        if tok in self.static:
            return self.static[tok]
        if self.path:
            with self.lock:
                try:
                    m = os.stat(self.path).st_mtime_ns
                except OSError:
                    self.file_tokens = {}
                    m = None
                if m != self.mtime:
                    self.mtime = m
                    self.file_tokens = {}
                    if m is not None:
                        with open(self.path) as f:
                            for line in f:
                                line = line.strip()
                                if line and not line.startswith("#"):
                                    # the token-auth-file format: token,user,uid[,"groups"]
                                    parts = line.split(",")
                                    self.file_tokens[parts[0]] = parts[1] if len(parts) > 1 and parts[1] else \
                                        "rollout-token"
                return self.file_tokens.get(tok)
        return None


class Forbid:
    def __init__(self, rules):
        self.rules = []
        for r in rules:
            parts = r.split(":")
            if len(parts) < 2 or len(parts) > 3:
                raise SystemExit("--forbid wants VERB:RESOURCE[:NAMESPACE], got %r" % r)
            self.rules.append((parts[0], parts[1], parts[2] if len(parts) == 3 else None))

    def denied(self, verb, res, sub, ns):
        for v, r, n in self.rules:
            if v not in ("*", verb):
                continue
            names = {"*", res.plural, res.qualified()}
            if sub:
                names = {"*", res.plural + "/" + sub, res.qualified() + "/" + sub}
            if r not in names:
                continue
            if n is not None and n != (ns or ""):
                continue
            return True
        return False


# ---------------------------------------------------------------------------
# HTTP API


def dry_clone(store):
    c = object.__new__(Store)
    c.__dict__.update(store.__dict__)
    c.data = {gr: dict(d) for gr, d in store.data.items()}
    c.hist, c.hist_rvs = [], []
    c._record = lambda *a: None
    return c


def media_types(header):
    out = []
    for part in (header or "").split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        params = {}
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


class RequestInfo:
    __slots__ = ("verb", "res", "sub", "ns", "name", "version", "group", "kind")

    def __init__(self):
        self.verb = self.res = self.sub = self.ns = self.name = self.version = self.group = None
        self.kind = "nonresource"


class ApiHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 900
    # set on the class by main()
    api = None
    store = None
    ctl = None
    cfg = None

    # -- plumbing -----------------------------------------------------------
    def setup(self):
        self.tls_ok = True
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.tls_ok = False
        http.server.BaseHTTPRequestHandler.setup(self)

    def handle(self):
        if self.tls_ok:
            try:
                http.server.BaseHTTPRequestHandler.handle(self)
            except (ConnectionError, ssl.SSLError, socket.timeout, BrokenPipeError):
                pass

    def log_message(self, fmt, *args):
        if self.cfg.verbose:
            sys.stderr.write("apiserver: " + (fmt % args) + "\n")

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline(65537)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(n)
                self.rfile.readline(65537)
            return data
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def write_log(self, code):
        path = self.cfg.request_log
        if not path:
            return
        ri = self.ri
        entry = {
            "ts": now_micro(), "method": self.command, "path": self.url_path, "query": self.url_query,
            "params": self.params, "content_type": self.headers.get("Content-Type"), "user": self.user,
            "verb": ri.verb, "group": ri.group, "resource": ri.res.plural if ri.res else None,
            "subresource": ri.sub, "namespace": ri.ns, "name": ri.name,
            "field_manager": self.params.get("fieldManager"), "user_agent": self.headers.get("User-Agent"),
            "code": code,
        }
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.cfg.log_lock:
            with open(path, "a") as f:
                f.write(line)
                f.flush()

    def respond(self, code, body, ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = (json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        elif isinstance(body, str):
            body = body.encode()
        self.write_log(code)
        self.send_response(code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        # headers and body in one write (one TLS record, no Nagle/delayed-ACK stall)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def respond_error(self, e):
        hdrs = []
        if e.code == 401:
            hdrs.append(("Www-Authenticate", 'Basic realm="kubernetes-master"'))
        if e.code in (401, 403):
            hdrs.append(("X-Content-Type-Options", "nosniff"))
        self.respond(e.code, e.status(), headers=hdrs)

    def respond_obj(self, code, obj):
        """Honour Accept: JSON (default), YAML, Table, PartialObjectMetadata."""
        self.respond(code, obj, self.out_ctype)

    # -- dispatch -----------------------------------------------------------
    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.url_query = url.query
        self.params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        self.ri = RequestInfo()
        self.user = None
        self.out_ctype = "application/json"
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        try:
            self.classify(method)
            user = self.authenticate()
            if user is None:
                raise ERR_UNAUTHORIZED
            self.user = user
            self._body = body
            if self.throttled():
                return
            self.route(method, body)
        except ApiError as e:
            self.respond_error(e)
        except (BrokenPipeError, ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: answer like the apiserver's panic handler
            import traceback
            traceback.print_exc()
            self.respond_error(ApiError(500, "InternalError", 'an error on the server ("%s") has prevented the '
                                                              'request from succeeding' % e, {}))

    def throttled(self):
        """/_fake/throttle: 429 as API Priority and Fairness answers it
        (k8s.io/apiserver pkg/server/filters/maxinflight.go tooManyRequests:
        Retry-After and a plain-text body), or a 5xx Status whose
        details.retryAfterSeconds also sets Retry-After (pkg/endpoints/
        handlers/responsewriters/writers.go ErrorNegotiated)."""
        if self.url_path.startswith("/_fake/") or self.url_path in ("/healthz", "/livez", "/readyz"):
            return False
        with self.cfg.throttle_lock:
            th = self.cfg.throttle
            if not th or th["count"] <= 0:
                return False
            if th.get("verbs") and (self.ri.verb or "get") not in th["verbs"]:
                return False
            th["count"] -= 1
        hdrs = []
        if th.get("retry_after") is not None:
            hdrs.append(("Retry-After", str(th["retry_after"])))
        if th["code"] == 429:
            hdrs.append(("X-Content-Type-Options", "nosniff"))
            self.respond(429, "Too many requests, please try again later.\n", "text/plain; charset=utf-8", hdrs)
        else:
            st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": "the server is currently unable to handle the request", "reason": "ServiceUnavailable",
                  "details": {"retryAfterSeconds": th.get("retry_after") or 0}, "code": th["code"]}
            self.respond(th["code"], st, headers=hdrs)
        return True

    def authenticate(self):
        auth = self.headers.get("Authorization") or ""
        if isinstance(self.request, ssl.SSLSocket):
            try:
                cert = self.request.getpeercert()
            except ValueError:
                cert = None
            if cert:
                issuer = tuple(tuple(x) for x in cert.get("issuer", ()))
                if issuer == self.cfg.trusted_issuer:
                    cn = None
                    for rdn in cert.get("subject", ()):
                        for k, v in rdn:
                            if k == "commonName":
                                cn = v
                    if cn:
                        return cn
        if auth[:7].lower() == "bearer ":
            return self.cfg.tokens.lookup(auth[7:].strip())
        return None

    def classify(self, method):
        """k8s.io/apiserver RequestInfoFactory, for the paths we serve."""
        ri = self.ri
        parts = [p for p in self.url_path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            return
        if parts[0] == "api":
            if len(parts) < 2:
                return
            ri.group, ri.version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 3:
                return
            ri.group, ri.version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return
        ri.kind = "resource"
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ri.ns = rest[1]
            rest = rest[2:]
        elif rest[0] == "namespaces" and len(rest) >= 2:
            ri.ns = rest[1]
        res_name = rest[0]
        ri.name = rest[1] if len(rest) > 1 else None
        ri.sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            ri.kind = "bad"
        ri.res = find_res(ri.group, ri.version, res_name)
        if ri.res is None:
            ri.kind = "unknown"
            ri.res = None
            return
        if ri.res is NS_RES:
            ri.ns = None
        watch = self.params.get("watch", "").lower() in ("true", "1")
        if method in ("GET", "HEAD"):
            ri.verb = "get" if ri.name else ("watch" if watch else "list")
        elif method == "POST":
            ri.verb = "create"
        elif method == "PUT":
            ri.verb = "update"
        elif method == "PATCH":
            ri.verb = "patch"
        elif method == "DELETE":
            ri.verb = "delete" if ri.name else "deletecollection"
        else:
            ri.verb = method.lower()

    def route(self, method, body):
        ri = self.ri
        p = self.url_path.rstrip("/") or "/"
        if ri.kind == "nonresource":
            return self.nonresource(method, p)
        if ri.kind in ("unknown", "bad"):
            raise err_path_not_found()
        res = ri.res
        if self.cfg.forbid.denied(ri.verb, res, ri.sub, ri.ns):
            where = ("in the namespace %s" % goq(ri.ns)) if ri.ns else "at the cluster scope"
            rname = res.plural + ("/" + ri.sub if ri.sub else "")
            raise err_forbidden(res, ri.name or "", 'User %s cannot %s resource %s in API group %s %s'
                                % (goq(self.user), ri.verb, goq(rname), goq(res.group), where))
        if ri.sub and ri.sub not in res.subresources:
            raise err_path_not_found()
        if res.namespaced and ri.name and not ri.ns:
            raise err_path_not_found()
        if res.namespaced and not ri.ns and method not in ("GET", "HEAD"):
            raise err_method_not_allowed()
        self.negotiate(res)
        if ri.sub == "log" and ri.verb != "get" or \
                ri.sub in ("status", "scale") and ri.verb not in ("get", "update", "patch"):
            raise err_method_not_allowed()
        if ri.sub == "scale":
            return self.h_scale(res, body)
        handler = {"get": self.h_get, "list": self.h_list, "watch": self.h_watch, "create": self.h_create,
                   "update": self.h_update, "patch": self.h_patch, "delete": self.h_delete,
                   "deletecollection": self.h_deletecollection}.get(ri.verb)
        if handler is None:
            raise err_method_not_allowed()
        if ri.verb in ("create",) and ri.name:
            raise err_method_not_allowed()
        handler(res, body)

    def negotiate(self, res):
        self.want_table = False
        self.want_partial = False
        self.want_yaml = False
        accept = self.headers.get("Accept") or "*/*"
        ok = False
        for mt, params in media_types(accept):
            if mt in ("application/json", "*/*", "application/*"):
                if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and res.gr in TABLE_COLUMNS:
                    self.want_table = True
                    self.out_ctype = "application/json;as=Table;v=%s;g=meta.k8s.io" % params.get("v", "v1")
                elif params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList") and \
                        params.get("g") == "meta.k8s.io":
                    self.want_partial = True
                    self.out_ctype = "application/json;as=%s;v=%s;g=meta.k8s.io" % (params["as"], params.get("v", "v1"))
                elif "as" in params:
                    continue
                ok = True
                break
            if mt == "application/yaml" and "as" not in params:
                self.want_yaml = True
                self.out_ctype = "application/yaml"
                ok = True
                break
        if not ok:
            raise err_not_acceptable(["application/json", "application/yaml"])

    def emit(self, code, obj):
        if self.want_yaml:
            self.respond(code, fakeyaml.dump(obj), "application/yaml")
        else:
            self.respond(code, obj, self.out_ctype)

    def served(self, res, obj):
        return self.api.served(res, obj, self.ri.version)

    def emit_object(self, code, res, obj):
        if self.want_table and obj.get("kind") != "Status":
            t = to_table(res, [obj], obj["metadata"].get("resourceVersion", ""),
                         self.params.get("includeObject", "Metadata"), lambda o: self.served(res, o))
            return self.emit(code, t)
        if self.want_partial and obj.get("kind") != "Status":
            return self.emit(code, partial_metadata(obj))
        return self.emit(code, self.served(res, obj) if obj.get("kind") != "Status" else obj)

    def nonresource(self, method, p):
        if p == "/_fake/throttle" and method == "POST":
            # test hook: the next `count` API requests are refused like API
            # Priority and Fairness (429) or an overloaded server (5xx) does
            try:
                spec = json.loads(self._body.decode("utf-8") or "{}")
                spec = {"count": int(spec.get("count", 1)), "code": int(spec.get("code", 429)),
                        "retry_after": spec.get("retry_after", 1), "verbs": spec.get("verbs")}
            except (ValueError, TypeError, AttributeError) as e:
                raise err_bad_request("throttle: %s" % e)
            with self.cfg.throttle_lock:
                self.cfg.throttle = spec
            return self.respond(200, spec)
        if p == "/_fake/faults" and method == "POST":
            # test hook: the demo service's fault knobs for a version's pods,
            # e.g. {"version": "v3", "error_rate": 0.05, "latency_ms": 80}
            try:
                spec = json.loads(self._body.decode("utf-8") or "{}")
                version = str(spec["version"])
                knobs = {"error_rate": float(spec.get("error_rate", 0)), "latency_ms": float(spec.get("latency_ms", 0))}
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                raise err_bad_request("faults: %s" % e)
            if GatewayHandler.gateway is not None:
                GatewayHandler.gateway.faults[version] = knobs
            return self.respond(200, knobs)
        if p == "/_fake/compact" and method == "POST":
            # test hook: forget the watch history, so older resourceVersions get 410 Expired
            with self.store.cond:
                self.store.compact()
                rv = self.store.rv
            return self.respond(200, {"compactedResourceVersion": str(rv)})
        if method not in ("GET", "HEAD"):
            raise err_method_not_allowed()
        if p == "/version":
            return self.respond(200, KUBE_VERSION)
        if p in ("/healthz", "/livez", "/readyz"):
            return self.respond(200, "ok", "text/plain; charset=utf-8")
        if p == "/":
            paths = ["/api", "/api/v1", "/apis"] + sorted(
                "/apis/%s%s" % (g, "/" + v if v else "") for g, vs in GROUPS.items() if g for v in [""] + vs) + \
                ["/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]
            return self.respond(200, {"paths": paths})
        if p == "/api":
            host = "127.0.0.1:%d" % self.server.server_address[1]
            return self.respond(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        if p == "/apis":
            return self.respond(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                      "groups": [api_group(g) for g in GROUPS if g]})
        m = re.match(r"^/api/(v1)$", p)
        if m:
            return self.respond(200, resource_list("", "v1"))
        m = re.match(r"^/apis/([^/]+)$", p)
        if m and m.group(1) in GROUPS and m.group(1):
            g = api_group(m.group(1))
            g.update({"kind": "APIGroup", "apiVersion": "v1"})
            return self.respond(200, {"kind": "APIGroup", "apiVersion": "v1", "name": g["name"],
                                      "versions": g["versions"], "preferredVersion": g["preferredVersion"]})
        m = re.match(r"^/apis/([^/]+)/([^/]+)$", p)
        if m and m.group(2) in GROUPS.get(m.group(1), []) and m.group(1):
            return self.respond(200, resource_list(m.group(1), m.group(2)))
        if p == "/openapi/v3":
            return self.respond(200, openapi_root())
        m = re.match(r"^/openapi/v3/(api/v1|apis/([^/]+)/([^/]+))$", p)
        if m:
            g, v = (m.group(2), m.group(3)) if m.group(2) else ("", "v1")
            if v in GROUPS.get(g, []):
                return self.respond(200, openapi_gv(g, v), headers=[("Etag", '"%s"' % self.params.get("hash", ""))])
        raise err_path_not_found()

    # -- verbs --------------------------------------------------------------
    def parse_object(self, body):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if ctype in ("application/json", ""):
            try:
                return json.loads(body.decode("utf-8") or "null")
            except (ValueError, UnicodeDecodeError) as e:
                raise err_bad_request("Object 'Kind' is missing in '%s'" % body.decode("utf-8", "replace")[:200]
                                      if not body.strip() else "couldn't get version/kind; json parse error: %s" % e)
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return fakeyaml.load(body.decode("utf-8"))
            except (fakeyaml.YAMLError, UnicodeDecodeError) as e:
                raise err_bad_request("error converting YAML to JSON: %s" % e)
        # protobuf bodies (sent by typed clientsets, e.g. "kubectl create configmap") are not decoded
        raise err_unsupported_media(["application/json", "application/yaml"])

    def check_kind(self, res, obj):
        if not isinstance(obj, dict):
            raise err_bad_request("the object provided is unrecognized (must be of type %s)" % res.kind)
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if not kind:
            raise err_bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj, separators=(",", ":"))[:500])
        if av and av != res.api_version(self.ri.version):
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                                  % (av, res.api_version(self.ri.version)))
        if kind != res.kind:
            raise err_bad_request('%s in version "%s" cannot be handled as a %s: converting (%s.%s) to (%s.%s): '
                                  'unknown conversion' % (kind, self.ri.version, res.kind, self.ri.version, kind,
                                                          res.group or "core", res.kind))
        md = obj.get("metadata")
        if md is not None and not isinstance(md, dict):
            raise err_bad_request("metadata must be an object")

    def manager(self):
        fm = self.params.get("fieldManager")
        if fm:
            if len(fm) > 128:
                raise err_invalid("meta.k8s.io", "PatchOptions", "", [(
                    "FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes")])
            return fm
        ua = self.headers.get("User-Agent") or ""
        return "".join(ch for ch in ua.split("/")[0] if ch.isprintable())[:128]

    def api_for_write(self):
        dr = self.params.get("dryRun")
        if dr is None:
            return self.api, False
        if dr != "All":
            raise err_invalid("meta.k8s.io", "CreateOptions", "", [(
                "FieldValueNotSupported", "dryRun", 'Unsupported value: []string{%s}: supported values: "All"'
                % goq(dr))])
        a = Api(dry_clone(self.store), self.api.ready_delay)
        return a, True

    def check_field_validation(self):
        fv = self.params.get("fieldValidation")
        if fv not in (None, "", "Ignore", "Warn", "Strict"):
            raise err_invalid("meta.k8s.io", "PatchOptions", "", [(
                "FieldValueNotSupported", "fieldValidation", 'Unsupported value: %s: supported values: "Ignore", '
                '"Strict", "Warn"' % goq(fv))])

    def scale_of(self, obj):
        """autoscaling/v1 Scale of a Deployment/ReplicaSet"""
        md = obj["metadata"]
        sel = ((obj.get("spec") or {}).get("selector") or {})
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in md},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": _sel_str(sel)}}

    def h_scale(self, res, body):
        ri = self.ri
        if ri.verb not in ("get", "update", "patch"):
            raise err_method_not_allowed()
        api, dry = self.api_for_write() if ri.verb != "get" else (self.api, False)
        with self.store.cond:
            obj = api.store.get(res, ri.ns, ri.name)
            if obj is None:
                raise err_not_found(res, ri.name)
            if ri.verb == "get":
                return self.respond(200, self.scale_of(obj))
            cur = self.scale_of(obj)
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
            try:
                patch = json.loads(body.decode("utf-8") or "null")
            except (ValueError, UnicodeDecodeError) as e:
                raise err_bad_request("error decoding patch: %s" % e)
            try:
                if ri.verb == "update":
                    new = patch
                elif ctype == "application/json-patch+json":
                    new = ssa.json_patch(cur, patch)
                elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    new = ssa.merge_patch(cur, patch)
                else:
                    raise err_unsupported_media(["application/json-patch+json", "application/merge-patch+json",
                                                 "application/strategic-merge-patch+json"])
            except ssa.PatchError:
                raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
            rv = ((new or {}).get("metadata") or {}).get("resourceVersion")
            if rv not in (None, "") and rv != obj["metadata"]["resourceVersion"]:
                raise err_conflict(res, ri.name, MODIFIED_MSG)
            replicas = ((new or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise err_invalid("autoscaling", "Scale", ri.name, [(
                    "FieldValueInvalid", "spec.replicas", "Invalid value: %s: must be greater than or equal to 0"
                    % json.dumps(replicas))])
            changed = copy.deepcopy(obj)
            changed["spec"]["replicas"] = replicas
            out = api.update(res, ri.ns, ri.name, changed, ri.version, self.manager(), "scale")
        sc = self.scale_of(out)
        if dry:
            sc["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
        self.respond(200, sc)

    def h_get(self, res, body):
        ri = self.ri
        with self.store.cond:
            obj = self.store.get(res, ri.ns, ri.name)
            if obj is None:
                raise err_not_found(res, ri.name)
            if ri.sub == "log":
                tail = self.params.get("tailLines")
                try:
                    tail = int(tail) if tail not in (None, "") else None
                except ValueError:
                    raise err_bad_request('tailLines: Invalid value: "%s": must be an integer' % tail)
                text = self.ctl.pod_log(obj, self.params.get("container"), tail,
                                        self.params.get("timestamps") in ("true", "1"),
                                        self.params.get("previous") in ("true", "1"))
                return self.respond(200, text, "text/plain")
        self.emit_object(200, res, obj)

    def selectors(self, res):
        try:
            ls = parse_label_selector(self.params.get("labelSelector"))
            fs = parse_field_selector(res, self.params.get("fieldSelector"))
        except SelectorError as e:
            raise err_bad_request(str(e))
        return ls, fs

    def matches(self, obj, ls, fs):
        return label_match(ls, obj["metadata"].get("labels")) and field_match(fs, obj)

    def h_list(self, res, body):
        ri = self.ri
        ls, fs = self.selectors(res)
        limit = self.params.get("limit")
        cont = self.params.get("continue")
        with self.store.cond:
            rv = str(self.store.rv)
            items = [o for o in self.store.items(res, ri.ns) if self.matches(o, ls, fs)]
        start = 0
        if cont:
            try:
                tok = json.loads(base64.b64decode(cont))
                start = int(tok["start"])
                rv = tok["rv"]
            except (ValueError, KeyError, TypeError):
                raise err_bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                      "(version meta.k8s.io/v1)")
        meta = {"resourceVersion": rv}
        items = items[start:]
        try:
            n = int(limit) if limit not in (None, "", "0") else 0
        except ValueError:
            n = 0
        if n and len(items) > n:
            meta["continue"] = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": rv,
                                                            "start": start + n}).encode()).decode()
            meta["remainingItemCount"] = len(items) - n
            items = items[:n]
        if self.want_table:
            t = to_table(res, items, rv, self.params.get("includeObject", "Metadata"), lambda o: self.served(res, o))
            t["metadata"] = meta
            return self.emit(200, t)
        if self.want_partial:
            return self.emit(200, {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                   "metadata": meta, "items": [partial_metadata(o) for o in items]})
        self.emit(200, self.list_doc(res, items, meta))

    def list_doc(self, res, items, meta):
        out = []
        for o in items:
            s = self.served(res, o)
            if res.builtin:  # typed lists carry no per-item kind/apiVersion
                s.pop("kind", None)
                s.pop("apiVersion", None)
            out.append(s)
        return {"kind": res.list_kind, "apiVersion": res.api_version(self.ri.version), "metadata": meta, "items": out}

    def h_create(self, res, body):
        ri = self.ri
        obj = self.parse_object(body)
        self.check_kind(res, obj)
        self.check_field_validation()
        md = obj.get("metadata") or {}
        if res.namespaced and md.get("namespace") and md["namespace"] != ri.ns:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
        api, dry = self.api_for_write()
        with self.store.cond:
            created = api.create(res, ri.ns, obj, ri.version, self.manager())
        self.emit_object(201, res, self.dry_result(dry, created, None))

    def h_update(self, res, body):
        ri = self.ri
        obj = self.parse_object(body)
        self.check_kind(res, obj)
        self.check_field_validation()
        md = obj.get("metadata") or {}
        if md.get("name") and md["name"] != ri.name:
            raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (md["name"], ri.name))
        if res.namespaced and md.get("namespace") and md["namespace"] != ri.ns:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
        api, dry = self.api_for_write()
        with self.store.cond:
            before = self.store.get(res, ri.ns, ri.name)
            updated = api.update(res, ri.ns, ri.name, obj, ri.version, self.manager(), ri.sub or "")
        self.emit_object(200, res, self.dry_result(dry, updated, before))

    def h_patch(self, res, body):
        ri = self.ri
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        accepted = ["application/json-patch+json", "application/merge-patch+json"]
        if res.builtin:
            accepted.append("application/strategic-merge-patch+json")
        accepted.append("application/apply-patch+yaml")
        if ctype not in accepted:
            raise err_unsupported_media(accepted)
        force = self.params.get("force")
        if ctype == "application/apply-patch+yaml":
            if not self.params.get("fieldManager"):
                raise err_invalid("meta.k8s.io", "PatchOptions", "", [(
                    "FieldValueRequired", "fieldManager", "Required value: is required for apply patch")])
        elif force is not None:
            raise err_invalid("meta.k8s.io", "PatchOptions", "", [(
                "FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch")])
        self.check_field_validation()
        manager = self.manager()
        api, dry = self.api_for_write()
        if ctype == "application/apply-patch+yaml":
            try:
                text = body.decode("utf-8")
                if text.lstrip().startswith("{"):
                    cfg = json.loads(text)
                else:  # like sigs.k8s.io/yaml.Unmarshal: the first document only
                    docs = fakeyaml.load_all(text)
                    cfg = docs[0] if docs else None
            except (ValueError, fakeyaml.YAMLError, UnicodeDecodeError) as e:
                raise err_bad_request("error decoding patch: %s" % e)
            if ri.sub:
                raise err_method_not_allowed()
            with self.store.cond:
                before = self.store.get(res, ri.ns, ri.name)
                obj, created = api.apply(res, ri.ns, ri.name, cfg, ri.version, manager,
                                         (force or "").lower() in ("true", "1"))
            return self.emit_object(201 if created else 200, res, self.dry_result(dry, obj, before))
        with self.store.cond:
            before = self.store.get(res, ri.ns, ri.name)
            obj = api.patch(res, ri.ns, ri.name, ctype, body, ri.version, manager, ri.sub or "")
        self.emit_object(200, res, self.dry_result(dry, obj, before))

    @staticmethod
    def dry_result(dry, obj, before):
        """A dry run persists nothing: the answer keeps the stored resourceVersion."""
        if not dry:
            return obj
        obj = copy.deepcopy(obj)
        if before is not None:
            obj["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"]
        else:
            obj["metadata"].pop("resourceVersion", None)
        return obj

    def delete_options(self, body):
        opts = {}
        if body.strip():
            try:
                opts = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise err_bad_request("couldn't get version/kind; json parse error: %s" % e)
            if not isinstance(opts, dict):
                raise err_bad_request("DeleteOptions must be an object")
        policy = self.params.get("propagationPolicy") or opts.get("propagationPolicy")
        if opts.get("orphanDependents") is True or self.params.get("orphanDependents") == "true":
            policy = "Orphan"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise err_invalid("meta.k8s.io", "DeleteOptions", "", [(
                "FieldValueNotSupported", "propagationPolicy", 'Unsupported value: %s: supported values: '
                '"Foreground", "Background", "Orphan", "nil"' % goq(policy))])
        return policy, opts.get("preconditions") or {}

    def h_delete(self, res, body):
        ri = self.ri
        policy, pre = self.delete_options(body)
        api, dry = self.api_for_write()
        with self.store.cond:
            out = api.delete(res, ri.ns, ri.name, policy, pre)
        if out.get("kind") == "Status":
            return self.respond(200, out)
        self.emit_object(200, res, out)

    def h_deletecollection(self, res, body):
        ri = self.ri
        if res.namespaced and not ri.ns:
            raise err_method_not_allowed()
        policy, _ = self.delete_options(body)
        ls, fs = self.selectors(res)
        api, dry = self.api_for_write()
        with self.store.cond:
            rv = str(self.store.rv)
            victims = [o for o in self.store.items(res, ri.ns) if self.matches(o, ls, fs)]
            for o in victims:
                api.delete(res, ri.ns, o["metadata"]["name"], policy)
        self.respond(200, self.list_doc(res, victims, {"resourceVersion": rv}))

    # -- watch ----------------------------------------------------------------
    def client_gone(self):
        """A watching client sends nothing: a readable socket means it closed."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def h_watch(self, res, body):
        ri = self.ri
        ls, fs = self.selectors(res)
        rvp = self.params.get("resourceVersion")
        send_initial = self.params.get("sendInitialEvents") in ("true", "1")
        bookmarks = self.params.get("allowWatchBookmarks") in ("true", "1")
        if send_initial and (self.params.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise err_invalid("meta.k8s.io", "ListOptions", "", [(
                "FieldValueForbidden", "sendInitialEvents",
                "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled "
                "and resourceVersionMatch is NotOlderThan with allowWatchBookmarks")])
        try:
            timeout = int(self.params.get("timeoutSeconds") or 0)
        except ValueError:
            raise err_bad_request("timeoutSeconds: Invalid value: must be an integer")
        if timeout <= 0:
            timeout = int(1800 * (1 + random.random()))
        start_rv = None
        if rvp not in (None, "", "0"):
            try:
                start_rv = int(rvp)
            except ValueError:
                raise err_bad_request('resourceVersion: Invalid value: "%s": strconv.ParseUint: parsing "%s": '
                                      'invalid syntax' % (rvp, rvp))
        deadline = time.monotonic() + timeout
        table_headers = [True]

        def frame(typ, obj):
            if typ in ("ADDED", "MODIFIED", "DELETED"):
                if self.want_table:
                    obj = to_table(res, [obj], obj["metadata"]["resourceVersion"],
                                   self.params.get("includeObject", "Metadata"), lambda o: self.served(res, o),
                                   headers=table_headers[0])
                    table_headers[0] = False
                elif self.want_partial:
                    obj = partial_metadata(obj)
                else:
                    obj = self.served(res, obj)
            return (json.dumps({"type": typ, "object": obj}, separators=(",", ":"), ensure_ascii=False)
                    + "\n").encode()

        self.write_log(200)
        self.send_response(200)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", self.out_ctype if not self.want_yaml else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        out = []
        with self.store.cond:
            if start_rv is None or send_initial:
                for o in self.store.items(res, ri.ns):
                    if self.matches(o, ls, fs):
                        out.append(frame("ADDED", o))
                last = self.store.rv
                if send_initial:
                    out.append(frame("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version(ri.version),
                                                  "metadata": {"resourceVersion": str(last), "annotations": {
                                                      "k8s.io/initial-events-end": "true"}}}))
            elif start_rv < self.store.compacted:
                out.append(frame("ERROR", err_expired("too old resource version: %d (%d)"
                                                      % (start_rv, self.store.compacted)).status()))
                last = None
            elif start_rv > self.store.rv:
                e = ApiError(504, "Timeout", "Too large resource version: %d, current: %d" % (start_rv, self.store.rv),
                             {"causes": [{"reason": "ResourceVersionTooLarge",
                                          "message": "Too large resource version"}], "retryAfterSeconds": 1})
                out.append(frame("ERROR", e.status()))
                last = None
            else:
                last = start_rv
        try:
            for chunk in out:
                self.write_chunk(chunk)
            while last is not None:
                events = []
                with self.store.cond:
                    while True:
                        if last < self.store.compacted:
                            events = [("ERROR", err_expired("too old resource version: %d (%d)"
                                                            % (last, self.store.compacted)).status())]
                            last = None
                            break
                        evs = self.store.events_after(last, res.gr)
                        if evs:
                            last = evs[-1][0]
                            for rv, _gr, ns, typ, obj, prev in evs:
                                if ri.ns and ns != ri.ns:
                                    continue
                                now_ok = self.matches(obj, ls, fs)
                                was_ok = prev is not None and self.matches(prev, ls, fs)
                                if typ == "DELETED":
                                    if was_ok:
                                        events.append(("DELETED", obj))
                                elif typ == "ADDED" or not was_ok:
                                    if now_ok:
                                        events.append(("ADDED", obj))
                                elif now_ok:
                                    events.append(("MODIFIED", obj))
                                else:
                                    gone = dict(prev)
                                    gone["metadata"] = dict(prev["metadata"])
                                    gone["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
                                    events.append(("DELETED", gone))
                            if events:
                                break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or self.client_gone():
                            break
                        self.store.cond.wait(min(remaining, 1.0))
                for typ, obj in events:
                    self.write_chunk(frame(typ, obj))
                if time.monotonic() >= deadline:
                    break
                if not events and self.client_gone():
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True


# ---------------------------------------------------------------------------
# stub gateway: routes like Istio (VirtualService + DestinationRule) or a
# Gateway API implementation (HTTPRoute) would, to the ready pods in the store

import socketserver  # noqa: E402


def string_match(sm, v):
    """istio StringMatch / Gateway API value match; {} means 'present'."""
    if v is None:
        return False
    if not isinstance(sm, dict) or not sm:
        return True
    if "exact" in sm:
        return v == sm["exact"]
    if "prefix" in sm:
        return v.startswith(sm["prefix"])
    if "regex" in sm:
        try:
            return re.fullmatch(sm["regex"], v) is not None
        except re.error:
            return False
    return True


class Dest:
    __slots__ = ("weight", "service", "pods", "error")

    def __init__(self, weight, service, pods, error=None):
        self.weight = weight
        self.service = service
        self.pods = pods          # [(pod, version)]
        self.error = error        # (status, body) when the backend itself is invalid


class Gateway:
    def __init__(self, store, namespace, identity="mesh"):
        self.store = store
        self.namespace = namespace
        self.identity = identity    # "mesh" (a sidecar) or "NS/NAME" of a gateway
        self.cache = (-1, None)
        # test hook (/_fake/faults): what the demo service's fault knobs do
        # (services/microservice-1/README.md, "Fault knobs"), per version:
        # a share of /api/version answered 500 {"error":"injected fault",
        # "version":V} with X-Served-By, and added latency
        self.faults = {}

    # -- snapshot of the routing state, rebuilt when the store changed ---------
    def snapshot(self):
        rv, table = self.cache
        if rv == self.store.rv and table is not None:
            return table
        with self.store.cond:
            rv = self.store.rv
            table = self.build()
        self.cache = (rv, table)
        return table

    def ready_pods(self, ns, selector):
        """[(pod, version label, app label)] of the ready pods the selector picks"""
        out = []
        for p in self.store.items(POD_RES, ns):
            labels = p["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()) and pod_ready(p):
                out.append((p["metadata"]["name"], labels.get("version", ""), labels.get("app")))
        return out

    def host_ns(self, host, default_ns):
        parts = host.split(".")
        if len(parts) >= 2 and parts[1] not in ("svc", "cluster", "local"):
            return parts[0], parts[1]
        return parts[0], default_ns

    def vs_dest(self, ns, d):
        dest = d.get("destination") or {}
        short, dns = self.host_ns(dest.get("host") or "", ns)
        svc = self.store.get(SVC_RES, dns, short)
        selector = dict(((svc or {}).get("spec") or {}).get("selector") or {})
        subset = dest.get("subset")
        if subset:
            found = None
            for dr in self.store.items(DR_RES):
                h_short, h_ns = self.host_ns((dr.get("spec") or {}).get("host") or "", dr["metadata"]["namespace"])
                if h_short == short and h_ns == dns:
                    for s in (dr.get("spec") or {}).get("subsets") or []:
                        if s.get("name") == subset:
                            found = s
            if found is None:
                return []
            selector.update(found.get("labels") or {})
        if not selector:
            return []
        return self.ready_pods(dns, selector)

    def build(self):
        routes, bypassed = [], []
        for vs in self.store.items(VS_RES):
            ns = vs["metadata"]["namespace"]
            spec = vs.get("spec") or {}
            hosts = [h.lower() for h in spec.get("hosts") or []]
            if not istio_rules.applies_to(vs, self.identity):
                # not for us: a sidecar then routes to the host's Service
                # itself, over all its endpoints (no weights)
                bypassed.append({"kind": "VirtualService", "ns": ns, "name": vs["metadata"]["name"],
                                 "hosts": hosts})
                continue
            rules = []
            for http_rule in spec.get("http") or []:
                matches = http_rule.get("match") or None
                dests = []
                route = http_rule.get("route") or []
                for d in route:
                    if len(route) == 1:
                        # virtual_service.proto: "If there is only one destination in a rule, it will receive
                        # all traffic" - pilot/pkg/networking/core/route/route.go ignores its weight
                        w = 1
                    else:
                        # route.go: "Ignore 0 weighted clusters if there are other clusters in the route"
                        w = d.get("weight") or 0
                    short = self.host_ns(((d.get("destination") or {}).get("host") or ""), ns)[0]
                    dests.append(Dest(int(w), short, self.vs_dest(ns, d)))
                direct = http_rule.get("directResponse")
                rules.append(("vs", matches, dests, direct))
            routes.append({"kind": "VirtualService", "ns": ns, "name": vs["metadata"]["name"], "hosts": hosts,
                           "rules": rules})
        for hr in self.store.items(ROUTE_RES):
            ns = hr["metadata"]["namespace"]
            spec = hr.get("spec") or {}
            # gateway-api GEP-1426 (GAMMA): a Service parent is the mesh; a Gateway parent that gateway
            mine = False
            for pr in spec.get("parentRefs") or []:
                kind = pr.get("kind") or "Gateway"
                if kind == "Service" and self.identity == "mesh":
                    mine = True
                elif kind == "Gateway" and self.identity == "%s/%s" % (pr.get("namespace") or ns, pr.get("name")):
                    mine = True
            if not mine:
                bypassed.append({"kind": "HTTPRoute", "ns": ns, "name": hr["metadata"]["name"],
                                 "hosts": [h.lower() for h in spec.get("hostnames") or []]})
                continue
            rules = []
            for rule in spec.get("rules") or []:
                dests = []
                for b in rule.get("backendRefs") or []:
                    w = b.get("weight", 1)
                    bns = b.get("namespace") or ns
                    svc = self.store.get(SVC_RES, bns, b.get("name") or "")
                    if svc is None or (b.get("kind") not in (None, "Service")):
                        dests.append(Dest(int(w), b.get("name"), [], (500, b"")))
                        continue
                    sel = (svc.get("spec") or {}).get("selector") or {}
                    dests.append(Dest(int(w), b.get("name"), self.ready_pods(bns, sel) if sel else []))
                matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
                rules.append(("httproute", matches, dests, None))
            routes.append({"kind": "HTTPRoute", "ns": ns, "name": hr["metadata"]["name"],
                           "hosts": [h.lower() for h in spec.get("hostnames") or []], "rules": rules})
        if self.identity == "mesh":
            # a sidecar with no route for a host sends requests to that
            # Service's endpoints, all of them alike
            for b in bypassed:
                svc = self.store.get(SVC_RES, b["ns"], (b["hosts"] or [b["name"]])[0].split(".")[0])
                sel = ((svc or {}).get("spec") or {}).get("selector") or {}
                pods = self.ready_pods(b["ns"], sel) if sel else []
                b["rules"] = [("service", None, [Dest(1, b["name"], pods)], None)]
                b["fallback"] = True
                routes.append(b)
        return routes

    # -- request handling ----------------------------------------------------
    def pick_route(self, routes, host):
        real = [r for r in routes if not r.get("fallback")]
        r = self._pick(real, host)
        if r is None and len(real) < len(routes):
            r = self._pick([x for x in routes if x.get("fallback")], host)
        return r

    def _pick(self, routes, host):
        host = host.split(":")[0].lower() if host else ""
        hits = []
        for r in routes:
            for h in r["hosts"]:
                if h == "*" or h == host or (host and h.split(".")[0] == host.split(".")[0]) or \
                        (h.startswith("*.") and host.endswith(h[1:])):
                    hits.append(r)
                    break
        if r_only := (hits[0] if len(hits) == 1 else None):
            return r_only
        if len(hits) > 1:
            return sorted(hits, key=lambda r: (r["ns"] != self.namespace, r["ns"], r["name"]))[0]
        if len(routes) == 1:
            return routes[0]
        in_ns = [r for r in routes if r["ns"] == self.namespace]
        if len(in_ns) == 1:
            return in_ns[0]
        return None

    def vs_matches(self, matches, method, path, query, headers):
        if not matches:
            return True
        for m in matches:
            ok = True
            if "uri" in m and not string_match(m["uri"], path):
                ok = False
            if ok and "method" in m and not string_match(m["method"], method):
                ok = False
            if ok and "authority" in m and not string_match(m["authority"], headers.get("host", "")):
                ok = False
            for name, sm in (m.get("headers") or {}).items() if ok else ():
                if not string_match(sm, headers.get(name.lower())):
                    ok = False
                    break
            for name, sm in (m.get("withoutHeaders") or {}).items() if ok else ():
                if string_match(sm, headers.get(name.lower())):
                    ok = False
                    break
            for name, sm in (m.get("queryParams") or {}).items() if ok else ():
                if not string_match(sm, query.get(name)):
                    ok = False
                    break
            if ok:
                return True
        return False

    def hr_match_rank(self, m, method, path, query, headers):
        """None if m does not match, else a sort key (smaller = higher precedence)."""
        p = m.get("path") or {"type": "PathPrefix", "value": "/"}
        typ, val = p.get("type", "PathPrefix"), p.get("value", "/")
        if typ == "Exact":
            if path != val:
                return None
        elif typ == "RegularExpression":
            try:
                if not re.fullmatch(val, path):
                    return None
            except re.error:
                return None
        else:
            v = val.rstrip("/")
            if not (path == v or path.startswith(v + "/") or v == ""):
                return None
        for h in m.get("headers") or []:
            have = headers.get((h.get("name") or "").lower())
            if h.get("type", "Exact") == "RegularExpression":
                if have is None or not re.fullmatch(h.get("value", ""), have):
                    return None
            elif have != h.get("value"):
                return None
        if m.get("method") and m["method"] != method:
            return None
        for q in m.get("queryParams") or []:
            if query.get(q.get("name")) != q.get("value"):
                return None
        return (0 if typ == "Exact" else 1, -len(val), 0 if m.get("method") else 1,
                -len(m.get("headers") or []), -len(m.get("queryParams") or []))

    def serve(self, method, target, headers):
        """-> (status, body bytes, content type, extra headers)"""
        path, _, qs = target.partition("?")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(qs, keep_blank_values=True).items()} if qs else {}
        routes = self.snapshot()
        route = self.pick_route(routes, headers.get("host"))
        if route is None:
            return 404, b"", None, ()
        chosen = None
        if route["kind"] == "VirtualService" and not route.get("fallback"):
            for kind, matches, dests, direct in route["rules"]:
                if self.vs_matches(matches, method, path, query, headers):
                    if direct:
                        body = ((direct.get("body") or {}).get("string") or "").encode()
                        return int(direct.get("status", 200)), body, "text/plain", ()
                    chosen = dests
                    break
        elif route.get("fallback"):
            chosen = route["rules"][0][2]
        else:
            best = None
            for kind, matches, dests, _ in route["rules"]:
                for m in matches:
                    rank = self.hr_match_rank(m, method, path, query, headers)
                    if rank is not None and (best is None or rank < best[0]):
                        best = (rank, dests)
            if best:
                chosen = best[1]
        if chosen is None:
            return 404, b"", None, ()
        total = sum(d.weight for d in chosen if d.weight > 0)
        if total <= 0:
            if route["kind"] == "HTTPRoute":
                return 500, b"", None, ()
            return 503, b"no healthy upstream", "text/plain", ()
        x = random.random() * total
        dest = chosen[-1]
        for d in chosen:
            if d.weight <= 0:
                continue
            x -= d.weight
            if x < 0:
                dest = d
                break
        if dest.error:
            return dest.error[0], dest.error[1], None, ()
        if not dest.pods:
            return 503, b"no healthy upstream", "text/plain", ()
        pod, version, app = random.choice(dest.pods)
        fault = self.faults.get(version)
        if path == "/api/version" and fault:
            if fault.get("latency_ms"):
                time.sleep(fault["latency_ms"] / 1000.0)
            if random.random() < fault.get("error_rate", 0):
                body = json.dumps({"error": "injected fault", "version": version}).encode()
                return 500, body, "application/json", (("X-Served-By", version),)
        if path == "/api/version":
            body = json.dumps({"service": app or dest.service, "version": version, "pod": pod}).encode()
            return 200, body, "application/json", (("X-Served-By", version),)
        if path in ("/healthz", "/health", "/ready", "/readyz"):
            body = json.dumps({"status": "ok", "version": version}).encode()
            return 200, body, "application/json", (("X-Served-By", version),)
        return 404, json.dumps({"error": "not found", "path": path}).encode(), "application/json", \
            (("X-Served-By", version),)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
            503: "Service Unavailable", 405: "Method Not Allowed"}


class GatewayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class GatewayHandler(socketserver.StreamRequestHandler):
    """A lean HTTP/1.1 keep-alive server (the stdlib request parser is the slow part)."""
    gateway = None
    timeout = 300

    def handle(self):
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        rfile, wfile = self.rfile, self.wfile
        try:
            while True:
                line = rfile.readline(65537)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                try:
                    method, target, version = line.decode("latin-1").split()
                except ValueError:
                    wfile.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                headers = {}
                while True:
                    h = rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    k = k.strip().lower()
                    if k in headers and k == "cookie":   # RFC 6265 5.4: one Cookie header, pairs joined by "; "
                        headers[k] += "; " + v.strip()
                    elif k in headers:                    # RFC 7230 3.2.2: repeated fields join with ","
                        headers[k] += "," + v.strip()
                    else:
                        headers[k] = v.strip()
                n = int(headers.get("content-length") or 0)
                if n:
                    rfile.read(n)
                elif "chunked" in headers.get("transfer-encoding", "").lower():
                    while True:
                        sz = int(rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                        rfile.read(sz + 2) if sz else None
                        if sz == 0:
                            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                                pass
                            break
                conn = headers.get("connection", "").lower()
                keep = (version == "HTTP/1.1" and conn != "close") or (version == "HTTP/1.0" and conn == "keep-alive")
                status, body, ctype, extra = self.gateway.serve(method, target, headers)
                head = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Unknown")),
                        "server: istio-envoy", "x-envoy-upstream-service-time: 0",
                        "content-length: %d" % len(body)]
                if ctype:
                    head.append("content-type: " + ctype)
                for k, v in extra:
                    head.append("%s: %s" % (k, v))
                if not keep:
                    head.append("connection: close")
                wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body if method != "HEAD" else b""))
                if not keep:
                    return
        except (ConnectionError, socket.timeout, OSError):
            return


# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# certificates and kubeconfigs


CERT_FILES = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")


def ensure_certs(d):
    os.makedirs(d, exist_ok=True)
    if all(os.path.exists(os.path.join(d, f)) for f in CERT_FILES):
        return
    import subprocess
    subprocess.run(["bash", os.path.join(HERE, "make_certs.sh"), d], check=True, stdout=subprocess.DEVNULL)


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfig(path, server, ca_path, user_name, user):
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server, "certificate-authority-data": b64file(ca_path)}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": user_name, "namespace": "default"}}],
        "current-context": "fake",
        "users": [{"name": user_name, "user": user}],
        "preferences": {},
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(fakeyaml.dump(cfg))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Cfg:
    pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API server for rollout's tests")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port on 127.0.0.1 (0 = pick a free one)")
    ap.add_argument("--certs", help="directory with ca.crt server.crt server.key client.crt client.key "
                                    "(created with make_certs.sh when missing; default: a temp dir)")
    ap.add_argument("--token", action="append", default=[], help="valid bearer token, TOKEN or TOKEN=USER "
                                                                  "(repeatable)")
    ap.add_argument("--token-file", help="kube-apiserver --token-auth-file format (token,user,uid); re-read on "
                                         "change, so tests can add or revoke tokens")
    ap.add_argument("--request-log", help="append one JSON line per request to this file")
    ap.add_argument("--forbid", action="append", default=[], help="VERB:RESOURCE[:NAMESPACE] -> 403 (repeatable)")
    ap.add_argument("--ready-delay", type=float, default=0.5, help="seconds until a new pod is Ready")
    ap.add_argument("--seed", type=int, default=1,
                    help="seed of the stub gateway's weighted choice (random, as Envoy's weighted clusters; "
                         "seeded so that a test run can be repeated)")
    ap.add_argument("--gateway-port", type=int, help="also serve the stub gateway on this port (0 = free port)")
    ap.add_argument("--gateway-namespace", default="default")
    ap.add_argument("--gateway-as", default="mesh",
                    help='whom the stub gateway routes for: "mesh" (a sidecar: VirtualServices without gateways or '
                         'listing mesh, HTTPRoutes with a Service parent) or NAMESPACE/NAME of a gateway')
    ap.add_argument("--istio-version", default="1.24",
                    help='Istio release simulated: the networking.istio.io versions served and the webhook\'s '
                         'weight rules (istio_rules.py); "none": no Istio CRDs')
    ap.add_argument("--kubeconfig-out", help="write a token kubeconfig (first --token) here")
    ap.add_argument("--kubeconfig-cert-out", help="write a client-certificate kubeconfig here")
    ap.add_argument("--kubeconfig-exec-out", help="write a kubeconfig using bin/fake-exec-plugin here")
    ap.add_argument("--watch-history", type=int, default=2000, help="watch events kept (older -> 410 Expired)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)

    try:
        configure_istio(a.istio_version)
    except ValueError as e:
        ap.error(str(e))
    certs = a.certs
    if not certs:
        import tempfile
        certs = tempfile.mkdtemp(prefix="fake-kube-certs-")
    ensure_certs(certs)

    random.seed(a.seed)
    cfg = Cfg()
    cfg.verbose = a.verbose
    cfg.request_log = a.request_log
    cfg.log_lock = threading.Lock()
    cfg.tokens = Tokens(a.token, a.token_file)
    cfg.throttle = None
    cfg.throttle_lock = threading.Lock()
    cfg.forbid = Forbid(a.forbid)
    ca = os.path.join(certs, "ca.crt")
    cfg.trusted_issuer = tuple(tuple(x) for x in ssl._ssl._test_decode_cert(ca)["subject"])

    store = Store(a.watch_history)
    api = Api(store, a.ready_delay)
    ctl = Controller(api, a.ready_delay)
    ApiHandler.api, ApiHandler.store, ApiHandler.ctl, ApiHandler.cfg = api, store, ctl, cfg

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
    ctx.load_verify_locations(ca)
    untrusted = os.path.join(certs, "untrusted-ca.crt")
    if os.path.exists(untrusted):
        # accepted by TLS, refused by the authenticator (401) - like kube-apiserver,
        # which requests client certificates without verifying them in the handshake
        ctx.load_verify_locations(untrusted)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])

    srv = ApiHTTPServer(("127.0.0.1", a.port), ApiHandler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    port = srv.server_address[1]
    server_url = "https://127.0.0.1:%d" % port

    gsrv = None
    if a.gateway_port is not None:
        GatewayHandler.gateway = Gateway(store, a.gateway_namespace, a.gateway_as)
        gsrv = GatewayServer(("127.0.0.1", a.gateway_port), GatewayHandler)

    if a.kubeconfig_out:
        if not a.token:
            raise SystemExit("--kubeconfig-out needs at least one --token")
        write_kubeconfig(a.kubeconfig_out, server_url, ca, "fake-token", {"token": a.token[0].split("=")[0]})
    if a.kubeconfig_cert_out:
        write_kubeconfig(a.kubeconfig_cert_out, server_url, ca, "fake-cert", {
            "client-certificate-data": b64file(os.path.join(certs, "client.crt")),
            "client-key-data": b64file(os.path.join(certs, "client.key"))})
    if a.kubeconfig_exec_out:
        tok = a.token[0].split("=")[0] if a.token else "exec-token"
        write_kubeconfig(a.kubeconfig_exec_out, server_url, ca, "fake-exec", {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": os.path.join(HERE, "bin", "fake-exec-plugin"),
            "args": [],
            "env": [{"name": "FAKE_EXEC_TOKEN", "value": tok}],
            "interactiveMode": "Never",
            "provideClusterInfo": False}})

    stopping = threading.Event()

    def stop(*_):
        if stopping.is_set():
            return
        stopping.set()
        ctl.stop.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()
        if gsrv:
            threading.Thread(target=gsrv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ctl.start()
    if gsrv:
        threading.Thread(target=gsrv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print("listening on 127.0.0.1:%d" % port, flush=True)
    if gsrv:
        print("gateway on 127.0.0.1:%d" % gsrv.server_address[1], flush=True)
    srv.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
