"""What travels to a bare GPU machine, and the one command that runs the GPU report there.

Why: the GPU machine has its own Python and torch but not this project's pure-Python dependencies, no
network, and takes at most 64 MiB of files per command. So the wheels it lacks (:data:`IMAGE_LACKS`, at the
versions installed here) and CIFAR-10's ``.tar.xz`` pair (about 19 MB; the zips would not fit) are put in a
git-ignored folder beside the repository's files, and :func:`gpu_command` installs them without the network
(``--no-index --no-deps``), keeps the image's own torch and runs :mod:`experiments.gpu_report` into ``$OUT``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: the folder that travels with the repository (git ignores it)
TRAVEL_DIR = ".gpu"
#: the limit of what one command may carry to the GPU machine
TRAVEL_LIMIT_BYTES = 64 * 2**20
#: the bare image's packages this project needs (torch, torchvision, numpy, scikit-learn, matplotlib, pyyaml,
#: tqdm, tensorboard, pandas, cloudpickle and their own dependencies are in the image)
IMAGE_PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "matplotlib", "pyyaml", "tqdm", "tensorboard",
                  "cloudpickle", "pandas", "scipy", "pillow", "pip")
#: what the image lacks: gymnasium, its notifications package and Stable-Baselines3 (all pure Python)
IMAGE_LACKS = ("gymnasium", "farama-notifications", "stable-baselines3")
#: the image's Python (the command falls back to ``python3`` on the PATH where it is absent)
IMAGE_PYTHON = "/opt/torch/.venv/bin/python3"
#: the CIFAR-10 archives that travel
CIFAR10_ARCHIVES = ("train.tar.xz", "test.tar.xz")


def pinned_wheels() -> list[str]:
    """``name==version`` of each package in :data:`IMAGE_LACKS`, as installed in this environment."""
    return [f"{name}=={metadata.version(name)}" for name in IMAGE_LACKS]


def download_wheels(dest: Path) -> list[Path]:
    """Download the wheels of :func:`pinned_wheels` into ``dest`` for the image's Python 3.12 (needs the
    package registry; pure-Python wheels fit any platform). Raises ``RuntimeError`` with pip's message."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--platform", "manylinux_2_17_x86_64", "-d", str(dest), *pinned_wheels()]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip download failed (is the package registry reachable?): {done.stderr.strip()[-500:]}")
    return sorted(dest.glob("*.whl"))


def copy_cifar10(source: Path, dest: Path) -> list[Path]:
    """Copy CIFAR-10's ``train.tar.xz`` and ``test.tar.xz`` from ``source`` into ``dest``."""
    missing = [n for n in CIFAR10_ARCHIVES if not (source / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} lacks {', '.join(missing)}; valid: the folder of the CIFAR-10 JPEG copy "
                                "holding train.tar.xz and test.tar.xz")
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source / n, dest / n)) for n in CIFAR10_ARCHIVES]


def gpu_command(budget_minutes: float = 9.0, report_args: str = "", site: str = "/tmp/site") -> str:
    """The one shell command, run in the repository's root on the GPU machine: install the travelled wheels
    into ``site`` without the network, then run the report on the image's torch into ``$OUT``.

    :param budget_minutes: the report's allowance (leave a minute of a command's limit for start-up)
    :param report_args: more options of :mod:`experiments.gpu_report` (the CPU test adds ``--smoke``)
    :param site: where the wheels are installed (the CPU test uses a private folder)
    """
    return (f'PY={IMAGE_PYTHON}; [ -x "$PY" ] || PY=python3; '
            f'"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target {site} '
            f'{TRAVEL_DIR}/wheels/*.whl && export PYTHONPATH={site}:$PWD DATA_SELECT_GYM_CACHE={site}-cache && '
            f'"$PY" -m experiments.gpu_report --out "${{OUT:-results/gpu}}" --budget-minutes {budget_minutes:g} '
            f'--cifar10-dir {TRAVEL_DIR}/cifar10-jpeg --no-progress {report_args}').strip()


def travelling_files(repo: Path) -> list[Path]:
    """The files a command carries: the repository's tracked and untracked-but-not-ignored files, and the
    travel folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    files = [repo / f for f in listed if f and (repo / f).is_file()]
    return files + [p for p in (repo / TRAVEL_DIR).rglob("*") if p.is_file()]


def travel_bytes(repo: Path) -> int:
    """Bytes of :func:`travelling_files`."""
    return sum(p.stat().st_size for p in travelling_files(repo))
