"""Prepare a GPU run: put what the bare GPU machine lacks in ``.gpu/`` and print the one command to run there.

    python -m experiments.prepare_gpu                    # wheels + CIFAR-10 .tar.xz into .gpu/, then the command

``.gpu/`` (git-ignored) gets the wheels of gymnasium, its notifications package and Stable-Baselines3 at the
versions installed here, CIFAR-10's ``train.tar.xz`` and ``test.tar.xz``, and ``command.sh``, the command
(under 2,000 characters) that installs the wheels offline and runs ``experiments.gpu_report`` into ``$OUT``.
It checks that the repository plus ``.gpu/`` stays under the 64 MiB a command may carry (docs/gpu.md).
"""

from __future__ import annotations

from pathlib import Path

from experiments.cli import console_script, make_parser
from experiments.run.gpu_launch import (TRAVEL_DIR, TRAVEL_LIMIT_BYTES, copy_cifar10, download_wheels, gpu_command,
                                        travel_bytes)
from experiments.run.throughput import CIFAR10_JPEG

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LIMIT = 2000


def main(argv: list[str] | None = None) -> str:
    parser = make_parser(__doc__)
    parser.add_argument("--cifar10-dir", type=Path, default=Path(CIFAR10_JPEG),
                        help="folder holding CIFAR-10's train.tar.xz and test.tar.xz")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="the report's allowance in the command")
    args = parser.parse_args(argv)
    if not args.budget_minutes > 0:
        parser.error(f"--budget-minutes={args.budget_minutes} is invalid; valid: a number > 0")
    folder = ROOT / TRAVEL_DIR
    try:
        copy_cifar10(args.cifar10_dir, folder / "cifar10-jpeg")
        wheels = download_wheels(folder / "wheels")
    except (FileNotFoundError, RuntimeError) as err:
        parser.error(str(err))
    command = gpu_command(args.budget_minutes)
    if len(command) >= COMMAND_LIMIT:
        parser.exit(1, f"error: the command is {len(command)} characters; the GPU machine takes < {COMMAND_LIMIT}\n")
    (folder / "command.sh").write_text(command + "\n")
    size = travel_bytes(ROOT)
    if size >= TRAVEL_LIMIT_BYTES:
        parser.exit(1, f"error: {size / 2**20:.1f} MiB would travel; the limit is {TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB\n")
    print(f"prepared {folder}: {', '.join(w.name for w in wheels)}, CIFAR-10 train/test.tar.xz; "
          f"{size / 2**20:.1f} MiB travel with the repository (limit {TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB)\n"
          f"run in the repository's root on the GPU machine, carrying {TRAVEL_DIR}/ ({len(command)} characters, "
          f"also in {TRAVEL_DIR}/command.sh):\n\n{command}")
    return command


cli = console_script(main)

if __name__ == "__main__":
    main()
