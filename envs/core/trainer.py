"""The inner trainer shared by every environment and every baseline.

Why one trainer: methods are compared on equal terms only if they share the optimizer, schedule,
augmentation, evaluation and cost accounting. The trainer splits a training step into
:meth:`Trainer.forward` (keeps the graph; yields logits, features and per-sample losses) and
:meth:`Trainer.step` (weighted backward and optimizer step), so an environment can build the
agent's state and reward from the same forward pass that is later back-propagated.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from envs.core.batches import shuffled_split
from envs.core.checks import Options, is_count, is_real
from envs.core.data import DeviceDataset
from envs.core.distributed import World, current, local_cuda_index, world_size
from envs.core.ledger import CostLedger
from envs.core.own_model import make_model
from envs.core.schedules import SCHEDULES, lr_at
from envs.core.store import SampleStore


class DivergenceError(RuntimeError):
    """The inner model produced a non-finite loss, or collapsed (every penultimate feature 0: constant outputs)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; an unavailable CUDA device is a clear error.
    Under ``torchrun``, ``"auto"`` and ``"cuda"`` mean this process's own GPU (``cuda:LOCAL_RANK``)."""
    if str(device) in ("auto", "cuda") and world_size() > 1 and torch.cuda.is_available():
        device = f"cuda:{local_cuda_index()}"
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a valid torch device: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asked for CUDA but no CUDA device is available; use 'auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


def _grad_on() -> torch.enable_grad:
    """Autograd on, whatever the caller's grad mode: an agent may step the env under
    ``torch.no_grad()`` (evolution strategies do), and the inner training must not notice.
    ``torch.inference_mode()`` forbids training outright, so it is refused with a clear error."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError("the env trains its inner model, which torch.inference_mode() forbids; "
                           "step it under torch.no_grad() instead")
    return torch.enable_grad()


#: torch's own thread count, as it chose at import (every core, or OMP_NUM_THREADS): what ``threads=0`` restores
TORCH_THREADS = torch.get_num_threads()
#: the machine's cores: the most threads a run may ask for (more only wait on each other)
CORES = os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """Set torch's intra-op CPU threads for the whole process (``0``: :data:`TORCH_THREADS`, torch's own choice)."""
    torch.set_num_threads(threads or TORCH_THREADS)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainerConfig(Options):
    """Inner-training hyper-parameters (defaults: the InfoBatch/Data Agent CIFAR recipe).

    :param batch_size: samples per optimizer step
    :param epochs: planned epochs; the LR schedule spans exactly these
    :param lr: peak learning rate
    :param momentum: SGD momentum
    :param nesterov: Nesterov momentum
    :param weight_decay: L2 weight decay
    :param schedule: ``onecycle``, ``cosine`` or ``constant`` (progress-based, see ``envs.core.schedules``)
    :param label_smoothing: label smoothing of the training loss (test loss has none)
    :param amp: bf16 autocast of forward passes (meant for CUDA)
    :param augment: the dataset's on-device augmentation of training batches; default: the data's own (crops and flips
        for the image sets that have them, none for text, where True is refused)
    :param eval_batch_size: batch size of test-set evaluation
    :param threads: torch CPU threads of the whole process from the trainer's start (0: torch's own choice)
        (intra-op, at most the machine's cores; torch's own choice is one per core, or OMP_NUM_THREADS). Default 1:
        on a 2-core machine shared with busy processes, one per core ran 3-23x slower (BENCHMARKS.md)
    """

    keyword = "trainer"

    batch_size: int = 128
    epochs: int = 10
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    amp: bool = False
    augment: bool | None = None
    eval_batch_size: int = 1024
    threads: int = 1

    def validate(self) -> None:
        checks = [
            ("batch_size", self.batch_size, is_count(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("epochs", self.epochs, is_count(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("lr", self.lr, is_real(self.lr) and self.lr > 0, "> 0"),
            ("momentum", self.momentum, is_real(self.momentum) and 0 <= self.momentum < 1, "[0, 1)"),
            ("weight_decay", self.weight_decay, is_real(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            ("label_smoothing", self.label_smoothing, is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1,
             "[0, 1)"),
            ("eval_batch_size", self.eval_batch_size, is_count(self.eval_batch_size) and self.eval_batch_size >= 1,
             "an integer >= 1"),
            ("threads", self.threads, is_count(self.threads) and 0 <= self.threads <= CORES,
             f"an integer in [0, {CORES}] (0: torch's own choice; {CORES}: this machine's cores)"),
            *((name, getattr(self, name), isinstance(getattr(self, name), bool), "True or False")
              for name in ("nesterov", "amp")),
            ("augment", self.augment, self.augment is None or isinstance(self.augment, bool), "None, True or False"),
        ]
        for name, value, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")
        if not (isinstance(self.schedule, str) and self.schedule in SCHEDULES):
            raise ValueError(f"schedule={self.schedule!r} is invalid; valid choices: {', '.join(SCHEDULES)}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchForward:
    """One training forward pass. ``losses`` still carries the graph until :meth:`Trainer.step`.
    ``inputs`` is the (augmented) batch that went in, kept so a checkpoint can rebuild the graph.
    Under ``torchrun`` the tensors hold the whole batch, detached, and ``shard_losses`` the losses of
    this process's shard with their graph (what :meth:`Trainer.step` back-propagates)."""

    idx: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor
    features: torch.Tensor
    losses: torch.Tensor
    shard_losses: torch.Tensor | None = None


class Trainer:
    """Trains one model on one :class:`DeviceDataset`, counting every sample in a :class:`CostLedger`.

    :param dataset: the data, already on ``device``
    :param model: a registry name (``mlp``, ``cnn``, ``resnet18``) or your own ``nn.Module`` (every
        trainer starts from a copy of its weights; features as in :mod:`envs.core.own_model`)
    :param config: training hyper-parameters
    :param seed: seeds the model initialisation, shuffling and augmentation
    :param track_samples: keep a :class:`SampleStore` of per-sample statistics

    Under ``torchrun`` (see :mod:`envs.core.distributed`) the model is trained with
    ``DistributedDataParallel``: each process forwards and back-propagates its shard of every batch and
    sees the whole batch's detached outputs; evaluation is sharded too. Every process's ledger counts
    the whole job's samples: the shards of a batch add up to the batch, so no communication is needed.
    """

    def __init__(self, dataset: DeviceDataset, model: str | torch.nn.Module, config: TrainerConfig | None = None,
                 seed: int = 0, track_samples: bool = True):
        self.config = config or TrainerConfig()
        self.config.validate()
        set_threads(self.config.threads)
        if self.config.augment and dataset.modality == "text":
            raise ValueError(f"augment=True is invalid for the text data {dataset.name!r}: text has no augmentation here; "
                             "valid: None (the data's default) or False")
        self.dataset = dataset
        self.device = dataset.device
        self.model_name = model
        seed_everything(seed)
        # channels-last weights to match the channels-last batches of DeviceDataset
        self.model = make_model(model, dataset).to(self.device, memory_format=torch.channels_last)
        self.feature_dim: int = self.model.feature_dim
        c = self.config
        self.world: World | None = current(self.device)  # None: one process
        if self.world is not None:
            self.world.check_batch_size(c.batch_size)
            self.model, self._ddp = self.world.wrap(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum,
                                         nesterov=c.nesterov, weight_decay=c.weight_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.ledger = CostLedger(sync_cuda=self.device.type == "cuda")
        self.store = SampleStore(dataset.num_train, self.device) if track_samples else None
        self.epoch = 0
        self._batch_in_epoch = 0
        self._batches_this_epoch = 1

    # --- epochs and batches -------------------------------------------------------------------

    def shuffled_batches(self, indices: torch.Tensor | None = None, batch_size: int | None = None) -> list[torch.Tensor]:
        """Shuffle ``indices`` (all training samples when None) on the device and cut into batches of
        ``batch_size`` (None: the configured one; a per-batch selection cuts larger candidate batches)."""
        if indices is None:
            indices = torch.arange(self.dataset.num_train, device=self.device)
        return shuffled_split(indices, batch_size or self.config.batch_size, self.generator)

    def begin_epoch(self, epoch: int, num_batches: int) -> None:
        """Start epoch ``epoch`` of ``num_batches`` steps: the LR schedule maps this epoch onto
        ``[epoch/epochs, (epoch+1)/epochs)`` of training progress, whatever ``num_batches`` is."""
        if num_batches < 1:
            raise ValueError(f"num_batches={num_batches} must be >= 1")
        self.epoch = epoch
        self._batch_in_epoch = 0
        self._batches_this_epoch = num_batches

    @property
    def progress(self) -> float:
        """Fraction of the planned training done, in [0, 1]."""
        done = self.epoch + min(self._batch_in_epoch / self._batches_this_epoch, 1.0)
        return min(done / self.config.epochs, 1.0)

    @property
    def lr(self) -> float:
        return lr_at(self.config.schedule, self.progress, self.config.lr)

    # --- one step ------------------------------------------------------------------------------

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.config.amp)

    def forward(self, idx: torch.Tensor, record: bool = True) -> BatchForward:
        """Training-mode forward pass of the samples ``idx`` (graph kept for :meth:`step`); ``record=False``
        leaves the store alone (the samples' statistics came from their :meth:`candidate_forward`)."""
        with self.ledger.timed("train"):
            x, y = self.dataset.train_batch(idx, self.generator, augment=self.config.augment is not False)
            fwd = self._forward_inputs(idx, x, y)
        self.ledger.samples_forwarded += len(idx)
        if self.store is not None and record:
            with self.ledger.timed("overhead"):
                self.store.update(idx, fwd.losses, fwd.logits, y, self.epoch)
        return fwd

    @torch.no_grad()
    def candidate_forward(self, idx: torch.Tensor, replay: bool = False) -> BatchForward:
        """A no-grad, eval-mode forward of the candidate samples ``idx`` (no augmentation), recorded in the
        store: what a per-batch selection (RHO-LOSS, proxy loss, ``selection="candidates"``) ranks before
        the chosen share is forwarded again with its graph by :meth:`forward`. Booked under
        ``candidates`` and counted as forwarded samples: the ranking's cost is the method's own.
        ``replay=True`` recomputes a checkpointed pass without counting or recording it again."""
        with self.ledger.timed("candidates"):
            self.model.eval()
            x, y = self.dataset.train_batch(idx, augment=False)
            with self._autocast():
                logits, features = self.model(x)
            logits = logits.float()
            losses = F.cross_entropy(logits, y, reduction="none", label_smoothing=self.config.label_smoothing)
            fwd = BatchForward(idx, x, y, logits, features.float(), losses)
        if replay:
            return fwd
        self.ledger.samples_forwarded += len(idx)
        if self.store is not None:
            with self.ledger.timed("overhead"):
                self.store.update(idx, losses, logits, y, self.epoch)
        return fwd

    def replay_forward(self, idx: torch.Tensor, inputs: torch.Tensor) -> BatchForward:
        """Rebuild the graph of a forward pass a checkpoint recorded (``idx`` and its ``inputs``).

        The model state loaded from that checkpoint already includes the pass's batch-norm updates,
        the store its statistics and the ledger its count, so this pass changes none of them: on
        CPU it returns exactly the tensors of the original pass.

        The pass runs on copies of the buffers (``functional_call``), never on the model's own:
        batch norm saves its running statistics for the backward pass, so restoring them in place
        afterwards would make that backward fail ("modified by an inplace operation")."""
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        return self._forward_inputs(idx, inputs, self.dataset.train_y[idx], buffers)

    def _forward_inputs(self, idx: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                        buffers: dict[str, torch.Tensor] | None = None) -> BatchForward:
        """Train-mode forward of ``x``; ``buffers`` (by name) stand in for the model's own when given.
        Under ``torchrun`` only this process's shard goes through the model (see :class:`BatchForward`)."""
        self.model.train()
        if self.world is None:
            return BatchForward(idx, x, y, *self._losses(self.model, x, y, buffers))
        part = self.world.shard(len(idx))
        buffers = None if buffers is None else {f"module.{name}": b for name, b in buffers.items()}
        logits, features, losses = self._losses(self._ddp, x[part], y[part], buffers)
        # one collective for the three outputs; on every process they then describe the whole batch
        full = self.world.all_gather_rows(torch.cat([logits, features, losses[:, None]], dim=1).detach(), len(idx))
        c = logits.shape[1]
        return BatchForward(idx, x, y, full[:, :c], full[:, c:-1], full[:, -1], shard_losses=losses)

    def _losses(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                buffers: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, features, per-sample losses)`` of ``model`` on ``x``, with their graph."""
        with _grad_on():
            with self._autocast():
                logits, features = model(x) if buffers is None else functional_call(model, buffers, (x,))
            logits = logits.float()
            losses = F.cross_entropy(logits, y, reduction="none", label_smoothing=self.config.label_smoothing)
            return logits, features.float(), losses

    def step(self, fwd: BatchForward, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Back-propagate ``mean(losses * weights)`` of ``fwd`` and take one optimizer step.

        Returns the (detached) weighted loss without synchronising the device. Under ``torchrun`` each
        process back-propagates its shard's share of that mean; ``DistributedDataParallel`` averages
        the gradients, which gives the whole batch's gradient on every process."""
        with self.ledger.timed("train"), _grad_on():
            lr = self.lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = (fwd.losses * weights).mean() if weights is not None else fwd.losses.mean()
            self.optimizer.zero_grad(set_to_none=True)
            if fwd.shard_losses is None:
                loss.backward()
            else:
                part = self.world.shard(len(fwd.idx))
                shard = fwd.shard_losses if weights is None else fwd.shard_losses * weights[part]
                (shard.sum() * (self.world.size / len(fwd.idx))).backward()
            self.optimizer.step()
        self.ledger.samples_backpropagated += len(fwd.idx)
        self.ledger.optimizer_steps += 1
        self._batch_in_epoch += 1
        return loss.detach()

    def train_epoch(self, indices: torch.Tensor | None = None, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Train one epoch on ``indices`` (all data when None), each sample's loss scaled by
        ``sample_weights[idx]`` (a vector over the whole training set). Returns the mean loss
        (a device tensor); raises :class:`DivergenceError` if it is not finite, or if the model
        collapsed: every penultimate feature of the epoch's last batch is 0 (dead ReLUs after a blow-up), so it
        predicts one class whatever the input, with a finite loss that no other check catches."""
        batches = self.shuffled_batches(indices)
        self.begin_epoch(self.epoch, len(batches))
        total = torch.zeros((), device=self.device)
        for idx in batches:
            fwd = self.forward(idx)
            total += self.step(fwd, None if sample_weights is None else sample_weights[idx])
        mean = total / len(batches)
        finite, alive = torch.stack([torch.isfinite(mean), fwd.features.detach().any()]).tolist()  # one host sync
        if not finite:
            raise DivergenceError(f"non-finite training loss in epoch {self.epoch} (lr {self.lr:.3g}); try a lower lr")
        if not alive:
            raise DivergenceError(f"the model collapsed in epoch {self.epoch} (lr {self.lr:.3g}): every feature of the "
                                  "last batch is 0, so it predicts one class; try a lower lr")
        self.epoch += 1
        return mean

    # --- evaluation ----------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Top-1 and top-5 accuracy (%) and mean loss (no label smoothing) on the test set."""
        with self.ledger.timed("eval"):
            self.model.eval()
            k = min(5, self.dataset.num_classes)
            top1 = torch.zeros((), device=self.device)
            topk = torch.zeros((), device=self.device)
            loss = torch.zeros((), device=self.device)
            for x, y in self.dataset.test_batches(self.config.eval_batch_size):
                if self.world is not None:  # this process's shard of each test batch, summed over processes below
                    part = self.world.shard(len(y))
                    x, y = x[part], y[part]
                with self._autocast():
                    logits, _ = self.model(x)
                logits = logits.float()
                loss += F.cross_entropy(logits, y, reduction="sum")
                pred = logits.topk(k, dim=1).indices
                top1 += (pred[:, 0] == y).sum()
                topk += (pred == y[:, None]).any(dim=1).sum()
            n = self.dataset.num_test
            sums = torch.stack([top1, topk, loss])
            out = (sums if self.world is None else self.world.sum(sums)).cpu() / n
        self.ledger.eval_samples_forwarded += n
        return {"top1": float(out[0]) * 100, "top5": float(out[1]) * 100, "loss": float(out[2])}

    @torch.no_grad()
    def embed(self, idx: torch.Tensor | None = None, batch_size: int | None = None,
              dataset: DeviceDataset | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode ``(logits, features)`` of training samples ``idx`` (all when None), no augmentation.

        Used by static selection methods that score the whole set once, and by a reference model scoring
        another ``dataset``'s training samples (default: its own); counted as forwarded samples."""
        dataset = dataset or self.dataset
        if idx is None:
            idx = torch.arange(dataset.num_train, device=self.device)
        bs = batch_size or self.config.eval_batch_size
        self.model.eval()
        logits, feats = [], []
        with self.ledger.timed("overhead"):
            for chunk in idx.split(bs):
                x, _ = dataset.train_batch(chunk, augment=False)
                with self._autocast():
                    lo, fe = self.model(x)
                logits.append(lo.float())
                feats.append(fe.float())
        self.ledger.samples_forwarded += len(idx)
        return torch.cat(logits), torch.cat(feats)

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this trainer exactly (model, optimizer, RNG, ledger, store)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "ledger": self.ledger.as_dict(),
            "store": None if self.store is None else self.store.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self._batch_in_epoch,
            "batches_this_epoch": self._batches_this_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.ledger.load_dict(state["ledger"])
        if self.store is not None and state["store"] is not None:
            self.store.load_state_dict(state["store"])
        self.epoch = state["epoch"]
        self._batch_in_epoch = state["batch_in_epoch"]
        self._batches_this_epoch = state["batches_this_epoch"]
