"""fastnet, the fast CIFAR net: its shape on CIFAR-sized inputs, and every dynamic and static baseline trains it
(both envs and exact resume: tests/test_resume.py iterates the model registry)."""

from __future__ import annotations

import pytest
import torch

from envs.core.data import load_dataset
from envs.core.models import build_model
from envs.core.reference import ReferenceConfig, attach_reference, load_reference
from envs.core.trainer import Trainer, TrainerConfig
from envs.methods.baselines.dynamic import DYNAMIC_BASELINES, PER_BATCH_BASELINES, DynamicSetup, make_dynamic_baseline, run_dynamic
from envs.methods.baselines.static import STATIC_BASELINES, run_proxy, select_coreset
from envs.methods.oracle import real_methods


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("synthetic", train_size=96)


def test_fastnet_is_about_two_million_parameters_with_a_256_d_feature_layer_on_cifar_inputs():
    net = build_model("fastnet", (3, 32, 32), 10)
    assert 1.9e6 < sum(p.numel() for p in net.parameters()) < 2.1e6
    logits, features = net(torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last))
    assert logits.shape == (4, 10) and features.shape == (4, 256) == (4, net.feature_dim)
    assert any(isinstance(m, torch.nn.GELU) for m in net.modules())


@pytest.mark.parametrize("method", DYNAMIC_BASELINES)
def test_every_dynamic_baseline_trains_fastnet(tiny, method):
    config = TrainerConfig(epochs=2, batch_size=32)
    trainer = Trainer(tiny, "fastnet", config, seed=0)
    if method in PER_BATCH_BASELINES:  # they rank by a reference model's scores: two fastnets, each on half the data
        attach_reference(trainer, load_reference(tiny, "fastnet", config, ReferenceConfig(kind="halves", cache=False),
                                                 {"seed": 0}))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    out = run_dynamic(trainer, make_dynamic_baseline(method, DynamicSetup.of(trainer, keep_ratio=0.5, anneal=0.5)))
    kept = sum(round(f * tiny.num_train) for f in out["kept_fraction"])
    assert out["ledger"]["samples_backpropagated"] == kept > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_every_static_baseline_selects_from_a_fastnet_proxy(tiny):
    config = TrainerConfig(epochs=2, batch_size=32)
    reference = load_reference(tiny, "fastnet", config, ReferenceConfig(kind="halves", cache=False), {"seed": 0})
    proxy = run_proxy(tiny, "fastnet", config, score_epochs=1, seed=0, reference=reference)  # reducible_loss needs it
    assert proxy.features.shape == (tiny.num_train, 256) and torch.isfinite(proxy.el2n).all()
    for method in real_methods(STATIC_BASELINES):  # the oracle reads the provenance, no proxy (tests/test_tasks.py)
        assert len(select_coreset(method, proxy, 0.5, seed=0).indices) == tiny.num_train // 2
