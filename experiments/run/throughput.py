"""Inner-training throughput: our device-resident trainer against plain PyTorch ``DataLoader`` loops.

Why a library module: the trainer benchmark CLI (``experiments.bench_trainer``) and the GPU report
(:mod:`experiments.run.gpu_report`) time the same loops; here they are written once.

The reference is the loop most PyTorch code uses: a torchvision-style ``Dataset`` that returns one
augmented tensor per sample (RandomCrop with reflect padding, RandomHorizontalFlip, ToDtype, Normalize
from ``torchvision.transforms.v2``), a shuffling ``DataLoader``, ``model.train()`` and an SGD step. Its
*textbook* form copies batches as they come; its *tuned* form pins memory, copies without blocking and
feeds a channels-last model (:data:`TEXTBOOK_LOADER`, :func:`tuned_loader`). Ours is
:meth:`envs.core.trainer.Trainer.train_epoch` (batched augmentation on the device, per-sample store, ledger),
optionally under ``torch.compile``. Both sides read the same decoded uint8 images from memory, build the
same model from the same seed and time the same number of full batches after the same warm-up. Runs are
timed by :class:`DeviceClock`: CUDA events on a GPU, the wall clock on a CPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from envs.core.data import Augmentation, DeviceDataset, RawSplits
from envs.core.models import build_model
from envs.core.trainer import Trainer, TrainerConfig, seed_everything

#: the CIFAR-10 JPEG copy: ``$DATA_SELECT_GYM_CIFAR10_JPEG``, else ``../shared/data/cifar10-jpeg`` beside the
#: repository (the CLIs' options override both; an absent folder skips what needs it)
CIFAR10_JPEG = os.environ.get("DATA_SELECT_GYM_CIFAR10_JPEG",
                              str(Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg"))


@dataclass
class Measurement:
    """One timed run of one side (warm-up excluded)."""

    samples: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


class DeviceClock:
    """Seconds spent in a ``with`` block. On CUDA: two CUDA events around the block's work (the device's own
    clock, idle gaps included) and one synchronisation at its end; on a CPU: ``time.perf_counter``.
    ``peak_bytes`` is the block's peak CUDA memory (0 on a CPU).

    :param device: the device whose work is timed
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self.peak_bytes = 0

    def __enter__(self) -> "DeviceClock":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the warm-up's kernels do not count
            torch.cuda.reset_peak_memory_stats(self.device)
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._events[0].record()
        else:
            self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self._events[1].record()
            self._events[1].synchronize()
            self.seconds = self._events[0].elapsed_time(self._events[1]) / 1000.0
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self.seconds = time.perf_counter() - self._start


# --- the plain reference loops -----------------------------------------------------------------


@dataclass(frozen=True)
class LoaderSetup:
    """How a plain loop feeds its model.

    :param workers: ``DataLoader`` worker processes
    :param pinned: pinned host memory and non-blocking copies to the device (CUDA)
    :param channels_last: model and batches in channels-last layout
    :param prefetch: batches each worker prepares ahead (with workers)
    """

    workers: int = 0
    pinned: bool = False
    channels_last: bool = False
    prefetch: int = 2


#: the loop of most tutorials: two workers, pageable memory, blocking copies, NCHW
TEXTBOOK_LOADER = LoaderSetup(workers=2)


def tuned_loader(cpus: int | None = None) -> LoaderSetup:
    """The loop tuned as the PyTorch performance guide says: a worker per spare core (at most 8), pinned
    memory with non-blocking copies, channels-last, deeper prefetch."""
    cpus = cpus or os.cpu_count() or 1
    return LoaderSetup(workers=max(1, min(8, cpus - 1)), pinned=True, channels_last=True, prefetch=4)


class PlainImageDataset(Dataset):
    """torchvision-style dataset: ``__getitem__`` returns one transformed image tensor and an int label.

    :param images: uint8 ``(N, C, H, W)`` images held in host memory
    :param labels: ``(N,)`` integer labels
    :param transform: applied to each ``(C, H, W)`` uint8 tensor
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.images = images
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), self.labels[i]


def plain_transform(aug: Augmentation, mean: tuple[float, ...], std: tuple[float, ...],
                    size: tuple[int, int], augment: bool = True) -> v2.Compose:
    """Per-sample transforms with the semantics of :class:`envs.core.data.Augmentation` (reflect-padded
    random crop, horizontal flip) followed by scaling to [0, 1] and normalisation."""
    steps: list[Callable] = []
    if augment and aug.crop_padding > 0:
        steps.append(v2.RandomCrop(size, padding=aug.crop_padding, padding_mode="reflect"))
    if augment and aug.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def plain_dataset(raw: RawSplits, augment: bool = True) -> PlainImageDataset:
    """The reference Dataset over ``raw``'s training images (the same decoded arrays ours uses)."""
    images = torch.from_numpy(raw.train_x)
    transform = plain_transform(raw.augmentation, raw.mean, raw.std, tuple(images.shape[-2:]), augment)
    return PlainImageDataset(images, torch.from_numpy(raw.train_y), transform)


def _endless(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches across epochs, so a run may be longer than one pass over the data."""
    while True:
        yield from loader


def time_plain(raw: RawSplits, model: str, config: TrainerConfig, *, batches: int, warmup: int, workers: int,
               device: torch.device, seed: int = 0, setup: LoaderSetup | None = None) -> Measurement:
    """Time ``batches`` SGD steps of a ``DataLoader`` loop after ``warmup`` untimed ones.

    :param workers: ``DataLoader`` workers (when ``setup`` is None: pinned, non-blocking, NCHW)
    :param setup: the loop's whole setup; overrides ``workers``
    """
    setup = setup or LoaderSetup(workers=workers, pinned=True)
    layout = torch.channels_last if setup.channels_last else torch.contiguous_format
    pinned = setup.pinned and device.type == "cuda"
    seed_everything(seed)
    dataset = plain_dataset(raw, config.augment is not False)
    net = build_model(model, tuple(raw.train_x.shape[1:]), raw.num_classes).to(device, memory_format=layout)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=setup.workers,
                        pin_memory=pinned, persistent_workers=setup.workers > 0,
                        prefetch_factor=setup.prefetch if setup.workers > 0 else None,
                        generator=torch.Generator().manual_seed(seed))
    net.train()

    def train_step(x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.to(device, non_blocking=pinned).contiguous(memory_format=layout)
        y = y.to(device, non_blocking=pinned)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=config.amp):
            logits, _ = net(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    stream = _endless(loader)
    try:
        for _ in range(warmup):
            train_step(*next(stream))
        with DeviceClock(device) as clock:
            for _ in range(batches):
                train_step(*next(stream))
    finally:
        stream.close()  # shuts the workers down
    return Measurement(batches * config.batch_size, clock.seconds,
                       {"workers": setup.workers, "pinned": pinned, "channels_last": setup.channels_last,
                        "peak_bytes": clock.peak_bytes})


# --- our trainer -------------------------------------------------------------------------------


def _epochs_of(total: int, num_train: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """``total`` training indices as epochs of distinct samples (at most ``num_train`` each)."""
    out = []
    while total > 0:
        n = min(total, num_train)
        out.append(torch.randperm(num_train, generator=generator)[:n].to(device))
        total -= n
    return out


def compile_backend(device: torch.device) -> str:
    """``torch.compile``'s backend for ``device``: Inductor's generated kernels on CUDA; on a CPU the
    ``eager`` backend, which runs Dynamo's graph capture (the same tracing, guards and recompiles) but no
    code generation, so a CPU check needs no C++ compiler and stays seconds long."""
    return "inductor" if device.type == "cuda" else "eager"


def time_ours(data: DeviceDataset, model: str, config: TrainerConfig, *, batches: int, warmup: int,
              seed: int = 0, compile_model: bool = False) -> Measurement:
    """Time :meth:`Trainer.train_epoch` over ``batches`` full batches after ``warmup`` untimed ones.

    :param compile_model: run the model under ``torch.compile`` (:func:`compile_backend`); compilation
        happens in the warm-up, which must then be at least one batch
    """
    trainer = Trainer(data, model, config, seed=seed)
    if compile_model:
        trainer.model = torch.compile(trainer.model, backend=compile_backend(data.device))
    bs, per_epoch = config.batch_size, data.num_train - data.num_train % config.batch_size
    g = torch.Generator().manual_seed(seed)
    for idx in _epochs_of(warmup * bs, per_epoch, g, data.device):
        trainer.train_epoch(idx)
    timed = _epochs_of(batches * bs, per_epoch, g, data.device)
    ledger = trainer.ledger
    train0, overhead0, samples0 = ledger.train_seconds, ledger.overhead_seconds, ledger.samples_backpropagated
    with DeviceClock(data.device) as clock:
        for idx in timed:
            trainer.train_epoch(idx)
    extra = {"backpropagated": ledger.samples_backpropagated - samples0, "ledger_train_s": ledger.train_seconds - train0,
             "ledger_store_s": ledger.overhead_seconds - overhead0, "peak_bytes": clock.peak_bytes}
    if compile_model:
        extra["compile_backend"] = compile_backend(data.device)
    return Measurement(batches * bs, clock.seconds, extra)


# --- comparisons -------------------------------------------------------------------------------


def interleaved(variants: list[tuple[str, Callable[[], Measurement]]], repeats: int, progress: bool = False,
                desc: str = "") -> dict[str, list[Measurement]]:
    """Run every variant ``repeats`` times, interleaved (a slow spell of a shared machine then hits every
    variant alike); returns each variant's runs in order."""
    runs: dict[str, list[Measurement]] = {name: [] for name, _ in variants}
    bar = tqdm(total=repeats * len(variants), desc=desc, disable=not progress, leave=False)
    for _ in range(repeats):
        for name, run in variants:
            bar.set_postfix_str(name)
            runs[name].append(run())
            bar.update()
    bar.close()
    return runs


def _best(runs: list[Measurement]) -> Measurement:
    return max(runs, key=lambda m: m.samples_per_s)


def bench_pair(raw: RawSplits, data: DeviceDataset, model: str, config: TrainerConfig, *, samples: int,
               warmup: int = 1, workers: tuple[int, ...] = (0, 2), repeats: int = 2, seed: int = 0,
               progress: bool = False, desc: str = "") -> dict[str, Any]:
    """Run every plain variant and ours ``repeats`` times, interleaved, and compare the best runs (on a shared
    machine noise only ever slows a run down).

    :param raw: host arrays for the plain loop (the same images ``data`` holds)
    :param data: the dataset for our trainer, on the benchmark device
    :param samples: timed samples per run, rounded down to full batches (at least one)
    :param workers: DataLoader ``num_workers`` values tried for the plain loop
    :return: plain and ours samples/s (best run), the winning worker count, every run, the speed-up
    """
    if data.num_train < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {data.num_train} training samples")
    batches = max(1, samples // config.batch_size)
    variants: list[tuple[str, Callable[[], Measurement]]] = [
        (f"plain w{w}", lambda w=w: time_plain(raw, model, config, batches=batches, warmup=warmup, workers=w,
                                               device=data.device, seed=seed))
        for w in workers
    ]
    variants.append(("ours", lambda: time_ours(data, model, config, batches=batches, warmup=warmup, seed=seed)))
    runs = interleaved(variants, repeats, progress, desc)
    plain = _best([m for name, ms in runs.items() if name != "ours" for m in ms])
    ours = _best(runs["ours"])
    return {
        "samples": batches * config.batch_size,
        "plain_samples_per_s": plain.samples_per_s,
        "plain_workers": plain.extra["workers"],
        "ours_samples_per_s": ours.samples_per_s,
        "speedup": ours.samples_per_s / plain.samples_per_s,
        "runs": {name: [{"samples_per_s": m.samples_per_s, "seconds": m.seconds, **m.extra} for m in ms]
                 for name, ms in runs.items()},
    }
