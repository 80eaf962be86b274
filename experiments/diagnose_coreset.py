"""Describe what a saved coreset keeps: class outskirts and core, distance to the class centre, balance, noise.

    python -m experiments.diagnose_coreset --coreset runs/CoverSelect-v0_a2c_s0 --model mlp --epochs 3

The training set is rebuilt from the coreset's JSON (as ``experiments.evaluate_coreset`` does). A reference
model (``--model``) trains on all of it for ``--epochs`` epochs; its eval-mode penultimate features are the space
in which :func:`envs.methods.diagnosis.diagnose_coreset` measures the coreset. ``--random`` adds a uniform random subset
of the same size (seeded by ``--seed``) measured the same way, for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envs.core.files import write_json
from envs.core.trainer import TrainerConfig, resolve_device
from envs.methods.baselines.static import run_proxy
from envs.methods.coreset import load_coreset_data, random_coreset
from envs.methods.diagnosis import diagnose_coreset
from experiments.cli import (add_coreset_arguments, add_output_arguments, console_script, make_parser, output_folder,
                             trainer_config)


def diagnose_saved_coreset(coreset: str | Path, model: str = "mlp", *, seed: int = 0, random: bool = False,
                           device: str = "auto", root: str | None = None, **trainer_opts: Any) -> dict[str, Any]:
    """Diagnose the coreset saved at ``coreset`` (and, with ``random``, a same-size random subset) in the
    features of ``model`` trained on the whole rebuilt training set for ``trainer_opts['epochs']`` epochs."""
    config = TrainerConfig(**trainer_opts)
    config.validate()
    indices, meta, data = load_coreset_data(coreset, resolve_device(device), root)
    reference = run_proxy(data, model, config, score_epochs=config.epochs, seed=seed)
    result = {"coreset": str(coreset), "selection": meta.get("method"), "size": len(indices),
              "num_train": data.num_train, "reference_model": model, "reference_epochs": config.epochs,
              "diagnosis": diagnose_coreset(indices, reference.features, data.train_y, data.noisy_mask)}
    if random:
        same_size = random_coreset(data.num_train, len(indices), seed)
        result["random"] = diagnose_coreset(same_size, reference.features, data.train_y, data.noisy_mask)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__)
    add_coreset_arguments(parser, "also diagnose a random subset of the same size")
    add_output_arguments(parser, None, "diagnosis.json, the result (default: none written)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args, None, ("diagnosis.json",), "diagnosis")
    try:
        result = diagnose_saved_coreset(args.coreset, args.model, seed=args.seed, random=args.random,
                                        device=args.device, root=args.data_root, **trainer_config(args).as_dict())
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f"{result['selection']} coreset ({result['size']} of {result['num_train']} samples), measured in the "
          f"features of {args.model} after {args.epochs} epochs on all data:")
    for name in ("diagnosis", "random"):
        if name in result:
            cells = ", ".join(f"{k} {v:.3f}" for k, v in result[name].items())
            print(f"  {'coreset' if name == 'diagnosis' else 'random':<8} {cells}")
    write_json(None if out is None else out / "diagnosis.json", result)
    return result


cli = console_script(main)

if __name__ == "__main__":
    main()
