"""No path that writes a run folder deletes or overwrites an earlier run's results unasked: an unnamed folder
gives way to ``<folder>_1``, a named ``--out`` is refused without ``--overwrite``, ``--overwrite`` never deletes
the agent a run starts from, and ``--resume`` keeps its own folder."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from experiments import benchmark, bench_trainer, compare_layouts, diagnose_coreset, evaluate_coreset, full_data
from experiments import select_coreset, train, transfer
from experiments.run.folders import choose_folder

TINY = ["--dataset", "synthetic", "--model", "mlp", "--train-size", "64", "--batch-size", "16", "--epochs", "2",
        "--reference", "none", "--no-progress", "--hyperparams", "n_steps=2"]
DEFAULT = Path("runs") / "DataAgent-v0_ppo_s0"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(main, argv: list[str], capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_reusing_an_agent_from_its_default_folder_keeps_it(tmp_path, monkeypatch, capsys):
    """The data loss that was: --load-agent runs/<default>/agent.zip --no-learn wrote into that same folder."""
    monkeypatch.chdir(tmp_path)
    train.main(TINY, quiet=True)
    before = _snapshot(DEFAULT)
    assert "agent.zip" in before and any(name.startswith("tb/") for name in before)
    capsys.readouterr()
    train.main([*TINY, "--load-agent", str(DEFAULT / "agent.zip"), "--no-learn"], quiet=True)
    assert f"note: {DEFAULT} holds an earlier run's results; this run writes to {DEFAULT}_1" in capsys.readouterr().err
    assert _snapshot(DEFAULT) == before  # the agent, its logs and results, byte for byte
    assert (Path(f"{DEFAULT}_1") / "metrics.json").is_file()


def test_a_default_folder_gives_way_to_the_next_free_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        train.main(TINY, quiet=True)
    assert all((Path(f"{DEFAULT}{suffix}") / "agent.zip").is_file() for suffix in ("", "_1", "_2"))


def test_a_named_out_holding_results_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*TINY, "--out", str(out)], quiet=True)
    before = _snapshot(out)
    err = _refused(train.main, [*TINY, "--out", str(out), "--seed", "1"], capsys)
    assert f"--out {out} holds an earlier run's results" in err and "--overwrite" in err
    assert _snapshot(out) == before


def test_overwrite_replaces_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*TINY, "--out", str(out)], quiet=True)
    capsys.readouterr()
    train.main([*TINY, "--out", str(out), "--overwrite"], quiet=True)
    assert f"note: --overwrite: {out} held an earlier run; this run replaces its agent.zip, tb" in capsys.readouterr().err
    assert [p.name for p in (out / "tb").iterdir()] == ["agent_1"]  # not the earlier run's logs beside the new ones


def test_overwrite_never_deletes_the_agent_it_starts_from(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*TINY, "--out", str(out)], quiet=True)
    before = _snapshot(out)
    err = _refused(train.main, [*TINY, "--out", str(out), "--overwrite", "--load-agent", str(out / "agent.zip"),
                                "--no-learn"], capsys)
    assert f"--overwrite would delete {out / 'agent.zip'}, the agent this run starts from" in err
    assert _snapshot(out) == before


@pytest.mark.parametrize("main, argv", [
    (train.main, TINY),
    (select_coreset.main, ["--method", "random", "--dataset", "digits", "--keep-ratio", "0.5"]),
    (benchmark.main, ["--suite", "static", "--methods", "random", "--dataset", "synthetic", "--epochs", "1"]),
    (full_data.main, TINY[:10]),
    (evaluate_coreset.main, ["--coreset", "c"]),
    (diagnose_coreset.main, ["--coreset", "c"]),
    (compare_layouts.main, TINY[:10]),
    (transfer.main, ["--agents", "a.zip"]),
    (bench_trainer.main, []),
], ids=["train", "select_coreset", "benchmark", "full_data", "evaluate_coreset", "diagnose_coreset", "compare_layouts",
        "transfer", "bench_trainer"])
def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys, main, argv):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    err = _refused(main, [*argv, "--out", str(target)], capsys)
    assert f"--out {target} is a file; valid: a folder" in err
    assert target.read_text() == "keep me"


def test_resume_continues_in_its_own_folder(tmp_path, monkeypatch):
    import experiments.run as run

    out = tmp_path / "run"
    original = run.RunCheckpointer.save

    def save_then_stop(self):
        raise run.RunInterrupted(signal.SIGTERM, original(self))

    monkeypatch.setattr(run.RunCheckpointer, "save", save_then_stop)
    with pytest.raises(SystemExit):
        train.main([*TINY, "--out", str(out)], quiet=True)
    monkeypatch.undo()
    train.main(["--resume", str(out)], quiet=True)
    assert (out / "agent.zip").is_file() and not (tmp_path / "run_1").exists()


def test_resume_refuses_overwrite(tmp_path, capsys):
    err = _refused(train.main, ["--resume", str(tmp_path), "--overwrite"], capsys)
    assert f"--overwrite starts a new run over an earlier one; --resume {tmp_path} continues its run" in err


def test_select_coreset_never_replaces_a_coreset_unasked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--method", "random", "--dataset", "digits", "--keep-ratio", "0.5"]
    select_coreset.main(argv)
    first = Path("coresets/digits-random-r0.5-s0")
    before = _snapshot(first)
    select_coreset.main(argv)
    assert _snapshot(first) == before and (Path(f"{first}_1") / "coreset.npy").is_file()
    err = _refused(select_coreset.main, [*argv, "--out", str(first)], capsys)
    assert f"--out {first} holds an earlier coreset's results" in err
    select_coreset.main([*argv, "--out", str(first), "--overwrite", "--seed", "1"])
    assert json.loads((first / "coreset.json").read_text())["seed"] == 1


def test_a_benchmark_continues_its_own_suite_and_never_mixes_in_another(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--suite", "static", "--methods", "random", "--dataset", "synthetic", "--model", "mlp", "--epochs", "1",
            "--keep-ratios", "0.5",
            "--no-progress"]
    benchmark.main([*argv, "--seeds", "0"])
    folder = Path("results/static-synthetic-mlp")
    log = (folder / "runs.jsonl").read_text()
    benchmark.main([*argv, "--seeds", "0", "1"])  # the same suite grows: one more seed, in the same folder
    assert (folder / "runs.jsonl").read_text().startswith(log) and len((folder / "runs.jsonl").read_text().splitlines()) == 2
    benchmark.main([*argv, "--seeds", "0", "--lr", "0.05"])  # other options: another benchmark, another folder
    assert len((folder / "runs.jsonl").read_text().splitlines()) == 2
    assert len(Path(f"{folder}_1/runs.jsonl").read_text().splitlines()) == 1
    err = _refused(benchmark.main, [*argv, "--seeds", "0", "--lr", "0.02", "--out", str(folder)], capsys)
    assert f"--out {folder} holds an earlier benchmark's results" in err and "--overwrite" in err
    benchmark.main([*argv, "--seeds", "0", "--lr", "0.02", "--out", str(folder), "--overwrite"])
    assert len((folder / "runs.jsonl").read_text().splitlines()) == 1


def test_choose_folder_skips_files_and_used_folders(tmp_path):
    default = tmp_path / "run"
    (default / "tb").mkdir(parents=True)
    (tmp_path / "run_1").write_text("a file")
    (tmp_path / "run_2").mkdir()
    (tmp_path / "run_2" / "notes.txt").write_text("no results here")
    assert choose_folder(None, default, ("tb",)) == tmp_path / "run_2"
    assert choose_folder(tmp_path / "new", default, ("tb",)) == tmp_path / "new"
