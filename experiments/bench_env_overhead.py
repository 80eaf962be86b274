"""DataAgent-v0's own cost: how much the environment adds to inner training.

    python -m experiments.bench_env_overhead --dataset fashion-mnist --model cnn --train-size 2048 --epochs 2

Why: the environment wraps every mini-batch of the target model's training with state building, the
reward and the epoch selection. For the learned selection to be worth anything, that wrapper must
be a small fraction of the training it wraps (goal: <= 3%). What is measured, and how, is
:mod:`experiments.run.env_overhead`'s docstring.
"""

from __future__ import annotations

from typing import Any

from envs.data_agent.env import DataAgentEnv
from envs.core.state import STATES
from experiments.cli import add_trainer_arguments, console_script, data_config, make_parser, trainer_config
from experiments.run import RunConfig, env_kwargs
from experiments.run.env_overhead import episode_overhead, overhead_markdown


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__)
    add_trainer_arguments(parser)
    # the measured configuration of BENCHMARKS.md: a real image dataset, a short run
    parser.set_defaults(dataset="fashion-mnist", train_size=2048, epochs=2)
    g = parser.add_argument_group("environment")
    g.add_argument("--state", choices=STATES, default="features", help="the agent state DataAgent-v0 builds")
    g.add_argument("--keep-ratio", type=float, default=0.5, help="fraction of samples kept per pruned epoch")
    g.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection")
    args = parser.parse_args(argv)
    try:
        config = RunConfig(dataset=args.dataset, data=data_config(args), model=args.model, device=args.device, trainer=trainer_config(args),
                           env_options={"state": args.state, "keep_ratio": args.keep_ratio, "anneal": args.anneal})
        env = DataAgentEnv(**env_kwargs(config))
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    result = episode_overhead(env, seed=args.seed)
    print(f"DataAgent-v0 overhead: {args.dataset}/{args.model}, state={args.state}, {args.epochs} epochs on "
          f"{env.num_samples} samples, batch {args.batch_size}, keep {args.keep_ratio}, device {env.device}\n")
    print(overhead_markdown(result))
    if result["error"]:
        print(f"\nthe run diverged: {result['error']}")
    return result


cli = console_script(main)

if __name__ == "__main__":
    main()
