"""Deployment files, checked by parsing (no Docker engine runs here): compose services, port 8000, a
healthcheck on /ready, read-only weights; the "scale" profile (replicas behind nginx, health checks, the
upstream of deploy/nginx.conf); the Dockerfile's base, user, weights and healthcheck."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def service(compose) -> dict:
    default = [name for name, svc in compose["services"].items() if not svc.get("profiles")]
    assert default == ["service"], "`docker compose up` starts the single service only"
    return compose["services"]["service"]


def test_compose_builds_the_image_and_publishes_port_8000(service):
    assert service["build"] == "."
    assert "8000:8000" in [str(p) for p in service["ports"]]
    env = service["environment"]
    assert env["PORT"] == "8000" and env["HOST"] == "0.0.0.0"
    assert env["WEIGHTS_DIR"] == "/app/weights"


def test_compose_healthcheck_polls_ready(service):
    hc = service["healthcheck"]
    assert hc["test"][0] == "CMD" and any("/ready" in part and ":8000" in part for part in hc["test"])
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in hc


def test_compose_mounts_weights_read_only(service):
    weights = [v for v in service["volumes"] if isinstance(v, dict) and v.get("target") == "/app/weights"]
    assert len(weights) == 1 and weights[0]["read_only"] is True and weights[0]["source"] == "./weights"
    others = [v for v in service["volumes"] if isinstance(v, str)]
    assert all(v.endswith(":ro") for v in others)
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]


def test_compose_environment_names_are_settings(service):
    from service.settings import Settings

    fields = {name.upper() for name in Settings.model_fields}
    assert set(service["environment"]) <= fields


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^USER (?!root)\w+", text, re.M), "must run as a non-root user"
    assert re.search(r"^COPY weights/ weights/", text, re.M), "weights are baked into the image"
    assert re.search(r"^HEALTHCHECK .*\n?.*?/ready", text, re.M | re.S)
    assert re.search(r"^EXPOSE 8000", text, re.M)
    assert 'CMD ["python", "-m", "service"]' in text
    user_line = max(i for i, line in enumerate(text.splitlines()) if line.startswith("USER "))
    cmd_line = max(i for i, line in enumerate(text.splitlines()) if line.startswith("CMD "))
    assert user_line < cmd_line


def test_dockerignore_keeps_the_context_small():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "runs", "tests"} <= ignored
    assert "weights" not in ignored and "service" not in ignored


# ------------------------------------------------------------------ the "scale" profile
@pytest.fixture(scope="module")
def scale(compose) -> dict:
    services = {name: svc for name, svc in compose["services"].items() if "scale" in (svc.get("profiles") or [])}
    assert set(services) == {"app", "lb"}
    return services


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    return re.sub(r"#[^\n]*", "", (ROOT / "deploy" / "nginx.conf").read_text())


def test_scale_profile_runs_several_replicas_of_the_service(scale, service):
    app = scale["app"]
    assert int(app["deploy"]["replicas"]) >= 2
    assert "ports" not in app and "container_name" not in app, "replicas publish no host port, have no fixed name"
    assert [str(p) for p in app["expose"]] == ["8000"]
    assert app["build"] == service["build"] and app["image"] == service["image"], "the same image as `service`"
    assert app["environment"]["PORT"] == "8000" and app["environment"]["HOST"] == "0.0.0.0"
    assert app["read_only"] is True
    weights = [v for v in app["volumes"] if isinstance(v, dict) and v.get("target") == "/app/weights"]
    assert len(weights) == 1 and weights[0]["read_only"] is True


def test_scale_profile_environment_names_are_settings(scale):
    from service.settings import Settings

    assert set(scale["app"]["environment"]) <= {name.upper() for name in Settings.model_fields}


def test_scale_profile_health_checks(scale):
    hc = scale["app"]["healthcheck"]
    assert hc["test"][0] == "CMD" and any("/ready" in part and ":8000" in part for part in hc["test"])
    lb = scale["lb"]
    assert lb["depends_on"]["app"]["condition"] == "service_healthy"
    assert lb["healthcheck"]["test"][0] == "CMD" and any("/lb-health" in part for part in lb["healthcheck"]["test"])
    for check in (hc, lb["healthcheck"]):
        assert {"interval", "timeout", "retries"} <= set(check)


def test_scale_profile_nginx_service(scale):
    lb = scale["lb"]
    assert lb["image"].startswith("nginx:")
    assert "8080:80" in [str(p) for p in lb["ports"]]
    conf = [v for v in lb["volumes"] if str(v).startswith("./deploy/nginx.conf:")]
    assert conf == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]


def test_nginx_upstream_balances_over_the_replicas(nginx_conf, scale):
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", nginx_conf)
    assert upstream, "an upstream block"
    name, body = upstream.groups()
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)([^;]*);", body, re.M)
    assert servers == [("app", "8000", servers[0][2])], "the compose service name and the service's port"
    assert "resolve" in servers[0][2].split(), "re-resolved: replicas that come and go are picked up"
    assert re.search(r"^\s*zone\s+\w+\s+\d+k;", body, re.M), "`resolve` needs a shared zone"
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\b", nginx_conf, re.M), "Docker's embedded DNS"
    assert re.search(rf"proxy_pass\s+http://{name};", nginx_conf)
    assert re.search(r"proxy_next_upstream\s+[^;]*\berror\b[^;]*\bhttp_503\b", nginx_conf)
    assert re.search(r"listen\s+80;", nginx_conf) and "location = /lb-health" in nginx_conf
    # the braces balance (a cheap syntax check: no nginx binary here)
    assert nginx_conf.count("{") == nginx_conf.count("}")
