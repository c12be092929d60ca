#!/usr/bin/env bash
# Static checks of deploy/docker-compose.yml: renders it with `docker-compose config` (or
# `docker compose config`) and asserts what deploy/README.md ("One machine") promises, so that
# `docker compose -f deploy/docker-compose.yml up` works on a machine with Docker and nothing
# else. No Docker engine needed: `config` only reads the file.
#
#   bash scripts/check-compose.sh [compose-file]     # default deploy/docker-compose.yml
#
# Needs: docker-compose (Debian's 1.29: apt-get install docker-compose) or the docker compose
# plugin, and python3 (with PyYAML when the compose tool cannot print JSON; Debian's
# docker-compose package brings python3-yaml). The file's own defaults are checked: the stack's
# host variables are unset for the run. Prints a summary on success; on failure every broken
# assertion, then exits 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Another file to check may be given (the script's own tests do).
file=${1:-$root/deploy/docker-compose.yml}

if command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
else
	echo "check-compose: neither docker-compose nor the docker compose plugin found (apt-get install -y docker-compose)" >&2
	exit 1
fi

# The defaults written in the file are what is checked, not this shell's overrides.
unset_vars=(ADMIN_TOKEN WALLET_XPUB WALLET_MNEMONIC WALLET_XPRV GAS_TANK_PRIVATE_KEY GAS_TANK_FUNDING_ETH
	CHAINS_FILE_HOST CHAIN_PORT NATS_PORT NATS_MONITOR_PORT POSTGRES_PORT API_PORT API_OPS_PORT
	SCANNER_OPS_PORT CONFIRMER_OPS_PORT SWEEPER_OPS_PORT WEBHOOK_SENDER_OPS_PORT LOG_LEVEL
	WEBHOOK_URL WEBHOOK_SECRET WEBHOOK_ALLOW_HTTP WEBHOOK_ALLOW_PRIVATE_NETWORKS
	PROMETHEUS_PORT GRAFANA_PORT GRAFANA_ADMIN_PASSWORD)
envcmd=(env)
for v in "${unset_vars[@]}"; do envcmd+=(-u "$v"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# JSON where the tool can print it (compose v2), else the YAML of compose 1.x, which answers
# the unknown --format with its usage on stderr and exit status 0.
format=yaml
# With the observability profile on: compose v2 leaves a profile's services out of `config`
# otherwise (1.x prints them all).
compose+=(--profile observability)
if "${envcmd[@]}" "${compose[@]}" -f "$file" config --format json >"$tmp/out" 2>"$tmp/err" &&
	[[ $(head -c 1 "$tmp/out") == "{" ]]; then
	format=json
elif ! "${envcmd[@]}" "${compose[@]}" -f "$file" config >"$tmp/out" 2>"$tmp/err"; then
	echo "check-compose: ${compose[*]} -f ${file#$root/} config failed:" >&2
	cat "$tmp/err" >&2
	exit 1
fi
# Warnings (an unset variable without a default, say) are errors here.
if [[ -s $tmp/err ]]; then
	echo "check-compose: ${compose[*]} config printed on stderr:" >&2
	cat "$tmp/err" >&2
	exit 1
fi

python=python3
if [[ $format == yaml ]] && ! python3 -c 'import yaml' 2>/dev/null; then
	# Debian's docker-compose runs on the system python3, which has python3-yaml.
	if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
		python=/usr/bin/python3
	else
		echo "check-compose: python3 has no PyYAML to read the YAML of ${compose[*]} config (apt-get install -y python3-yaml)" >&2
		exit 1
	fi
fi

"$python" - "$tmp/out" "$format" "$(dirname "$file")" <<'PY'
import json, os, re, sys

path, fmt, compose_dir = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path) as f:
    if fmt == "json":
        doc = json.load(f)
    else:
        import yaml
        doc = yaml.safe_load(f)

services = doc.get("services") or {}
failures = []

def fail(msg):
    failures.append(msg)
    print("check-compose: FAIL: " + msg, file=sys.stderr)

def env(name):
    """A service's environment as a dict (compose prints a mapping, or a KEY=value list)."""
    e = (services.get(name) or {}).get("environment") or {}
    if isinstance(e, list):
        e = dict(item.split("=", 1) if "=" in item else (item, None) for item in e)
    return {k: ("" if v is None else str(v)) for k, v in e.items()}

def targets(name):
    """The container ports a service publishes."""
    out = set()
    for p in (services.get(name) or {}).get("ports") or []:
        if isinstance(p, dict):
            out.add(int(p.get("target")))
        else:  # "host:container[/proto]" or "container"
            out.add(int(str(p).split("/")[0].split(":")[-1]))
    return out

def command(name):
    c = (services.get(name) or {}).get("command") or []
    return c.split() if isinstance(c, str) else [str(x) for x in c]

APP = ["api", "scanner", "confirmer", "sweeper", "webhook-sender"]

for name in ["chain", "devsetup", "nats", "postgres", "jaeger"] + APP:
    if name not in services:
        fail(f"no service {name!r}")

# The dev chain: geth in dev mode, a pinned image, chain id 1337 (geth --dev's), a block a second.
chain = services.get("chain") or {}
image = str(chain.get("image", ""))
if not re.fullmatch(r"ethereum/client-go:v\d+\.\d+\.\d+", image):
    fail(f"chain: image {image!r}, want a pinned ethereum/client-go:vX.Y.Z")
cmd = command("chain")

def flag(args, name):
    """The value of --name=value or --name value; True for a bare --name; None when absent."""
    for i, a in enumerate(args):
        if a == name:
            nxt = args[i + 1] if i + 1 < len(args) else ""
            return nxt if nxt and not nxt.startswith("-") else True
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None

for want in ["--dev", "--http"]:
    if flag(cmd, want) is None:
        fail(f"chain: command {cmd} lacks {want}")
if flag(cmd, "--dev.period") in (None, True, "0"):
    fail(f"chain: command {cmd} sets no --dev.period: geth --dev would mine only on transactions")
if flag(cmd, "--http.addr") != "0.0.0.0":
    fail(f"chain: command {cmd}: --http.addr must be 0.0.0.0 for the other containers")
if not chain.get("healthcheck", {}).get("test"):
    fail("chain: no healthcheck, so devsetup cannot wait for it")

# devsetup: one-shot, after the chain; every service waits for its success.
ds = services.get("devsetup") or {}
if str(ds.get("restart", "no")) != "no":
    fail(f"devsetup: restart {ds.get('restart')!r}, want \"no\" (a one-shot step)")
if "chain" not in (ds.get("depends_on") or {}):
    fail("devsetup: does not depend on chain")
if env("devsetup").get("RPC_URL") != "http://chain:8545":
    fail(f"devsetup: RPC_URL {env('devsetup').get('RPC_URL')!r}, want http://chain:8545")
build_args = ((ds.get("build") or {}).get("args") or {})
if isinstance(build_args, list):
    build_args = dict(a.split("=", 1) for a in build_args)
if build_args.get("TARGET_DIR") != "deploy/devsetup":
    fail(f"devsetup: build args {build_args}, want TARGET_DIR=deploy/devsetup")
for name in APP:
    deps = (services.get(name) or {}).get("depends_on") or {}
    if isinstance(deps, list):
        fail(f"{name}: depends_on is a plain list {deps}, without conditions")
        continue
    cond = (deps.get("devsetup") or {}).get("condition")
    if cond != "service_completed_successfully":
        fail(f"{name}: depends on devsetup with condition {cond!r}, want service_completed_successfully")

# NATS: the minor version the Go tests embed (nats-server/v2 v2.15.x), JetStream, monitoring.
nats_image = str((services.get("nats") or {}).get("image", ""))
if not re.fullmatch(r"nats:2\.15\.\d+-alpine", nats_image):
    fail(f"nats: image {nats_image!r}, want nats:2.15.x-alpine")
ncmd = command("nats")
if "-js" not in ncmd and "--jetstream" not in ncmd:
    fail(f"nats: command {ncmd} does not enable JetStream")
if 8222 not in targets("nats"):
    fail("nats: monitoring port 8222 not published")
htest = " ".join(str(x) for x in ((services.get("nats") or {}).get("healthcheck") or {}).get("test") or [])
if "wget" not in htest or "/healthz" not in htest:
    fail(f"nats: healthcheck {htest!r}, want wget on /healthz")

# Jaeger v2, OTLP over gRPC and HTTP, the UI.
jimage = str((services.get("jaeger") or {}).get("image", ""))
if not re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jimage):
    fail(f"jaeger: image {jimage!r}, want a pinned jaegertracing/jaeger:2.x.y")
for port, what in [(4317, "OTLP/gRPC"), (4318, "OTLP/HTTP"), (16686, "UI")]:
    if port not in targets("jaeger"):
        fail(f"jaeger: port {port} ({what}) not published")

# The keys every service needs have working (dev) defaults.
api = env("api")
if not api.get("WALLET_XPUB"):
    fail("api: WALLET_XPUB is empty")
elif not api["WALLET_XPUB"].startswith("xpub"):
    fail(f"api: WALLET_XPUB {api['WALLET_XPUB'][:12]}... is not an xpub")
if not api.get("ADMIN_TOKEN"):
    fail("api: ADMIN_TOKEN is empty")
elif len(api["ADMIN_TOKEN"]) < 32:
    fail(f"api: ADMIN_TOKEN has {len(api['ADMIN_TOKEN'])} characters, want at least 32")
sw = env("sweeper")
if bool(sw.get("WALLET_MNEMONIC")) == bool(sw.get("WALLET_XPRV")):
    fail("sweeper: want exactly one of WALLET_MNEMONIC / WALLET_XPRV set")
if not sw.get("GAS_TANK_PRIVATE_KEY"):
    fail("sweeper: GAS_TANK_PRIVATE_KEY is empty (chains.compose.yaml lists a token)")
elif sw.get("GAS_TANK_PRIVATE_KEY") != env("devsetup").get("GAS_TANK_PRIVATE_KEY"):
    fail("devsetup and the sweeper have different GAS_TANK_PRIVATE_KEY: devsetup would fund another tank")

# CHAINS_FILE: the compose chains file, mounted where CHAINS_FILE points.
for name in ["api", "scanner", "confirmer", "sweeper"]:
    if env(name).get("CHAINS_FILE") != "/etc/ctrip/chains.yaml":
        fail(f"{name}: CHAINS_FILE {env(name).get('CHAINS_FILE')!r}, want /etc/ctrip/chains.yaml")
    vols = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in (services.get(name) or {}).get("volumes") or []]
    if not any("chains.compose.yaml:/etc/ctrip/chains.yaml" in v for v in vols):
        fail(f"{name}: volumes {vols} do not mount deploy/chains.compose.yaml at /etc/ctrip/chains.yaml")

# Profile "observability": Prometheus with the pipeline's scrape config and alert rules, Grafana
# with the datasource and the dashboards — pinned images, nothing of it started by default.
OBS = ["prometheus", "grafana"]
for name in OBS:
    svc = services.get(name)
    if svc is None:
        fail(f"no service {name!r} (profile observability)")
        continue
    if list(svc.get("profiles") or []) != ["observability"]:
        fail(f"{name}: profiles {svc.get('profiles')}, want [\"observability\"]")
for name in ["chain", "devsetup", "nats", "postgres", "jaeger"] + APP:
    if (services.get(name) or {}).get("profiles"):
        fail(f"{name}: has profiles {services[name]['profiles']}: it would not start by default")
pimage = str((services.get("prometheus") or {}).get("image", ""))
if not re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", pimage):
    fail(f"prometheus: image {pimage!r}, want a pinned prom/prometheus:vX.Y.Z")
gimage = str((services.get("grafana") or {}).get("image", ""))
if not re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", gimage):
    fail(f"grafana: image {gimage!r}, want a pinned grafana/grafana:X.Y.Z")

def mounts(name):
    """A service's bind mounts as {container path: host path}."""
    out = {}
    for v in (services.get(name) or {}).get("volumes") or []:
        if isinstance(v, dict):
            out[str(v.get("target"))] = str(v.get("source"))
        else:
            parts = str(v).split(":")
            if len(parts) >= 2:
                out[parts[1]] = parts[0]
    return out

def host_path(p):
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(compose_dir, p))

import yaml
pm = mounts("prometheus")
cmd = command("prometheus")
config_path = flag(cmd, "--config.file") or "/etc/prometheus/prometheus.yml"
if config_path not in pm:
    fail(f"prometheus: {config_path} (--config.file) is not mounted")
else:
    with open(host_path(pm[config_path])) as f:
        pconf = yaml.safe_load(f)
    for rf in pconf.get("rule_files") or []:
        if rf not in pm or not host_path(pm[rf]).endswith("deploy/prometheus/alerts.yml"):
            fail(f"prometheus: rule file {rf} is not deploy/prometheus/alerts.yml mounted there")
    if not pconf.get("rule_files"):
        fail("prometheus: prometheus.yml loads no rule files")
    scraped = {t for sc in pconf.get("scrape_configs") or [] for st in sc.get("static_configs") or [] for t in st.get("targets") or []}
    ops = env("api").get("OPS_ADDR", "")
    for name in APP:
        want = f"{name}:{ops.rsplit(':', 1)[-1]}"
        if want not in scraped:
            fail(f"prometheus: does not scrape {want} (the service's OPS_ADDR {ops})")
gm = mounts("grafana")
prov = gm.get("/etc/grafana/provisioning")
if not prov or not host_path(prov).endswith("deploy/grafana/provisioning"):
    fail(f"grafana: deploy/grafana/provisioning not mounted at /etc/grafana/provisioning ({gm})")
else:
    ds = [d for f in os.listdir(os.path.join(host_path(prov), "datasources"))
          for d in (yaml.safe_load(open(os.path.join(host_path(prov), "datasources", f))) or {}).get("datasources") or []]
    if not any(d.get("uid") == "prometheus" and d.get("url") == "http://prometheus:9090" for d in ds):
        fail(f"grafana: no datasource uid prometheus at http://prometheus:9090 (the dashboards' datasource): {ds}")
    paths = [p.get("options", {}).get("path") for f in os.listdir(os.path.join(host_path(prov), "dashboards"))
             for p in (yaml.safe_load(open(os.path.join(host_path(prov), "dashboards", f))) or {}).get("providers") or []]
    for p in paths:
        if p not in gm or not host_path(gm[p]).endswith("deploy/grafana/dashboards"):
            fail(f"grafana: dashboard provider path {p} is not deploy/grafana/dashboards mounted there")
    if not paths:
        fail("grafana: no dashboard provider")
# Host ports are unique: Prometheus' own 9090 must not take the webhook-sender's ops port.
host_ports = {}
for name, svc in services.items():
    for p in svc.get("ports") or []:
        hp = str(p.get("published")) if isinstance(p, dict) else (str(p).split(":")[0] if ":" in str(p) else None)
        if hp:
            if hp in host_ports:
                fail(f"host port {hp} published by both {host_ports[hp]} and {name}")
            host_ports[hp] = name

if failures:
    print(f"check-compose: {len(failures)} assertion(s) failed", file=sys.stderr)
    sys.exit(1)
print(f"check-compose: ok: {len(services)} services; chain {image}, devsetup before {', '.join(APP)}; "
      f"{nats_image}; {jimage} (4317, 4318, 16686); api WALLET_XPUB {api['WALLET_XPUB'][:12]}..., ADMIN_TOKEN set; "
      f"profile observability: {pimage} with alerts.yml scraping {len(APP)} services, {gimage} provisioned")
PY
