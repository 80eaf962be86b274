"""Shared fixtures: tiny configs that run in seconds on a 2-core CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from envs.core.data import FASHION_MNIST_DIRS


def _data_folder(env_var: str, *candidates: Path) -> Path:
    """A dataset folder for the tests that need real files: ``$env_var`` when set, else the first existing
    candidate (else the first, so a skip names where it looked)."""
    if env_var in os.environ:
        return Path(os.environ[env_var])
    return next((p for p in candidates if p.is_dir()), candidates[0])


#: Fashion-MNIST's gz files: $DATA_SELECT_GYM_FASHION_MNIST, the Debian package's folder, or
#: ../shared/data/fashion-mnist beside the repository; tests that need it skip when it is absent
FASHION_MNIST = _data_folder("DATA_SELECT_GYM_FASHION_MNIST", *map(Path, FASHION_MNIST_DIRS),
                             Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist")
#: the CIFAR-10 JPEG copy (zip and tar.xz pairs): $DATA_SELECT_GYM_CIFAR10_JPEG or ../shared/data/cifar10-jpeg
CIFAR10_JPEG = _data_folder("DATA_SELECT_GYM_CIFAR10_JPEG", Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg")


@pytest.fixture(scope="session")
def text_slices(tmp_path_factory) -> Path:
    """A folder with ``sst2/`` and ``agnews/`` holding the first lines of the shared copy's files (found as the
    loaders find it, envs.core.text.TEXT_DIRS): 256 training and 80 test texts each, seconds to tokenise."""
    from envs.core.text import TEXT_SETS, text_folder

    out = tmp_path_factory.mktemp("text")
    for name, spec in TEXT_SETS.items():
        try:
            source = text_folder(name, None)
        except FileNotFoundError as err:
            pytest.skip(f"needs the offline text copies (/work/shared/data/text): {err}")
        (out / name).mkdir()
        for file, rows in ((spec.train, 256), (spec.test, 80)):
            lines = (source / file).read_text(encoding="utf-8").splitlines()
            head, body = lines[: int(spec.header)], lines[int(spec.header):]
            step = max(1, len(body) // rows)  # spread over the file: its classes may come in runs
            (out / name / file).write_text("\n".join(head + body[::step][:rows]) + "\n", encoding="utf-8")
    return out


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep each test on the small machine's budget and deterministic."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Decoded-image caches go to a temporary folder, never the user's cache."""
    import envs.core.data

    monkeypatch.setattr(envs.core.data, "CACHE_DIR", tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def local_ray():
    """One private 2-CPU Ray instance for every test that needs Ray: starting one takes seconds here."""
    ray = pytest.importorskip("ray", reason="needs Ray: pip install -e '.[ray]'")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
