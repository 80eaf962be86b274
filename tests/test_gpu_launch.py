"""The GPU launcher on a CPU: a simulated bare GPU image (only the image's packages, no gymnasium or SB3, not
this project) runs the prepared command's smoke report from a clean copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from experiments.run.gpu_launch import (IMAGE_LACKS, IMAGE_PACKAGES, TRAVEL_DIR, download_wheels, gpu_command,
                                        pinned_wheels, travelling_files)

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # this environment's site-packages, where the image's packages are


def _closure(names: tuple[str, ...]) -> set[str]:
    """``names`` and every distribution they require here (markers evaluated, extras left out)."""
    seen, todo = set(), list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _image_site(dest: Path) -> Path:
    """A folder of links to the top-level entries (packages, modules, dist-info) of the image's packages."""
    dest.mkdir()
    for name in sorted(_closure(IMAGE_PACKAGES)):
        for f in metadata.distribution(name).files or []:
            top = f.parts[0]
            if top != ".." and not (dest / top).exists() and (SITE / top).exists():
                (dest / top).symlink_to(SITE / top)
    return dest


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """The wheels the image lacks: the prepared ``.gpu/wheels`` when it has this environment's pins, else a download."""
    prepared = ROOT / TRAVEL_DIR / "wheels"
    names = {w.name.split("-")[0].lower().replace("_", "-") + "==" + w.name.split("-")[1] for w in prepared.glob("*.whl")}
    if names == {p.lower() for p in pinned_wheels()}:
        return prepared
    try:
        return download_wheels(tmp_path_factory.mktemp("wheels"))[0].parent
    except RuntimeError as err:
        pytest.skip(f"the wheels of {', '.join(IMAGE_LACKS)} could not be downloaded: {err}")


def test_the_image_lacks_what_the_launcher_brings():
    assert not _closure(IMAGE_PACKAGES) & {n.lower() for n in IMAGE_LACKS}
    assert len(gpu_command()) < 2000 and "--no-index --no-deps" in gpu_command()


@pytest.mark.slow
def test_a_simulated_bare_image_runs_the_prepared_command_from_a_clean_copy(tmp_path, wheels):
    repo = tmp_path / "repo"
    for f in travelling_files(ROOT):
        rel = f.relative_to(ROOT)
        if rel.parts[0] != TRAVEL_DIR:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, repo / rel)
    shutil.copytree(wheels, repo / TRAVEL_DIR / "wheels")
    venv = tmp_path / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "image.pth").write_text(str(_image_site(tmp_path / "image-site")) + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OUT": str(tmp_path / "out"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = gpu_command(budget_minutes=5, report_args="--smoke --device cpu", site=str(tmp_path / "site"))
    done = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(report["parts"]) == ["device", "throughput", "env", "study"]
    assert not [p for p, d in report["parts"].items() if "error" in d]
    installed = {p.name.split("-")[0].lower() for p in (tmp_path / "site").glob("*.dist-info")}
    assert installed == {n.replace("-", "_") for n in IMAGE_LACKS}  # they came from the wheels, not from here
    assert "## 4. Equal-cost study" in (tmp_path / "out" / "report.md").read_text()
    assert not os.path.exists(repo / "results")  # everything went to $OUT
