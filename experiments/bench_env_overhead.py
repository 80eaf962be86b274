"""DataAgent-v0's own cost: how much the environment adds to inner training.

    python -m experiments.bench_env_overhead --dataset fashion-mnist --model cnn --train-size 2048 --epochs 2

Why: the environment wraps every mini-batch of the target model's training with state building, the
reward and the epoch selection. For the learned selection to be worth anything, that wrapper must
be a small fraction of the training it wraps (goal: <= 3%). The run uses uniformly random actions
(no agent: the agent's cost is separate) and reports two measures against the ledger's inner
training time (forward, backward, optimizer steps):

- ``ledger overhead``: the time the ledger booked as overhead (state, reward, selection, the
  per-sample store, the step's device-to-host transfer);
- ``step time - train - eval``: wall-clock spent inside ``step`` outside inner training and the final
  test evaluation, i.e. the above plus everything untimed (action checks, Python glue, info dicts).

``reset`` (building the model and optimizer, the first epoch's selection and forward pass) is a
once-per-run cost and is reported apart.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from envs.data_agent.env import STATES, DataAgentEnv
from experiments.cli import add_trainer_arguments, console_script, data_config, make_parser, trainer_config
from experiments.run import RunConfig, env_kwargs


def bench(env: DataAgentEnv, seed: int = 0) -> dict[str, Any]:
    """Run one episode with random actions; returns the steps' timings (reset apart) and the final info."""
    rng = np.random.default_rng(seed)
    shape = env.action_space.shape
    actions = rng.uniform(-1, 1, size=(env.config.epochs * (env.num_samples // env.config.batch_size + 1), *shape))
    actions = actions.astype(np.float32)  # drawn up front: the action draw is not the env's cost
    start = time.perf_counter()
    env.reset(seed=seed)
    reset_seconds = time.perf_counter() - start
    at_reset = env.trainer.ledger.as_dict()
    steps = 0
    start = time.perf_counter()
    while True:
        _, _, _, truncated, info = env.step(actions[steps])
        steps += 1
        if truncated:
            break
    step_seconds = time.perf_counter() - start
    ledger = info["ledger"]
    train = ledger["train_seconds"] - at_reset["train_seconds"]
    overhead = ledger["overhead_seconds"] - at_reset["overhead_seconds"]
    untracked = step_seconds - train - ledger["eval_seconds"]  # the last step also runs the test evaluation
    return {"steps": steps, "reset_seconds": reset_seconds, "step_seconds": step_seconds, "train_seconds": train,
            "overhead_seconds": overhead, "outside_train_seconds": untracked, "eval_seconds": ledger["eval_seconds"],
            "overhead_fraction": overhead / train, "outside_train_fraction": untracked / train,
            "ledger": ledger, "final_test": info["final_test"], "backprop_fraction": info["backprop_fraction"],
            "error": info.get("error")}


def markdown(r: dict[str, Any]) -> str:
    rows = [
        ("steps (mini-batches)", f"{r['steps']}"),
        ("back-propagated samples", f"{r['ledger']['samples_backpropagated']:,} ({r['backprop_fraction']:.1%} of full data)"),
        ("inner training during steps (ledger train)", f"{r['train_seconds']:.2f} s"),
        ("ledger overhead during steps", f"{r['overhead_seconds']:.3f} s ({r['overhead_fraction']:.2%} of training)"),
        ("step time - train - eval", f"{r['outside_train_seconds']:.3f} s ({r['outside_train_fraction']:.2%} of training)"),
        ("final test evaluation", f"{r['eval_seconds']:.2f} s"),
        ("reset (model build, first epoch, first forward)", f"{r['reset_seconds']:.2f} s"),
        ("final test top-1", f"{r['final_test']['top1']:.2f}%"),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__)
    add_trainer_arguments(parser)
    # the measured configuration of BENCHMARKS.md: a real image dataset, a short run
    parser.set_defaults(dataset="fashion-mnist", train_size=2048, epochs=2)
    g = parser.add_argument_group("environment")
    g.add_argument("--state", choices=STATES, default="features", help="the agent state DataAgent-v0 builds")
    g.add_argument("--keep-ratio", type=float, default=0.5, help="fraction of samples kept per pruned epoch")
    g.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        config = RunConfig(dataset=args.dataset, data=data_config(args), model=args.model, device=args.device, trainer=trainer_config(args),
                           env_options={"state": args.state, "keep_ratio": args.keep_ratio, "anneal": args.anneal})
        env = DataAgentEnv(**env_kwargs(config))
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    result = bench(env, seed=args.seed)
    print(f"DataAgent-v0 overhead: {args.dataset}/{args.model}, state={args.state}, {args.epochs} epochs on "
          f"{env.num_samples} samples, batch {args.batch_size}, keep {args.keep_ratio}, device {env.device}\n")
    print(markdown(result))
    if result["error"]:
        print(f"\nthe run diverged: {result['error']}")
    return result


cli = console_script(main)

if __name__ == "__main__":
    main()
