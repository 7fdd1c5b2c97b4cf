"""Fixtures of the browser suite: live uvicorn processes (`python -m service`, the committed weights) and a
headless Debian Chromium driven by Playwright (never `playwright install`: the browser is the system's).

Every test module here sets ``pytestmark = pytest.mark.browser``: the default run leaves them out, ``.ci/run`` installs Chromium and
runs them with ``-m browser``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "reports" / "figures"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARCHS = ("cnn", "rnn", "lstm")


# ------------------------------------------------------------------ live servers
@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(log_path: Path, **env_overrides: str) -> Server:
    port = _free_port()
    env = {**os.environ, "GC_FREEZE": "1", "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "2",
           **env_overrides}
    env.pop("WEIGHTS_DIR", None)  # MODEL_REPOSITORY's older name
    env["MODEL_REPOSITORY"] = env_overrides.get("MODEL_REPOSITORY", str(ROOT / "weights"))
    if "DATA_DIR" not in env_overrides:
        env.pop("DATA_DIR", None)
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}", proc, log_path)


def _wait_ready(server: Server, timeout: float = 180) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + "/ready", timeout=2).status_code == 200:
                return server
        time.sleep(0.3)
    raise RuntimeError(f"uvicorn not ready after {timeout}s:\n{server.log_tail()}")


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    value = os.environ.get("DATA_DIR")
    path = Path(value).resolve() if value else None
    if path is None or not (path / "cifar10" / "test").is_dir():
        pytest.skip("DATA_DIR is not set to the data folder (e.g. DATA_DIR=../shared/data): the page's parity "
                    "panels and the uploaded CIFAR-10 test images need it")
    return path


@pytest.fixture(scope="session")
def servers(tmp_path_factory, real_data_dir):
    """Two services started together: one with DATA_DIR (parity works), one without it and with small image
    limits (the page's error messages)."""
    missing = [a for a in ARCHS if not (ROOT / "weights" / a / "manifest.json").is_file()]
    if missing:
        pytest.skip(f"committed weights missing for {missing}")
    logs = tmp_path_factory.mktemp("browser-servers")
    started = [_launch(logs / "with-data.log", DATA_DIR=str(real_data_dir)),
               _launch(logs / "without-data.log", MAX_IMAGE_PIXELS="4096", MAX_BODY_BYTES="65536")]
    try:
        yield {"data": _wait_ready(started[0]), "nodata": _wait_ready(started[1])}
    finally:
        for s in started:
            _stop(s)


PEER_MODELS = Path(os.environ.get("PEER_MODELS", ROOT.parent / "shared" / "fixtures" / "peer-models"))


@pytest.fixture(scope="session")
def repository_server(tmp_path_factory, real_data_dir):
    """A model repository unlike the committed one: our rnn, a person's bare Keras SimpleRNN (+ its vectorizer
    file; converted at start-up), and an "lstm" whose manifest is broken."""
    peer = [PEER_MODELS / "rnn_bi24_spatialdropout.keras", PEER_MODELS / "rnn_bi24_spatialdropout_vectorizer.keras"]
    if not all(p.is_file() for p in peer):
        pytest.skip(f"peer models not found under {PEER_MODELS}")
    repo = tmp_path_factory.mktemp("repository")
    shutil.copytree(ROOT / "weights" / "rnn", repo / "rnn")
    (repo / "peer-rnn").mkdir()
    for p in peer:
        shutil.copyfile(p, repo / "peer-rnn" / p.name)
    (repo / "lstm").mkdir()  # a name /parity covers, but nothing to load
    (repo / "lstm" / "manifest.json").write_text("{not json")
    server = _launch(repo.parent / f"{repo.name}.log", DATA_DIR=str(real_data_dir), MODEL_REPOSITORY=str(repo),
                     CONVERT_CACHE=str(repo.parent / f"{repo.name}-cache"))
    try:
        yield _wait_ready(server, timeout=300)
    finally:
        _stop(server)


@pytest.fixture(scope="session")
def server(servers) -> Server:
    return servers["data"]


@pytest.fixture(scope="session")
def server_without_data(servers) -> Server:
    return servers["nodata"]


# ------------------------------------------------------------------ the browser
@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                                "(pip install -e '.[dev]')")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium; or set CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Watched:
    """A page and what it logged: console messages of level error, uncaught exceptions, other-origin requests."""
    page: object
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def script_errors(self) -> list[str]:
        """Errors other than the browser's own line for an HTTP error answer the page asked for."""
        return self.page_errors + [m for m in self.console_errors
                                   if not m.startswith("Failed to load resource: the server responded with a status of")]


def open_page(browser, base_url: str, *, offline: bool = True, **context_kw) -> Watched:
    """A fresh context (no cache) on ``base_url``; with ``offline`` every request to another origin is aborted
    (and recorded): the page must not need one."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **context_kw})
    context.set_default_timeout(120_000)  # a first forward pass on a shared 2-core machine can take a while
    page = context.new_page()
    watched = Watched(page, base_url)
    page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.page_errors.append(str(e)))

    def on_request(request) -> None:
        if not request.url.startswith(base_url) and not request.url.startswith(("data:", "blob:")):
            watched.foreign_requests.append(request.url)

    page.on("request", on_request)
    if offline:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base_url)
                      else route.abort("internetdisconnected"))
    return watched


@pytest.fixture
def new_page(browser):
    opened = []

    def make(base_url: str, **kw) -> Watched:
        watched = open_page(browser, base_url, **kw)
        opened.append(watched)
        return watched

    yield make
    for w in opened:
        w.page.context.close()


@pytest.fixture(scope="session")
def figures_dir() -> Path:
    FIGURES.mkdir(parents=True, exist_ok=True)
    return FIGURES
