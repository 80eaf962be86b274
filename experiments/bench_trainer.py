"""Inner-training throughput: our device-resident trainer against a plain PyTorch DataLoader loop.

    python -m experiments.bench_trainer --configs fmnist-cnn,cifar10-resnet18 --device auto

Why: every env step runs the inner trainer, so its samples/s bounds how fast any selection method
can be trained or evaluated. The reference is the loop most PyTorch code uses: a torchvision-style
``Dataset`` that returns one augmented tensor per sample (RandomCrop with reflect padding,
RandomHorizontalFlip, ToDtype, Normalize from ``torchvision.transforms.v2``), a shuffling
``DataLoader``, ``model.train()`` and an SGD step. Our side is :meth:`envs.core.trainer.Trainer.train_epoch`
on :func:`envs.core.data.load_dataset` (batched augmentation on the device, per-sample store, ledger).

Fairness: both sides read the same already-decoded uint8 images from memory (no file I/O or image
decoding is timed), build the same model from the same seed, use the same optimizer settings, loss,
label smoothing and augmentation semantics, and time the same number of full batches after the same
number of warm-up batches (which also absorb DataLoader worker start-up). The plain loop runs once
per ``--workers`` value and the fastest counts as "plain". Each variant runs ``--repeats`` times,
interleaved, and the best run counts: on a shared machine noise only ever slows a run down.
The plain Dataset hands v2 a uint8 CHW tensor rather than a PIL image: on this machine that per-sample
path was the faster of the two, so the reference is not handicapped by PIL conversions.
One difference is kept on purpose because it is ours as shipped: ``Augmentation``'s batched crop returns
a channels-last batch, so our model runs in NHWC while the plain loop runs in NCHW; on CPU that alone is
worth part of the gap for 3-channel inputs (for 1-channel images the two layouts coincide).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from envs.core.data import Augmentation, DeviceDataset, RawSplits, load_dataset, load_raw
from envs.core.models import build_model
from envs.core.trainer import Trainer, TrainerConfig, resolve_device, seed_everything
from experiments.cli import add_output_arguments, console_script, make_parser, seed_value

#: the CIFAR-10 JPEG copy: ``$DATA_SELECT_GYM_CIFAR10_JPEG``, else ``../shared/data/cifar10-jpeg`` beside the
#: repository (``--cifar10-dir`` overrides both; an absent folder skips that configuration)
CIFAR10_JPEG = os.environ.get("DATA_SELECT_GYM_CIFAR10_JPEG",
                              str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"))


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked pairing of a dataset and a model.

    :param name: the ``--configs`` key
    :param dataset: a :func:`envs.core.data.load_dataset` registry name
    :param model: a :func:`envs.core.models.build_model` registry name
    :param samples: default timed samples per run, by device type (CPU runs must stay minutes long)
    """

    name: str
    dataset: str
    model: str
    samples: dict[str, int] = field(default_factory=dict)


def default_configs(cifar10_dir: str = CIFAR10_JPEG) -> dict[str, BenchConfig]:
    """The issue's two configurations; CIFAR-10 is read from the JPEG copy in ``cifar10_dir``."""
    return {
        "fmnist-cnn": BenchConfig("fmnist-cnn", "fashion-mnist", "cnn", {"cpu": 2048, "cuda": 61440}),
        "cifar10-resnet18": BenchConfig("cifar10-resnet18", f"imagefolder:{cifar10_dir}", "resnet18",
                                        {"cpu": 256, "cuda": 20480}),
    }


@dataclass
class Measurement:
    """One timed run of one side (warm-up excluded)."""

    samples: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


# --- the plain reference loop ------------------------------------------------------------------


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _endless(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches across epochs, so a run may be longer than one pass over the data."""
    while True:
        yield from loader


def time_plain(raw: RawSplits, model: str, config: TrainerConfig, *, batches: int, warmup: int, workers: int,
               device: torch.device, seed: int = 0) -> Measurement:
    """Time ``batches`` SGD steps of the usual DataLoader loop after ``warmup`` untimed ones."""
    seed_everything(seed)
    dataset = plain_dataset(raw, config.augment)
    net = build_model(model, tuple(raw.train_x.shape[1:]), raw.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    net.train()

    def train_step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
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
        _sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            train_step(*next(stream))
        _sync(device)
        seconds = time.perf_counter() - start
    finally:
        stream.close()  # shuts the workers down
    return Measurement(batches * config.batch_size, seconds, {"workers": workers})


# --- our trainer -------------------------------------------------------------------------------


def _epochs_of(total: int, num_train: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """``total`` training indices as epochs of distinct samples (at most ``num_train`` each)."""
    out = []
    while total > 0:
        n = min(total, num_train)
        out.append(torch.randperm(num_train, generator=generator)[:n].to(device))
        total -= n
    return out


def time_ours(data: DeviceDataset, model: str, config: TrainerConfig, *, batches: int, warmup: int,
              seed: int = 0) -> Measurement:
    """Time :meth:`Trainer.train_epoch` over ``batches`` full batches after ``warmup`` untimed ones."""
    trainer = Trainer(data, model, config, seed=seed)
    bs, per_epoch = config.batch_size, data.num_train - data.num_train % config.batch_size
    g = torch.Generator().manual_seed(seed)
    for idx in _epochs_of(warmup * bs, per_epoch, g, data.device):
        trainer.train_epoch(idx)
    timed = _epochs_of(batches * bs, per_epoch, g, data.device)
    ledger = trainer.ledger
    train0, overhead0, samples0 = ledger.train_seconds, ledger.overhead_seconds, ledger.samples_backpropagated
    _sync(data.device)
    start = time.perf_counter()
    for idx in timed:
        trainer.train_epoch(idx)
    _sync(data.device)
    seconds = time.perf_counter() - start
    return Measurement(batches * bs, seconds, {"backpropagated": ledger.samples_backpropagated - samples0,
                                               "ledger_train_s": ledger.train_seconds - train0,
                                               "ledger_store_s": ledger.overhead_seconds - overhead0})


# --- one configuration -------------------------------------------------------------------------


def _best(runs: list[Measurement]) -> Measurement:
    return max(runs, key=lambda m: m.samples_per_s)


def bench_pair(raw: RawSplits, data: DeviceDataset, model: str, config: TrainerConfig, *, samples: int,
               warmup: int = 1, workers: tuple[int, ...] = (0, 2), repeats: int = 2, seed: int = 0,
               progress: bool = False, desc: str = "") -> dict[str, Any]:
    """Run every plain variant and ours ``repeats`` times, interleaved, and compare the best runs.

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
    runs: dict[str, list[Measurement]] = {name: [] for name, _ in variants}
    bar = tqdm(total=repeats * len(variants), desc=desc, disable=not progress, leave=False)
    for _ in range(repeats):
        for name, run in variants:
            bar.set_postfix_str(name)
            runs[name].append(run())
            bar.update()
    bar.close()
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


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`bench_pair` results (each row also carries ``config`` and ``device``)."""
    lines = ["| config | device | plain samples/s | ours samples/s | speed-up |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['device']} | {r['plain_samples_per_s']:,.0f} (workers={r['plain_workers']}) "
                     f"| {r['ours_samples_per_s']:,.0f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = make_parser(__doc__)
    parser.add_argument("--configs", default="fmnist-cnn,cifar10-resnet18", help="comma list of: fmnist-cnn, cifar10-resnet18")
    parser.add_argument("--samples", type=int, default=None,
                        help="timed samples per run and side (default per config: 2048 / 256 on CPU, 61440 / 20480 on CUDA)")
    parser.add_argument("--batch-size", type=int, default=TrainerConfig.batch_size, help="samples per optimizer step")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed batches before each run (default 1 on CPU, 20 on CUDA: allocator and kernel caches)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per side; the best counts")
    parser.add_argument("--workers", default="0,2", help="comma list of DataLoader num_workers tried for the plain loop")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of the training process, both sides (default: torch's choice)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on both sides (CUDA)")
    parser.add_argument("--cifar10-dir", default=CIFAR10_JPEG, help="folder holding the CIFAR-10 train.zip and test.zip (or their .tar.xz)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seeds both sides' models and batch order")
    add_output_arguments(parser, Path("results"), "bench_trainer.json, the report")
    args = parser.parse_args(argv)

    configs = default_configs(args.cifar10_dir)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [n for n in names if n not in configs]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; valid choices: {', '.join(configs)}")
    try:
        device = resolve_device(args.device)
        workers = tuple(int(w) for w in args.workers.split(","))
        config = TrainerConfig(batch_size=args.batch_size, schedule="constant", amp=args.amp)
        config.validate()
    except ValueError as e:
        parser.error(str(e))
    if args.samples is not None and args.samples < 1:
        parser.error(f"--samples={args.samples} must be >= 1")
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads={args.threads} must be >= 1")
        torch.set_num_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else (20 if device.type == "cuda" else 1)
    if warmup < 0:
        parser.error(f"--warmup={warmup} must be >= 0")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, device {device}; "
          "both sides read already-decoded uint8 images from memory (no file I/O or JPEG decoding timed); "
          f"best of {args.repeats} interleaved runs per side")
    rows = []
    for name in names:
        bc = configs[name]
        try:
            raw = load_raw(bc.dataset)
            data = load_dataset(bc.dataset, device=device)
        except FileNotFoundError as e:
            print(f"skipping {name}: its data is absent ({e}); CIFAR-10 is read from --cifar10-dir "
                  f"(default $DATA_SELECT_GYM_CIFAR10_JPEG or ../shared/data/cifar10-jpeg beside the repository)")
            continue
        samples = args.samples or bc.samples["cuda" if device.type == "cuda" else "cpu"]
        result = bench_pair(raw, data, bc.model, config, samples=samples, warmup=warmup, workers=workers,
                            repeats=args.repeats, seed=args.seed, progress=not args.no_progress, desc=name)
        rows.append({"config": name, "dataset": bc.dataset, "model": bc.model, "device": str(device), **result})
        print(format_table(rows[-1:]).splitlines()[-1])

    print()
    print(format_table(rows))
    report = {
        "command": " ".join(["python -m experiments.bench_trainer", *(sys.argv[1:] if argv is None else argv)]),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "platform": platform.platform(),
        "statistic": f"best of {args.repeats} interleaved runs", "warmup_batches": warmup,
        "data": "both sides read already-decoded uint8 arrays held in memory",
        "trainer": config.as_dict(), "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_trainer.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out / 'bench_trainer.json'}")
    return rows


cli = console_script(main)

if __name__ == "__main__":
    main()
