"""The monitoring files agree with what the parts export: the scrape configs
(deploy/prometheus/prometheus.yml for one host, prometheus-kubernetes.yml), the alert rules
(deploy/prometheus/alerts.yml) and the dashboard (deploy/grafana/bourse.json).

promtool is not installable from this project's registries, so its checks are made here:
the files' structure, every PromQL expression parsed (promql-parser, the Rust parser of
GreptimeDB, as promtool parses it), and every metric and label an expression selects
found in the /metrics output of the five running parts. Where promtool is installed, it
checks the files too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bourse.parts import PARTS
from tests.conftest import login
from tests.platform import Platform

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_KUBERNETES = ROOT / "deploy" / "prometheus" / "prometheus-kubernetes.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "bourse.json"

# Series Prometheus makes itself, and the labels it adds to every scraped sample.
SYNTHETIC_METRICS = {"up"}
TARGET_LABELS = {"job", "instance", "part", "pod"}
SEVERITIES = {"critical", "warning", "info"}
# Grafana's own variables, replaced as Grafana replaces them before querying.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    loaded = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in loaded["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries


def expressions() -> list[str]:
    return [rule["expr"] for rule in rules()] + dashboard_queries()


def selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """Each selected metric name with the label names its selector matches on."""
    found: list[tuple[str, set[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next(m.value for m in matchers if m.name == "__name__")
            found.append((name, {m.name for m in matchers if m.name != "__name__"}))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    yield from found


# ------------------------------------------------------------------ the files alone


def test_the_scrape_config_names_every_part_on_its_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == [ALERTS.name]
    (job,) = config["scrape_configs"]
    assert (job["job_name"], job["metrics_path"]) == ("bourse", "/metrics")
    static = {group["labels"]["part"]: group["targets"] for group in job["static_configs"]}
    assert static == {p.name: [f"127.0.0.1:{p.default_port}"] for p in PARTS}


def test_the_kubernetes_scrape_config_finds_the_parts_pods() -> None:
    config = yaml.safe_load(PROMETHEUS_KUBERNETES.read_text())
    assert config["rule_files"] == [ALERTS.name]
    (job,) = config["scrape_configs"]
    relabel = job["relabel_configs"]
    # The job is renamed `bourse`, which the alerts select; pods are the deploy/k8s parts'.
    assert {"target_label": "job", "replacement": "bourse"} in relabel
    keep = {r["source_labels"][0]: r["regex"] for r in relabel if r.get("action") == "keep"}
    assert keep == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "bourse",
        "__meta_kubernetes_pod_container_port_name": "http",
    }
    base = ROOT / "deploy" / "k8s" / "base"
    for part in PARTS:
        deployment = yaml.safe_load_all((base / f"{part.name}.yaml").read_text())
        pod = next(d for d in deployment if d["kind"] == "Deployment")["spec"]["template"]
        assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "bourse"
        assert pod["spec"]["containers"][0]["ports"][0]["name"] == "http"


def test_every_rule_is_complete_and_parses() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        promql_parser.parse(rule["expr"])
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])


def test_every_dashboard_query_parses_and_uses_the_datasource_variable() -> None:
    loaded = json.loads(DASHBOARD.read_text())
    assert [v["name"] for v in loaded["templating"]["list"]] == ["datasource"]
    ids = [panel["id"] for panel in loaded["panels"]]
    assert len(ids) == len(set(ids))
    for panel in loaded["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    for query in dashboard_queries():
        promql_parser.parse(query)


def test_a_broken_expression_is_refused() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse('sum by (service) (rate(http_requests_total{status=~"5.."}[5m])')


def test_promtool_accepts_the_files_where_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed; the checks above stand in for it")
    for args in (["check", "config", str(PROMETHEUS)], ["check", "rules", str(ALERTS)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_KUBERNETES)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Debian's Prometheus is built without Kubernetes discovery: that refusal, and only
    # that one, is not the file's fault.
    debian = "field kubernetes_sd_configs not found" in result.stdout + result.stderr
    assert result.returncode == 0 or debian, result.stdout + result.stderr


# -------------------------------------------------- against what the parts export


def exported(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names, from one /metrics answer."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.mark.e2e
async def test_every_metric_and_label_selected_is_exported(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as gateway:
        headers = await login(gateway, "demo-viewer", "viewer-demo-pass")
        assert (await gateway.get("/api/v1/stocks?limit=2", headers=headers)).status_code == 200
        await gateway.get("/api/v1/health")
    union: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for proc in platform.processes.values():
            response = await client.get(proc.url + "/metrics")
            assert response.status_code == 200, proc.part.name
            for name, labels in exported(response.text).items():
                union.setdefault(name, set()).update(labels)
    assert "http_request_duration_seconds_bucket" in union  # the union is not empty
    missing = []
    for expr in expressions():
        for name, labels in selectors(expr):
            if name in SYNTHETIC_METRICS:
                continue
            if name not in union:
                missing.append(f"{name} (in {expr.split(chr(10))[0][:60]}...)")
            elif labels - TARGET_LABELS - union[name]:
                missing.append(f"{name} has no label {sorted(labels - union[name])}")
    assert not missing, "\n".join(missing)


def test_selectors_are_found_in_every_expression() -> None:
    # The walk above must see through functions, aggregations and binary operators.
    found = dict(selectors('histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="1"}[5m]))) / b'))
    assert found == {"a_bucket": {"x"}, "b": set()}
    assert re.fullmatch(r"\w+", next(iter(found)))
