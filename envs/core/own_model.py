"""Bring your own model: any ``nn.Module`` that returns logits, with the features the state needs.

Why: the agents' state is the model's penultimate features, and the registry models return them
beside the logits. A user's model usually returns logits only. :class:`FeatureModel` reads the
features from the same forward pass instead of a second one: from the model's ``(logits, features)``
return when it gives one, else from a named layer's output, else from the input of the model's last
``nn.Linear`` (the penultimate features of most classifiers), both captured by a hook. The state
dimension then follows from the model: :func:`make_model` probes it on two training samples.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from envs.core.data import DeviceDataset
from envs.core.models import MODEL_MODALITIES, TEXT_MODELS, build_model, check_modality


class FeatureModel(nn.Module):
    """Wraps a classifier so that it returns ``(logits, features)``.

    :param model: an ``nn.Module`` returning logits ``(B, num_classes)``, or ``(logits, features)``
    :param feature_layer: name of the submodule (as in ``model.named_modules()``) whose output is the
        features; ``None``: the input of the model's last ``nn.Linear``
    """

    def __init__(self, model: nn.Module, feature_layer: str | None = None):
        super().__init__()
        self.model = model
        self.feature_layer = feature_layer
        self._captured: torch.Tensor | None = None
        names = dict(model.named_modules())
        if feature_layer is not None:
            if feature_layer not in names or feature_layer == "":
                valid = [n for n in names if n][:12]
                raise ValueError(f"feature_layer={feature_layer!r} is not a submodule of {type(model).__name__}; "
                                 f"valid: one of {valid}{' ...' if len(names) > 13 else ''}")
            names[feature_layer].register_forward_hook(self._capture_output)
            self._has_hook = True
        else:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if linears:
                linears[-1].register_forward_pre_hook(self._capture_input)
            self._has_hook = bool(linears)

    def _capture_output(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self._captured = output

    def _capture_input(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._captured = args[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._captured = None
        out = self.model(x)
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return out[0], out[1].flatten(1)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"{type(self.model).__name__} returned {type(out).__name__}; valid: logits, or (logits, features)")
        if not self._has_hook:
            raise ValueError(f"{type(self.model).__name__} returns only logits and has no nn.Linear layer to read "
                             "penultimate features from; valid: return (logits, features), or name the layer "
                             "with FeatureModel(model, feature_layer=...)")
        if self._captured is None:
            raise ValueError(f"the feature layer of {type(self.model).__name__} did not run in its forward pass; "
                             "valid: a layer that every forward pass goes through")
        features, self._captured = self._captured.flatten(1), None
        return out, features


def _check_registry_inputs(name: str, data: DeviceDataset) -> None:
    """A registry model takes its modality's inputs (images, the text sets' token ids, ``mlp``: float vectors);
    an unknown name is left to :func:`build_model`'s error."""
    if name in MODEL_MODALITIES and (data.modality == "text" or name in TEXT_MODELS):
        check_modality(name, data.modality)
    if data.modality == "tensor" and not data.train_x.is_floating_point():
        raise ValueError(f"model {name!r} takes images or float vectors, but these inputs are {data.train_x.dtype}; "
                         "valid: your own nn.Module for integer inputs (token ids), e.g. with an nn.Embedding")


def make_model(model: str | nn.Module, data: DeviceDataset) -> nn.Module:
    """The model to train on ``data``, with a ``feature_dim`` attribute, returning ``(logits, features)``.

    A registry name is built (drawing its initial weights from torch's global RNG). A module is deep
    copied, so every run starts from the weights it was given, wrapped in :class:`FeatureModel`
    unless it already is one, moved to ``data.device`` and probed on two training samples in eval
    mode (no parameter, buffer or RNG changes): the probe checks its logits and measures its
    feature size.

    :raises ValueError: a model without usable features, or with the wrong number of logits
    """
    if isinstance(model, str):
        _check_registry_inputs(model, data)
        return build_model(model, data.input_shape, data.num_classes, data.vocab_size)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={model!r} is invalid; valid: a registry name or an nn.Module returning logits")
    wrapped = copy.deepcopy(model)
    if not isinstance(wrapped, FeatureModel):
        wrapped = FeatureModel(wrapped)
    wrapped.to(data.device)
    x, _ = data.train_batch(torch.arange(min(2, data.num_train), device=data.device), augment=False)
    training = wrapped.training
    wrapped.eval()
    try:
        with torch.no_grad():
            logits, features = wrapped(x)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{type(model).__name__} cannot take inputs of shape {tuple(x.shape)} {x.dtype}: {str(err).splitlines()[0]}") from None
    finally:
        wrapped.train(training)
    if logits.shape != (len(x), data.num_classes):
        raise ValueError(f"{type(model).__name__} returns logits of shape {tuple(logits.shape)} for {len(x)} samples; "
                         f"valid: ({len(x)}, {data.num_classes}), one per class of this data")
    if features.shape[0] != len(x) or features.shape[1] < 1 or not features.is_floating_point():
        raise ValueError(f"{type(model).__name__}'s features have shape {tuple(features.shape)} {features.dtype}; "
                         f"valid: floats with one row per sample ({len(x)}, D)")
    wrapped.feature_dim = int(features.shape[1])
    return wrapped


def model_feature_dim(model: str | nn.Module, data: DeviceDataset) -> int:
    """The feature size of ``model`` on ``data`` without building a real registry model (no memory, no RNG draw)."""
    if isinstance(model, str):
        _check_registry_inputs(model, data)
        with torch.device("meta"):
            return build_model(model, data.input_shape, data.num_classes, data.vocab_size).feature_dim
    return make_model(model, data).feature_dim


def model_label(model: str | nn.Module) -> str:
    """A short name of a model, for logs and metadata."""
    if isinstance(model, str):
        return model
    inner = model.model if isinstance(model, FeatureModel) else model
    return f"own:{type(inner).__name__}"
