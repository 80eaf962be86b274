"""Both envs run in parallel worker processes, forked or spawned, after the parent did torch work.

The parent runs in a fresh interpreter with two torch threads and a multi-threaded matmul first: that is
what made forked workers hang (GNU OpenMP's pool does not survive fork; see envs/core/workers.py)."""

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
from tiny import tiny_env

KW = tiny_env(model="cnn", train_size=64, epochs=1)
# (env, start method, vector envs): fork, the default that hung, on both envs and both vector envs; spawn
# (seconds to start a fresh worker) once. SubprocVecEnv's default, forkserver, after torch work in the
# parent: tests/test_agents.py::test_envs_pickle_and_run_in_spawned_subprocesses
CASES = [("DataAgent-v0", "fork", ("async", "sb3")), ("CoverSelect-v0", "fork", ("async", "sb3")),
         ("DataAgent-v0", "spawn", ("async",))]


def make(env_id):
    return lambda: gym.make(env_id, **KW)


if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.ones(512, 512) @ torch.ones(512, 512)  # torch work in the parent, as in every real script
    for env_id, method, kinds in CASES:
        alone = gym.make(env_id, **KW).reset(seed=0)[0]
        workers = 2 if method == "fork" else 1
        firsts = []
        if "async" in kinds:
            vec = gym.vector.AsyncVectorEnv([make(env_id)] * workers, context=method)
            firsts.append(vec.reset(seed=0)[0][0])
            vec.step(np.zeros((workers, 16), np.float32))
            vec.close()
        if "sb3" in kinds:
            sb3 = SubprocVecEnv([make(env_id)] * workers, start_method=method)
            sb3.seed(0)
            firsts.append(sb3.reset()[0])
            sb3.step(np.zeros((workers, 16), np.float32))
            sb3.close()
        # workers may run torch on fewer threads than this parent, so sums may round differently
        same = all(np.allclose(first, alone, atol=1e-5) for first in firsts)
        print(env_id, method, "ok" if same else "differs", flush=True)
'''


def test_async_and_subproc_vector_envs_work_with_fork_and_spawn_after_torch_work(tmp_path):
    script = tmp_path / "parallel.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its hung workers
        out, err = proc.communicate()
        raise AssertionError(f"vector envs hung; finished before the hang:\n{out}") from None
    assert proc.returncode == 0, err
    assert out.split("\n")[:-1] == ["DataAgent-v0 fork ok", "CoverSelect-v0 fork ok", "DataAgent-v0 spawn ok"]
