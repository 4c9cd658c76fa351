"""Fakes shared by the encoder unit tests (no real model is ever loaded here)."""

from __future__ import annotations

import pytest

from tests.fakes import CountingEncoder


@pytest.fixture
def counting() -> CountingEncoder:
    return CountingEncoder()
