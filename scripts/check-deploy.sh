#!/usr/bin/env bash
# Static checks of the Kubernetes manifests under deploy/k8s: builds each overlay with kustomize
# and asserts what deploy/README.md ("Kubernetes") promises for it. No cluster, no Docker.
#
#   bash scripts/check-deploy.sh
#
# Needs: go (to install kustomize when it is not on PATH), python3 with PyYAML (python3-yaml).
# Builds overlays/dev, overlays/prod, and prod with components/cloudnative-pg (through a
# temporary overlay). Prints one line per overlay on success; on failure every broken
# assertion, then exits 1. The compose file is not checked here.
set -euo pipefail

KUSTOMIZE_VERSION=v5.7.1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
k8s=$root/deploy/k8s

if ! command -v kustomize >/dev/null 2>&1; then
	gobin=$(go env GOBIN)
	PATH="${gobin:-$(go env GOPATH)/bin}:$PATH"
	export PATH
	if ! command -v kustomize >/dev/null 2>&1; then
		echo "check-deploy: installing kustomize $KUSTOMIZE_VERSION (go install)" >&2
		go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
	fi
fi
have=$(kustomize version 2>/dev/null || true)
if [[ $have != "$KUSTOMIZE_VERSION"* ]]; then
	echo "check-deploy: warning: kustomize ${have:-unknown} on PATH, the manifests target $KUSTOMIZE_VERSION" >&2
fi

if ! python3 -c 'import yaml' 2>/dev/null; then
	echo "check-deploy: python3 with PyYAML is required (apt-get install python3-yaml, or pip install pyyaml)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build() { # build <name> <kustomization dir>
	if ! kustomize build "$2" >"$tmp/$1.yaml" 2>"$tmp/$1.err"; then
		echo "check-deploy: $1: kustomize build $2 failed:" >&2
		cat "$tmp/$1.err" >&2
		exit 1
	fi
}

build dev "$k8s/overlays/dev"
build prod "$k8s/overlays/prod"

# prod plus the optional CloudNativePG component, as an operator would add it (kustomize takes
# only relative paths to other kustomizations).
mkdir -p "$tmp/prod-cnpg"
rel=$(realpath --relative-to="$tmp/prod-cnpg" "$k8s")
cat >"$tmp/prod-cnpg/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/overlays/prod
components:
  - $rel/components/cloudnative-pg
EOF
build prod-cnpg "$tmp/prod-cnpg"

check() { # check <dev|prod|prod-cnpg>
	python3 - "$1" "$tmp/$1.yaml" <<'PY'
import re
import sys

import yaml

mode, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]

errors = []


def fail(msg):
    errors.append(msg)


def kind(k):
    return [d for d in docs if d.get("kind") == k]


def name(d):
    return d.get("metadata", {}).get("name", "?")


def ident(d):
    return f"{d.get('kind')}/{name(d)}"


def pod_spec(d):
    return d.get("spec", {}).get("template", {}).get("spec", {}) or {}


def containers(d):
    ps = pod_spec(d)
    return (ps.get("initContainers") or []) + (ps.get("containers") or [])


SERVICES = ["api", "scanner", "confirmer", "sweeper", "webhook-sender"]
NAMESPACE = "ctrip"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PriorityClass"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}

configmaps = {name(d): d.get("data", {}) or {} for d in kind("ConfigMap")}
deployments = {name(d): d for d in kind("Deployment")}
statefulsets = kind("StatefulSet")
pdbs = kind("PodDisruptionBudget")
hpas = kind("HorizontalPodAutoscaler")
jobs = kind("Job")


def env_of(container):
    """The container's effective environment: envFrom ConfigMaps, then env (which wins)."""
    env = {}
    for src in container.get("envFrom") or []:
        ref = src.get("configMapRef")
        if ref:
            if ref.get("name") not in configmaps:
                fail(f"{container.get('name')}: envFrom ConfigMap {ref.get('name')} is not in the build")
            env.update(configmaps.get(ref.get("name"), {}))
        if src.get("secretRef"):
            # Keys unknown here; ctrip-secrets carries DATABASE_URL (secret.example.yaml).
            if src["secretRef"].get("name") == "ctrip-secrets":
                env.setdefault("DATABASE_URL", "<secret ctrip-secrets>")
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = "<ref>"
    return env


def image_tag(image):
    """(tag or digest, None) or (None, problem)."""
    if "@" in image:
        return image.split("@", 1)[1], None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return None, f"image {image} has no tag (implies latest)"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        return None, f"image {image} uses the tag latest"
    return tag, None


def all_images(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("image", "imageName") and isinstance(v, str):
                found.append(v)
            else:
                all_images(v, found)
    elif isinstance(node, list):
        for v in node:
            all_images(v, found)
    return found


def selects(selector, d):
    labels = d.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}
    ml = (selector or {}).get("matchLabels") or {}
    return bool(ml) and all(labels.get(k) == v for k, v in ml.items())


def spread_by_hostname(d):
    ps = pod_spec(d)
    for c in ps.get("topologySpreadConstraints") or []:
        if c.get("topologyKey") == "kubernetes.io/hostname":
            return True
    aa = (ps.get("affinity") or {}).get("podAntiAffinity") or {}
    for t in aa.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
        if t.get("topologyKey") == "kubernetes.io/hostname":
            return True
    for t in aa.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        if (t.get("podAffinityTerm") or {}).get("topologyKey") == "kubernetes.io/hostname":
            return True
    return False


def probe_path(probe):
    return ((probe or {}).get("httpGet") or {}).get("path")


def probe_port(probe):
    return ((probe or {}).get("httpGet") or {}).get("port")


# ---- every overlay -------------------------------------------------------------------------

for d in docs:
    if d.get("kind") not in CLUSTER_SCOPED and d.get("metadata", {}).get("namespace") != NAMESPACE:
        fail(f"{ident(d)} is not in the namespace {NAMESPACE}")
if kind("Secret"):
    fail("Secrets in the build (" + ", ".join(name(d) for d in kind("Secret"))
         + "): the operator creates them; secret.example.yaml must stay out of resources")

for s in SERVICES:
    if s not in deployments:
        fail(f"Deployment {s} missing")
extra = sorted(set(deployments) - set(SERVICES))
if extra:
    fail(f"unexpected Deployments: {', '.join(extra)}")

nats_workloads = [d for d in docs if d.get("kind") in WORKLOADS
                  and any(c.get("image", "").startswith("nats:") for c in containers(d))]
if len(nats_workloads) != 1:
    fail(f"want exactly one NATS workload, got {len(nats_workloads)}: "
         + ", ".join(ident(d) for d in nats_workloads))
if len(statefulsets) != 1 or name(statefulsets[0]) != "nats":
    fail("want exactly one StatefulSet, named nats; got: "
         + (", ".join(name(d) for d in statefulsets) or "none"))
nats = next((d for d in statefulsets if name(d) == "nats"), None)
if not any(name(d) == "nats" for d in kind("Service")):
    fail("Service nats (NATS_URL nats://nats:4222) missing")

for dname, d in deployments.items():
    for c in pod_spec(d).get("containers") or []:
        env = env_of(c)
        if env.get("OPS_ADDR") != ":9090":
            fail(f"Deployment {dname}: OPS_ADDR is {env.get('OPS_ADDR')!r}, want ':9090'")
        if "NATS_URL" not in env or "DATABASE_URL" not in env:
            fail(f"Deployment {dname}: NATS_URL or DATABASE_URL not set")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        if ports.get("ops") != 9090:
            fail(f"Deployment {dname}: no container port ops = 9090")
        lp, rp = c.get("livenessProbe"), c.get("readinessProbe")
        if probe_path(lp) != "/healthz" or probe_port(lp) not in ("ops", 9090):
            fail(f"Deployment {dname}: livenessProbe is not GET /healthz on the ops port")
        if probe_path(rp) != "/readyz" or probe_port(rp) not in ("ops", 9090):
            fail(f"Deployment {dname}: readinessProbe is not GET /readyz on the ops port")

stats = {}


def expect_env(dname, d, **want):
    """Every container of Deployment dname has each variable of want at its value."""
    for c in pod_spec(d).get("containers") or []:
        env = env_of(c)
        for var, value in want.items():
            if env.get(var) != value:
                fail(f"Deployment {dname}: {var} is {env.get(var)!r}, want {value!r}")

# ---- dev -----------------------------------------------------------------------------------

if mode == "dev":
    for dname, d in deployments.items():
        if d.get("spec", {}).get("replicas") != 1:
            fail(f"Deployment {dname}: replicas {d.get('spec', {}).get('replicas')}, want 1")
        expect_env(dname, d, STREAMS_REPLICAS="1", MIGRATE_ON_START="true")
    if nats is not None and nats.get("spec", {}).get("replicas") != 1:
        fail(f"StatefulSet nats: replicas {nats['spec'].get('replicas')}, want 1")
    summary = (f"dev: OK: {len(deployments)} Deployments x1, StatefulSet nats x1, "
               f"STREAMS_REPLICAS=1, MIGRATE_ON_START=true, {len(docs)} objects")

# ---- prod (and prod + cloudnative-pg) ------------------------------------------------------

else:
    tags = set()
    for d in docs:
        for image in all_images(d, []):
            tag, problem = image_tag(image)
            if problem:
                fail(f"{ident(d)}: {problem}")
            elif image.startswith("ctrip/"):
                tags.add(tag)

    for dname, d in deployments.items():
        r = d.get("spec", {}).get("replicas")
        if not isinstance(r, int) or r < 2:
            fail(f"Deployment {dname}: replicas {r}, want >= 2")
        if not spread_by_hostname(d):
            fail(f"Deployment {dname}: no topology spread / anti-affinity by kubernetes.io/hostname")
        expect_env(dname, d, STREAMS_REPLICAS="3", MIGRATE_ON_START="false")
        covering = [p for p in pdbs if selects(p.get("spec", {}).get("selector"), d)]
        if len(covering) != 1:
            fail(f"Deployment {dname}: want one PodDisruptionBudget, got {len(covering)}")
        elif covering[0]["spec"].get("minAvailable") != 1:
            fail(f"PodDisruptionBudget {name(covering[0])}: minAvailable "
                 f"{covering[0]['spec'].get('minAvailable')}, want 1")

    if nats is not None:
        spec = nats.get("spec", {})
        if spec.get("replicas") != 3:
            fail(f"StatefulSet nats: replicas {spec.get('replicas')}, want 3")
        if spec.get("podManagementPolicy") != "Parallel":
            fail("StatefulSet nats: podManagementPolicy is not Parallel (a JetStream cluster "
                 "cannot become ready one pod at a time)")
        if not spec.get("volumeClaimTemplates"):
            fail("StatefulSet nats: no volumeClaimTemplates (JetStream must be on PVCs)")
        if not any(name(s) == spec.get("serviceName") and s.get("spec", {}).get("clusterIP") == "None"
                   for s in kind("Service")):
            fail(f"StatefulSet nats: governing headless Service {spec.get('serviceName')} missing")
        aa = (pod_spec(nats).get("affinity") or {}).get("podAntiAffinity") or {}
        if not any(t.get("topologyKey") == "kubernetes.io/hostname"
                   for t in aa.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
            fail("StatefulSet nats: no required pod anti-affinity by kubernetes.io/hostname")
        c = next((c for c in pod_spec(nats).get("containers") or [] if c.get("image", "").startswith("nats:")), {})
        if not re.fullmatch(r"nats:2\.15\.\d+(-alpine)?", c.get("image", "")):
            fail(f"StatefulSet nats: image {c.get('image')!r}, want nats:2.15.x-alpine")
        args = c.get("args") or []
        routes = args[args.index("--routes") + 1].split(",") if "--routes" in args[:-1] else []
        if len(routes) != 3:
            fail(f"StatefulSet nats: --routes lists {len(routes)} servers, want 3")
        if "--cluster_name" not in args:
            fail("StatefulSet nats: no --cluster_name")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        for pname in ("liveness", "readiness"):
            probe = c.get(pname + "Probe")
            port = probe_port(probe)
            if not (probe_path(probe) or "").startswith("/healthz") or ports.get(port, port) != 8222:
                fail(f"StatefulSet nats: {pname}Probe is not GET /healthz on the monitor port 8222")
        nats_pdbs = [p for p in pdbs if selects(p.get("spec", {}).get("selector"), nats)]
        if len(nats_pdbs) != 1 or nats_pdbs[0]["spec"].get("maxUnavailable") != 1:
            fail("StatefulSet nats: want one PodDisruptionBudget with maxUnavailable 1")
        if not any(k.startswith("nats-config") and "jetstream" in (v.get("nats.conf") or "")
                   for k, v in configmaps.items()):
            fail("ConfigMap nats-config with a nats.conf holding the jetstream block missing")

    if len(pdbs) != len(deployments) + 1:
        fail(f"want {len(deployments) + 1} PodDisruptionBudgets (one per Deployment, one for NATS), got {len(pdbs)}")

    if len(hpas) != 1:
        fail(f"want exactly one HorizontalPodAutoscaler, got {len(hpas)}")
    else:
        h = hpas[0]
        hs = h.get("spec", {})
        cpu = [m["resource"]["target"].get("averageUtilization") for m in hs.get("metrics") or []
               if m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"]
        if (h.get("apiVersion") != "autoscaling/v2" or hs.get("scaleTargetRef", {}).get("name") != "webhook-sender"
                or hs.get("minReplicas") != 2 or hs.get("maxReplicas") != 10 or cpu != [70]):
            fail(f"HorizontalPodAutoscaler {name(h)}: want autoscaling/v2 on Deployment webhook-sender, "
                 f"2-10 replicas at 70 % CPU; got {hs.get('scaleTargetRef', {}).get('name')} "
                 f"{hs.get('minReplicas')}-{hs.get('maxReplicas')} cpu {cpu}")

    migrate = [j for j in jobs if any("migrate" in (c.get("args") or []) or "migrate" in (c.get("command") or [])
                                      for c in containers(j))]
    if len(migrate) != 1:
        fail(f"want one Job running `migrate`, got {len(migrate)}")
    else:
        js = migrate[0].get("spec", {})
        if "ttlSecondsAfterFinished" not in js or "backoffLimit" not in js:
            fail(f"Job {name(migrate[0])}: needs ttlSecondsAfterFinished and backoffLimit")
        for c in containers(migrate[0]):
            if "DATABASE_URL" not in env_of(c):
                fail(f"Job {name(migrate[0])}: DATABASE_URL not set")

    if "latest" in tags or not tags:
        fail(f"ctrip images: tags {sorted(tags)}")
    summary = (f"prod: OK: {len(deployments)} Deployments x2+, StatefulSet nats x3, {len(pdbs)} PDBs, "
               f"HPA webhook-sender 2-10, Job {name(migrate[0]) if len(migrate) == 1 else '?'}, "
               f"STREAMS_REPLICAS=3, MIGRATE_ON_START=false, ctrip images {','.join(sorted(tags))}, "
               f"{len(docs)} objects")

    if mode == "prod-cnpg":
        pg = [d for d in docs if d.get("kind") == "Cluster" and d.get("apiVersion") == "postgresql.cnpg.io/v1"]
        if len(pg) != 1:
            fail(f"want one CloudNativePG Cluster, got {len(pg)}")
        else:
            ps = pg[0].get("spec", {})
            if ps.get("instances") != 3 or not (ps.get("storage") or {}).get("size"):
                fail(f"Cluster {name(pg[0])}: want instances 3 and storage.size, got "
                     f"{ps.get('instances')} / {(ps.get('storage') or {}).get('size')}")
        summary = (f"prod-cnpg: OK: prod plus CloudNativePG Cluster "
                   f"{name(pg[0]) if len(pg) == 1 else '?'} x3, {len(docs)} objects")

if errors:
    for e in errors:
        print(f"check-deploy: {mode}: FAIL: {e}", file=sys.stderr)
    sys.exit(1)
print(summary)
PY
}

status=0
for overlay in dev prod prod-cnpg; do
	check "$overlay" || status=1
done
exit "$status"
