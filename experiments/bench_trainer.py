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
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from envs.core.data import load_dataset, load_raw
from envs.core.trainer import TrainerConfig, resolve_device
from experiments.cli import add_output_arguments, console_script, make_parser, output_folder, seed_value
from experiments.run.throughput import CIFAR10_JPEG, bench_pair


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
    """The benchmarked configurations; CIFAR-10 is read from the JPEG copy in ``cifar10_dir``."""
    return {
        "fmnist-cnn": BenchConfig("fmnist-cnn", "fashion-mnist", "cnn", {"cpu": 2048, "cuda": 61440}),
        "cifar10-resnet18": BenchConfig("cifar10-resnet18", f"imagefolder:{cifar10_dir}", "resnet18",
                                        {"cpu": 256, "cuda": 20480}),
        "cifar10-fastnet": BenchConfig("cifar10-fastnet", f"imagefolder:{cifar10_dir}", "fastnet",
                                       {"cpu": 512, "cuda": 61440}),
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
    parser.add_argument("--configs", default="fmnist-cnn,cifar10-resnet18", help="comma list of: fmnist-cnn, cifar10-resnet18, cifar10-fastnet")
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
    add_output_arguments(parser, None, "bench_trainer.json, the report (default: results)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args, Path("results"), ("bench_trainer.json",), "measurement")

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
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_trainer.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'bench_trainer.json'}")
    return rows


cli = console_script(main)

if __name__ == "__main__":
    main()
