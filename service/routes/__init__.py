"""One APIRouter per file; ``ROUTERS`` is what the app includes."""
from . import health, metrics, models, parity, predict, repository, tfserving, ui, v2

ROUTERS = [predict.router, parity.router, health.router, models.router, metrics.router, repository.router, ui.router,
           v2.router, tfserving.router]
