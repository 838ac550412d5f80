#!/usr/bin/env python
"""Offline checks of the deployment files (part of `make deploy-check`).

- docker-compose.yml: services, profiles, dependencies, volumes and bind mounts agree;
  the production profile has replicas, limits, restart policies and DEBUG off; the
  documented commands (COMMANDS) start what they promise, and wherever Prometheus runs
  it can scrape the web servers (their name, the shared token) and the workers push.
- deploy/prometheus/prometheus.yml: structure; with --promtool, `promtool check config`.
- Grafana: the provisioned datasource and dashboard provider, and the dashboard JSON:
  every panel uses the provisioned datasource, every metric it queries is defined in
  rra/metrics.py and the apps' */monitoring.py; with --promtool every query is parsed by `promtool check rules`.
- Dockerfile: the entrypoint and health check it names exist and are executable; the
  build targets development and production exist (production last) and compose uses them.

    python deploy/check_config.py [--promtool PATH]

Exit status 1 and one line per problem when something is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
GRAFANA = ROOT / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/rra.json"
# The platform's metrics, and the gauges each app registers with it (issue 23: rra/
# imports no app, so an app's own series live in its monitoring.py).
METRICS_MODULES = [ROOT / "rra/metrics.py", *sorted(ROOT.glob("*/monitoring.py"))]

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        problem(path.relative_to(ROOT).as_posix(), f"cannot be read as YAML: {exc}")
        return None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value):
    """Compose's ${VAR:-default} with every variable unset (the defaults)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


# --- docker-compose.yml -----------------------------------------------------------------


def check_compose() -> dict:
    where = "docker-compose.yml"
    data = load_yaml(COMPOSE)
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        problem(where, "no services")
        return {}
    data = interpolate(data)
    services: dict = data["services"]
    volumes = data.get("volumes") or {}

    for name, svc in services.items():
        here = f"{where}: services.{name}"
        if not ("image" in svc or "build" in svc):
            problems.append(f"{here}: neither image nor build")
        profiles = set(svc.get("profiles") or [])
        for dep in svc.get("depends_on") or {}:
            if dep not in services:
                problems.append(f"{here}: depends on undefined service {dep}")
                continue
            dep_profiles = set(services[dep].get("profiles") or [])
            if dep_profiles and not (profiles and profiles <= dep_profiles):
                problems.append(f"{here}: depends on {dep}, which its profiles do not enable")
        for mount in svc.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    problems.append(f"{here}: bind mount source {source} does not exist")
            elif source and source not in volumes:
                problems.append(f"{here}: volume {source} is not declared under volumes")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            problems.append(f"{here}: environment should be a mapping (merged from x-app-env)")

    for profile in ("local", "production", "monitoring"):
        if not any(profile in (s.get("profiles") or []) for s in services.values()):
            problem(where, f"no service in profile {profile}")

    for base in ("postgres", "redis"):
        svc = services.get(base)
        if svc is None:
            problem(where, f"no {base} service")
        elif "healthcheck" not in svc:
            problem(where, f"{base} has no healthcheck (web and worker wait for it)")

    for name, svc in services.items():
        command = svc.get("command") or []
        role = command[0] if isinstance(command, list) and command else None
        if "runserver" in command:
            role = "web"
        if role not in ("web", "worker"):
            continue
        here = f"{where}: services.{name}"
        env = svc.get("environment") or {}
        for key in ("DATABASE_URL", "REDIS_URL"):
            if key not in env:
                problems.append(f"{here}: no {key}")
        if "@postgres:" not in env.get("DATABASE_URL", ""):
            problems.append(f"{here}: DATABASE_URL does not point at the postgres service")
        if role == "web" and (svc.get("healthcheck") or {}).get("disable"):
            problems.append(f"{here}: the web server's health check is disabled")
        if "production" in (svc.get("profiles") or []):
            deploy = svc.get("deploy") or {}
            replicas = int(str(deploy.get("replicas", 1)))
            if replicas < 2:
                problems.append(f"{here}: production runs {replicas} replica(s), want >= 2")
            limits = (deploy.get("resources") or {}).get("limits") or {}
            if not {"cpus", "memory"} <= set(limits):
                problems.append(f"{here}: production needs cpus and memory limits")
            if svc.get("restart") not in ("always", "unless-stopped"):
                problems.append(f"{here}: production needs a restart policy")
            if str(env.get("DEBUG", "")).lower() != "false":
                problems.append(f"{here}: production must set DEBUG=false")
            # Web and workers share no disk (workers may run on other hosts): the
            # uploaded files are in the object store.
            if not env.get("STORAGE_S3_BUCKET"):
                problems.append(f"{here}: production must keep files in S3 (STORAGE_S3_BUCKET)")
            for mount in svc.get("volumes") or []:
                if isinstance(mount, str) and ":/app/var/media" in mount:
                    problems.append(f"{here}: production must not share a media volume")
    return data


# --- The documented commands ---------------------------------------------------------------

# (command, enabled profiles, services named on the command line, must start, must not)
COMMANDS = [
    (
        "docker compose up app",
        [],
        ["app"],
        {"postgres", "redis", "app", "worker"},
        {"web-prod", "front-prod", "worker-prod", "s3", "prometheus", "grafana"},
    ),
    (
        "docker compose --profile production up -d",
        ["production"],
        [],
        {
            "postgres",
            "redis",
            "web-prod",
            "front-prod",
            "worker-prod",
            "s3",
            "prometheus",
            "pushgateway",
            "grafana",
        },
        {"app", "worker"},
    ),
    (
        "docker compose --profile monitoring up",
        ["monitoring"],
        [],
        {"postgres", "redis", "app", "worker", "prometheus", "pushgateway", "grafana"},
        {"web-prod", "worker-prod"},
    ),
]


def services_started(services: dict, profiles: list[str], named: list[str]) -> set[str]:
    """What `up` starts, by the Compose specification's rules: services without profiles
    and those of an enabled profile, or only the named ones (whose profiles are enabled
    by naming them), plus their dependencies. A dependency its profiles leave disabled
    is an error in Compose; it is reported here."""
    enabled = set(profiles)
    for name in named:
        enabled |= set(services[name].get("profiles") or [])

    def active(name: str) -> bool:
        svc_profiles = services[name].get("profiles") or []
        return not svc_profiles or bool(enabled & set(svc_profiles)) or name in named

    wanted = list(named) if named else [n for n in services if active(n)]
    started: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in started:
            continue
        started.add(name)
        for dep in services[name].get("depends_on") or {}:
            if dep in services and not active(dep):
                problem("docker-compose.yml", f"{name} depends on {dep}, which is not enabled")
            wanted.append(dep)
    return started


def _aliases(svc: dict) -> list[str]:
    networks = svc.get("networks")
    if not isinstance(networks, dict):
        return []
    return list(((networks.get("default") or {}).get("aliases")) or [])


def check_commands(compose: dict) -> None:
    """Each documented command starts what it promises, and with monitoring the
    dashboards get data with no setting made by hand: web servers answer to the name
    Prometheus scrapes and read the token Prometheus sends; workers push to the
    pushgateway that runs."""
    services = compose.get("services") or {}
    if not services:
        return
    prometheus_cfg = load_yaml(PROMETHEUS) or {}
    jobs = prometheus_cfg.get("scrape_configs") or []
    web_job = next((j for j in jobs if j.get("metrics_path") == "/metrics"), {})
    scraped = {n for sd in web_job.get("dns_sd_configs") or [] for n in sd.get("names") or []}
    token_file = (web_job.get("authorization") or {}).get("credentials_file", "")
    token_dir = os.path.dirname(token_file)

    def mounts(svc: dict) -> dict[str, str]:
        found = {}
        for mount in svc.get("volumes") or []:
            if isinstance(mount, str) and ":" in mount:
                source, target = mount.split(":")[:2]
                found[target] = source
        return found

    for command, profiles, named, must, must_not in COMMANDS:
        where = f"docker-compose.yml: `{command}`"
        started = services_started(services, profiles, named)
        for name in sorted(must - started):
            problems.append(f"{where} does not start {name}")
        for name in sorted(must_not & started):
            problems.append(f"{where} also starts {name}")
        if "prometheus" not in started:
            continue
        secret = mounts(services["prometheus"]).get(token_dir)
        if not secret:
            problems.append(f"{where}: prometheus does not mount {token_dir} for its token")
        writers = [
            n for n in started if mounts(services[n]).get(token_dir) == secret and n != "prometheus"
        ]
        webs = [
            n
            for n in started
            if (n in scraped or scraped & set(_aliases(services[n]))) and services[n].get("build")
        ]
        if not webs:
            problems.append(f"{where}: no web server answers to {sorted(scraped)}")
        for name in webs:
            env = services[name].get("environment") or {}
            if not (env.get("METRICS_TOKEN") or env.get("METRICS_TOKEN_FILE") == token_file):
                problems.append(f"{where}: {name} does not read the token Prometheus sends")
            if name not in writers:
                problems.append(f"{where}: {name} does not mount the token volume")
        for name in started:
            svc = services[name]
            if (svc.get("command") or [None])[0] != "worker":
                continue
            endpoint = (svc.get("environment") or {}).get("METRICS_ENDPOINT", "")
            if not endpoint.startswith("http://pushgateway:") or "pushgateway" not in started:
                problems.append(f"{where}: {name} does not push to a running pushgateway")


# --- Prometheus ----------------------------------------------------------------------------


def check_prometheus(compose: dict) -> None:
    where = "deploy/prometheus/prometheus.yml"
    data = load_yaml(PROMETHEUS)
    if not isinstance(data, dict):
        problem(where, "not a mapping")
        return
    jobs = data.get("scrape_configs")
    if not isinstance(jobs, list) or not jobs:
        problem(where, "no scrape_configs")
        return
    names = [job.get("job_name") for job in jobs]
    if len(set(names)) != len(names) or None in names:
        problem(where, f"job names must be present and unique: {names}")
    web = next((job for job in jobs if job.get("metrics_path") == "/metrics"), None)
    if web is None:
        problem(where, "no job scrapes /metrics")
        return
    if not (web.get("static_configs") or web.get("dns_sd_configs")):
        problem(where, f"job {web.get('job_name')} has no targets")
    token_file = (web.get("authorization") or {}).get("credentials_file")
    if not token_file:
        problem(where, "the /metrics job sends no bearer token (METRICS_TOKEN)")
    prometheus = (compose.get("services") or {}).get("prometheus") or {}
    mounted = any(
        isinstance(v, str) and v.split(":")[1:2] == [os.path.dirname(token_file)]
        for v in prometheus.get("volumes") or []
    )
    if token_file and not mounted:
        problem("docker-compose.yml", f"the prometheus service does not mount {token_file}")
    for sd in web.get("dns_sd_configs") or []:
        for name in sd.get("names") or []:
            found = name in compose.get("services", {}) or any(
                name in ((s.get("networks") or {}).get("default") or {}).get("aliases", [])
                for s in compose.get("services", {}).values()
                if isinstance(s.get("networks"), dict)
            )
            if not found:
                problem(where, f"dns_sd name {name} is no compose service or alias")


# --- Grafana -------------------------------------------------------------------------------

_IDENT = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b")
_PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase",
    "histogram_quantile", "le", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "offset", "bool", "topk", "bottomk", "clamp_min", "clamp_max", "abs", "vector",
    "scalar", "time", "delta", "deriv", "avg_over_time", "max_over_time", "label_replace",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are no function, keyword,
    label name (inside {...} or by/without (...)) or Grafana variable."""
    text = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r'"[^"]*"', "", text)
    text = re.sub(r"\$\w+", "", text)
    return {
        name
        for name in _IDENT.findall(text)
        if name not in _PROMQL_WORDS and not name.replace(".", "").isdigit()
    }


def defined_metrics() -> set[str] | None:
    """Every series name the metrics modules can export (None when there are none)."""
    modules = [path for path in METRICS_MODULES if path.exists()]
    if not modules:
        return None
    source = "\n".join(path.read_text() for path in modules)
    names: set[str] = set()
    pattern = r"\b(Counter|Histogram|Gauge|Summary|GaugeMetricFamily|CounterMetricFamily)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\""
    for kind, name in re.findall(pattern, source):
        if kind.startswith("Counter"):
            base = name.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        elif kind in ("Histogram", "Summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


def check_grafana(compose: dict, promtool: str | None) -> None:
    datasources = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yml") or {}
    uids = {ds.get("uid") for ds in datasources.get("datasources") or []}
    if not uids or None in uids:
        problem("deploy/grafana/provisioning/datasources", "every datasource needs a uid")
    providers = load_yaml(GRAFANA / "provisioning/dashboards/rra.yml") or {}
    paths = {(p.get("options") or {}).get("path") for p in providers.get("providers") or []}
    grafana = (compose.get("services") or {}).get("grafana") or {}
    mounted = {
        v.split(":")[1]
        for v in grafana.get("volumes") or []
        if v.startswith("./deploy/grafana/dashboards")
    }
    if not paths or not paths <= mounted:
        problem(
            "deploy/grafana/provisioning/dashboards",
            f"{paths} is not where compose mounts the dashboards ({mounted})",
        )

    where = "deploy/grafana/dashboards/rra.json"
    try:
        dashboard = json.loads(DASHBOARD.read_text())
    except (OSError, ValueError) as exc:
        problem(where, f"cannot be read as JSON: {exc}")
        return
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            problem(where, f"no {key}")
    exprs: list[tuple[str, str]] = []
    ids = []
    for panel in dashboard.get("panels", []):
        ids.append(panel.get("id"))
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        grid = panel.get("gridPos") or {}
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            problem(where, f"panel {title!r} is wider than the grid")
        if (panel.get("datasource") or {}).get("uid") not in uids:
            problem(where, f"panel {title!r} does not use the provisioned datasource {uids}")
        targets = panel.get("targets") or []
        if not targets:
            problem(where, f"panel {title!r} has no query")
        for target in targets:
            expr = (target.get("expr") or "").strip()
            if not expr:
                problem(where, f"panel {title!r} has an empty query")
            elif expr.count("(") != expr.count(")"):
                problem(where, f"panel {title!r}: unbalanced parentheses in {expr}")
            else:
                exprs.append((title, expr))
    if len(set(ids)) != len(ids):
        problem(where, "panel ids are not unique")

    used = set().union(*(metric_names(e) for _, e in exprs)) if exprs else set()
    print("deploy-check: the dashboard queries " + ", ".join(sorted(used)))
    defined = defined_metrics()
    if defined is None:
        print("note: no metrics module found; dashboard metric names not cross-checked")
    else:
        for name in sorted(used - defined):
            problem(
                where, f"metric {name} is not defined in rra/metrics.py or an app's monitoring.py"
            )

    if promtool and exprs:
        # Every query becomes a recording rule, which promtool parses (Grafana's interval
        # macros replaced by a fixed window).
        rules = {
            "groups": [
                {
                    "name": "dashboard",
                    "rules": [
                        {"record": f"dashboard:query:{i}", "expr": re.sub(r"\$__\w+", "5m", e)}
                        for i, (_, e) in enumerate(exprs)
                    ],
                }
            ]
        }
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(rules, f)
        try:
            run = subprocess.run(
                [promtool, "check", "rules", f.name], capture_output=True, text=True, timeout=60
            )
        finally:
            os.unlink(f.name)
        if run.returncode != 0:
            problem(where, "promtool rejects a query:\n" + run.stdout + run.stderr)


def check_promtool_config(promtool: str) -> None:
    run = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0:
        problem("deploy/prometheus/prometheus.yml", "promtool: " + run.stdout + run.stderr)


# --- Dockerfile ------------------------------------------------------------------------------


def check_dockerfile(compose: dict) -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.M | re.I)
    for target in ("development", "production"):
        if target not in stages:
            problem("Dockerfile", f"no build target {target}")
    if stages and stages[-1] != "production":
        problem("Dockerfile", "production must be the last stage (the default target)")
    for name, svc in (compose.get("services") or {}).items():
        build = svc.get("build")
        target = build.get("target") if isinstance(build, dict) else None
        if build and target not in stages:
            problem("docker-compose.yml", f"services.{name} builds target {target}, not a stage")
    for script in re.findall(r"/app/(deploy/[\w.-]+)", text):
        path = ROOT / script
        if not path.exists():
            problem("Dockerfile", f"names {script}, which does not exist")
        elif not os.access(path, os.X_OK) and path.suffix != ".py":
            problem("Dockerfile", f"{script} is not executable")
    if "HEALTHCHECK" not in text or "USER " not in text:
        problem("Dockerfile", "needs a HEALTHCHECK and a non-root USER")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Offline checks of the deployment files.")
    parser.add_argument("--promtool", help="path of promtool, to parse the config and queries")
    args = parser.parse_args(argv)
    problems.clear()

    compose = check_compose()
    check_commands(compose)
    check_prometheus(compose)
    check_grafana(compose, args.promtool)
    if args.promtool:
        check_promtool_config(args.promtool)
    check_dockerfile(compose)

    for line in problems:
        print(f"deploy-check: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
