"""Deployment files, checked by parsing (no Docker engine runs here): compose services, port 8000, a
healthcheck on /ready, read-only weights; the Dockerfile's base, user, weights and healthcheck."""
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
    assert list(compose["services"]) == ["service"]
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
