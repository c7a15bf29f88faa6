"""Hypothesis profiles: a quick default, a thorough one for ``HYPOTHESIS_PROFILE=thorough``."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Tabular tensors are tiny: a second intra-op thread only spins, and on a loaded 2-core machine it made single torch
# calls up to 100× slower. simulate() does the same for itself; this covers tests that call objectives directly.
torch.set_num_threads(1)

settings.register_profile("default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def short_transformer_demo(monkeypatch):
    """``preference-games demo``'s transformer section with 4 steps: its content is under test, not its budget
    (a no-op without the llm extra, where the demo skips the section)."""
    try:
        from llm_backend import demo
    except ImportError:
        return
    monkeypatch.setattr(demo, "STEPS", 4)
    monkeypatch.setattr(demo, "EVAL_EVERY", 2)
