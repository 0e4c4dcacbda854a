"""The deployment files agree with the code: docker-compose.yml, deploy/Dockerfile,
deploy/nats/nats.conf, deploy/.env.example and the Kubernetes base in deploy/k8s/base
(the rendered overlays are checked in tests/test_k8s.py).

Nothing here needs a Docker engine or a cluster. Where the code's settings classes can be
imported, the environment each part gets is checked against (and loaded by) the class
itself; the static list below is the contract they must at least meet. When a Compose
client is installed, it validates the file too.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML: installed with uvicorn[standard]

from bourse.parts import PARTS, Part

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NATS_CONF = ROOT / "deploy" / "nats" / "nats.conf"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
K8S = ROOT / "deploy" / "k8s" / "base"
K8S_SECRETS_EXAMPLE = ROOT / "deploy" / "k8s" / "overlays" / "single-node" / "secrets.env.example"

INFRA = ("postgres", "redis", "nats")
GiB = 1024**3
# Every setting a part cannot start without (the contract); the settings classes may add more.
REQUIRED_EVERYWHERE = ("HOST", "PORT", "DATABASE_URL", "REDIS_URL", "NATS_URL")
REQUIRED_SERVICE = ("JWKS_URL",)
REQUIRED_GATEWAY = (
    "JWT_PRIVATE_KEY_FILE",
    "MARKET_URL",
    "RECOMMENDATIONS_URL",
    "PORTFOLIO_URL",
    "REALTIME_URL",
)

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?(?P<op>[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose's variable substitution, for the forms the file uses."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if values.get(name):
            return values[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""

    # $$ is a literal $ and is not substituted.
    parts = text.split("$$")
    return "$".join(_VARIABLE.sub(substitute, part) for part in parts)


def required_variables() -> list[str]:
    """Variables the compose file refuses to run without (``${NAME:?...}``)."""
    return sorted({m["name"] for m in _VARIABLE.finditer(COMPOSE.read_text()) if m["op"] == "?"})


def dummy_env() -> dict[str, str]:
    return {name: f"x{index}secret" for index, name in enumerate(required_variables())}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), dummy_env()))
    return loaded


def services(compose: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def static_required(part: Part) -> set[str]:
    names = REQUIRED_EVERYWHERE + (REQUIRED_GATEWAY if part.is_gateway else REQUIRED_SERVICE)
    return {f"{part.env_prefix}_{name}" for name in names}


def settings_class(part: Part) -> Any:
    """The part's settings class, or skip while it does not exist yet."""
    module_name = f"{part.module}.config"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            pytest.skip(f"{module_name} does not exist yet")
        raise
    class_name = "GatewaySettings" if part.is_gateway else f"{part.name.capitalize()}Settings"
    return getattr(module, class_name)


def env_name(cls: Any, field_name: str) -> str:
    field = cls.model_fields[field_name]
    if isinstance(field.validation_alias, str):  # an alias replaces prefix + name
        return field.validation_alias.upper()
    return f"{cls.model_config.get('env_prefix', '')}{field_name}".upper()


def code_required(part: Part) -> set[str]:
    cls = settings_class(part)
    return {env_name(cls, name) for name, field in cls.model_fields.items() if field.is_required()}


def code_known(part: Part) -> set[str]:
    cls = settings_class(part)
    return {env_name(cls, name) for name in cls.model_fields}


def memory_bytes(value: str | int) -> int:
    """A Compose or Kubernetes memory quantity (``512M``, ``1.5g``, ``384Mi``) in bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(?i)\s*([0-9.]+)\s*(b|k|kb|ki|m|mb|mi|g|gb|gi)?\s*", value)
    assert match, f"not a memory quantity: {value!r}"
    scale = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    unit = (match[2] or "b").lower()[0]
    return int(float(match[1]) * scale[unit])


def memory_limit(service: Mapping[str, Any]) -> int:
    limit = service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
    limit = limit or service.get("mem_limit")
    assert limit, "no memory limit"
    return memory_bytes(limit)


# ------------------------------------------------------------------------ docker-compose.yml


def test_compose_names_every_part_infrastructure_and_init(compose: dict[str, Any]) -> None:
    names = set(services(compose))
    assert {part.name for part in PARTS} <= names
    assert {*INFRA, "init"} <= names


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_compose_part_runs_its_module(compose: dict[str, Any], part: Part) -> None:
    service = services(compose)[part.name]
    command = service["command"]
    if isinstance(command, str):
        command = command.split()
    assert command == ["python", "-m", part.module]
    assert service["image"] == services(compose)["init"]["image"], "one image for all parts"
    assert service.get("restart") == "unless-stopped"


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_compose_part_has_the_contracted_settings(compose: dict[str, Any], part: Part) -> None:
    env = environment(services(compose)[part.name])
    missing = static_required(part) - env.keys()
    assert not missing, f"{part.name} lacks {sorted(missing)}"
    assert env[f"{part.env_prefix}_HOST"] == "0.0.0.0"
    assert env[f"{part.env_prefix}_PORT"] == str(part.default_port)
    database_url = env[f"{part.env_prefix}_DATABASE_URL"]
    assert database_url.startswith(f"postgresql://{part.db_role}:"), "its own role"
    assert database_url.endswith("@postgres:5432/bourse")
    if not part.is_gateway:
        assert env[f"{part.env_prefix}_JWKS_URL"] == "http://gateway:8000/api/v1/auth/jwks"


def test_compose_gateway_reaches_every_service(compose: dict[str, Any]) -> None:
    env = environment(services(compose)["gateway"])
    for part in PARTS:
        if not part.is_gateway:
            url = env[f"GATEWAY_{part.env_prefix}_URL"]
            assert url == f"http://{part.name}:{part.default_port}"
    key_file = env["GATEWAY_JWT_PRIVATE_KEY_FILE"]
    mounts = services(compose)["gateway"]["volumes"]
    assert any(m.endswith(":ro") and key_file.startswith(m.split(":")[1] + "/") for m in mounts), (
        "the signing key is on a volume the gateway mounts read-only"
    )


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_compose_sets_what_the_settings_class_requires(compose: dict[str, Any], part: Part) -> None:
    env = environment(services(compose)[part.name])
    missing = code_required(part) - env.keys()
    assert not missing, f"{part.name}: {sorted(missing)} required by its settings class"
    ours = {name for name in env if name.startswith(f"{part.env_prefix}_")}
    unknown = ours - code_known(part)
    assert not unknown, f"{part.name}: {sorted(unknown)} are no settings (typo?)"


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_compose_environment_loads_into_the_settings_class(
    compose: dict[str, Any], part: Part, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(part)
    env = environment(services(compose)[part.name])
    if part.is_gateway:  # the key is made by `init` at run time; stand one in
        key = tmp_path / "jwt-signing.pem"
        key.write_text("placeholder")
        env["GATEWAY_JWT_PRIVATE_KEY_FILE"] = str(key)
    for name in list(os.environ):
        if name.startswith(f"{part.env_prefix}_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = cls()
    assert settings.host == "0.0.0.0"
    assert settings.port == part.default_port


def test_compose_init_migrates_and_makes_the_key(compose: dict[str, Any]) -> None:
    init = services(compose)["init"]
    command = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert "bourse migrate --admin-url" in command
    assert "bourse keys ensure --path /keys/jwt-signing.pem" in command
    env = environment(init)
    assert env["BOURSE_DATABASE_URL"].startswith("postgresql://postgres:")
    for part in PARTS:  # the password of each role comes from its URL
        assert (
            env[f"{part.env_prefix}_DATABASE_URL"]
            == environment(services(compose)[part.name])[f"{part.env_prefix}_DATABASE_URL"]
        )
    assert any(str(v).startswith("jwt-keys:/keys") for v in init["volumes"])
    assert init.get("restart", "no") == "no"


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_compose_part_starts_after_init_and_healthy_infrastructure(
    compose: dict[str, Any], part: Part
) -> None:
    depends = services(compose)[part.name]["depends_on"]
    assert depends["init"]["condition"] == "service_completed_successfully"
    for name in INFRA:
        assert depends[name]["condition"] == "service_healthy"


def test_compose_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name in (*INFRA, *(part.name for part in PARTS)):
        test = services(compose)[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
    for part in PARTS:
        test = " ".join(services(compose)[part.name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{part.default_port}/ready" in test
    assert "pg_isready" in " ".join(services(compose)["postgres"]["healthcheck"]["test"])
    assert "8222/healthz" in " ".join(services(compose)["nats"]["healthcheck"]["test"])


def test_compose_fits_a_4_gib_host(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    running = {name: memory_limit(s) for name, s in all_services.items() if name != "init"}
    assert sum(running.values()) <= 3.8 * GiB, running
    # init runs to completion before the parts start; even counted, the total fits.
    assert sum(running.values()) + memory_limit(all_services["init"]) <= 4 * GiB


def test_compose_publishes_only_the_gateway_on_loopback(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in services(compose).items() if s.get("ports")}
    assert list(published) == ["gateway"]
    (mapping,) = published["gateway"]
    assert mapping == "127.0.0.1:8000:8000"


def test_compose_has_no_default_secrets() -> None:
    text = COMPOSE.read_text()
    for match in _VARIABLE.finditer(text):
        if "PASSWORD" in match["name"]:
            assert match["op"] == "?", f"{match[0]} must be required, not defaulted"
    for line in _without_comments(text).splitlines():
        if re.search(r"(?i)password\s*:", line):
            assert "${" in line, f"literal password: {line.strip()}"


def test_env_example_lists_every_required_variable() -> None:
    listed = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert set(required_variables()) <= listed
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "PASSWORD=" in line and not line.lstrip().startswith("#"):
            assert line.endswith("="), f"no default password in the example: {line}"


@pytest.mark.parametrize("name", required_variables())
def test_compose_refuses_to_start_without_each_password(name: str) -> None:
    values = dummy_env()
    del values[name]
    with pytest.raises(KeyError, match=name):
        interpolate(COMPOSE.read_text(), values)
    assert "PASSWORD" in name, "only secrets are required; everything else has a default"


def _without_comments(text: str) -> str:
    return "\n".join(
        line.split(" #", 1)[0] for line in text.splitlines() if not line.startswith("#")
    )


# ------------------------------------------------------------------------- Compose client


def _compose_command() -> tuple[list[str], bool] | None:
    """The installed Compose client and whether it understands the top-level ``name``."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"], True
    legacy = shutil.which("docker-compose")
    if legacy:  # v1 predates the top-level `name:` of the Compose specification
        return [legacy], False
    return None


def test_compose_client_accepts_the_file(tmp_path: Path) -> None:
    found = _compose_command()
    if found is None:
        pytest.skip("no docker compose client installed")
    command, knows_name = found
    compose_file = COMPOSE
    if not knows_name:
        compose_file = tmp_path / "docker-compose.yml"
        compose_file.write_text(re.sub(r"(?m)^name:.*\n", "", COMPOSE.read_text()))
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in dummy_env().items()))
    base = [*command, "-f", str(compose_file), "--project-directory", str(ROOT)]
    clean_env = {k: v for k, v in os.environ.items() if k not in dummy_env()}
    ok = subprocess.run(
        [*base, "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = subprocess.run(
        [*base, "--env-file", str(empty), "config", "-q"],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
    )
    assert refused.returncode != 0
    assert "in .env" in refused.stderr


# ------------------------------------------------------------------- Dockerfile, NATS


def test_dockerfile_runs_as_non_root_on_python_311() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: a builder and a slim runtime"
    runtime = lines[stages[-1] :]
    users = [line.split(None, 1)[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    text = DOCKERFILE.read_text()
    assert "python:3.11-slim-bookworm" in text
    assert "pip install --no-cache-dir -r requirements.lock" in text
    assert "pip install --no-cache-dir --no-deps ." in text
    # The image gets the runtime pins only: no tools, no embedded servers, no installers.
    instructions = re.sub(r"(?m)^\s*#.*$", "", text)
    assert "requirements-dev.lock" not in instructions and ".[" not in instructions  # no extras
    assert "pip uninstall --yes --quiet pip setuptools" in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text and "PYTHONUNBUFFERED=1" in text


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".bourse", ".env"} <= patterns


def test_nats_has_durable_jetstream() -> None:
    text = re.sub(r"#.*", "", NATS_CONF.read_text())
    block = re.search(r"jetstream\s*\{(?P<body>[^}]*)\}", text)
    assert block, "JetStream is enabled"
    assert re.search(r"(?m)^\s*sync_interval\s*:\s*always\s*$", block["body"])
    assert re.search(r"(?m)^\s*store_dir\s*:\s*/data\s*$", block["body"])
    assert re.search(r"(?m)^\s*http\s*:\s*\S*8222\s*$", text), "monitoring for /healthz"


def test_nats_volume_and_config_are_mounted(compose: dict[str, Any]) -> None:
    nats = services(compose)["nats"]
    assert "./deploy/nats/nats.conf:/etc/nats/bourse.conf:ro" in nats["volumes"]
    assert "/etc/nats/bourse.conf" in nats["command"]
    assert any(v.startswith("natsdata:/data") for v in nats["volumes"])


# -------------------------------------------------------------------------- Kubernetes


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def k8s_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in k8s_documents() if doc["kind"] == kind}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_k8s_deployment_is_probed_limited_and_locked_down(part: Part) -> None:
    deployment = k8s_kind("Deployment")[part.name]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", part.module]
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["ports"][0]["containerPort"] == part.default_port
    resources = container["resources"]
    assert resources["requests"]["memory"] and resources["requests"]["cpu"]
    assert resources["limits"]["memory"] and resources["limits"]["cpu"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    service = k8s_kind("Service")[part.name]
    assert service["spec"]["ports"][0]["port"] == part.default_port


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_k8s_memory_limits_match_compose(compose: dict[str, Any], part: Part) -> None:
    (container,) = k8s_kind("Deployment")[part.name]["spec"]["template"]["spec"]["containers"]
    assert memory_bytes(container["resources"]["limits"]["memory"]) == memory_limit(
        services(compose)[part.name]
    )


def _k8s_env_names(part: Part) -> set[str]:
    config = k8s_kind("ConfigMap")["bourse-config"]["data"]
    (container,) = k8s_kind("Deployment")[part.name]["spec"]["template"]["spec"]["containers"]
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == "bourse-config":
            names |= set(config)
    return names


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_k8s_part_has_the_contracted_settings(part: Part) -> None:
    missing = static_required(part) - _k8s_env_names(part)
    assert not missing, f"{part.name} lacks {sorted(missing)}"


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.name)
def test_k8s_sets_what_the_settings_class_requires(part: Part) -> None:
    missing = code_required(part) - _k8s_env_names(part)
    assert not missing, f"{part.name}: {sorted(missing)} required by its settings class"


def test_k8s_migrate_job_has_every_database_url() -> None:
    job = k8s_kind("Job")["bourse-migrate"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "bourse migrate --admin-url" in " ".join(container["command"])
    assert {"secretRef": {"name": "bourse-secrets"}} in container["envFrom"]
    secrets = K8S_SECRETS_EXAMPLE.read_text()
    for name in ("BOURSE_DATABASE_URL", *(f"{p.env_prefix}_DATABASE_URL" for p in PARTS)):
        assert re.search(rf"(?m)^{name}=postgresql://", secrets), name
