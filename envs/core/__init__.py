"""The core layer: data on the device, models, the inner trainer, the cost ledger, the per-sample store, checkpoints and
files. It imports nothing above it: every selection method and both environments are built on it."""
