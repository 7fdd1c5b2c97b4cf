"""The model repository (``MODEL_REPOSITORY``): discovery, versions, conversion of bare Keras files, hot reload.

    repo = ModelRepository(Path("weights")).load_all()
    entry = repo.get("cnn")                  # the served (highest loaded) version; repo.get("cnn", 2) for one
    backend = repo.backend("cnn", "scratch")  # a Backend; 404 / 503 errors carry the reason
"""
from .model import BACKENDS, ModelVersion
from .repository import ModelRepository

__all__ = ["BACKENDS", "ModelRepository", "ModelVersion"]
