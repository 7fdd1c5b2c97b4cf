"""The FastAPI application: ``service.app:app``, or :func:`create_app` with explicit settings (tests)."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from scratch_models.allocator import keep_freed_memory
from scratch_models.threads import set_blas_threads

from .errors import install_error_handlers
from .inference import Inference
from .log import configure_logging
from .metrics import Metrics
from .middleware import BodyLimitMiddleware, MetricsMiddleware, RequestContextMiddleware
from .parity import ParityService, TestSplitLoader, load_test_split
from .openapi import install_openapi
from .registry import ModelRegistry
from .repository import lifespan as repository_lifespan
from .routes import ROUTERS
from .settings import Settings

log = logging.getLogger("service.app")

DESCRIPTION = """
Classifies CIFAR-10 images (`cnn`) and Indonesian NusaX-Sentiment texts (`rnn`, `lstm`), each model served
by two backends: **keras** (TensorFlow, through a traced `tf.function`) and **scratch** (our NumPy engine),
which must agree.

* Images: a base64 PNG/JPEG of any size (converted to RGB, resized to 32x32, scaled to [0, 1]) or a
  32x32x3 nested list in [0, 1].
* Texts are standardised and truncated/zero-padded to the model's sequence length **exactly as Keras'
  TextVectorization does**: lowercase, punctuation stripped, split on whitespace, words past the
  sequence length ignored, unknown words mapped to `[UNK]`.
* Every error has the shape `{"error": {"status", "code", "message", "field", "index", "reason", "request_id"}}`.
* Every response carries `X-Request-ID` (yours if you sent one).
* Concurrent `/predict` requests for the same arch and backend are merged into one forward pass (dynamic
  batching, `DYNAMIC_BATCHING`, `BATCH_WAIT_MS`); `X-Batch-Size` says how many items that pass held.
  Each request still gets exactly its own results.
* `GET /metrics`: Prometheus text format (requests, latencies, batch sizes per arch and backend).
* The standard protocols too: the Open Inference Protocol v2 under `/v2` (KServe, Triton, MLServer; with
  Triton's binary tensor data, so `tritonclient` works unchanged) and TF Serving's REST API under
  `/v1/models`; their errors are `{"error": "..."}`.
"""


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None,
               test_split_loader: TestSplitLoader = load_test_split) -> FastAPI:
    """An app reading ``settings`` (default: the environment). Models load in the lifespan, in a background
    thread, so that /health answers at once and /ready turns 200 when loading is done; pass an already
    loaded ``registry`` to skip loading (tests)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.keep_freed_memory:
            keep_freed_memory()
        if settings.blas_threads:
            set_blas_threads(settings.blas_threads)
        reg = registry or repository_lifespan.from_settings(settings)
        app.state.registry = reg
        app.state.parity = ParityService(reg, settings.data_dir, loader=test_split_loader)
        app.state.inference = Inference(settings, app.state.metrics)
        stop_polling = repository_lifespan.start(reg, app.state.inference, settings)
        log.info("service starting", extra={"fields": {"model_repository": str(settings.model_repository),
                                                       "data_dir": str(settings.data_dir) if settings.data_dir else None,
                                                       "max_batch": settings.max_batch,
                                                       "max_body_bytes": settings.max_body_bytes,
                                                       "default_backend": settings.default_backend,
                                                       "dynamic_batching": settings.dynamic_batching,
                                                       "batch_wait_ms": settings.batch_wait_ms,
                                                       "keep_freed_memory": settings.keep_freed_memory,
                                                       "blas_threads": settings.blas_threads or "library default"}})
        try:
            yield
        finally:
            stop_polling()
            await app.state.inference.close()
            app.state.parity.shutdown()

    # /docs and /redoc with Swagger UI and ReDoc served from the fastapi-offline package (no CDN: they work offline)
    app = FastAPIOffline(title="scratch-serve", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, routes=app.router.routes)
    app.add_middleware(RequestContextMiddleware)  # added last = outermost: its log line covers the 413s too
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)  # one /predict operation per model and version, each with that model's exact body
    return app


app = create_app()
