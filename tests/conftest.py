"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def ensure_services() -> Callable[..., None]:
    """Services of the native stack, healthy: ``ensure_services("postgres", "kafka")``.

    Reuses what already runs (a stack started by ``./dpe up`` or an earlier test), starts
    what is missing with its dependencies, and fails with the service's log tail otherwise.
    Call it again in a test that may have stopped a service: it restarts it.
    """
    from dpe_pipeline import stack

    def ensure(*services: str) -> None:
        stack.ensure(*services)

    return ensure
