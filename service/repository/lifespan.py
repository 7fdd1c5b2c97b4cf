"""The repository's part of the app's lifespan: built from the settings, loaded in a background thread,
polled when ``REPOSITORY_POLL_S`` > 0, and its replaced versions' batch queues closed once idle."""
from __future__ import annotations

import threading
from collections.abc import Callable

from ..gc_policy import Freezer
from ..settings import Settings
from .repository import ModelRepository


def from_settings(settings: Settings) -> ModelRepository:
    return ModelRepository(settings.model_repository, settings.backend_names, cache_dir=settings.conversion_cache,
                           max_bytes=settings.max_model_file_bytes)


def start(repository: ModelRepository, inference, settings: Settings) -> Callable[[], None]:
    """Load (unless loaded), freeze the loaded state for the garbage collector, poll, wire retirement;
    returns the function that stops the polling thread."""
    freezer = Freezer(settings.gc_freeze)
    repository.on_retire.append(lambda entry: inference.retire_threadsafe(entry.load_id))
    repository.on_retire.append(freezer.changed)
    stop = threading.Event()

    def run() -> None:
        if not repository.loaded:
            repository.load_all()
        freezer.settle()
        if settings.repository_poll_s > 0:
            repository.poll_forever(settings.repository_poll_s, stop)

    threading.Thread(target=run, name="model-loader", daemon=True).start()

    def stop_all() -> None:
        stop.set()
        freezer.close()
    return stop_all
