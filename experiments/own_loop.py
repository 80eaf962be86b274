"""Your data, your model, your training loop: a selection policy trained here, used as a drop-in sampler.

    python -m experiments.own_loop                                  # offline, under a minute: trains a tiny agent first
    python -m experiments.own_loop --agent runs/DataAgent-v0_ppo_s0/agent.zip
    python -m experiments.own_loop --baseline infobatch --epochs 30

Everything below ``# --- the user's side`` stands for code a practitioner already has: a dataset
(here scikit-learn's digits as 64 float features per sample, a tabular task), a model that returns
logits only, and a plain PyTorch loop. The selection adds three lines to that loop: the
:class:`~agents.selector.Selector` as the DataLoader's sampler, :class:`~envs.core.own_model.FeatureModel`
to get penultimate features from the same forward pass, and ``selector.update`` returning the loss
to back-propagate.

Without ``--agent`` or ``--baseline``, a small Data Agent (PPO) is first trained by the run library
(``experiments.run``, what ``experiments.train`` runs) on the registry digits with the ``signals``
state: that state is model-agnostic, so the policy runs unchanged on this other model. The run prints test accuracy and
back-propagated samples against a full-data run of the same loop, plus a random selection at the
same cost when the policy is an agent.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from agents.selector import Selector
from envs.core.own_model import FeatureModel
from envs.core.trainer import TrainerConfig
from envs.methods.baselines.dynamic import PER_EPOCH_BASELINES
from experiments.cli import console_script, make_parser, seed_value

# --- the user's side: data, model, evaluation -----------------------------------------------------


def user_data() -> tuple[TensorDataset, TensorDataset]:
    """Digits as a tabular task: 64 float features in [0, 1] per sample; items are ``(index, x, y)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    tr, te = train_test_split(range(len(y)), test_size=0.2, stratify=y.numpy(), random_state=0)
    tr, te = torch.tensor(tr), torch.tensor(te)
    return TensorDataset(torch.arange(len(tr)), x[tr], y[tr]), TensorDataset(x[te], y[te])


class TabularNet(nn.Module):
    """A user's classifier: 64 -> 128 -> 128 -> 10, returning logits only."""

    def __init__(self, inputs: int = 64, classes: int = 10, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


@torch.no_grad()
def accuracy(model: nn.Module, test: TensorDataset) -> float:
    model.eval()
    x, y = test.tensors
    logits, _ = model(x)
    return float((logits.argmax(1) == y).float().mean()) * 100


def train(selector: Selector | None, train_set: TensorDataset, test_set: TensorDataset, epochs: int, batch_size: int,
          lr: float, seed: int) -> dict[str, Any]:
    """The user's loop; with ``selector=None`` it trains on all data (a shuffled DataLoader)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = FeatureModel(TabularNet())  # returns (logits, features) from one forward pass
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = DataLoader(train_set, batch_size=batch_size, sampler=selector, shuffle=selector is None,
                        generator=torch.Generator().manual_seed(seed))
    backpropagated = 0
    for _ in range(epochs):
        model.train()
        for idx, x, y in loader:
            logits, features = model(x)
            losses = F.cross_entropy(logits, y, reduction="none")
            loss = losses.mean() if selector is None else selector.update(idx, losses, logits, features, labels=y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            backpropagated += len(idx)
        schedule.step()
    return {"top1": accuracy(model, test_set), "backprop_fraction": backpropagated / (epochs * len(train_set)),
            "wall_seconds": time.perf_counter() - start}


# --- the selection side -----------------------------------------------------------------------------


def train_tiny_agent(out: Path | None, epochs: int, seed: int, progress: bool = True) -> Path:
    """A small Data Agent with the model-agnostic ``signals`` state, trained by the run library into ``out``
    (None: ``runs/own_loop_agent``, or ``..._1``, ``_2``... when that holds an earlier agent)."""
    from experiments.run import RUN_OUTPUTS, RunConfig, run_training
    from experiments.run.folders import choose_folder

    out = choose_folder(out, Path("runs/own_loop_agent"), RUN_OUTPUTS, flag="--agent-out")

    # the agent's run keeps the threads of the loop (--threads), not the trainer's default
    config = RunConfig(model="mlp", seed=seed, trainer=TrainerConfig(epochs=epochs, batch_size=64,
                                                                     threads=torch.get_num_threads()),
                       env_options={"state": "signals"}, reference=False, out=out, checkpoint_every=0, progress=progress)
    return run_training(config).folder / "agent.zip"


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--agent", type=Path, default=None, help="an agent.zip saved by experiments.train (DataAgent-v0)")
    policy.add_argument("--baseline", choices=PER_EPOCH_BASELINES, default=None, help="a baseline instead of an agent")
    parser.add_argument("--agent-out", type=Path, default=None,
                        help="where the tiny agent goes when neither --agent nor --baseline is given (default: "
                             "runs/own_loop_agent, or runs/own_loop_agent_1, _2... when that holds an earlier agent)")
    parser.add_argument("--agent-epochs", type=int, default=10, help="epochs (one episode) of the tiny agent's training")
    loop = parser.add_argument_group("the user's loop (its own recipe, not TrainerConfig's)")
    loop.add_argument("--epochs", type=int, default=20, help="epochs of the user's loop")
    loop.add_argument("--batch-size", type=int, default=64, help="samples per optimizer step")
    loop.add_argument("--lr", type=float, default=0.05, help="the loop's SGD learning rate (cosine schedule)")
    loop.add_argument("--seed", type=seed_value, default=0, help="seeds the loop, the selection and the tiny agent")
    selection = parser.add_argument_group("selection")
    selection.add_argument("--keep-ratio", type=float, default=0.5, help="fraction of samples kept per pruned epoch")
    selection.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train_set, test_set = user_data()
    n, classes = len(train_set), 10
    sizes = dict(num_samples=n, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    selection = dict(keep_ratio=args.keep_ratio, anneal=args.anneal)
    try:
        if args.baseline is not None:
            name, selector = args.baseline, Selector.from_baseline(args.baseline, num_classes=classes, **sizes, **selection)
            source = args.baseline
        else:
            source = args.agent or train_tiny_agent(args.agent_out, args.agent_epochs, args.seed, not args.no_progress)
            name, selector = "agent", Selector.from_agent(source, **sizes, **selection)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    runs = {name: train(selector, train_set, test_set, args.epochs, args.batch_size, args.lr, args.seed)}
    if name == "agent":
        random = Selector.from_baseline("random", num_classes=classes, **sizes, **selection)
        runs["random"] = train(random, train_set, test_set, args.epochs, args.batch_size, args.lr, args.seed)
    runs["full data"] = train(None, train_set, test_set, args.epochs, args.batch_size, args.lr, args.seed)
    print(f"own loop: TabularNet on digits as 64 float features, {n} training samples, {args.epochs} epochs, "
          f"seed {args.seed}; selection by {source}")
    for label, run in runs.items():
        print(f"  {label:<10} test top-1 {run['top1']:6.2f}% | back-propagated {run['backprop_fraction']:6.1%} of full data "
              f"| wall {run['wall_seconds']:.1f}s")
    return runs


cli = console_script(main)

if __name__ == "__main__":
    main()
