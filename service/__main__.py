"""``python -m service``: uvicorn on HOST:PORT with JSON logs and WORKERS processes (settings from the environment)."""
from __future__ import annotations

import uvicorn

from .log import uvicorn_log_config
from .settings import get_settings


def main() -> None:
    s = get_settings()
    uvicorn.run("service.app:app", host=s.host, port=s.port, log_config=uvicorn_log_config(s.log_level),
                access_log=False, proxy_headers=True, workers=s.workers,
                timeout_keep_alive=s.keep_alive_s, timeout_graceful_shutdown=s.graceful_shutdown_s)


if __name__ == "__main__":
    main()
