"""Istio's rules for the fake API server (kube_apiserver.py), taken from the
Istio sources (istio/istio, istio/api) - each rule names the file it comes
from.  Python 3 standard library only.

* served_versions(istio): the networking.istio.io versions a release serves
  (manifests/charts/base/crds/crd-all.gen.yaml): v1alpha3 and v1beta1 up to
  1.21 (v1beta1 preferred: the highest served version, as Kubernetes orders
  CRD versions, apimachinery pkg/version CompareKubeAwareVersionStrings),
  v1 from 1.22 (preferred).
* validate_virtual_service / validate_destination_rule: the checks of
  istiod's validating webhook (pkg/config/validation/validation.go,
  pkg/config/validation/virtualservice.go) that rollout's manifests can
  meet, with their messages.
* deny(): the Status the API server answers with when a validating webhook
  denies a write (k8s.io/apiserver pkg/admission/plugin/webhook/errors/
  statuserror.go ToStatusErr): 403 Forbidden, "<resource> \"<name>\" is
  forbidden: admission webhook \"validation.istio.io\" denied the request:
  configuration is invalid: <errors>" (pkg/webhooks/validation/server/
  server.go), several errors formatted as pkg/util/istiomultierror does.
* applies_to(vs, identity): whether a VirtualService applies to the sidecars
  ("mesh") or to a gateway (istio/api networking/v1alpha3/
  virtual_service.proto, VirtualService.gateways).
* re2_problem(rx): a regular expression Istio refuses (it compiles them with
  Go's regexp, RE2 syntax): what Python's re accepts but RE2 does not.
"""

import re

WEBHOOK = "validation.istio.io"  # manifests/charts/base/templates/defaultrevision-validatingwebhookconfiguration.yaml

# ValidateStrictHTTPHeaderName etc. (validation.go: validHeaderNameRegex = "^[" + tchars + "]+$")
TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
HEADER_NAME = re.compile("^[" + TCHARS + "]+$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
WILDCARD_LABEL = re.compile(r"^(\*|\*?[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")
PSEUDO_HEADERS = {":method", ":scheme", ":authority", ":path", ":status"}


def parse_version(s):
    m = re.match(r"^(\d+)\.(\d+)", s or "")
    if not m:
        raise ValueError("an Istio version is MAJOR.MINOR, e.g. 1.24")
    return int(m.group(1)), int(m.group(2))


def served_versions(istio):
    """networking.istio.io versions served, preferred first."""
    if istio >= (1, 22):
        return ["v1", "v1beta1", "v1alpha3"]
    return ["v1beta1", "v1alpha3"]


def re2_problem(rx):
    """None when RE2 (Go regexp) compiles rx the way Python does, else why not.
    RE2 has no backreferences, lookaround, possessive or atomic groups
    (https://github.com/google/re2/wiki/Syntax, "NOT SUPPORTED")."""
    if len(rx) > 1024:  # validation.go validateStringRegexp
        return "regex is too large, max length allowed is 1024"
    for bad, what in ((r"\\[1-9]", "backreference"), (r"\(\?[=!]", "lookahead"), (r"\(\?<[=!]", "lookbehind"),
                      (r"\(\?>", "atomic group"), (r"[*+?}]\+", "possessive quantifier"), (r"\(\?P=", "backreference")):
        if re.search(bad, rx):
            return "error parsing regexp: invalid or unsupported Perl syntax (%s)" % what
    try:
        re.compile(rx)
    except re.error as e:
        return "error parsing regexp: %s" % e
    return None


def _wildcard_domain(host):
    """agent.ValidateWildcardDomain (pkg/config/validation/agent/validation.go)"""
    if not host or len(host) > 255:
        return 'domain name "%s" invalid' % host
    first, _, rest = host.partition(".")
    if not WILDCARD_LABEL.match(first):
        return 'domain name "%s" invalid (label "%s" invalid)' % (host, first)
    for label in rest.split(".") if rest else []:
        if not DNS1123_LABEL.match(label) or len(label) > 63:
            return 'domain name "%s" invalid (label "%s" invalid)' % (host, label)
    return None


def _string_match(sm, where):
    """validation.go validateStringMatch / validateStringMatchRegexp"""
    if not isinstance(sm, dict):
        return []
    if "prefix" in sm and sm["prefix"] == "":
        return ['"%s": prefix string match should not be empty' % where]
    if "regex" in sm:
        if sm["regex"] == "":
            return ['"%s": regex string match should not be empty' % where]
        why = re2_problem(sm["regex"])
        if why:
            return ['"%s": %s; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)'
                    % (where, why)]
    return []


def _destination(d):
    """validation.go validateDestination"""
    errs = []
    if not isinstance(d, dict):
        return ["destination is required"]
    host = d.get("host") or ""
    if host == "*":
        errs.append("invalid destination host %s" % host)
    else:
        e = _wildcard_domain(host)
        if e:
            errs.append(e)
    sub = d.get("subset")
    if sub is not None and sub != "":
        if not DNS1123_LABEL.match(sub):
            errs.append("subset name is invalid: %s" % sub)
    port = (d.get("port") or {}).get("number") if isinstance(d.get("port"), dict) else None
    if port is not None and not (1 <= int(port) <= 65535):
        errs.append("port number %d must be in the range 1..65535" % port)
    return errs


def _route_destinations(route, istio):
    """validation.go validateHTTPRouteDestinations: weights >= 0; two or more
    destinations may not sum to 0 (Istio >= 1.15, "Loose route destination
    total weight validation", istio/istio#39544); before 1.15 every weight is
    a percentage and two or more must sum to exactly 100 (1.14
    validation.go: ValidatePercent, "total destination weight %v != 100")."""
    errs = []
    total = 0
    for d in route:
        if d is None:
            errs.append("weight may not be nil")
            continue
        if "destination" not in d:
            errs.append("destination is required")
        errs += _destination(d.get("destination"))
        w = d.get("weight", 0) or 0
        if istio >= (1, 15):
            if w < 0:
                errs.append("weight %d < 0" % w)
        elif w < 0 or w > 100:
            errs.append("percentage %d is not in range 0..100" % w)
        total += w
    if len(route) > 1:
        if istio >= (1, 15) and total == 0:
            errs.append("total destination weight = 0")
        elif istio < (1, 15) and total != 100:
            errs.append("total destination weight %d != 100" % total)
    return errs


def validate_virtual_service(spec, istio):
    """-> [error messages] of ValidateVirtualService (validation.go) and
    validateHTTPRoute (virtualservice.go), for the fields rollout writes."""
    errs = []
    if not isinstance(spec, dict):
        return ["cannot cast to virtual service"]
    hosts = spec.get("hosts") or []
    gateways = spec.get("gateways") or []
    for g in gateways:
        if not isinstance(g, str) or not g:
            errs.append("invalid gateway name")
        elif "/" in g:
            ns, _, name = g.partition("/")
            if not DNS1123_LABEL.match(ns):
                errs.append('invalid value for namespace: "%s"' % ns)
            if not DNS1123_LABEL.match(name):
                errs.append('invalid value for gateway name: "%s"' % name)
        elif g != "mesh":
            e = _wildcard_domain(g)
            if e:
                errs.append(e)
    applies_to_mesh = not gateways or "mesh" in gateways
    for h in hosts:
        e = _wildcard_domain(h)
        if e and not re.match(r"^[0-9.:]+$", h):
            errs.append(e)
        elif applies_to_mesh and h == "*":
            errs.append("wildcard host * is not allowed for virtual services bound to the mesh gateway")
    if not spec.get("http") and not spec.get("tcp") and not spec.get("tls"):
        errs.append("http, tcp or tls must be provided in virtual service")
    for rule in spec.get("http") or []:
        if rule is None:
            errs.append("http route may not be null")
            continue
        route = rule.get("route") or []
        direct = rule.get("directResponse")
        redirect = rule.get("redirect")
        # virtualservice.go validateHTTPRouteConflict
        if redirect is not None:
            if route:
                errs.append("HTTP route cannot contain both route and redirect")
            if direct is not None:
                errs.append("HTTP route rule cannot contain both direct_response and redirect")
        elif direct is not None:
            if route:
                errs.append("HTTP route cannot contain both route and direct_response")
        elif not route and rule.get("delegate") is None:
            errs.append("HTTP route, redirect or direct_response is required")
        # virtualservice.go validateHTTPRouteMatchRequest
        for m in rule.get("match") or []:
            if not isinstance(m, dict):
                continue
            for name, sm in (m.get("headers") or {}).items():
                if sm is None:
                    errs.append("header match %s cannot be null" % name)
                if name not in PSEUDO_HEADERS and not HEADER_NAME.match(name):
                    errs.append("header name %s is not a valid header name" % name)
                errs += _string_match(sm, "headers")
            for name, sm in (m.get("withoutHeaders") or {}).items():
                if name not in PSEUDO_HEADERS and not HEADER_NAME.match(name):
                    errs.append("header name %s is not a valid header name" % name)
                if not (isinstance(sm, dict) and sm.get("regex") == "*"):
                    errs += _string_match(sm, "withoutHeaders")
            for key in ("uri", "scheme", "method", "authority"):
                errs += _string_match(m.get(key), key)
            for sm in (m.get("queryParams") or {}).values():
                errs += _string_match(sm, "queryParams")
        if direct is not None:  # validation.go validateHTTPDirectResponse / validateHTTPStatus
            st = direct.get("status", 0) if isinstance(direct, dict) else 0
            if not isinstance(st, int) or st < 200 or st > 600:
                errs.append("HTTP status %s is not in range 200-599" % st)
        errs += _route_destinations(route, istio)
    return errs


def validate_destination_rule(spec):
    """-> [error messages] of ValidateDestinationRule (validation.go)."""
    errs = []
    if not isinstance(spec, dict):
        return ["cannot cast to destination rule"]
    e = _wildcard_domain(spec.get("host") or "")
    if e:
        errs.append(e)
    seen = set()
    for s in spec.get("subsets") or []:
        if s is None:
            errs.append("subset may not be null")
            continue
        name = s.get("name") or ""
        if name in seen:
            errs.append("duplicate subset names: %s" % name)
        seen.add(name)
        if not name:
            errs.append("subset name cannot be empty")
        elif not DNS1123_LABEL.match(name):
            errs.append("subset name is invalid: %s" % name)
        for k, v in (s.get("labels") or {}).items():  # labels.Instance.Validate
            if not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", str(v)):
                errs.append('invalid tag value: "%s"' % v)
    return errs


def format_errors(errs):
    """pkg/util/istiomultierror MultiErrorFormat"""
    if len(errs) == 1:
        return errs[0]
    return "%d errors occurred:\n\t%s\n" % (len(errs), "\n\t".join("* %s" % e for e in errs))


def deny(resource_qualified, group, plural, name, errs):
    """(code, status dict) of the API server's answer to a denied write
    (statuserror.go ToStatusErr; the webhook's message from server.go)."""
    msg = 'admission webhook "%s" denied the request: configuration is invalid: %s' % (WEBHOOK, format_errors(errs))
    return 403, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": '%s "%s" is forbidden: %s' % (resource_qualified, name or "Unknown", msg),
        "reason": "Forbidden", "details": {"name": name or "Unknown", "group": group, "kind": plural},
        "code": 403,
    }


def applies_to(vs, identity):
    """virtual_service.proto VirtualService.gateways: omitted -> the mesh
    (sidecars) only; a list -> those gateways only, plus the sidecars when it
    holds the reserved name "mesh". identity: "mesh" or "NAMESPACE/NAME" of a
    gateway; a gateway named without a namespace is in the VirtualService's."""
    gws = (vs.get("spec") or {}).get("gateways") or []
    if not gws:
        return identity == "mesh"
    ns = vs["metadata"].get("namespace", "default")
    for g in gws:
        if g == "mesh":
            if identity == "mesh":
                return True
            continue
        full = g if "/" in g else "%s/%s" % (ns, g)
        if full == identity:
            return True
    return False
