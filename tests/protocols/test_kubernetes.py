"""deploy/kubernetes/ validated without a cluster: the built-in kinds (Deployment, Service, HorizontalPodAutoscaler,
and the containers of KServe's ServingRuntime) against the Kubernetes OpenAPI schemas shipped in the PyPI package
``kubernetes-validate`` (strict: unknown fields are errors); the KServe kinds (ServingRuntime, InferenceService)
against the KServe SDK's generated models (``kserve_schema.py``, run with KSERVE_PYTHON, skipped without it).
Then the manifests against the service itself: ports, probe paths, environment names and values match
``service/settings.py`` and the app's routes, and memory is at least what was measured."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from service.settings import Settings

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
HERE = Path(__file__).resolve().parent
K8S_VERSION = kubernetes_validate.utils.latest_version()
BUILTIN = {"Deployment", "Service", "HorizontalPodAutoscaler"}
KSERVE = {"ServingRuntime", "InferenceService"}


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        out += [(f"{path.name}#{i}", d) for i, d in enumerate(yaml.safe_load_all(path.read_text())) if d]
    return out


DOCS = documents()


def by_kind(kind: str) -> dict:
    (doc,) = [d for _, d in DOCS if d["kind"] == kind]
    return doc


def env_names() -> set[str]:
    """Every environment variable Settings reads: field names and their aliases, upper case."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


def quantity_bytes(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def test_the_expected_kinds():
    assert sorted(d["kind"] for _, d in DOCS) == sorted(BUILTIN | KSERVE)


@pytest.mark.parametrize("where,doc", [(w, d) for w, d in DOCS if d["kind"] in BUILTIN], ids=lambda v: str(v)[:40])
def test_builtin_kinds_match_the_kubernetes_schema(where, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_refuses_a_misspelled_field():
    """The check can fail: a typo in a probe's name is an error, not ignored."""
    doc = json.loads(json.dumps(by_kind("Deployment")))
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = doc["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_serving_runtime_containers_match_the_kubernetes_schema():
    """The ServingRuntime's containers are core Containers: validated as a Pod's."""
    runtime = by_kind("ServingRuntime")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "serving-runtime-containers"},
           "spec": {"containers": runtime["spec"]["containers"]}}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_kserve_kinds_match_the_kserve_sdk_schema():
    python = os.environ.get("KSERVE_PYTHON")
    if not python or not Path(python).exists():
        pytest.skip("KSERVE_PYTHON (an interpreter with kserve installed, in its own venv) is not set")
    done = subprocess.run([python, str(HERE / "kserve_schema.py"), str(DEPLOY / "kserve.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and len(result["checked"]) == 2, result


def containers() -> list[dict]:
    return by_kind("Deployment")["spec"]["template"]["spec"]["containers"] + by_kind("ServingRuntime")["spec"]["containers"]


@pytest.mark.parametrize("index", [0, 1], ids=["deployment", "serving-runtime"])
def test_ports_probes_and_environment_match_the_settings(index):
    from service.app import create_app

    c = containers()[index]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert set(env) <= env_names(), f"not settings: {set(env) - env_names()}"
    settings = Settings(**{k.lower(): v for k, v in env.items()})  # every value parses
    assert settings.host == "0.0.0.0"
    (port,) = c["ports"]
    assert port["containerPort"] == settings.port == Settings.model_fields["port"].default
    paths = set(create_app(settings).openapi()["paths"])
    for probe, path in (("livenessProbe", "/v2/health/live"), ("readinessProbe", "/v2/health/ready")):
        get = c[probe]["httpGet"]
        assert get["path"] == path and path in paths
        assert get["port"] in (port["containerPort"], port.get("name"))
    if "startupProbe" in c:
        assert c["startupProbe"]["httpGet"]["path"] in paths


def test_service_hpa_and_inference_service_point_at_what_exists():
    deployment, service, hpa = by_kind("Deployment"), by_kind("Service"), by_kind("HorizontalPodAutoscaler")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] in [p.get("name") for p in pod["spec"]["containers"][0]["ports"]]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    runtime, isvc = by_kind("ServingRuntime"), by_kind("InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in [f["name"] for f in runtime["spec"]["supportedModelFormats"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"] == ["v2"]
    env = {e["name"]: e["value"] for e in runtime["spec"]["containers"][0]["env"]}
    assert env["MODEL_REPOSITORY"] == "/mnt/models"  # where KServe's storage initializer puts storageUri


def test_shutdown_grace_covers_the_service_drain():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    drain = int(env.get("GRACEFUL_SHUTDOWN_S", 0))
    assert spec["terminationGracePeriodSeconds"] > drain


def test_memory_covers_the_measured_rss():
    report = ROOT / "reports" / "protocols_bench.json"
    if not report.is_file():
        pytest.skip("reports/protocols_bench.json not found (python benchmarks/bench_protocols.py)")
    measured = json.loads(report.read_text())
    for c in containers():
        requests, limits = c["resources"]["requests"], c["resources"]["limits"]
        assert quantity_bytes(requests["memory"]) >= measured["server_rss_mb"] * 2**20
        assert quantity_bytes(limits["memory"]) >= measured["server_peak_rss_after_max_batch_mb"] * 2**20
