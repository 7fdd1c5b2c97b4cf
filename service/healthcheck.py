"""``python -m service.healthcheck``: the container's health check. Exit 0 when this container's service answers
``/ready`` with 200 on 127.0.0.1:$PORT within 4 s, else 1 (a plain command with no quoting, so that every
compose implementation passes it through unchanged)."""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/ready"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
