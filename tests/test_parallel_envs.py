"""Both envs run in parallel worker processes, with every start method, after the parent did torch work.

The parent runs in a fresh interpreter with two torch threads and a multi-threaded matmul first: that is
what made forked workers hang (GNU OpenMP's pool does not survive fork; see envs/workers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = '''
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import SubprocVecEnv

import envs

KW = dict(dataset="synthetic", model="cnn", train_size=64, batch_size=16, epochs=1, device="cpu")
# fork, the default that hung, on both envs; the fresh-interpreter methods (slow to start) on one
CASES = [("DataAgent-v0", "fork", 2), ("CoverSelect-v0", "fork", 2), ("DataAgent-v0", "spawn", 1),
         ("DataAgent-v0", "forkserver", 1)]


def make(env_id):
    return lambda: gym.make(env_id, **KW)


if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.ones(512, 512) @ torch.ones(512, 512)  # torch work in the parent, as in every real script
    for env_id, method, workers in CASES:
        alone = gym.make(env_id, **KW).reset(seed=0)[0]
        vec = gym.vector.AsyncVectorEnv([make(env_id)] * workers, context=method)
        first = vec.reset(seed=0)[0][0]
        vec.step(np.zeros((workers, 16), np.float32))
        vec.close()
        sb3 = SubprocVecEnv([make(env_id)] * workers, start_method=method)
        sb3.seed(0)
        first_sb3 = sb3.reset()[0]
        sb3.step(np.zeros((workers, 16), np.float32))
        sb3.close()
        # workers may run torch on fewer threads than this parent, so sums may round differently
        same = np.allclose(first, alone, atol=1e-5) and np.allclose(first_sb3, alone, atol=1e-5)
        print(env_id, method, "ok" if same else "differs", flush=True)
'''


def test_async_and_subproc_vector_envs_work_with_every_start_method_after_torch_work(tmp_path):
    script = tmp_path / "parallel.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its hung workers
        out, err = proc.communicate()
        raise AssertionError(f"vector envs hung; finished before the hang:\n{out}") from None
    assert proc.returncode == 0, err
    assert out.split("\n")[:-1] == ["DataAgent-v0 fork ok", "CoverSelect-v0 fork ok", "DataAgent-v0 spawn ok",
                                     "DataAgent-v0 forkserver ok"]
