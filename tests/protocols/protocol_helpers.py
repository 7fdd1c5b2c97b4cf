"""Plain helpers of the protocol tests (fixtures live in conftest.py), imported by name: a module name of its
own, unlike ``conftest``, which several test folders have (tests/service/service_helpers.py does the same)."""
from __future__ import annotations

import sys
from pathlib import Path

SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"
if str(SERVICE_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVICE_TESTS))

from service_helpers import app_client, make_settings, png_base64  # noqa: E402

from service.app import create_app  # noqa: E402

TEXTS = ["Makanannya enak dan pelayanannya ramah sekali.", "Saya kecewa, pesanan datang terlambat.",
         "Tempatnya biasa saja."]

__all__ = ["SERVICE_TESTS", "TEXTS", "app_client", "create_app", "make_settings", "png_base64"]
