#!/bin/bash
# deploy/kubernetes as the cluster would get it: `kubectl kustomize` renders
# the base and the three-instance overlay, and the rendered objects have what
# docs/deploy.md promises: a StatefulSet whose pod name is the Kafka static
# membership id, one volume claim per pod mounted at state.dir, probes on
# /readyz and /healthz at the admin port the config listens on (off
# loopback), a startup probe longer than startup.timeout.ms, a grace period
# above shutdown.timeout.ms, a non-root user and a read-only root filesystem
# with every path cuepoint writes on a volume, the user API's token from a
# Secret, resources, a headless Service, a metrics Service and a
# PodDisruptionBudget that select the pods; the ConfigMaps hold the
# repository's journeys and policies unchanged, the overlay's config is the
# base's with the changelog and one standby, and both configs pass
# `cuepoint run --print-config` with the mounts laid out as in the pod.
. "$(dirname "$0")/../lib.sh" "$1"
set -uo pipefail
command -v kubectl > /dev/null || { bad "kubectl is not installed (scripts/deps.sh --test installs kubernetes-client)"; finish; exit 1; }
py=/usr/bin/python3
$py -c 'import yaml' 2> /dev/null || { bad "python3-yaml is not installed (scripts/deps.sh --test)"; finish; exit 1; }
echo "$(kubectl version --client 2>/dev/null | head -n1)"

k=$root/deploy/kubernetes
check() { # NAME DIR REPLICAS: render DIR and check its objects
    local name=$1 dir=$2 replicas=$3 start
    start=$(date +%s%N)
    kubectl kustomize "$dir" > "$tmp/$name.yaml" 2> "$tmp/$name.err" && ok \
        || { bad "kubectl kustomize $dir: $(cat "$tmp/$name.err")"; return; }
    echo "$name: rendered in $(( ($(date +%s%N) - start) / 1000000 )) ms, $(grep -c '^kind:' "$tmp/$name.yaml") objects"
    mkdir -p "$tmp/$name.pod"
    # The objects' checks print "ok" or "FAIL ..." lines; the ConfigMaps are
    # laid out under $tmp/NAME.pod as the pod mounts them.
    $py - "$tmp/$name.yaml" "$tmp/$name.pod" "$replicas" "$root" > "$tmp/$name.checks" 2>&1 <<'PY'
import json, os, sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
pod_root, want_replicas, root = sys.argv[2], int(sys.argv[3]), sys.argv[4]
def check(cond, what):
    print("ok" if cond else "FAIL " + what)
def one(kind, pred=lambda o: True):
    found = [o for o in objs if o["kind"] == kind and pred(o)]
    check(len(found) == 1, "expected one %s, found %d" % (kind, len(found)))
    return found[0] if found else {}
def port_of(listen):
    return int(listen.rsplit(":", 1)[1])

sts = one("StatefulSet")
spec = sts.get("spec", {})
tpl = spec.get("template", {})
pod = tpl.get("spec", {})
labels = tpl.get("metadata", {}).get("labels", {})
def selects(sel):
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())
check(spec.get("replicas") == want_replicas, "replicas %s, expected %d" % (spec.get("replicas"), want_replicas))
check(spec.get("podManagementPolicy") == "Parallel", "podManagementPolicy is not Parallel")
check(selects(spec.get("selector", {}).get("matchLabels")), "the StatefulSet's selector does not select its pods")
c = (pod.get("containers") or [{}])[0]
args = c.get("args", [])
check("run" in args and "--config" in args, "the container does not run `cuepoint run --config`: %s" % args)
config_path = args[args.index("--config") + 1] if "--config" in args else "/nonexistent"
mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
volumes = {v["name"]: v for v in pod.get("volumes", [])}
cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}

# Lay the ConfigMaps out as the pod sees them.
for path, m in mounts.items():
    v = volumes.get(m["name"], {})
    if "configMap" in v:
        cm = cms.get(v["configMap"]["name"])
        check(cm is not None, "volume %s names ConfigMap %s, which is not rendered" % (m["name"], v["configMap"]["name"]))
        check(m.get("readOnly") is True, "%s is not mounted read-only" % path)
        d = pod_root + path
        os.makedirs(d, exist_ok=True)
        for key, text in (cm or {}).get("data", {}).items():
            open(os.path.join(d, key), "w").write(text)
cfg_file = pod_root + config_path
check(os.path.exists(cfg_file), "no ConfigMap holds the config at %s" % config_path)
cfg = json.load(open(cfg_file)) if os.path.exists(cfg_file) else {}
print("CONFIG " + cfg_file)

# The pod's name is the static membership id.
env = {e["name"]: e for e in c.get("env", [])}
gid = cfg.get("kafka", {}).get("consumer", {}).get("group.instance.id", {})
name_env = gid.get("env") if isinstance(gid, dict) else None
check(name_env is not None and env.get(name_env, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
      "kafka.consumer.group.instance.id is not the pod's name (config %s)" % gid)
print("ENV %s=%s" % (name_env, "cuepoint-0"))
for e in c.get("env", []):
    if "value" in e:
        print("ENV %s=%s" % (e["name"], e["value"]))
# The user API's token comes from a Secret.
tok = cfg.get("admin.users.token", {})
tok_env = tok.get("env") if isinstance(tok, dict) else None
check(tok_env is not None and "secretKeyRef" in env.get(tok_env, {}).get("valueFrom", {}),
      "admin.users.token is not read from a Secret through {\"env\": ...}: %s" % tok)
print("ENV %s=%s" % (tok_env, "test-token-0123456789abcdef"))

# State: one claim per pod, mounted where state.dir says.
state_dir = cfg.get("state.dir", "")
claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
m = mounts.get(state_dir)
check(m is not None and m["name"] in claims, "state.dir %s is not a volumeClaimTemplate's mount" % state_dir)
if m is not None and m["name"] in claims:
    cs = claims[m["name"]]["spec"]
    check(cs.get("accessModes") == ["ReadWriteOnce"], "the state claim is not ReadWriteOnce")
    check("storage" in cs.get("resources", {}).get("requests", {}), "the state claim requests no storage")

# Probes at the port the admin server listens on, reachable off loopback.
listen = cfg.get("admin.listen", "127.0.0.1:9464")
check(listen.rsplit(":", 1)[0] in ("0.0.0.0", "[::]"), "admin.listen %s is not reachable by the kubelet" % listen)
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
def probe(name, path):
    p = c.get(name, {}).get("httpGet", {})
    port = ports.get(p.get("port"), p.get("port"))
    check(p.get("path") == path and port == port_of(listen),
          "%s: %s on port %s, expected %s on %d" % (name, p.get("path"), port, path, port_of(listen)))
    return c.get(name, {})
probe("readinessProbe", "/readyz")
probe("livenessProbe", "/healthz")
sp = probe("startupProbe", "/healthz")
budget = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
check(budget * 1000 > cfg.get("startup.timeout.ms", 30000) and budget >= 300,
      "the startup probe allows %d s: not above startup.timeout.ms and 5 minutes" % budget)
grace = pod.get("terminationGracePeriodSeconds", 30)
check(grace * 1000 > cfg.get("shutdown.timeout.ms", 30000),
      "terminationGracePeriodSeconds %d is not above shutdown.timeout.ms %d" % (grace, cfg.get("shutdown.timeout.ms", 30000)))

# Not root, nothing writable but the volumes.
psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "the pod may run as root")
check(psc.get("fsGroup") == psc.get("runAsGroup"), "fsGroup is not the process's group: the state volume would not be writable")
check(csc.get("readOnlyRootFilesystem") is True, "the root filesystem is writable")
check(csc.get("allowPrivilegeEscalation") is False and "ALL" in csc.get("capabilities", {}).get("drop", []),
      "privilege escalation or capabilities are left")
for w in (state_dir, "/tmp"):
    check(w in mounts and not mounts[w].get("readOnly"), "%s (written by cuepoint) is not a writable volume" % w)
r = c.get("resources", {})
check(all(k in r.get("requests", {}) for k in ("cpu", "memory")) and "memory" in r.get("limits", {}),
      "resources: %s" % r)

# Services and the disruption budget select the pods.
svcs = [o for o in objs if o["kind"] == "Service"]
headless = [s for s in svcs if s["spec"].get("clusterIP") == "None"]
check(len(headless) == 1 and headless[0]["metadata"]["name"] == spec.get("serviceName"),
      "the StatefulSet's serviceName is not the headless Service")
metrics = [s for s in svcs if any(p.get("name") == "metrics" for p in s["spec"].get("ports", []))]
check(len(metrics) == 1, "no Service with a metrics port")
for s in svcs:
    check(selects(s["spec"].get("selector")), "Service %s does not select the pods" % s["metadata"]["name"])
    check(s["spec"].get("publishNotReadyAddresses") is True,
          "Service %s hides pods that are not ready (restoring ones would not be scraped)" % s["metadata"]["name"])
    for p in s["spec"].get("ports", []):
        t = p.get("targetPort")
        check(ports.get(t, t) == port_of(listen), "Service %s targets port %s" % (s["metadata"]["name"], t))
pdb = one("PodDisruptionBudget")
check(selects(pdb.get("spec", {}).get("selector", {}).get("matchLabels")), "the PodDisruptionBudget does not select the pods")
check(pdb.get("spec", {}).get("maxUnavailable") == 1, "the PodDisruptionBudget allows more than one pod down")

# The ConfigMaps hold the repository's files unchanged.
machines_dir = os.path.normpath(os.path.join(os.path.dirname(config_path), cfg.get("machines.dir", "")))
check(machines_dir in mounts, "machines.dir %s is not mounted" % machines_dir)
repo = sorted(f for f in os.listdir(root + "/deploy/machines") if f.endswith(".json"))
here = sorted(os.listdir(pod_root + machines_dir)) if os.path.isdir(pod_root + machines_dir) else []
check(repo == here, "the journeys mounted (%s) are not deploy/machines (%s)" % (here, repo))
for f in repo:
    if f in here:
        check(open(pod_root + machines_dir + "/" + f).read() == open(root + "/deploy/machines/" + f).read(),
              "%s differs from deploy/machines/%s" % (f, f))
pol = os.path.join(os.path.dirname(pod_root + config_path), cfg.get("policies", ""))
check(os.path.isfile(pol) and open(pol).read() == open(root + "/deploy/policies.json").read(),
      "the mounted policies are not deploy/policies.json")
if cfg.get("num.standby.replicas", 0) > 0:
    check(cfg.get("changelog.enabled") is True, "standby replicas without the changelog")
    check(want_replicas > cfg["num.standby.replicas"], "fewer instances than 1 + num.standby.replicas")
PY
    grep -c '^ok$' "$tmp/$name.checks" > /dev/null
    passed=$((passed + $(grep -c '^ok$' "$tmp/$name.checks")))
    grep '^FAIL' "$tmp/$name.checks" | while read -r l; do echo "$name: $l"; done
    failed=$((failed + $(grep -c '^FAIL' "$tmp/$name.checks")))
    grep -q '^Traceback' "$tmp/$name.checks" && { bad "$name: the checks crashed"; cat "$tmp/$name.checks"; }

    # The config as the pod reads it passes --print-config (what run checks).
    local cfgf; cfgf=$(sed -n 's/^CONFIG //p' "$tmp/$name.checks")
    local envs=(); mapfile -t envs < <(sed -n 's/^ENV //p' "$tmp/$name.checks")
    local pc=("$cuepoint" run --config "$cfgf" --print-config --set "state.dir=$tmp/$name.state")
    env "${envs[@]}" "${pc[@]}" > "$tmp/$name.print" 2> "$tmp/$name.print.err"; local rc=$?
    if [ $rc = 78 ] && grep -q "admin.users.token: unknown setting" "$tmp/$name.print.err"; then
        # This build predates the user API's token: check the rest.
        echo "$name: this binary does not know admin.users.token yet; checked the config without it"
        jq 'del(."admin.users.token")' "$cfgf" > "$cfgf.tmp" && mv "$cfgf.tmp" "$cfgf"
        env "${envs[@]}" "${pc[@]}" > "$tmp/$name.print" 2> "$tmp/$name.print.err"; rc=$?
    fi
    [ $rc = 0 ] && ok || bad "$name: the pod's config fails --print-config ($rc): $(cat "$tmp/$name.print.err")"
    echo "$name: $(jq -c '{"machines.dir", policies, "state.dir", "admin.listen", "changelog.enabled", "num.standby.replicas"}' "$tmp/$name.print" 2>/dev/null)"
}

check base "$k/base" 1
check three-instances "$k/overlays/three-instances" 3
# The overlay changes the base's config in those two settings, no more.
$py - "$k/base/config/cuepoint.json" "$k/overlays/three-instances/cuepoint.json" <<'PY' && ok || bad "the overlay's config is not the base's plus the changelog and one standby"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
extra = {"changelog.enabled": True, "num.standby.replicas": 1}
sys.exit(0 if dict(a, **extra) == b else 1)
PY
finish
