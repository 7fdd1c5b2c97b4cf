"""GET /: the web page to try the models (service/static/, plain HTML/CSS/JS, nothing from a CDN).

The page itself only calls the public API (/models, /predict, /parity); these routes serve its files, the
committed loss figures of the model repository, and the limits the page checks before sending a file. They stay out
of the OpenAPI schema: they are the page's assets, not the API.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..deps import SettingsDep
from ..errors import ServiceError
from ..parity import ARCH_KINDS

router = APIRouter(tags=["ui"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# The page's own files may only load from here ('self'); images also as blob:/data: (the chosen file's preview).
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
LOSS_FIGURE = "loss.png"


def _file_inside(root: Path, relative: str) -> Path:
    """``root/relative`` if it is a file inside ``root`` (no ``..`` or symlink escape), else a 404."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if root not in candidate.parents or not candidate.is_file():
        raise ServiceError(f"no file {relative!r}", status=404, code="not_found", field="path")
    return candidate


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.api_route("/ui/config.json", methods=["GET", "HEAD"])
async def page_config(settings: SettingsDep) -> dict:
    """The limits the page checks before it sends anything (the server checks them again)."""
    return {"max_body_bytes": settings.max_body_bytes, "max_batch": settings.max_batch,
            "max_image_pixels": settings.max_image_pixels, "default_backend": settings.default_backend,
            "parity_enabled": settings.data_dir is not None, "parity_models": sorted(ARCH_KINDS)}


@router.api_route("/ui/models/{name}/loss.png", methods=["GET", "HEAD"])
async def loss_figure(name: str, settings: SettingsDep, version: int | None = None) -> FileResponse:
    """The committed training curves of a model: ``<repository>/<name>/<version>/loss.png`` (a versioned model)
    or ``<repository>/<name>/loss.png`` (an unversioned one); no other file of the repository is served."""
    candidates = ([f"{name}/{version}/{LOSS_FIGURE}"] if version is not None else []) + [f"{name}/{LOSS_FIGURE}"]
    for relative in candidates:
        try:
            path = _file_inside(settings.weights_dir, relative)
        except ServiceError:
            continue
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})
    raise ServiceError(f"no {LOSS_FIGURE} for model {name!r}" + (f" version {version}" if version is not None else ""),
                       status=404, code="not_found", field="name")


@router.api_route("/ui/{path:path}", methods=["GET", "HEAD"])
async def static_file(path: str) -> FileResponse:
    return FileResponse(_file_inside(STATIC_DIR, path), headers={"Cache-Control": "no-cache"})
