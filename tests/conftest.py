"""Shared fixtures: tiny configs that run in seconds on a 2-core CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_JPEG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep each test on the small machine's budget and deterministic."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Decoded-image caches go to a temporary folder, never the user's cache."""
    import envs.data

    monkeypatch.setattr(envs.data, "CACHE_DIR", tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def local_ray():
    """One private 2-CPU Ray instance for every test that needs Ray: starting one takes seconds here."""
    ray = pytest.importorskip("ray", reason="needs Ray: pip install -e '.[ray]'")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
