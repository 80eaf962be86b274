"""Bring your own model: features from a tuple return, a named layer or the last Linear; state size; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from envs import CoverSelectEnv, DataAgentEnv, FeatureModel, load_dataset
from envs.core.own_model import make_model
from tests.test_own_data import tabular


class TwoLayer(nn.Module):
    """Returns logits only; its penultimate features are the 24-d input of ``out``."""

    def __init__(self, d: int = 6, classes: int = 3):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(d, 24), nn.ReLU())
        self.out = nn.Linear(24, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class ConvNet(nn.Module):
    """A small conv net for (1, 8, 8) images; ``pool`` gives 8-d features."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(8, classes, 1)  # no nn.Linear anywhere

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.conv(x))).flatten(1)


class MatrixNet(nn.Module):
    """Logits from a bare weight matrix: no layer to read features from."""

    def __init__(self, d: int = 6, classes: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


class TupleNet(TwoLayer):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(x)
        return self.out(h), h[:, :5]


class TokenNet(nn.Module):
    """Token ids -> mean embedding -> logits: a model for integer inputs."""

    def __init__(self, vocab: int = 50, classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.out = nn.Linear(16, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(ids).mean(dim=1))


def test_features_come_from_the_last_linear_a_named_layer_or_the_tuple_return():
    torch.manual_seed(0)
    x = torch.randn(5, 6)
    net = TwoLayer()
    logits, feats = FeatureModel(net)(x)
    assert torch.equal(logits, net(x)) and torch.equal(feats, net.hidden(x))
    _, named = FeatureModel(net, feature_layer="hidden.0")(x)
    assert torch.equal(named, net.hidden[0](x))
    tup = TupleNet()
    assert torch.equal(FeatureModel(tup)(x)[1], tup.hidden(x)[:, :5])
    conv = ConvNet()
    _, pooled = FeatureModel(conv, feature_layer="pool")(torch.randn(3, 1, 8, 8))
    assert pooled.shape == (3, 8)


def test_state_dimension_follows_the_model_in_both_envs():
    x, y = tabular(128)
    assert DataAgentEnv((x, y), TwoLayer(), trainer=dict(batch_size=16), device="cpu").observation_space.shape == (16, 24)
    assert DataAgentEnv((x, y), TupleNet(), trainer=dict(batch_size=16), device="cpu", state="both").observation_space.shape == (16, 15)
    assert CoverSelectEnv((x, y), TwoLayer(), trainer=dict(batch_size=16), device="cpu").observation_space.shape == (16, 24)
    images = (np.random.default_rng(0).integers(0, 256, (128, 1, 8, 8), dtype=np.uint8), np.arange(128) % 4)
    env = DataAgentEnv(images, FeatureModel(ConvNet(), "pool"), trainer=dict(batch_size=16, epochs=2), device="cpu")
    assert env.observation_space.shape == (16, 8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16, 8) and np.isfinite(obs).all()


def test_every_run_starts_from_the_given_weights_and_leaves_the_users_model_alone():
    x, y = tabular(128)
    net = TwoLayer()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    env = DataAgentEnv((x, y), net, trainer=dict(batch_size=16, epochs=1), device="cpu")
    first, _ = env.reset(seed=0)
    done = False
    while not done:
        _, _, _, done, _ = env.step(np.zeros(16, np.float32))
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(first, again)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_token_ids_train_a_model_with_an_embedding():
    ids = np.random.default_rng(0).integers(0, 50, size=(96, 7))
    env = DataAgentEnv((ids, (ids[:, 0] > 25).astype(int)), TokenNet(), trainer=dict(batch_size=16, epochs=2), device="cpu")
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, _, _, done, info = env.step(np.zeros(16, np.float32))
    assert env.observation_space.shape == (16, 16) and "error" not in info


@pytest.mark.parametrize("model, message", [
    (MatrixNet(), "returns only logits and has no nn.Linear layer .* valid: return \\(logits, features\\)"),
    (FeatureModel(TwoLayer(), "hidden"), None),  # a valid choice, for contrast
    (TwoLayer(classes=5), "logits of shape \\(2, 5\\) .* valid: \\(2, 3\\)"),
    (TwoLayer(d=4), "cannot take inputs of shape \\(2, 6\\)"),
    ("vgg", "unknown model 'vgg'"),
    (42, "model=42 is invalid"),
])
def test_models_without_usable_features_or_the_wrong_shape_get_a_one_line_error(model, message):
    data = load_dataset(tabular(64))
    if message is None:
        assert make_model(model, data).feature_dim == 24
        return
    with pytest.raises(ValueError, match=message) as err:
        make_model(model, data)
    assert "\n" not in str(err.value)


def test_a_feature_layer_that_does_not_exist_lists_the_valid_names():
    with pytest.raises(ValueError, match="feature_layer='fc' is not a submodule of TwoLayer; valid: one of \\['hidden', 'hidden.0'"):
        FeatureModel(TwoLayer(), feature_layer="fc")
