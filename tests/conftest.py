"""Fixtures shared by tests/core and tests/app: the local Hugging Face Hub on 127.0.0.1 (bench/_shared/hub_server.py)."""

from tests.hub_fixtures import local_hub, online_hub  # noqa: F401 - fixtures, found by name

