"""Deployment files, checked by parsing (the containers themselves run in tests/deploy, `-m container`):
compose services, port 8000 on 127.0.0.1 by default, a healthcheck on /ready, read-only weights; the "scale"
profile (replicas behind nginx, health checks, deploy/nginx.conf); the Dockerfile's base argument, targets,
user, weights and healthcheck; the healthcheck command itself against a real HTTP server."""
from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def defaults(value):
    """``${VAR:-default}`` interpolated with the defaults (what compose does with VAR unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def service(compose) -> dict:
    default = [name for name, svc in compose["services"].items() if not svc.get("profiles")]
    assert default == ["service"], "`docker compose up` starts the single service only"
    return compose["services"]["service"]


def test_compose_builds_the_image_and_publishes_port_8000(service):
    assert service["build"] == "." and defaults(service["image"]) == "scratch-serve:latest"
    assert [defaults(p) for p in service["ports"]] == ["127.0.0.1:8000:8000"], "published on loopback by default"
    env = service["environment"]
    assert env["PORT"] == "8000" and env["HOST"] == "0.0.0.0"
    assert env["WEIGHTS_DIR"] == "/app/weights"


def test_compose_healthcheck_polls_ready(service):
    hc = service["healthcheck"]
    assert hc["test"] == "python -m service.healthcheck"  # CMD-SHELL: /ready on 127.0.0.1:$PORT, tested below
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in hc


def test_compose_mounts_weights_read_only(service):
    weights = [v for v in service["volumes"] if isinstance(v, dict) and v.get("target") == "/app/weights"]
    assert len(weights) == 1 and weights[0]["read_only"] is True and weights[0]["source"] == "./weights"
    others = [v for v in service["volumes"] if isinstance(v, str)]
    assert all(v.endswith(":ro") for v in others)
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]


def setting_names() -> set[str]:
    """Every environment variable Settings reads: field names and their validation aliases, upper case."""
    from pydantic import AliasChoices

    from service.settings import Settings

    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
        names.update(c.upper() for c in choices if isinstance(c, str))
    return names


def test_compose_environment_names_are_settings(service):
    assert set(service["environment"]) <= setting_names()


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M), "the base is a build argument"
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", text, re.M)
    stages = re.split(r"^FROM ", re.sub(r"^#[^\n]*\n", "", text, flags=re.M), flags=re.M)[1:]
    names = [s.split()[2] for s in stages]
    assert names == ["requirements", "wheel", "base", "slim", "full"], "a TF-free target and the full one, full last"
    assert "tomllib" in stages[0] and "requirements-keras.txt" in stages[0], "run-time requirements from pyproject"
    assert re.search(r"^ARG BUILDER_IMAGE=python:3\.11$", text, re.M), "the wheel's builder is a build argument"
    assert stages[1].startswith("${BUILDER_IMAGE} AS wheel")
    assert "setup.py" in stages[1] and "pip wheel --no-deps" in stages[1], "the compiled kernel built into a wheel"
    for stage, keras in zip(stages[3:], (False, True)):
        assert stage.startswith("base AS") and "pip install -r /tmp/requirements-slim.txt" in stage
        assert ("requirements-keras.txt" in stage) is keras, "TensorFlow only in the full image"
        assert "COPY --from=wheel /wheels" in stage and "pip install --no-deps /tmp/wheels/*.whl" in stage
        assert "gcc" not in stage, "no compiler in the run-time images"
        assert re.search(r"^COPY weights/ weights/", stage, re.M), "weights are baked into the image"
        assert re.search(r"^USER app$", stage, re.M) and stage.rstrip().endswith("USER app"), "ends as non-root"
    assert re.search(r"^RUN useradd .*--uid 10001 .*app$", text, re.M)
    assert re.search(r'^HEALTHCHECK .* CMD \["python", "-m", "service.healthcheck"\]$', text, re.M)
    assert re.search(r"^EXPOSE 8000", text, re.M)
    assert 'CMD ["python", "-m", "service"]' in text


class _Ready(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/ready" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status,exit_code", [(200, 0), (503, 1)])
def test_healthcheck_command_exits_0_only_when_ready_answers_200(monkeypatch, status, exit_code):
    from service import healthcheck

    handler = type("Handler", (_Ready,), {"status": status})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv("PORT", str(server.server_address[1]))
        assert healthcheck.main() == exit_code
        server.shutdown()
    assert healthcheck.main() == 1, "nothing listening: unhealthy"


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
    assert app["environment"]["WORKERS"] == "1", "one process per replica"
    assert app["environment"]["PORT"] == "8000" and app["environment"]["HOST"] == "0.0.0.0"
    assert app["read_only"] is True
    weights = [v for v in app["volumes"] if isinstance(v, dict) and v.get("target") == "/app/weights"]
    assert len(weights) == 1 and weights[0]["read_only"] is True


def test_scale_profile_environment_names_are_settings(scale):
    assert set(scale["app"]["environment"]) <= setting_names()


def test_scale_profile_health_checks(scale):
    hc = scale["app"]["healthcheck"]
    assert hc["test"] == "python -m service.healthcheck"
    lb = scale["lb"]
    assert lb["depends_on"]["app"]["condition"] == "service_healthy"
    assert lb["healthcheck"]["test"][0] == "CMD" and any("/lb-health" in part for part in lb["healthcheck"]["test"])
    for check in (hc, lb["healthcheck"]):
        assert {"interval", "timeout", "retries"} <= set(check)


def test_scale_profile_nginx_service(scale):
    lb = scale["lb"]
    assert defaults(lb["image"]).startswith("nginx:")
    assert [defaults(p) for p in lb["ports"]] == ["127.0.0.1:8080:80"]
    conf = [v for v in lb["volumes"] if str(v).startswith("./deploy/nginx.conf:")]
    assert conf == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]


def test_nginx_balances_over_the_replicas(nginx_conf):
    """Any nginx >= 1.22: the compose service name through a variable, re-resolved at request time (all the
    replicas' addresses, round robin) against Docker's DNS; failed connections go to the next replica."""
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\s+valid=\d+s\b", nginx_conf, re.M), "Docker's embedded DNS"
    var = re.search(r"^\s*set\s+\$(\w+)\s+app;", nginx_conf, re.M)
    assert var, "the compose service name in a variable (resolved per request, not once at start-up)"
    assert re.search(rf"proxy_pass\s+http://\${var.group(1)}:8000;", nginx_conf)
    assert re.search(r"proxy_next_upstream\s+[^;]*\berror\b[^;]*\btimeout\b[^;]*\bhttp_503\b", nginx_conf)
    assert re.search(r"listen\s+80;", nginx_conf) and "location = /lb-health" in nginx_conf
    assert nginx_conf.count("{") == nginx_conf.count("}")  # a cheap syntax check; nginx itself: tests/deploy
