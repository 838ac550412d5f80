#!/usr/bin/env python
"""Offline checks of the deployment files (part of `make deploy-check`).

- docker-compose.yml: services, profiles, dependencies, volumes and bind mounts agree;
  the production profile has replicas, limits, restart policies and DEBUG off.
- deploy/prometheus/prometheus.yml: structure; with --promtool, `promtool check config`.
- Grafana: the provisioned datasource and dashboard provider, and the dashboard JSON:
  every panel uses the provisioned datasource, every metric it queries is defined in
  rra/metrics.py; with --promtool every query is parsed by `promtool check rules`.
- Dockerfile: the entrypoint and health check it names exist and are executable.

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
METRICS_MODULE = ROOT / "rra/metrics.py"

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
    return data


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
    command = " ".join(prometheus.get("command") or [])
    if token_file and token_file not in command:
        problem("docker-compose.yml", f"the prometheus service does not write {token_file}")
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
    """Every series name rra/metrics.py can export (None when it does not exist)."""
    if not METRICS_MODULE.exists():
        return None
    source = METRICS_MODULE.read_text()
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
        print("note: rra/metrics.py not found; dashboard metric names not cross-checked")
    else:
        for name in sorted(used - defined):
            problem(where, f"metric {name} is not defined in rra/metrics.py")

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


def check_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
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
    check_prometheus(compose)
    check_grafana(compose, args.promtool)
    if args.promtool:
        check_promtool_config(args.promtool)
    check_dockerfile()

    for line in problems:
        print(f"deploy-check: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
