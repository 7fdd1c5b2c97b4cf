"""One APIRouter per file; ``ROUTERS`` is what the app includes."""
from . import health, metrics, models, parity, predict, ui

ROUTERS = [predict.router, parity.router, health.router, models.router, metrics.router, ui.router]
