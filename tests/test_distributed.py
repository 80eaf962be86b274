"""Data-parallel inner training under torchrun (gloo, 2 CPU processes) equals one process.

The ranks run as ``torch.multiprocessing`` children with torchrun's environment variables (cheaper than a
``torchrun`` start), except where the ``torchrun`` command itself is under test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from envs.core.checkpoint import load_checkpoint, save_checkpoint
from envs.core.distributed import ReplicatedEnv, World
from envs.data_agent.env import DataAgentEnv
from experiments import run, train
from tiny import tiny_env

ROOT = Path(__file__).resolve().parents[1]
# 256 samples in batches of 32: 2 pruned epochs of 4 batches, then a full epoch of 8 (16 steps)
ENV = tiny_env(dataset="digits", train_size=256, batch_size=32, epochs=3, anneal=0.67, state="both")
STEPS = 16
ACTIONS = np.random.default_rng(7).uniform(-1, 1, (STEPS, 32)).astype(np.float32)
COUNTERS = ("samples_forwarded", "samples_backpropagated", "optimizer_steps", "eval_samples_forwarded")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_rank(rank: int, fn: Callable[..., Any], port: int, out: Path, args: tuple) -> None:
    """One rank: torchrun's variables, then ``fn(*args)``; its result (or exit code) goes to ``out``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2", OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    try:
        result = fn(*args)
    except SystemExit as stop:
        result = {"exit": stop.code}
    torch.save(result, out / f"rank{rank}.pt")


def _on_two_ranks(tmp_path: Path, fn: Callable[..., Any], *args: Any) -> list[Any]:
    """``fn(*args)`` on 2 gloo ranks; their results, rank 0 first."""
    mp.spawn(_as_rank, args=(fn, _free_port(), tmp_path, args), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _play(env: DataAgentEnv, obs: np.ndarray, first: int = 0,
          before_step: Callable[[int, np.ndarray], None] | None = None) -> dict[str, Any]:
    """Steps ``first..`` of the fixed action sequence; what they showed and what the run ended with."""
    record: dict[str, Any] = {"obs": [obs], "rewards": [], "batches": [], "losses": []}
    for t in range(first, STEPS):
        if before_step is not None:
            before_step(t, obs)
        obs, reward, _, done, info = env.step(ACTIONS[t])
        record["obs"].append(obs)
        record["rewards"].append(reward)
        record["losses"].append(info["train_loss"])
        record["batches"].append(info.get("batch_indices"))
        assert done == (t == STEPS - 1)
    record.update(scores=env.scores.cpu().numpy(), test=info["final_test"],
                  ledger={k: info["ledger"][k] for k in COUNTERS})
    return record


def _episode(**options: Any) -> dict[str, Any]:
    env = DataAgentEnv(**{**ENV, **options})
    return _play(env, env.reset(seed=0)[0])


def _episode_and_resume(folder: Path, model: str = "mlp", **options: Any) -> dict[str, Any]:
    """A whole episode, and its end again from rank 0's checkpoint of step 6, continued in a fresh env
    (``options``: other env options than :data:`ENV`'s)."""
    env = DataAgentEnv(**{**ENV, "model": model, **options})

    def checkpoint(t: int, obs: np.ndarray) -> None:
        if t == 6 and env.trainer.world.is_leader:
            save_checkpoint(folder / "env.pt", {"env": env.state_dict(), "obs": obs}, {})

    whole = _play(env, env.reset(seed=0)[0], before_step=checkpoint)
    dist.barrier()
    saved = load_checkpoint(folder / "env.pt")  # every rank reads rank 0's file
    resumed_env = DataAgentEnv(**{**ENV, "model": model, **options})
    resumed_env.load_state_dict(saved["env"])
    return {"whole": whole, "resumed": _play(resumed_env, saved["obs"], first=6)}


def _tail(record: dict[str, Any], first: int) -> dict[str, Any]:
    """``record`` from step ``first`` on (observations: the one ``first`` acted on and later)."""
    return {**record, **{key: record[key][first:] for key in ("obs", "rewards", "batches", "losses")}}


def _assert_close(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Same selection and counts exactly; floats within tolerance (shard sums differ in rounding)."""
    assert [b.tolist() for b in got["batches"][:-1]] == [b.tolist() for b in want["batches"][:-1]]
    assert got["ledger"] == want["ledger"]
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["rewards"], want["rewards"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-4, atol=1e-5)
    for a, b in zip(got["obs"], want["obs"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for key in ("top1", "top5", "loss"):
        assert got["test"][key] == pytest.approx(want["test"][key], rel=1e-4, abs=1e-4), key


def _assert_identical(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert [b.tolist() for b in got["batches"][:-1]] == [b.tolist() for b in want["batches"][:-1]]
    for key in ("rewards", "losses", "test", "ledger"):
        assert got[key] == want[key], key
    np.testing.assert_array_equal(got["scores"], want["scores"])
    for a, b in zip(got["obs"], want["obs"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_two_ranks_equal_one_process_and_resume_exactly(tmp_path, monkeypatch):
    """Fixed actions (no agent): selection, scores, rewards, states and accuracy of 2 gloo ranks equal
    one process with the same global batch; both ranks are bit-identical; a fresh env on every rank
    continued from rank 0's checkpoint ends exactly as the uninterrupted episode."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    single = _episode()
    rank0, rank1 = _on_two_ranks(tmp_path, _episode_and_resume, tmp_path)
    _assert_close(rank0["whole"], single)
    _assert_identical(rank1["whole"], rank0["whole"])
    _assert_identical(rank0["resumed"], _tail(rank0["whole"], 6))
    _assert_identical(rank1["resumed"], _tail(rank1["whole"], 6))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "resnet18"])
def test_batch_norm_models_stay_identical_across_ranks_and_resume_exactly(tmp_path, monkeypatch, model):
    """The models with batch norm: on CPU (no SyncBatchNorm) they differ from one process, but both ranks
    stay bit-identical, and the resumed episode rebuilds its forward pass through the DDP wrapper with
    the checkpoint's batch-norm buffers, ending exactly as the uninterrupted one."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rank0, rank1 = _on_two_ranks(tmp_path, _episode_and_resume, tmp_path, model)
    _assert_identical(rank1["whole"], rank0["whole"])
    _assert_identical(rank0["resumed"], _tail(rank0["whole"], 6))
    _assert_identical(rank1["resumed"], _tail(rank1["whole"], 6))


@pytest.mark.slow
def test_a_text_model_on_two_ranks_equals_one_process_and_resumes_exactly(tmp_path, monkeypatch, text_slices):
    """The transformer (embeddings, positions, padding masks) on 256 AG News texts: token ids shard like images; the
    ranks tokenise into one cache. One text model only: each case costs the suite about a minute (``bow`` and
    ``textcnn`` passed the same test when it was written)."""
    model = "transformer"
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("DATA_SELECT_GYM_CACHE", str(tmp_path / "cache"))  # the ranks' cache, as this process's
    text = dict(dataset="agnews", data={"train_size": 256, "root": str(text_slices), "vocab_size": 300, "seq_len": 16})
    single = _episode(model=model, **text)
    rank0, rank1 = _on_two_ranks(tmp_path, partial(_episode_and_resume, **text), tmp_path, model)
    _assert_close(rank0["whole"], single)
    _assert_identical(rank1["whole"], rank0["whole"])
    _assert_identical(rank0["resumed"], _tail(rank0["whole"], 6))


def test_a_world_shards_evenly_and_refuses_batches_that_do_not_split():
    world = World(rank=1, size=3, device=torch.device("cpu"))
    assert [world.shard(10, r) for r in range(3)] == [slice(0, 4), slice(4, 7), slice(7, 10)]
    world.check_batch_size(33)
    with pytest.raises(ValueError, match="batch_size=32 does not split over 3 processes; valid: a multiple of 3"):
        world.check_batch_size(32)


# 147 samples: the full-data reference's last batch (19) splits unevenly (10 + 9); the agent's first rollout
# (4 steps) ends inside epoch 1, where the run is checkpointed and, in the stopped run, interrupted
CLI = ["--dataset", "digits", "--model", "mlp", "--train-size", "147", "--batch-size", "32", "--epochs", "2",
       "--hyperparams", "n_steps=4", "--no-progress", "--checkpoint-every", "1", "--seed", "2"]


def _stop_then_resume(folder: Path) -> dict[str, Any]:
    """The CLI run stopped after its first checkpoint (as SIGTERM would), then ``--resume``d."""
    original = run.RunCheckpointer.save

    def save_then_stop(self: run.RunCheckpointer) -> Path:
        raise run.RunInterrupted(signal.SIGTERM, original(self))

    run.RunCheckpointer.save = save_then_stop
    try:
        train.main([*CLI, "--out", str(folder)], quiet=True)
    except SystemExit as stop:
        code = stop.code
    run.RunCheckpointer.save = original
    stopped_with_checkpoint = bool(list((folder / "checkpoints").glob("ckpt-*.pt")))
    return {"stop": code, "checkpointed": stopped_with_checkpoint,
            "result": train.main(["--resume", str(folder), "--no-progress"], quiet=True)}


@pytest.mark.slow
def test_torchrun_trains_once_like_one_process_and_resumes_exactly(tmp_path, monkeypatch):
    """``torchrun --nproc-per-node 2 -m experiments.train`` (PPO, gloo): one agent, results written and
    printed once, equal to one process's; a run stopped after a checkpoint on 2 ranks and resumed ends
    exactly as the uninterrupted torchrun run."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    folder = tmp_path / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "experiments.train", *CLI, "--out", str(folder)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("saved to") == 1 and proc.stdout.count("agent run") == 1
    assert not (folder / "checkpoints").exists()
    ddp = json.loads((folder / "metrics.json").read_text())

    single = train.main([*CLI, "--out", str(tmp_path / "single")], quiet=True)
    for part in ("run", "reference"):
        assert {k: ddp[part]["ledger"][k] for k in COUNTERS} == {k: single[part]["ledger"][k] for k in COUNTERS}
        for key, value in single[part]["test"].items():
            assert ddp[part]["test"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), (part, key)
    np.testing.assert_allclose(np.load(folder / "scores.npy"), np.load(tmp_path / "single" / "scores.npy"), atol=1e-5)

    rank0, rank1 = _on_two_ranks(tmp_path, _stop_then_resume, tmp_path / "stopped")
    assert rank0["stop"] == 128 + signal.SIGTERM and "rank 0 stopped" in rank1["stop"]
    assert rank0["checkpointed"] and rank1["checkpointed"]
    resumed = rank0["result"]
    assert resumed["run"]["test"] == ddp["run"]["test"] and resumed["reference"]["test"] == ddp["reference"]["test"]
    assert {k: resumed["run"]["ledger"][k] for k in COUNTERS} == {k: ddp["run"]["ledger"][k] for k in COUNTERS}
    assert resumed["run"]["reward_by_epoch"] == ddp["run"]["reward_by_epoch"]
    np.testing.assert_array_equal(np.load(tmp_path / "stopped" / "scores.npy"), np.load(folder / "scores.npy"))
    assert rank1["result"]["run"] == resumed["run"]


class _Counter(gym.Env):
    """A stand-in env whose observation is the number of steps since reset."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.full(1, self.t, np.float32), 0.0, False, False, {}


class _Script:
    """Rank 1's view of rank 0's broadcasts, scripted."""

    rank, is_leader = 1, False

    def __init__(self, messages: list[tuple]):
        self.messages = iter(messages)

    def broadcast(self, obj: Any = None) -> Any:
        return next(self.messages)


def _follower(messages: list[tuple]) -> ReplicatedEnv:
    env = ReplicatedEnv(_Counter())
    env.world = _Script(messages)
    return env


def test_a_follower_repeats_rank_0s_calls_and_stops_when_the_copies_diverge():
    reset = ("reset", {"seed": 0, "options": None}, None)
    env = _follower([reset, ("step", np.zeros(1), 0.0), ("step", np.zeros(1), 1.0), ("done", {"top1": 50.0}, None)])
    assert env.replicate(lambda: pytest.fail("only rank 0 leads")) == {"top1": 50.0}
    assert env.unwrapped.t == 2
    with pytest.raises(RuntimeError, match=r"rank 1's observation differs from rank 0's \(checksum 1.0 vs 5.0\)"):
        _follower([reset, ("step", np.zeros(1), 0.0), ("step", np.zeros(1), 5.0)]).replicate(lambda: None)
    with pytest.raises(SystemExit, match=r"rank 1: rank 0 stopped \(RunInterrupted: SIGTERM\)"):
        _follower([("abort", "RunInterrupted: SIGTERM", None)]).replicate(lambda: None)


def test_outside_torchrun_the_replicated_env_is_the_env(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = ReplicatedEnv(_Counter())
    assert env.world is None and env.replicate(lambda: "led") == "led"
    env.reset(seed=0)
    assert env.step(np.zeros(1))[0][0] == 1.0
