#!/usr/bin/env bash
# Self-test of the test doubles in tests/fakes: starts the fake API server
# (with its stub gateway) on free loopback ports, drives it with the real
# kubectl, curl, the fake helm and the fake exec plugin, and checks the
# formats against what the real components return.  Exit status 0 = all
# passed.  Every process started here is stopped by PID on exit.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fakes-selftest.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-}" = 1 ]; then echo "# work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
not_ok() {
  FAIL=$((FAIL + 1)); echo "not ok - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -40 | sed 's/^/#   /'; fi
}
# check DESCRIPTION COMMAND...: passes when COMMAND exits 0; shows its output otherwise
check() {
  local desc=$1 out; shift
  if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}
# pyassert DESCRIPTION PYTHON-CODE [ARGS...]: the code sees sys.argv[1:]
pyassert() {
  local desc=$1 code=$2; shift 2
  check "$desc" "$PY" -c "import json, sys, os
$code" "$@"
}

for tool in kubectl curl openssl; do
  command -v "$tool" >/dev/null || { echo "Bail out! $tool is not installed"; exit 1; }
done

# --- start the fake API server ------------------------------------------------
bash "$HERE/make_certs.sh" "$WORK/certs" >/dev/null || { echo "Bail out! make_certs.sh failed"; exit 1; }
"$PY" "$HERE/kube_apiserver.py" --port 0 --certs "$WORK/certs" \
  --token tok-1 --token tok-2=alice --token-file "$WORK/tokens.csv" \
  --request-log "$WORK/requests.jsonl" \
  --forbid get:secrets:default --forbid delete:configmaps:restricted \
  --ready-delay 0.3 --gateway-port 0 \
  --kubeconfig-out "$WORK/kc" --kubeconfig-cert-out "$WORK/kc-cert" --kubeconfig-exec-out "$WORK/kc-exec" \
  >"$WORK/server.out" 2>"$WORK/server.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^gateway on ' "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
API_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/server.out")
GW_PORT=$(sed -n 's/^gateway on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/server.out")
if [ -z "$API_PORT" ] || [ -z "$GW_PORT" ]; then
  echo "Bail out! the fake API server did not start"; cat "$WORK/server.out" "$WORK/server.err"; exit 1
fi
[ "$(head -1 "$WORK/server.out")" = "listening on 127.0.0.1:$API_PORT" ] && ok "first stdout line is 'listening on 127.0.0.1:PORT'" \
  || not_ok "first stdout line is 'listening on 127.0.0.1:PORT'" "$(cat "$WORK/server.out")"
API=https://127.0.0.1:$API_PORT
GW=http://127.0.0.1:$GW_PORT
export KUBECONFIG=$WORK/kc
CURL=(curl -sS --max-time 20 --cacert "$WORK/certs/ca.crt")
AUTH=(-H "Authorization: Bearer tok-1")

# --- authentication and Status bodies -------------------------------------------
"${CURL[@]}" -o "$WORK/401.json" -w '%{http_code}' "$API/api/v1/namespaces" >"$WORK/401.code"
pyassert "no credentials -> 401 with the real Status body" '
code = open(sys.argv[1]).read(); body = json.load(open(sys.argv[2]))
assert code == "401", code
assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}, body' "$WORK/401.code" "$WORK/401.json"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "$API/version")
[ "$code" = 401 ] && ok "unknown bearer token -> 401" || not_ok "unknown bearer token -> 401" "$code"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' --cert "$WORK/certs/untrusted-client.crt" \
  --key "$WORK/certs/untrusted-client.key" "$API/api/v1/namespaces")
[ "$code" = 401 ] && ok "client certificate from an untrusted CA -> 401" || not_ok "untrusted client certificate -> 401" "$code"
code=$("${CURL[@]}" -o "$WORK/cert.json" -w '%{http_code}' --cert "$WORK/certs/client.crt" \
  --key "$WORK/certs/client.key" "$API/api/v1/namespaces/default")
[ "$code" = 200 ] && ok "trusted client certificate -> 200" || not_ok "trusted client certificate -> 200" "$code $(cat "$WORK/cert.json")"
echo "tok-file,bob,1001" >"$WORK/tokens.csv"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer tok-file" "$API/version")
rm -f "$WORK/tokens.csv"
code2=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer tok-file" "$API/version")
[ "$code $code2" = "200 401" ] && ok "--token-file is re-read (add, then revoke)" || not_ok "--token-file add/revoke" "$code $code2"

"${CURL[@]}" "${AUTH[@]}" -o "$WORK/403.json" -w '%{http_code}' "$API/api/v1/namespaces/default/secrets/db" >"$WORK/403.code"
pyassert "--forbid -> 403 with the real Forbidden message" '
assert open(sys.argv[1]).read() == "403"
b = json.load(open(sys.argv[2]))
assert b["reason"] == "Forbidden" and b["code"] == 403 and b["status"] == "Failure", b
assert b["message"] == "secrets \"db\" is forbidden: User \"rollout-token\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\"", b["message"]
assert b["details"] == {"name": "db", "kind": "secrets"}, b["details"]' "$WORK/403.code" "$WORK/403.json"

"${CURL[@]}" "${AUTH[@]}" -o "$WORK/404.json" -w '%{http_code}' "$API/apis/apps/v1/namespaces/default/deployments/nope" >"$WORK/404.code"
pyassert "missing object -> 404 NotFound Status with details" '
assert open(sys.argv[1]).read() == "404"
b = json.load(open(sys.argv[2]))
assert b == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
             "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404}, b' "$WORK/404.code" "$WORK/404.json"

# --- kubectl: discovery, auth variants -----------------------------------------
check "kubectl get ns (token kubeconfig)" bash -c "kubectl get ns | grep -q '^default  *Active'"
check "kubectl get ns (client-certificate kubeconfig)" kubectl --kubeconfig "$WORK/kc-cert" get ns default -o name
FAKE_EXEC_COUNT_FILE=$WORK/exec.count kubectl --kubeconfig "$WORK/kc-exec" get ns kube-system -o name >"$WORK/exec.out" 2>&1
pyassert "kubectl with the exec-plugin kubeconfig (plugin ran once)" '
assert open(sys.argv[1]).read().strip() == "namespace/kube-system", open(sys.argv[1]).read()
assert open(sys.argv[2]).read().strip() == "1"' "$WORK/exec.out" "$WORK/exec.count"
check "kubectl api-resources lists the Istio and Gateway API kinds" bash -c \
  "kubectl api-resources | grep -q 'virtualservices  *vs  *networking.istio.io/v1  *true  *VirtualService' && kubectl api-resources | grep -q HTTPRoute"
check "kubectl version reports the server" bash -c "kubectl version | grep -q 'Server Version: v1.32'"

# --- server-side apply with kubectl ----------------------------------------------
mkdir -p "$WORK/m"
deploy() { # name version replicas image
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
  labels: {app: web, version: $2}
spec:
  replicas: $3
  selector:
    matchLabels: {app: web, version: $2}
  template:
    metadata:
      labels: {app: web, version: $2}
    spec:
      containers:
      - name: web
        image: $4
        ports:
        - containerPort: 8080
EOF
}
deploy web-v1 v1 2 example/web:1.0 >"$WORK/m/web-v1.yaml"
deploy web-v2 v2 1 example/web:2.0 >"$WORK/m/web-v2.yaml"
cat >"$WORK/m/routing.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: web
spec:
  host: web
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
EOF
vs() { # w1 w2 w3
  cat <<EOF
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - match:
    - headers:
        x-version: {exact: v1}
    route:
    - destination: {host: web, subset: v1}
  - match:
    - headers:
        x-version: {exact: v2}
    route:
    - destination: {host: web, subset: v2}
  - match:
    - headers:
        x-version: {exact: v3}
    route:
    - destination: {host: web, subset: v3}
  - route:
    - destination: {host: web, subset: v1}
      weight: $1
    - destination: {host: web, subset: v2}
      weight: $2
    - destination: {host: web, subset: v3}
      weight: $3
EOF
}
vs 80 20 0 >"$WORK/m/vs.yaml"
check "kubectl apply --server-side (Deployments, Service, DestinationRule, VirtualService)" \
  kubectl apply --server-side -f "$WORK/m/web-v1.yaml" -f "$WORK/m/web-v2.yaml" -f "$WORK/m/routing.yaml" -f "$WORK/m/vs.yaml"
check "kubectl rollout status (watch with fieldSelector) sees web-v1 available" \
  kubectl rollout status deployment/web-v1 --timeout=20s
check "kubectl rollout status web-v2" kubectl rollout status deployment/web-v2 --timeout=20s
kubectl get deploy web-v1 -o json --show-managed-fields >"$WORK/web-v1.json"
pyassert "Deployment has managedFields (FieldsV1) and a controller-written status" '
d = json.load(open(sys.argv[1]))
mf = d["metadata"]["managedFields"]
ap = [m for m in mf if m["manager"] == "kubectl" and m["operation"] == "Apply"]
assert len(ap) == 1 and ap[0]["fieldsType"] == "FieldsV1" and ap[0]["apiVersion"] == "apps/v1", mf
f = ap[0]["fieldsV1"]
assert f["f:spec"]["f:replicas"] == {} and f["f:spec"]["f:selector"] == {}, f
c = f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
assert c["."] == {} and c["f:image"] == {}, c
assert "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}" in c["f:ports"], c
st = [m for m in mf if m["manager"] == "kube-controller-manager" and m.get("subresource") == "status"]
assert st and st[0]["operation"] == "Update" and "f:availableReplicas" in st[0]["fieldsV1"]["f:status"], mf
s = d["status"]
assert s["observedGeneration"] == d["metadata"]["generation"] == 1
assert s["replicas"] == s["updatedReplicas"] == s["readyReplicas"] == s["availableReplicas"] == 2, s
conds = {c["type"]: c for c in s["conditions"]}
assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
assert conds["Progressing"]["status"] == "True" and conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
assert d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"   # defaulted, owned by nobody
assert int(d["metadata"]["resourceVersion"]) > 0' "$WORK/web-v1.json"
kubectl get pods -l app=web,version=v1 -o json >"$WORK/pods.json"
pyassert "Pods carry template labels, ownerReferences, Running/Ready status" '
items = json.load(open(sys.argv[1]))["items"]
assert len(items) == 2, len(items)
for p in items:
    assert p["metadata"]["labels"]["version"] == "v1" and "pod-template-hash" in p["metadata"]["labels"]
    ref = p["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ReplicaSet" and ref["controller"] is True
    assert p["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True"
    cs = p["status"]["containerStatuses"][0]
    assert cs["ready"] and "running" in cs["state"] and cs["image"] == "example/web:1.0"' "$WORK/pods.json"
POD=$(kubectl get pods -l version=v1 -o jsonpath='{.items[0].metadata.name}')
check "pod logs with tailLines" bash -c "[ \"\$(kubectl logs $POD --tail=2 | wc -l)\" = 2 ]"

sed 's/replicas: 2/replicas: 3/' "$WORK/m/web-v1.yaml" >"$WORK/m/web-v1-r3.yaml"
if kubectl apply --server-side --field-manager=intruder -f "$WORK/m/web-v1-r3.yaml" >"$WORK/conflict.out" 2>&1; then
  not_ok "conflicting apply by another field manager fails" "$(cat "$WORK/conflict.out")"
else
  check "conflicting apply by another field manager fails with the real message" \
    grep -q 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' "$WORK/conflict.out"
fi
"${CURL[@]}" "${AUTH[@]}" -X PATCH -H 'Content-Type: application/apply-patch+yaml' \
  --data-binary @"$WORK/m/web-v1-r3.yaml" -o "$WORK/conflict.json" \
  "$API/apis/apps/v1/namespaces/default/deployments/web-v1?fieldManager=intruder"
pyassert "apply conflict Status: 409 Conflict with FieldManagerConflict causes" '
b = json.load(open(sys.argv[1]))
assert b["code"] == 409 and b["reason"] == "Conflict" and b["status"] == "Failure", b
assert b["message"] == "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas", b["message"]
assert b["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"",
                                   "field": ".spec.replicas"}], b["details"]' "$WORK/conflict.json"
check "--force-conflicts wins" kubectl apply --server-side --field-manager=intruder --force-conflicts -f "$WORK/m/web-v1-r3.yaml"
kubectl get deploy web-v1 -o json --show-managed-fields >"$WORK/web-v1-forced.json"
pyassert "after force: replicas 3, owned by intruder only, generation bumped" '
d = json.load(open(sys.argv[1]))
assert d["spec"]["replicas"] == 3
mf = {m["manager"]: m for m in d["metadata"]["managedFields"] if m["operation"] == "Apply"}
assert "f:replicas" in mf["intruder"]["fieldsV1"]["f:spec"]
assert "f:replicas" not in mf["kubectl"]["fieldsV1"]["f:spec"], mf["kubectl"]
assert d["metadata"]["generation"] == 2, d["metadata"]["generation"]' "$WORK/web-v1-forced.json"
check "kubectl rollout status after the scale-up" kubectl rollout status deployment/web-v1 --timeout=20s

# re-applying without a field removes it (prune); keeping a co-owned field keeps it
cm() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n'; for kv in "$@"; do printf '  %s\n' "$kv"; done; }
cm "a: '1'" "b: '2'" >"$WORK/m/cm1.yaml"
cm "a: '1'" >"$WORK/m/cm2.yaml"
kubectl apply --server-side -f "$WORK/m/cm1.yaml" >/dev/null && kubectl apply --server-side -f "$WORK/m/cm2.yaml" >/dev/null
check "re-apply by the same manager prunes the field it no longer sets" \
  bash -c "[ \"\$(kubectl get cm cfg -o jsonpath='{.data}')\" = '{\"a\":\"1\"}' ]"

# --- other verbs through curl ------------------------------------------------------
RV=$(kubectl get cm cfg -o jsonpath='{.metadata.resourceVersion}')
"${CURL[@]}" "${AUTH[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' -d '{"data":{"c":"3"}}' \
  -o "$WORK/merge.json" "$API/api/v1/namespaces/default/configmaps/cfg?fieldManager=patcher"
pyassert "merge patch; resourceVersion increases; Update managedFields entry" '
b = json.load(open(sys.argv[1]))
assert b["data"] == {"a": "1", "c": "3"}, b["data"]
assert int(b["metadata"]["resourceVersion"]) > int(sys.argv[2])
m = [e for e in b["metadata"]["managedFields"] if e["manager"] == "patcher"][0]
assert m["operation"] == "Update" and m["fieldsV1"] == {"f:data": {"f:c": {}}}, m' "$WORK/merge.json" "$RV"
"${CURL[@]}" "${AUTH[@]}" -X PATCH -H 'Content-Type: application/json-patch+json' \
  -d '[{"op":"test","path":"/data/a","value":"nope"}]' -o "$WORK/jp.json" -w '%{http_code}' \
  "$API/api/v1/namespaces/default/configmaps/cfg" >"$WORK/jp.code"
pyassert "failing JSON patch test -> 422 Invalid" '
assert open(sys.argv[1]).read() == "422"; b = json.load(open(sys.argv[2])); assert b["reason"] == "Invalid", b' \
  "$WORK/jp.code" "$WORK/jp.json"
"${CURL[@]}" "${AUTH[@]}" -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @"$WORK/m/cm1.yaml" \
  -o "$WORK/nofm.json" "$API/api/v1/namespaces/default/configmaps/cfg"
pyassert "apply without fieldManager -> 422 Invalid (as the real server)" '
b = json.load(open(sys.argv[1]))
assert b["code"] == 422 and b["reason"] == "Invalid", b
assert b["message"] == "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch", b["message"]' "$WORK/nofm.json"
"${CURL[@]}" "${AUTH[@]}" -X PATCH -H 'Content-Type: application/strategic-merge-patch+json' -d '{"spec":{}}' \
  -o "$WORK/smp.json" "$API/apis/networking.istio.io/v1/namespaces/default/virtualservices/web"
pyassert "strategic merge patch on a custom resource -> 415" '
b = json.load(open(sys.argv[1])); assert b["code"] == 415 and b["reason"] == "UnsupportedMediaType", b' "$WORK/smp.json"
kubectl get cm cfg -o json >"$WORK/cfg.json"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["metadata"]["resourceVersion"]="1"; d["data"]["x"]="y"; json.dump(d, open(sys.argv[1],"w"))' "$WORK/cfg.json"
"${CURL[@]}" "${AUTH[@]}" -X PUT -H 'Content-Type: application/json' --data-binary @"$WORK/cfg.json" \
  -o "$WORK/put409.json" "$API/api/v1/namespaces/default/configmaps/cfg"
pyassert "PUT with a stale resourceVersion -> 409 Conflict, real message" '
b = json.load(open(sys.argv[1]))
assert b["code"] == 409 and b["reason"] == "Conflict", b
assert b["message"] == "Operation cannot be fulfilled on configmaps \"cfg\": the object has been modified; please apply your changes to the latest version and try again", b["message"]
assert b["details"] == {"name": "cfg", "kind": "configmaps"}, b' "$WORK/put409.json"
"${CURL[@]}" "${AUTH[@]}" -X POST -H 'Content-Type: application/json' \
  -d '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"}}' -o "$WORK/exists.json" \
  "$API/api/v1/namespaces/default/configmaps"
pyassert "create of an existing name -> 409 AlreadyExists" '
b = json.load(open(sys.argv[1])); assert b["reason"] == "AlreadyExists" and b["message"] == "configmaps \"cfg\" already exists", b' "$WORK/exists.json"
"${CURL[@]}" "${AUTH[@]}" -o "$WORK/sel.json" \
  "$API/api/v1/namespaces/default/pods?labelSelector=app%3Dweb,version%20in%20(v2),version!%3Dv1"
pyassert "list with set-based label selector; XList with resourceVersion" '
b = json.load(open(sys.argv[1]))
assert b["kind"] == "PodList" and b["apiVersion"] == "v1" and int(b["metadata"]["resourceVersion"]) > 0
assert [p["metadata"]["labels"]["version"] for p in b["items"]] == ["v2"], b["items"]' "$WORK/sel.json"

# --- watch -------------------------------------------------------------------------
timeout 8 kubectl get configmaps --watch --output-watch-events >"$WORK/kwatch.out" 2>&1 &
WPID=$!; PIDS+=($WPID)
sleep 1.5
cm "k: v" | sed 's/name: cfg/name: watched/' | kubectl create -f - >/dev/null
kubectl delete configmap watched >/dev/null
for _ in $(seq 40); do grep -q 'DELETED *watched' "$WORK/kwatch.out" && break; sleep 0.1; done
kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null
pyassert "kubectl get --watch sees ADDED and DELETED" '
t = open(sys.argv[1]).read()
assert "ADDED" in t and "watched" in t and "DELETED" in t, t' "$WORK/kwatch.out"
RV=$("${CURL[@]}" "${AUTH[@]}" "$API/api/v1/namespaces/default/configmaps" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
( sleep 0.5; cm "a: b" | sed 's/name: cfg/name: w2/' | kubectl create -f - >/dev/null ) &
PIDS+=($!)
"${CURL[@]}" "${AUTH[@]}" -D "$WORK/watch.hdr" -o "$WORK/watch.out" \
  "$API/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=$RV&timeoutSeconds=2"
pyassert "watch=true&resourceVersion: chunked JSON lines, events after RV, closes at timeoutSeconds" '
h = open(sys.argv[1]).read().lower(); assert "transfer-encoding: chunked" in h, h
lines = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()]
assert lines and lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == "w2", lines
assert lines[0]["object"]["kind"] == "ConfigMap" and lines[0]["object"]["apiVersion"] == "v1"
assert all(int(l["object"]["metadata"]["resourceVersion"]) > int(sys.argv[3]) for l in lines)' "$WORK/watch.hdr" "$WORK/watch.out" "$RV"
"${CURL[@]}" "${AUTH[@]}" -X POST -o /dev/null "$API/_fake/compact"
"${CURL[@]}" "${AUTH[@]}" -o "$WORK/watch410.out" \
  "$API/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=$RV&timeoutSeconds=2"
pyassert "watch from a compacted resourceVersion -> ERROR event with 410 Expired" '
ev = json.loads(open(sys.argv[1]).read().splitlines()[0])
assert ev["type"] == "ERROR", ev
o = ev["object"]
assert o["kind"] == "Status" and o["code"] == 410 and o["reason"] == "Expired", o
assert o["message"].startswith("too old resource version: %s (" % sys.argv[2]), o["message"]' "$WORK/watch410.out" "$RV"

# --- the stub gateway ----------------------------------------------------------------
cat >"$WORK/probe.py" <<'EOF'
import http.client, json, sys
host, port = sys.argv[1].split(":")
n = int(sys.argv[2]); hdrs = dict(h.split(":", 1) for h in sys.argv[3:])
c = http.client.HTTPConnection(host, int(port), timeout=10)
counts = {}
for _ in range(n):
    c.request("GET", "/api/version", headers=hdrs)
    r = c.getresponse(); body = r.read()
    if r.status == 200:
        d = json.loads(body)
        assert d["version"] == r.getheader("X-Served-By") and d["service"] == "web" and d["pod"], (d, r.getheaders())
        key = d["version"]
    else:
        key = "%d %s" % (r.status, body.decode())
    counts[key] = counts.get(key, 0) + 1
print(json.dumps(counts, sort_keys=True))
EOF
probe() { "$PY" "$WORK/probe.py" "127.0.0.1:$GW_PORT" "$@"; }
probe 1000 >"$WORK/split.json"
pyassert "gateway: 1000 requests at weights 80/20/0 land near 80/20, none on v3" '
c = json.load(open(sys.argv[1]))
assert set(c) == {"v1", "v2"}, c
assert 740 <= c["v1"] <= 860 and c["v1"] + c["v2"] == 1000, c' "$WORK/split.json"
probe 200 "x-version:v2" >"$WORK/hdr.json"
pyassert "gateway: x-version: v2 always reaches v2" 'c = json.load(open(sys.argv[1])); assert c == {"v2": 200}, c' "$WORK/hdr.json"
deploy web-v3 v3 1 example/web:broken >"$WORK/m/web-v3.yaml"
kubectl apply --server-side -f "$WORK/m/web-v3.yaml" >/dev/null
vs 0 50 50 >"$WORK/m/vs2.yaml"
kubectl apply --server-side -f "$WORK/m/vs2.yaml" >/dev/null
sleep 0.6
probe 50 "x-version:v3" >"$WORK/v3.json"
pyassert "gateway: a version without ready pods -> 503 no healthy upstream (never another version)" '
c = json.load(open(sys.argv[1])); assert c == {"503 no healthy upstream": 50}, c' "$WORK/v3.json"
probe 300 >"$WORK/w0.json"
pyassert "gateway: weight 0 gets nothing; default route to v2 or the broken v3" '
c = json.load(open(sys.argv[1]))
assert "v1" not in c and set(c) <= {"v2", "503 no healthy upstream"} and 100 <= c.get("v2", 0) <= 200, c' "$WORK/w0.json"
kubectl get events --field-selector reason=Failed -o json >"$WORK/events.json"
pyassert "broken image: pod waits in ImagePullBackOff and a Failed event says why" '
evs = json.load(open(sys.argv[1]))["items"]
msgs = [e["message"] for e in evs if e["involvedObject"]["kind"] == "Pod" and e["involvedObject"]["name"].startswith("web-v3-")]
assert any(m.startswith("Failed to pull image \"example/web:broken\"") for m in msgs), msgs' "$WORK/events.json"
check "broken image: the pod status says ImagePullBackOff" bash -c \
  "kubectl get pods -l version=v3 -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason}' | grep -qx ImagePullBackOff"

# HTTPRoute instead of a VirtualService: per-version Services as backendRefs
check "kubectl delete virtualservice" kubectl delete virtualservice web
cat >"$WORK/m/httproute.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web-v1}
spec:
  selector: {app: web, version: v1}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2}
spec:
  selector: {app: web, version: v2}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]   # GAMMA: the mesh, which the stub gateway routes for
  hostnames: [web]
  rules:
  - matches:
    - headers: [{name: x-version, value: v1}]
    backendRefs: [{name: web-v1, port: 80}]
  - backendRefs:
    - {name: web-v1, port: 80, weight: 30}
    - {name: web-v2, port: 80, weight: 70}
EOF
check "kubectl apply --server-side an HTTPRoute" kubectl apply --server-side -f "$WORK/m/httproute.yaml"
probe 1000 >"$WORK/hr.json"
pyassert "gateway follows the HTTPRoute: weights 30/70" '
c = json.load(open(sys.argv[1])); assert set(c) == {"v1", "v2"} and 240 <= c["v1"] <= 360, c' "$WORK/hr.json"
probe 100 "x-version:v1" >"$WORK/hr-hdr.json"
pyassert "gateway follows the HTTPRoute header match" 'c = json.load(open(sys.argv[1])); assert c == {"v1": 100}, c' "$WORK/hr-hdr.json"

# scale subresource and dry run
check "kubectl scale (autoscaling/v1 Scale subresource)" kubectl scale deployment web-v2 --replicas=2
check "scaled Deployment becomes available with 2 replicas" kubectl rollout status deployment/web-v2 --timeout=20s
RV=$(kubectl get deploy web-v2 -o jsonpath='{.metadata.resourceVersion}')
sed 's/replicas: 1/replicas: 5/' "$WORK/m/web-v2.yaml" |
  kubectl apply --server-side --force-conflicts --dry-run=server -o json -f - >"$WORK/dry.json"
pyassert "dry-run apply answers the result but persists nothing" '
d = json.load(open(sys.argv[1]))
assert d["spec"]["replicas"] == 5 and d["metadata"]["resourceVersion"] == sys.argv[2], d["metadata"]' \
  "$WORK/dry.json" "$RV"
check "... the stored object is unchanged" bash -c "[ \"\$(kubectl get deploy web-v2 -o jsonpath='{.spec.replicas}')\" = 2 ]"

# --- delete --------------------------------------------------------------------------
check "kubectl delete deployment" kubectl delete deployment web-v2 --timeout=20s
for _ in $(seq 50); do [ -z "$(kubectl get pods -l version=v2 -o name)" ] && break; sleep 0.1; done
check "deleting a Deployment deletes its ReplicaSet and Pods" bash -c \
  "[ -z \"\$(kubectl get pods,rs -l version=v2 -o name)\" ]"
"${CURL[@]}" "${AUTH[@]}" -X DELETE -o "$WORK/del404.json" "$API/apis/apps/v1/namespaces/default/deployments/web-v2"
pyassert "deleting it again -> 404 NotFound" 'b = json.load(open(sys.argv[1])); assert b["code"] == 404 and b["details"]["kind"] == "deployments", b' "$WORK/del404.json"

# --- the request log -----------------------------------------------------------------
pyassert "request log: one JSON line per request with method/path/query/content_type/user/code" '
rows = [json.loads(l) for l in open(sys.argv[1])]
need = {"method", "path", "query", "content_type", "user", "code"}
assert all(need <= set(r) for r in rows), rows[0]
applies = [r for r in rows if r["method"] == "PATCH" and r["path"] == "/apis/apps/v1/namespaces/default/deployments/web-v1"]
# kubectl apply x1, conflicting kubectl apply, curl apply (conflict), forced apply
assert [r["code"] for r in applies] == [201, 409, 409, 200], [(r["code"], r["query"]) for r in applies]
assert all(r["content_type"] == "application/apply-patch+yaml" for r in applies)
assert {r["user"] for r in applies} == {"rollout-token"}
assert any(r["code"] == 401 and r["user"] is None for r in rows)' "$WORK/requests.jsonl"

# --- the fake helm ---------------------------------------------------------------------
export PATH="$HERE/bin:$PATH" HELM_FAKE_STATE=$WORK/helm-state HELM_FAKE_LOG=$WORK/helm.log
mkdir -p "$WORK/chart/templates"
printf 'apiVersion: v2\nname: microservice\nversion: 0.1.0\nappVersion: "1.0.0"\n' >"$WORK/chart/Chart.yaml"
printf 'service: svc\nversion: v1\nimage:\n  repository: example/svc\n  tag: ""\nport: 8080\nhealthPath: /healthz\nreplicaCount: 1\n' >"$WORK/chart/values.yaml"
printf '# rendered by the fake helm itself, see tests/fakes/README.md\n' >"$WORK/chart/templates/deployment.yaml"
check "helm version --short" bash -c "helm version --short | grep -Eq '^v3\\.[0-9]+\\.[0-9]+\\+g[0-9a-f]{7}\$'"
check "helm upgrade --install --wait" helm upgrade --install svc-v1 "$WORK/chart" -n default --create-namespace \
  --set version=v1 --set image.tag=1.0 --wait --timeout 30s -o json
kubectl get deploy svc-v1 -o json --show-managed-fields >"$WORK/svc-v1.json"
pyassert "helm rendered the Deployment and applied it with fieldManager helm" '
d = json.load(open(sys.argv[1]))
assert d["metadata"]["labels"]["app"] == "svc" and d["metadata"]["labels"]["version"] == "v1"
assert d["metadata"]["annotations"]["meta.helm.sh/release-name"] == "svc-v1"
c = d["spec"]["template"]["spec"]["containers"][0]
assert c["image"] == "example/svc:1.0" and c["ports"][0]["containerPort"] == 8080
assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
assert [m["manager"] for m in d["metadata"]["managedFields"] if m["operation"] == "Apply"] == ["helm"]
assert d["status"]["availableReplicas"] == 1' "$WORK/svc-v1.json"
helm list -o json >"$WORK/hlist.json"
pyassert "helm list -o json has the real fields" '
l = json.load(open(sys.argv[1]))
assert len(l) == 1 and set(l[0]) == {"name", "namespace", "revision", "updated", "status", "chart", "app_version"}, l
e = l[0]
assert (e["name"], e["namespace"], e["revision"], e["status"], e["chart"], e["app_version"]) == \
    ("svc-v1", "default", "1", "deployed", "microservice-0.1.0", "1.0.0"), e
import re; assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+$", e["updated"]), e["updated"]' "$WORK/hlist.json"
helm status svc-v1 -o json >"$WORK/hstatus.json"
pyassert "helm status -o json has the release shape" '
r = json.load(open(sys.argv[1]))
assert r["name"] == "svc-v1" and r["version"] == 1 and r["namespace"] == "default"
assert set(r["info"]) >= {"first_deployed", "last_deployed", "deleted", "description", "status"}
assert r["info"]["status"] == "deployed" and r["info"]["description"] == "Install complete" and r["info"]["deleted"] == ""
assert r["chart"]["metadata"]["name"] == "microservice" and r["chart"]["metadata"]["appVersion"] == "1.0.0"
assert r["config"] == {"version": "v1", "image": {"tag": "1.0"}}, r["config"]
assert "kind: Deployment" in r["manifest"]' "$WORK/hstatus.json"
check "helm get values -o json" bash -c "[ \"\$(helm get values svc-v1 -o json)\" = '{\"version\":\"v1\",\"image\":{\"tag\":\"1.0\"}}' ]"
if helm upgrade --install svc-v9 "$WORK/chart" --set version=v9 --set image.tag=broken --wait --timeout 1s >"$WORK/hwait.out" 2>&1; then
  not_ok "helm --wait on a never-ready Deployment times out" "$(cat "$WORK/hwait.out")"
else
  check "helm --wait on a never-ready Deployment: exit 1, 'Error: context deadline exceeded'" \
    grep -qx 'Error: context deadline exceeded' "$WORK/hwait.out"
fi
check "helm uninstall" bash -c "helm uninstall svc-v1 | grep -qx 'release \"svc-v1\" uninstalled'"
for _ in $(seq 30); do kubectl get deploy svc-v1 >/dev/null 2>&1 || break; sleep 0.1; done
check "helm uninstall deleted the Deployment" bash -c "! kubectl get deploy svc-v1 2>/dev/null"
helm uninstall svc-v1 >"$WORK/hun.out" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -qx 'Error: uninstall: Release not loaded: svc-v1: release: not found' "$WORK/hun.out" \
  && ok "helm uninstall of a missing release: real error text, exit 1" || not_ok "helm uninstall missing" "rc=$rc $(cat "$WORK/hun.out")"
HELM_FAKE_FAIL=upgrade helm upgrade --install x "$WORK/chart" >"$WORK/hfail.out" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q '^Error: UPGRADE FAILED: ' "$WORK/hfail.out" && ok "HELM_FAKE_FAIL=upgrade" \
  || not_ok "HELM_FAKE_FAIL=upgrade" "rc=$rc $(cat "$WORK/hfail.out")"
HELM_FAKE_HANG=list timeout 1 helm list >/dev/null 2>&1; rc=$?
[ "$rc" = 124 ] && ok "HELM_FAKE_HANG=list hangs until killed" || not_ok "HELM_FAKE_HANG=list" "rc=$rc"
helm lsit >"$WORK/hunk.out" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -qx 'Error: unknown command "lsit" for "helm"' "$WORK/hunk.out" && ok "unknown helm command" \
  || not_ok "unknown helm command" "rc=$rc $(cat "$WORK/hunk.out")"
check "HELM_FAKE_LOG records argv as JSON lines" "$PY" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[0]["argv"] == ["version", "--short"], rows[0]
assert any(r["argv"][:3] == ["upgrade", "--install", "svc-v1"] for r in rows)' "$WORK/helm.log"

# --- the exec credential plugin -----------------------------------------------------------
KUBERNETES_EXEC_INFO='{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}' \
  FAKE_EXEC_TOKEN='t-{n}' FAKE_EXEC_LIFETIME=60 FAKE_EXEC_COUNT_FILE=$WORK/plugin.count \
  "$HERE/bin/fake-exec-plugin" >"$WORK/cred.json"
pyassert "fake-exec-plugin prints an ExecCredential with token and RFC3339 expiry" '
import datetime
c = json.load(open(sys.argv[1]))
assert c["kind"] == "ExecCredential" and c["apiVersion"] == "client.authentication.k8s.io/v1"
assert c["status"]["token"] == "t-1", c
exp = datetime.datetime.strptime(c["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
left = (exp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
assert 50 < left <= 61, left' "$WORK/cred.json"
FAKE_EXEC_FAIL=1 "$HERE/bin/fake-exec-plugin" >"$WORK/cred2.out" 2>"$WORK/cred2.err"; rc=$?
[ "$rc" = 1 ] && [ ! -s "$WORK/cred2.out" ] && [ -s "$WORK/cred2.err" ] && ok "fake-exec-plugin FAKE_EXEC_FAIL" \
  || not_ok "fake-exec-plugin FAKE_EXEC_FAIL" "rc=$rc"

# --- the server is still healthy and quiet ------------------------------------------------
if grep -q Traceback "$WORK/server.err"; then not_ok "no tracebacks on the server's stderr" "$(cat "$WORK/server.err")"
else ok "no tracebacks on the server's stderr"; fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
