"""The service's settings: one object, read once from environment variables (no prefix)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Every knob of the service. Each field is read from the environment variable of the same name in
    upper case (``MAX_BATCH=64``); unknown variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = Field("127.0.0.1", description="Interface uvicorn binds to (`python -m service`); 0.0.0.0 in the container.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port uvicorn listens on (`python -m service`).")
    model_repository: Path = Field(ROOT / "weights", validation_alias=AliasChoices("model_repository", "weights_dir"),
                                   description="The model repository: one sub-folder per model (optional numbered version sub-folders), each our export (`manifest.json`, `model.keras`, `architecture.json`, `weights.npz`) or a bare Keras file (docs/repository.md). `WEIGHTS_DIR` is an alias.")
    admin_token: str | None = Field(None, description="Bearer token of the repository endpoints (`POST /repository/...`); unset: they answer 403.")
    repository_poll_s: float = Field(0, ge=0, description="Seconds between scans of MODEL_REPOSITORY for new, changed or removed versions; 0: no polling (use `POST /repository/models/{name}/load`).")
    convert_cache: Path | None = Field(None, description="Where converted bare Keras files go when their model folder is read-only; default `$XDG_CACHE_HOME/scratch-serve` (or `~/.cache/scratch-serve`).")
    max_model_file_bytes: int = Field(2 * 1024**3, ge=1024, description="Largest file accepted in a model folder; a bigger one makes that version unavailable with the reason.")
    backends: str = Field("scratch,keras", description="Backends to load, comma-separated (`scratch`, `keras`).")
    data_dir: Path | None = Field(None, description="Data folder for `/parity` (`cifar10/test/...`, `nusax-sentiment/indonesian/test.csv`); unset: `/parity` answers 503.")
    max_batch: int = Field(256, ge=1, description="Most items in one `/predict` request; more is a 413.")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest request body in bytes, counted on the bytes received (not on Content-Length); more is a 413.")
    max_image_pixels: int = Field(4096 * 4096, ge=1024, description="Largest decoded image (width x height) accepted in base64 input; more is a 413 (decompression-bomb guard).")
    default_backend: Literal["scratch", "keras"] = Field("scratch", description="Backend used when `/predict` has no `backend` query parameter.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = Field("INFO", description="Level of the JSON-lines logs on stderr.")
    dynamic_batching: bool = Field(True, description="Merge concurrent `/predict` requests for the same arch and backend into one forward pass (up to MAX_BATCH items or BATCH_WAIT_MS); false: each request is its own forward pass, one at a time in the same per arch x backend worker thread.")
    batch_wait_ms: float = Field(0.0, ge=0, le=1000, description="Dynamic batching: how long a batch stays open for more requests after its first request arrives (flushed earlier when MAX_BATCH items are queued). 0 (the default): no wait, an idle worker runs a request at once and the requests that queue while it computes form the next batch.")
    gc_freeze: bool = Field(True, description="Freeze the objects alive once the models are loaded (`gc.freeze()`, `service.gc_policy`), and again after the repository retires a version: Python's full collections stop walking TensorFlow's and the models' objects (~150 ms each). cnn nested-list bodies under `wrk -c32` on one core: 213-250 req/s without, 422-510 with.")
    keep_freed_memory: bool = Field(True, description="Keep large freed buffers in the process heap (glibc mallopt, `scratch_models.allocator`): the scratch backend's forward passes stop page-faulting through fresh memory (CNN batch 32: 46 -> 23 ms); the process keeps its peak working set.")
    blas_threads: int = Field(1, ge=0, le=256, description="BLAS threads of the process for the scratch backend's products (set at start-up with threadpoolctl); 0 leaves the library's own count. 1 by default: OpenBLAS' threads spin after each product and take the core the event loop and the other requests need (cnn/scratch, concurrency 32, three alternating runs: 104-124 req/s with 1 thread vs 75-83 with 2); batches of 256+ items still use every core, split in threads.")
    keep_alive_s: int = Field(75, ge=1, le=3600, description="Seconds uvicorn keeps an idle HTTP/1.1 connection open (`timeout_keep_alive`). Longer than the clients' own expiry (httpx 5 s, nginx upstream 4 s here, 60 s behind most cloud load balancers), so the server never closes a connection a client is about to reuse: with uvicorn's default of 5 s, httpx clients now and then get a ReadError on reuse.")
    graceful_shutdown_s: int = Field(30, ge=1, le=3600, description="On SIGTERM/SIGINT: new connections are refused at once, requests in flight get up to this many seconds to be answered, then the process exits (uvicorn `timeout_graceful_shutdown`).")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (`python -m service`); each loads every model (see docs/scaling.md).")


    @property
    def weights_dir(self) -> Path:  # the name before the model repository
        return self.model_repository

    @property
    def backend_names(self) -> tuple[str, ...]:
        names = tuple(n.strip() for n in self.backends.split(",") if n.strip())
        unknown = [n for n in names if n not in ("scratch", "keras")]
        if unknown or not names:
            raise ValueError(f"BACKENDS must name scratch and/or keras, received {self.backends!r}")
        return names

    @property
    def conversion_cache(self) -> Path:
        if self.convert_cache is not None:
            return self.convert_cache
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "scratch-serve"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
