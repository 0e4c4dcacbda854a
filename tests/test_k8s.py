"""The Kubernetes overlays (deploy/k8s/overlays/*) rendered and checked offline: every
document valid against the Kubernetes API schemas (kubernetes-validate, strict: no unknown
field), every workload probed, limited and locked down, every part covered by a
PodDisruptionBudget, every Secret and ConfigMap reference resolvable, and the scaled
overlay's replicas, autoscalers and 3-node NATS cluster as documented.

Rendering is tests/kustomize.py (why not kustomize itself: its docstring); where kubectl
is installed, its ``kubectl kustomize`` renders too and must give the same documents.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bourse.parts import PARTS, SERVICES
from shared.settings import BaseServiceSettings
from tests.kustomize import build, content_hash

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
# The oldest Kubernetes the manifests promise to work on (autoscaling/v2, policy/v1 and
# the restricted Pod Security level are all older).
KUBERNETES = "1.30"


def _prepare(tmp: Path) -> Path:
    """deploy/k8s copied with the two files an operator provides (kept out of git)."""
    target = tmp / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", target)
    for overlay in (target / "overlays").iterdir():
        shutil.copy(overlay / "secrets.env.example", overlay / "secrets.env")
        (overlay / "jwt-signing.pem").write_text("placeholder\n")
    return target


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _prepare(tmp_path_factory.mktemp("deploy"))


@pytest.fixture(scope="module", params=["single-node", "scaled"])
def overlay(request: pytest.FixtureRequest, tree: Path) -> tuple[str, list[dict[str, Any]]]:
    name: str = request.param
    return name, build(tree / "overlays" / name)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def test_the_overlays_are_every_overlay() -> None:
    assert sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir()) == ["scaled", "single-node"]


@pytest.mark.parametrize("name", ["single-node", "scaled"])
def test_kubectl_kustomize_renders_the_same(tree: Path, name: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python rendering is checked alone")
    built = subprocess.run(
        [kubectl, "kustomize", str(tree / "overlays" / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr

    def key(doc: dict[str, Any]) -> str:
        return f"{doc['kind']}/{doc['metadata']['name']}"

    theirs = {key(d): d for d in yaml.safe_load_all(built.stdout) if d}
    ours = {key(d): d for d in build(tree / "overlays" / name)}
    assert sorted(ours) == sorted(theirs)
    for name_ in ours:
        assert ours[name_] == theirs[name_], name_


def test_the_name_suffix_is_kustomizes() -> None:
    # Suffixes kustomize 5.5 (kubectl 1.32) gave these generators: a ConfigMap with
    # literals ["one=", "a=<b>&c"] (Go escapes HTML characters) and a Secret ["k=v"].
    config = {"data": {"one": "", "a": "<b>&c"}, "kind": "ConfigMap", "name": ""}
    assert content_hash(config) == "khb6gcc677"
    secret = {"data": {"k": "dg=="}, "kind": "Secret", "name": "", "type": "Opaque"}
    assert content_hash(secret) == "ftgtgc4t9f"


def test_every_document_is_valid_against_the_schemas(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_a_schema_error_is_caught(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    deployment = dict(by_kind(docs, "Deployment")["gateway"])
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_every_part_runs_probed_limited_and_locked_down(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    deployments = by_kind(docs, "Deployment")
    assert sorted(deployments) == sorted(p.name for p in PARTS)
    for part in PARTS:
        pod = deployments[part.name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "ghcr.io/your-org/bourse:0.1.0"
        assert container["command"] == ["python", "-m", part.module]
        assert container["livenessProbe"]["httpGet"]["path"] == "/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], part.name


def test_every_workload_is_limited_non_root_and_read_only(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), (name, bound)
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["readinessProbe"] and container["livenessProbe"], name


def test_every_workload_has_a_disruption_budget(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, docs = overlay
    budgets = by_kind(docs, "PodDisruptionBudget").values()
    for workload in workloads(docs):
        if name == "single-node" and workload["kind"] == "StatefulSet":
            continue  # one NATS node: nothing to keep while it is drained
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, workload["metadata"]["name"]
        assert covering[0]["spec"] == {**covering[0]["spec"], "maxUnavailable": 1}


def test_every_secret_and_config_reference_resolves(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    secrets = {n: set(d["data"]) for n, d in by_kind(docs, "Secret").items()}
    configs = {n: set(d["data"]) for n, d in by_kind(docs, "ConfigMap").items()}
    pods = [d["spec"]["template"]["spec"] for d in docs if "template" in d.get("spec", {})]
    for pod in pods:
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                for key, found in (("secretRef", secrets), ("configMapRef", configs)):
                    if key in source:
                        assert source[key]["name"] in found
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], ref
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configs


def test_every_service_selects_a_workload(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    for service in by_kind(docs, "Service").values():
        selector = service["spec"]["selector"].items()
        assert any(
            selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads(docs)
        ), service["metadata"]["name"]


def _nats_conf(docs: list[dict[str, Any]]) -> str:
    conf: str = by_kind(docs, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    return conf


def test_single_node_runs_one_of_each_and_one_durable_nats(tree: Path) -> None:
    docs = build(tree / "overlays" / "single-node")
    assert {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads(docs)} == {
        **{p.name: 1 for p in PARTS},
        "nats": 1,
    }
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    conf = _nats_conf(docs)
    assert "sync_interval: always" in conf and "store_dir: /data" in conf
    assert "cluster" not in conf


def test_scaled_runs_several_of_each_and_autoscales_the_edge(tree: Path) -> None:
    docs = build(tree / "overlays" / "scaled")
    replicas = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads(docs)}
    assert all(replicas[p.name] >= 2 for p in SERVICES)
    autoscalers = by_kind(docs, "HorizontalPodAutoscaler")
    assert sorted(autoscalers) == ["gateway", "realtime"]
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 2 <= hpa["spec"]["minReplicas"] <= replicas[name] <= hpa["spec"]["maxReplicas"]
        spread = by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]
        assert spread["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"


def test_scaled_nats_is_a_three_node_cluster_with_jetstream(tree: Path) -> None:
    docs = build(tree / "overlays" / "scaled")
    nats = by_kind(docs, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    headless = by_kind(docs, "Service")[nats["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    conf = _nats_conf(docs)
    for ordinal in range(3):
        assert f"nats://nats-{ordinal}.{headless['metadata']['name']}:6222" in conf
    assert "jetstream" in conf and "sync_interval: always" in conf
    anti = nats["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    claim = nats["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"]


def test_scaled_parts_replicate_their_streams_on_the_three_nodes(tree: Path) -> None:
    docs = build(tree / "overlays" / "scaled")
    config = by_kind(docs, "ConfigMap")["bourse-config"]["data"]
    for part in PARTS:
        assert config[f"{part.env_prefix}_NATS_STREAM_REPLICAS"] == "3", part.name
    assert "nats_stream_replicas" in BaseServiceSettings.model_fields
    single = by_kind(build(tree / "overlays" / "single-node"), "ConfigMap")["bourse-config"]
    assert not any(k.endswith("_NATS_STREAM_REPLICAS") for k in single["data"])
