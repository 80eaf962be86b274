"""The run library: one run of an SB3 agent and the inner model together, described by a config object.

    from envs.core.trainer import TrainerConfig
    from experiments.run import RunConfig, run_training

    result = run_training(RunConfig(dataset="digits", model="mlp", trainer=TrainerConfig(epochs=5),
                                    env_options={"keep_ratio": 0.3}, out=Path("runs/lib")))
    print(result.metrics["run"]["test"]["top1"], result.metrics["reference"]["test"]["top1"])

Modules, one concept each: ``config`` (what a run is, its env keywords, its checkpoint identity),
``tracking`` (progress and the run's curves), ``checkpointing`` (saves, stop signals) and
``training`` (the run itself and its full-data reference). The measurements: ``throughput`` (the inner
trainer against ``DataLoader`` loops), ``env_overhead`` (an env's own cost and host syncs), ``gpu_report``
(the GPU story in one process) and ``gpu_launch`` (what travels to a bare GPU machine, and its command). The task
suite: ``cost_curves`` (accuracy along cost, read at equal cost), ``scores`` (normalised scores, IQM and CIs with
rliable) and ``leaderboard``.
"""

from experiments.run.checkpointing import RunCheckpointer, RunInterrupted
from experiments.run.config import ALL_ENV_OPTIONS, ENV_IDS, ENV_OPTIONS, RunConfig, checkpoint_identity, env_kwargs
from experiments.run.tracking import RunTracker
from experiments.run.training import RUN_OUTPUTS, RunResult, load_run_config, run_reference, run_training

__all__ = ["ALL_ENV_OPTIONS", "ENV_IDS", "ENV_OPTIONS", "RUN_OUTPUTS", "RunCheckpointer", "RunConfig", "RunInterrupted", "RunResult",
           "RunTracker", "checkpoint_identity", "env_kwargs", "load_run_config", "run_reference", "run_training"]
