"""The subset of kustomize that deploy/k8s uses, in Python, so that CI renders the
overlays on any machine.

Why not kustomize itself: no maintained kustomize installs from the registries this
project uses (PyPI's ``pykustomize`` needs Python 3.14, PyPI's ``kustomize`` is a
manifest-writing library, npm has no kustomize binary), and ``kubectl kustomize`` is not
something the project can install. Where kubectl is present, tests/test_k8s.py renders
with it too and requires the same documents, so this subset cannot drift from the real
thing unnoticed.

Supported (and nothing else: an unknown field of a kustomization is an error, so a
manifest change that needs more fails here rather than rendering something else):
``resources`` (files and directories), ``namespace``, ``labels`` (pairs, on
``metadata.labels`` only), ``replicas``, ``images``, ``patches`` (strategic-merge patch
files naming their target), ``secretGenerator`` and ``configMapGenerator`` (``envs``,
``files``, ``literals``) with kustomize's content-hash name suffix, and the renaming of
references to generated Secrets and ConfigMaps in pod specs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

KNOWN = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "replicas",
    "images",
    "patches",
    "secretGenerator",
    "configMapGenerator",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
# Lists merged by their ``name`` key in a strategic-merge patch (the rest are replaced).
MERGE_BY_NAME = {"containers", "initContainers", "volumes", "env", "ports", "volumeMounts"}


class KustomizeError(ValueError):
    """A kustomization uses something this subset does not do, or is wrong."""


def build(root: Path) -> list[Document]:
    """Render the kustomization in ``root`` as kustomize would (documents in any order)."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise KustomizeError(f"{root}: unsupported fields {sorted(unknown)}")
    docs: list[Document] = []
    for entry in kustomization.get("resources", []):
        path = root / entry
        if path.is_dir():
            docs.extend(build(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    renames: dict[tuple[str, str], str] = {}
    for kind, key in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for generator in kustomization.get(key, []):
            generated = _generate(root, kind, generator)
            renames[(kind, generator["name"])] = generated["metadata"]["name"]
            docs.append(generated)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise KustomizeError(f"{root}: only `patches: - path:` is supported")
        patch = yaml.safe_load((root / patch_entry["path"]).read_text())
        target = _find(docs, patch["kind"], patch["metadata"]["name"])
        target.update(_merge(target, patch))
    for item in kustomization.get("replicas", []):
        _find_any(docs, item["name"])["spec"]["replicas"] = item["count"]
    for doc in docs:
        _rename_references(doc, renames)
        _set_images(doc, kustomization.get("images", []))
        for label_set in kustomization.get("labels", []):
            if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
                raise KustomizeError("labels: only metadata labels are supported")
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])
        namespace = kustomization.get("namespace")
        if namespace and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
    return docs


def _find(docs: list[Document], kind: str, name: str) -> Document:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KustomizeError(f"no {kind} {name} to patch")


def _find_any(docs: list[Document], name: str) -> Document:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet") and doc["metadata"]["name"] == name:
            return doc
    raise KustomizeError(f"no workload {name} for replicas")


def _merge(base: Any, patch: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for k, v in patch.items():
            merged[k] = _merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_BY_NAME:
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            names = [existing.get("name") for existing in merged_list]
            if item.get("name") in names:
                index = names.index(item["name"])
                merged_list[index] = _merge(merged_list[index], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _generate(root: Path, kind: str, generator: dict[str, Any]) -> Document:
    unknown = set(generator) - {"name", "envs", "files", "literals"}
    if unknown:
        raise KustomizeError(f"{generator['name']}: unsupported generator fields {unknown}")
    values: dict[str, str] = {}
    for env_file in generator.get("envs", []):
        for line in (root / env_file).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                values[name.strip()] = value
    for literal in generator.get("literals", []):
        name, _, value = literal.partition("=")
        values[name] = value
    for file_entry in generator.get("files", []):
        key, _, path = file_entry.rpartition("=")
        values[key or Path(path).name] = (root / path).read_text()
    name = generator["name"]
    # kustomize 5 hashes the generated object before naming it: the name is "" in the hash.
    if kind == "Secret":
        data = {k: _base64(v) for k, v in values.items()}
        encoded = {"data": data, "kind": "Secret", "name": "", "type": "Opaque"}
        doc: Document = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data}
    else:
        encoded = {"data": values, "kind": "ConfigMap", "name": ""}
        doc = {"apiVersion": "v1", "kind": "ConfigMap", "data": values}
    doc["metadata"] = {"name": f"{name}-{content_hash(encoded)}"}
    return doc


def _base64(value: str) -> str:
    """kyaml's encoding of a Secret value: base64 in lines of 70, each ended by a newline
    once there is more than one line (the hash covers the wrapped text)."""
    encoded = base64.b64encode(value.encode()).decode()
    if len(encoded) // 70 + 1 == 1:
        return encoded
    return "".join(encoded[i : i + 70] + "\n" for i in range(0, len(encoded), 70))


def content_hash(encoded: dict[str, Any]) -> str:
    """kustomize's name suffix: the SHA-256 of Go's JSON of the object, its first ten hex
    digits with 0, 1, 3, a and e replaced (so a suffix is never a number or a bad word)."""
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)  # Go's json.Marshal escapes HTML characters
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _rename_references(doc: Document, renames: dict[tuple[str, str], str]) -> None:
    def renamed(kind: str, name: str) -> str:
        return renames.get((kind, name), name)

    pod = doc.get("spec", {}).get("template", {}).get("spec")
    if pod is None:
        return
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        for source in container.get("envFrom", []):
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source:
                    source[key]["name"] = renamed(kind, source[key]["name"])
        for variable in container.get("env", []):
            value_from = variable.get("valueFrom", {})
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if key in value_from:
                    value_from[key]["name"] = renamed(kind, value_from[key]["name"])
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            volume["secret"]["secretName"] = renamed("Secret", volume["secret"]["secretName"])
        if "configMap" in volume:
            volume["configMap"]["name"] = renamed("ConfigMap", volume["configMap"]["name"])


def _set_images(doc: Document, images: list[dict[str, str]]) -> None:
    pod = doc.get("spec", {}).get("template", {}).get("spec")
    if pod is None:
        return
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        for image in images:
            if container["image"] == image["name"]:
                new = image.get("newName", image["name"])
                container["image"] = f"{new}:{image['newTag']}" if "newTag" in image else new
