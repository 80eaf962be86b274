"""Model registry. Every model returns ``(logits, features)`` from one forward pass.

Why: both papers use the penultimate features as the agent's state. Returning them with the logits
means the state, the reward and the gradient all come from the same forward pass (no second pass).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

IMAGE_MODELS = ("mlp", "cnn", "resnet18", "fastnet")
TEXT_MODELS = ("bow", "textcnn", "transformer")
MODEL_NAMES = (*IMAGE_MODELS, *TEXT_MODELS)
# which inputs each model takes (envs.core.data.DeviceDataset.modality); "tensor": own float vectors
MODEL_MODALITIES = {**{name: ("image",) for name in IMAGE_MODELS}, "mlp": ("image", "tensor"),
                    **{name: ("text",) for name in TEXT_MODELS}}
# the cheapest model of each modality: what a proxy model defaults to
SMALLEST_MODEL = {"image": "mlp", "tensor": "mlp", "text": "bow"}


class MLP(nn.Module):
    """Flatten -> 256 -> 128 (features) -> classes. Takes images and float vectors of any shape (tabular rows)."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, hidden: int = 256, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(in_shape), hidden), nn.ReLU(inplace=True), nn.Linear(hidden, feature_dim), nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.head(f), f


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (32, 64, 128 channels) with pooling, global average pool -> 128-d features.

    Works for any input size >= 4x4 (8x8 digits, 28x28 Fashion-MNIST, 32x32 CIFAR)."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: int = 32):
        super().__init__()
        c = in_shape[0]
        self.body = nn.Sequential(
            _conv_bn(c, width),
            _conv_bn(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn(2 * width, 4 * width),
            nn.MaxPool2d(2) if min(in_shape[1:]) >= 16 else nn.Identity(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.head(f), f


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18: torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool,
    returning the 512-d global-average-pooled features (the state Data Agent uses)."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_shape[0], 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.head = net.fc
        net.fc = nn.Identity()
        self.body = net
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.head(f), f


def _conv_bn_gelu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class FastNet(nn.Module):
    """A fast small CIFAR net in the spirit of airbench94 (Keller Jordan's): a conv-BN-GELU stem, then three
    blocks of conv -> 2x2 max-pool -> BN -> GELU -> conv-BN-GELU (64, 256, 256 channels), global max-pool
    -> 256-d features. About 2M parameters on 3-channel inputs.

    Why: ResNet-18 (11M parameters) makes every selection run minutes long even on a GPU; this net is
    meant to reach about 94% on CIFAR-10 in about 10 epochs on one (a target, not yet measured here).
    ``ceil_mode`` pooling keeps inputs as small as 1x1 valid (8x8 digits, 28x28 Fashion-MNIST)."""

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, widths: tuple[int, int, int, int] = (24, 64, 256, 256)):
        super().__init__()
        layers: list[nn.Module] = _conv_bn_gelu(in_shape[0], widths[0])
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2, ceil_mode=True),
                       nn.BatchNorm2d(cout), nn.GELU(), *_conv_bn_gelu(cout, cout)]
        self.body = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.feature_dim = widths[-1]
        self.head = nn.Linear(self.feature_dim, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.head(f), f


class BagOfWords(nn.Module):
    """Mean of the token embeddings (padding left out) -> 256 -> 128 (features) -> classes: the fast CPU text model.

    :param vocab_size: rows of the embedding (the tokenizer's vocabulary; id 0 is padding)
    """

    def __init__(self, seq_len: int, num_classes: int, vocab_size: int, dim: int = 128, feature_dim: int = 128):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.body = nn.Sequential(nn.Linear(dim, 256), nn.ReLU(inplace=True), nn.Linear(256, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(self.embed(x))
        return self.head(f), f


class TextCNN(nn.Module):
    """Kim's sentence CNN: embeddings -> 1-D convolutions of widths 3, 4, 5 (100 channels each) -> ReLU -> max over
    positions -> 300-d features. Padded convolutions, so any ``seq_len`` >= 1 works."""

    def __init__(self, seq_len: int, num_classes: int, vocab_size: int, dim: int = 128, channels: int = 100,
                 widths: tuple[int, ...] = (3, 4, 5)):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, w, padding=w // 2) for w in widths)
        self.feature_dim = channels * len(widths)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x).transpose(1, 2)  # (B, dim, L)
        f = torch.cat([torch.relu(conv(e)).amax(dim=2) for conv in self.convs], dim=1)
        return self.head(f), f


class TextTransformer(nn.Module):
    """A small encoder: token + learned position embeddings, 2 pre-norm layers (128-d, 4 heads, 256 feed-forward),
    mean over the non-padding positions -> 128-d features. No dropout, so a resumed run repeats exactly."""

    def __init__(self, seq_len: int, num_classes: int, vocab_size: int, dim: int = 128, layers: int = 2, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Parameter(torch.zeros(1, seq_len, dim))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = x == 0
        pad[:, 0] = False  # an all-padding text (an empty string) still attends to one position
        h = self.norm(self.encoder(self.embed(x) + self.positions, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(2).to(h.dtype)
        f = (h * keep).sum(1) / keep.sum(1)
        return self.head(f), f


_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet18": ResNet18,
    "fastnet": FastNet,
    "bow": BagOfWords,
    "textcnn": TextCNN,
    "transformer": TextTransformer,
}


def check_modality(name: str, modality: str) -> None:
    """A clear error when registry model ``name`` cannot take inputs of ``modality`` (``image``, ``text``, ``tensor``)."""
    if modality not in MODEL_MODALITIES[name]:
        valid = [m for m in MODEL_NAMES if modality in MODEL_MODALITIES[m]]
        raise ValueError(f"model {name!r} does not take {modality} inputs; valid for {modality}: "
                         + (", ".join(valid) if valid else "your own nn.Module"))


def build_model(name: str, in_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> nn.Module:
    """Build a registered model; it has a ``feature_dim`` attribute and returns ``(logits, features)``.

    :param name: one of :data:`MODEL_NAMES`
    :param in_shape: one input's shape: ``(C, H, W)`` images, ``(seq_len,)`` token ids
    :param num_classes: logits per sample
    :param vocab_size: text models: the tokenizer's vocabulary size
    """
    if not (isinstance(name, str) and name in _MODELS):
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(MODEL_NAMES)}")
    if name in TEXT_MODELS:
        if vocab_size is None or len(in_shape) != 1:
            raise ValueError(f"model {name!r} needs token ids (seq_len,) and a vocabulary size, but these inputs have "
                             f"shape {tuple(in_shape)}; valid for images: {', '.join(IMAGE_MODELS)}")
        return _MODELS[name](in_shape[0], num_classes, vocab_size)
    if name != "mlp" and len(in_shape) != 3:
        raise ValueError(f"model {name!r} needs image inputs (C, H, W), but these inputs have shape {tuple(in_shape)}; "
                         "valid: model='mlp' or your own nn.Module")
    return _MODELS[name](tuple(in_shape), num_classes)
