"""Selection baselines on the shared trainer: dynamic (per-epoch) and static (coreset) methods."""
