"""``experiments.benchmark --ray``: on a local 2-CPU Ray instance the suite's results equal the
sequential run's, an interrupted suite resumes, and failed or dead runs are never lost silently."""

from __future__ import annotations

import json
import os

import pytest

from experiments import benchmark
from experiments.run.ray_tasks import RayOptions, RunFailure, run_on_ray

RESULT_FIELDS = ("key", "method", "ratio", "seed", "top1", "top5", "backprop", "forwarded", "selection_backprop",
                 "noisy_kept_fraction", "config")


def _results(folder) -> dict[str, dict]:
    recs = (json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines())
    return {r["key"]: {f: r[f] for f in RESULT_FIELDS} for r in recs}


@pytest.mark.parametrize("suite_argv", [
    ["--suite", "dynamic", "--epochs", "2", "--anneal", "0.5", "--methods", "full,loss_topk,dataagent_a2c"],
    ["--suite", "static", "--epochs", "1", "--train-size", "400", "--methods", "random,el2n,cover,rlselector_a2c"],
], ids=["dynamic", "static"])
def test_ray_suite_resumes_and_equals_the_sequential_run(local_ray, tmp_path, capsys, suite_argv):
    argv = [*suite_argv, "--dataset", "digits", "--model", "mlp", "--keep-ratios", "0.5", "--seeds", "0"]
    sequential, on_ray = tmp_path / "sequential", tmp_path / "ray"
    benchmark.main([*argv, "--out", str(sequential)])
    expected = _results(sequential)
    on_ray.mkdir()
    first = (sequential / "runs.jsonl").read_text().splitlines()[0]
    (on_ray / "runs.jsonl").write_text(first + "\n")  # a suite interrupted after its first run
    capsys.readouterr()
    benchmark.main([*argv, "--out", str(on_ray), "--ray", "local", "--ray-cpus", "1"])
    assert f"resuming: 1 of {len(expected)} runs already" in capsys.readouterr().out
    assert len((on_ray / "runs.jsonl").read_text().splitlines()) == len(expected)  # nothing ran twice
    assert _results(on_ray) == expected  # bit-identical on CPU: same seeds, same code, other processes
    assert not (on_ray / "failed.jsonl").exists()


def test_a_diverging_run_is_recorded_as_on_the_sequential_path(local_ray, tmp_path):
    """Divergence is a result (the same seed diverges again), so it is recorded in runs.jsonl with its error,
    not retried; runs that crash go to failed.jsonl (test below)."""
    argv = ["--suite", "dynamic", "--dataset", "synthetic", "--model", "mlp", "--epochs", "1", "--methods", "random",
            "--lr", "1e30", "--out", str(tmp_path / "ray"), "--ray", "local"]
    benchmark.main(argv)
    benchmark.main([*argv[:-4], "--out", str(tmp_path / "seq")])
    (ray_rec,) = [json.loads(line) for line in (tmp_path / "ray" / "runs.jsonl").read_text().splitlines()]
    (seq_rec,) = [json.loads(line) for line in (tmp_path / "seq" / "runs.jsonl").read_text().splitlines()]
    assert ray_rec == seq_rec and ray_rec["error"].startswith("non-finite training loss")
    assert "every run failed" in (tmp_path / "ray" / "summary.md").read_text()


def test_errors_come_back_and_dead_workers_are_retried(local_ray, tmp_path):
    marker = tmp_path / "crashed-once"

    def crash_once(x: int) -> int:  # nested, so Ray ships it by value to the workers
        if x == 1 and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies, as when killed or out of memory
        if x == 2:
            raise ValueError("bad run")
        return x * 10

    outcomes = dict(run_on_ray([0, 1, 2], crash_once, RayOptions("local", retries=1)))
    assert outcomes[0] == 0 and outcomes[1] == 10  # the run whose worker died was started again
    assert isinstance(outcomes[2], RunFailure) and outcomes[2].error == "ValueError: bad run"
    assert "bad run" in outcomes[2].details

    def always_crash(x: int) -> int:
        os._exit(1)

    ((_, failure),) = run_on_ray([0], always_crash, RayOptions("local", retries=0))
    assert isinstance(failure, RunFailure) and "after 0 retries" in failure.error


def test_each_run_gets_its_cpu_threads(local_ray):
    def threads(_: int) -> int:
        import torch

        return torch.get_num_threads()

    assert dict(run_on_ray([0], threads, RayOptions("local", cpus=2))) == {0: 2}


@pytest.mark.parametrize("argv, message", [
    (["--ray-cpus", "3"], "--ray-cpus=3 is more than the Ray cluster's 2 CPUs; valid: 1 to 2"),
    (["--device", "cuda"], "--device cuda with --ray: the Ray cluster has no GPU; valid: cpu or auto"),
])
def test_runs_the_cluster_cannot_hold_are_refused_before_any_starts(local_ray, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        benchmark.main([*argv, "--ray", "local", "--dataset", "synthetic", "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
    assert not tmp_path.joinpath("runs.jsonl").exists()


@pytest.mark.parametrize("argv, message", [
    (["--ray", "local", "--ray-cpus", "0"], "--ray-cpus=0 is invalid; valid: an integer >= 1"),
    (["--ray", "local", "--ray-retries", "-1"], "--ray-retries=-1 is invalid; valid: an integer >= 0"),
    (["--ray", "local", "--device", "cuda:1"], "--device cuda:1 with --ray: each run gets its own GPU from Ray; valid: cuda, auto or cpu"),
])
def test_bad_ray_options_are_refused_naming_the_option(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        benchmark.main([*argv, "--dataset", "synthetic", "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
    assert not tmp_path.joinpath("runs.jsonl").exists()
