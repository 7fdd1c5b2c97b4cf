"""The compose deployment for real, with podman (`-m container`; .ci/run installs podman, runc, podman-compose,
mmdebstrap): deploy/build_images.sh builds the images from Debian packages and this machine's pip registries;
`docker-compose.yml` started with podman-compose serves both backends through the published port once the
container's own healthcheck passes, read-only, as a non-root user, with the weights mounted read-only (a
mount of other weights is what gets served); the TF-free image serves the scratch backend; then the "scale"
profile: 3 replicas behind nginx under load, one replica's process killed (SIGKILL) mid-run: only requests in
flight on it may fail, the others keep succeeding, and the replica is restarted by its restart policy and
serves again; then `podman kill` (a stop by the user: it stays down until `podman start`).

Only 127.0.0.1 (the published ports) is contacted from here. Figures (build, time to healthy, the kill run) are
printed and, with CONTAINER_FIGURES=<file>, written there as JSON.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "service"))
import tiny_weights  # noqa: E402

# the first test also builds the images (up to ~15 min on a fresh machine): beyond the suite's 900 s timeout
pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(2400)]
ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "containers.conf")}
NGINX_IMAGE = "localhost/scratch-serve-nginx:bookworm"
FIGURES: dict = {}
TEXTS = ["Makanannya enak dan pelayanannya ramah sekali", "Saya kecewa, pesanan datang terlambat dan dingin",
         "Tempatnya biasa saja, tidak ada yang istimewa", "Pemandangan indah dan udaranya sejuk"]


def run(*cmd: str, timeout: float = 120, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env or ENV, capture_output=True, text=True, timeout=timeout, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(**figures) -> None:
    FIGURES.update(figures)
    print("FIGURES", json.dumps(figures))
    if os.environ.get("CONTAINER_FIGURES"):
        Path(os.environ["CONTAINER_FIGURES"]).write_text(json.dumps(FIGURES, indent=1))


def wait_healthy(container: str, timeout: float = 420) -> float:
    """Runs the container's own healthcheck (podman runs it on a timer only under systemd) until it passes;
    returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if run("podman", "healthcheck", "run", container, check=False, timeout=30).returncode == 0:
            return time.monotonic() - t0
        state = run("podman", "inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()
        assert state in ("running", "created", "configured", "stopped", "exited", "initialized", ""), state
        time.sleep(1)
    logs = run("podman", "logs", "--tail", "30", container, check=False)
    raise AssertionError(f"{container} not healthy after {timeout:.0f}s:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def inspect(container: str, fmt: str) -> str:
    return run("podman", "inspect", "--format", fmt, container).stdout.strip()


def image_inspect(tag: str, fmt: str) -> str:
    return run("podman", "image", "inspect", "--format", fmt, tag).stdout.strip()


def png_body() -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return {"images": [base64.b64encode(buf.getvalue()).decode()]}


def data_dir_host() -> str:
    data = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data")).resolve()
    if data.is_dir():
        return str(data)
    empty = tempfile.mkdtemp(prefix="scratch-serve-nodata-")
    os.chmod(empty, 0o755)
    return empty


@pytest.fixture(scope="module")
def images():
    for tool in ("podman", "podman-compose", "mmdebstrap", "runc"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (.ci/run: apt-get install podman runc podman-compose mmdebstrap)")
    t0 = time.monotonic()
    build = run("bash", "deploy/build_images.sh", "nginx", "full", "slim", timeout=3600, check=False)
    assert build.returncode == 0, build.stderr[-5000:]
    sizes = {tag: int(image_inspect(tag, "{{.Size}}")) for tag in ("scratch-serve:latest", "scratch-serve:slim")}
    record(build_seconds=round(time.monotonic() - t0, 1), image_bytes=sizes)
    # the HEALTHCHECK survives (docker format) and the images run as the non-root user
    for tag in sizes:
        assert "service.healthcheck" in image_inspect(tag, "{{json .Config.Healthcheck}}")
        assert image_inspect(tag, "{{.Config.User}}") == "app"
    return sizes


class Compose:
    """`podman-compose -p <unique project>` on docker-compose.yml with ``env``; ``down`` removes everything."""

    def __init__(self, **env: str) -> None:
        self.project = f"sstest{os.getpid()}{int(time.time()) % 10000}"
        self.env = {**ENV, "DATA_DIR_HOST": data_dir_host(), **env}

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        out = run("podman-compose", "-p", self.project, *args, env=self.env, timeout=timeout, check=False)
        assert out.returncode == 0, f"podman-compose {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    def name(self, service: str, n: int = 1) -> str:
        return f"{self.project}_{service}_{n}"

    def down(self) -> None:
        run("podman-compose", "-p", self.project, "down", "-t", "5", env=self.env, timeout=300, check=False)
        run("podman", "network", "rm", "-f", f"{self.project}_default", check=False)  # 1.0.3's down leaves it


def assert_kernel_compiled(name: str, label: str) -> None:
    """The image's engine runs the compiled kernel (the wheel built in the Dockerfile's builder stage)."""
    code = "from scratch_models.inference import kernels; print(kernels.variant[1] if kernels.variant else 'numpy')"
    variant = run("podman", "exec", name, "python", "-c", code).stdout.strip()
    record(**{f"{label}_kernel_variant": variant})
    assert variant != "numpy", "the image has no compiled kernel: the NumPy path would serve"


def test_compose_service_serves_both_backends_read_only_as_non_root(images):
    port = free_port()
    compose = Compose(PORT_SERVICE=str(port))
    try:
        t0 = time.monotonic()
        compose("up", "-d", "service")
        name = compose.name("service")
        record(service_seconds_to_healthy=round(wait_healthy(name) + 0 * t0, 1),
               service_seconds_up_to_healthy=round(time.monotonic() - t0, 1))
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/ready", timeout=10).status_code == 200
        manifest = json.loads((ROOT / "weights" / "cnn" / "manifest.json").read_text())
        for backend in ("scratch", "keras"):
            r = httpx.post(f"{base}/predict/cnn?backend={backend}", json=png_body(), timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["backend"] == backend and len(r.json()["predictions"]) == 1
            assert r.json()["model_sha256"] in json.dumps(manifest), "served from the committed weights"
            r = httpx.post(f"{base}/predict/lstm?backend={backend}", json={"texts": TEXTS}, timeout=60)
            assert r.status_code == 200 and len(r.json()["predictions"]) == len(TEXTS), r.text
        # read-only root file system, non-root user, weights mounted read-only, /tmp a tmpfs
        assert inspect(name, "{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert run("podman", "exec", name, "id", "-u").stdout.strip() == "10001"
        for path in ("/app/probe", "/app/weights/probe", "/probe"):
            out = run("podman", "exec", name, "touch", path, check=False)
            assert out.returncode != 0 and "Read-only file system" in out.stderr, (path, out.stderr)
        assert run("podman", "exec", name, "touch", "/tmp/probe").returncode == 0
        assert_kernel_compiled(name, "service")
        mounts = json.loads(inspect(name, "{{json .Mounts}}"))
        weights = [m for m in mounts if m["Destination"] == "/app/weights"]
        assert len(weights) == 1 and weights[0]["RW"] is False and Path(weights[0]["Source"]) == ROOT / "weights"
    finally:
        compose.down()


def test_slim_image_serves_mounted_weights_without_tensorflow(images, tmp_path):
    """The TF-free image, read-only and non-root, with other weights (tiny random models) mounted over the
    baked ones: what it serves is the mounted files (their sha256), not the image's."""
    weights = Path(tempfile.mkdtemp(prefix="scratch-serve-weights-"))
    try:
        tiny_weights.build_weights(weights)
        for path in [weights, *weights.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        port, name = free_port(), f"sstest-slim-{os.getpid()}"
        run("podman", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "-p", f"127.0.0.1:{port}:8000",
            "-v", f"{weights}:/app/weights:ro", "scratch-serve:slim")
        try:
            record(slim_seconds_to_healthy=round(wait_healthy(name), 1))
            has_tf = run("podman", "exec", name, "python", "-c", "import tensorflow", check=False).returncode == 0
            record(slim_has_tensorflow=has_tf)
            assert_kernel_compiled(name, "slim")
            r = httpx.post(f"http://127.0.0.1:{port}/predict/cnn?backend=scratch", json=png_body(), timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["model_sha256"] == tiny_weights.sha256_file(weights / "cnn" / "weights.npz")
            r = httpx.post(f"http://127.0.0.1:{port}/predict/rnn?backend=scratch", json={"texts": TEXTS}, timeout=60)
            assert r.status_code == 200 and len(r.json()["predictions"]) == len(TEXTS)
            keras = httpx.post(f"http://127.0.0.1:{port}/predict/cnn?backend=keras", json=png_body(), timeout=60)
            if not has_tf:  # no TensorFlow: the keras backend is refused with a clear error, never a 500
                assert 400 <= keras.status_code < 500 or keras.status_code == 503, keras.text
                assert "error" in keras.json()
        finally:
            run("podman", "rm", "-f", "-t", "2", name, check=False)
    finally:
        shutil.rmtree(weights, ignore_errors=True)


async def _load(base: str, seconds: float, concurrency: int, kill_at: float, kill) -> dict:
    """Single-item predicts (texts and PNGs, both backends) through nginx for ``seconds`` at ``concurrency``;
    ``kill()`` runs at ``kill_at``. Each outcome with its time (s from the start) and the replica that answered."""
    bodies = [("rnn", "scratch", {"texts": [TEXTS[0]]}), ("cnn", "scratch", png_body()),
              ("lstm", "keras", {"texts": [TEXTS[1]]}), ("cnn", "keras", png_body())]
    outcomes: list[tuple[float, str, str]] = []  # (t, "ok" | error, upstream)
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def sender(k: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            i = k
            while loop.time() - t0 < seconds:
                arch, backend, body = bodies[i % len(bodies)]
                i += 1
                try:
                    r = await client.post(f"/predict/{arch}?backend={backend}", json=body)
                    outcome = "ok" if r.status_code == 200 else f"HTTP {r.status_code}"
                    upstream = r.headers.get("x-upstream-addr", "")
                except httpx.HTTPError as exc:
                    outcome, upstream = type(exc).__name__, ""
                outcomes.append((loop.time() - t0, outcome, upstream))

    async def killer() -> float:
        await asyncio.sleep(kill_at)
        t = loop.time() - t0
        await asyncio.to_thread(kill)
        return t

    *_, killed_at = await asyncio.gather(*(sender(k) for k in range(concurrency)), killer())
    return {"outcomes": outcomes, "killed_at": killed_at}


def test_scale_profile_survives_a_replica_killed_under_load(images):
    port = free_port()
    compose = Compose(PORT_LB=str(port), LB_IMAGE=NGINX_IMAGE)
    try:
        t0 = time.monotonic()
        compose("up", "-d", "lb")  # naming lb starts it and its dependencies: the 3 app replicas
        replicas = [compose.name("app", n) for n in (1, 2, 3)]
        for name in replicas:
            wait_healthy(name)
        record(scale_seconds_to_3_healthy=round(time.monotonic() - t0, 1))
        for name in replicas:
            assert inspect(name, "{{.HostConfig.ReadonlyRootfs}}") == "true" and inspect(name, "{{.Config.User}}") == "app"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(base + "/lb-health", timeout=5).status_code != 200 or \
                httpx.get(base + "/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "nginx never answered /ready through the replicas"
            time.sleep(1)
        ip = {name: inspect(name, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}") for name in replicas}
        victim = replicas[1]
        seconds, concurrency, kill_at = 40.0, 16, 10.0

        def kill() -> None:  # a crash: SIGKILL of the replica's process from outside (what the OOM killer does);
            # `podman kill` would mark the container stopped by the user, and no restart policy restarts that
            run("kill", "-9", inspect(victim, "{{.State.Pid}}"))

        result = asyncio.run(_load(base, seconds, concurrency, kill_at, kill))
        outcomes, killed_at = result["outcomes"], result["killed_at"]
        failures = [(t, o) for t, o, _ in outcomes if o != "ok"]
        served_by = Counter(u.split(":")[0] for _, o, u in outcomes if o == "ok")
        # the replica comes back (restart: unless-stopped) and serves again
        t_back = time.monotonic()
        back_after = wait_healthy(victim, timeout=300)
        restarted_ip = inspect(victim, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
        deadline, serves_again = time.monotonic() + 60, False
        while time.monotonic() < deadline and not serves_again:
            r = httpx.post(base + "/predict/rnn?backend=scratch", json={"texts": [TEXTS[2]]}, timeout=30)
            assert r.status_code == 200, r.text
            serves_again = r.headers.get("x-upstream-addr", "").split(":")[0] == restarted_ip
        after_load_s = time.monotonic() - t_back
        restarts = inspect(victim, "{{.RestartCount}}")
        record(kill_run={"requests": len(outcomes), "ok": len(outcomes) - len(failures), "failures": len(failures),
                         "failure_kinds": dict(Counter(o for _, o in failures)),
                         "failure_times_s": [round(t - killed_at, 2) for t, _ in failures],
                         "killed_at_s": round(killed_at, 2), "seconds": seconds, "concurrency": concurrency,
                         "ok_per_replica_ip": dict(served_by), "replica_ips_before": ip, "restarted_ip": restarted_ip,
                         "healthy_again_s_after_load": round(back_after, 1),
                         "serving_again_s_after_load": round(after_load_s, 1), "restart_count": restarts})
        ok_after_kill = sum(1 for t, o, _ in outcomes if o == "ok" and t > killed_at + 3)
        assert ok_after_kill > 0, "requests kept succeeding through the other replicas"
        assert len(failures) <= concurrency, "at most the requests in flight (<= concurrency) may fail"
        assert all(t >= killed_at for t, _ in failures), f"failures before the kill: {failures[:5]}"
        assert set(served_by) >= {ip[r] for r in replicas if r != victim}, served_by
        assert serves_again, f"nginx never routed to the restarted replica ({restarted_ip})"
        assert int(restarts) >= 1
        # `podman kill`: the container is stopped by the user, the policy leaves it down (podman's semantics,
        # like `docker kill`); nginx keeps serving through the others, and `podman start` brings it back
        run("podman", "kill", victim)
        time.sleep(5)
        assert inspect(victim, "{{.State.Status}}") == "exited"
        assert all(httpx.post(base + "/predict/rnn?backend=scratch", json={"texts": [TEXTS[3]]},
                              timeout=30).status_code == 200 for _ in range(10))
        run("podman", "start", victim)
        record(podman_kill_then_start_healthy_s=round(wait_healthy(victim, timeout=300), 1))
    finally:
        compose.down()
