"""Run independent training runs as Ray tasks: a benchmark suite on many cores, GPUs or machines.

Why: a suite is methods × ratios × seeds, hundreds of runs that share nothing but their
configuration. Ray schedules each as a task with the resources it needs (one GPU, or a few CPU
threads) on a local instance or an existing cluster, and hands the results back as they finish, so
the caller records each one at once and an interrupted suite loses only the runs in flight.

A task whose worker dies (killed, out of memory, node lost) is started again up to ``retries``
times. A run that raises is not retried (the same seed would raise again): it comes back as a
:class:`RunFailure`. Nothing is dropped silently. Ray is imported only when a suite asks for it,
so the default install does not need it (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class RayOptions:
    """Where and how runs execute on Ray.

    :param address: ``local`` (start a private instance on this machine), ``auto`` (join the cluster
        this machine belongs to, as started by ``ray start``), or a cluster's ``HOST:PORT``
    :param device: the runs' ``--device``: ``cuda`` asks for one GPU per run, ``auto`` does when the
        cluster has GPUs, ``cpu`` never does
    :param cpus: CPU threads of each run (its Ray ``num_cpus`` and torch's thread count)
    :param retries: how often a run whose worker died is started again
    """

    address: str
    device: str = "cpu"
    cpus: int = 1
    retries: int = 2

    def validate(self) -> None:
        if self.cpus < 1:
            raise ValueError(f"--ray-cpus={self.cpus} is invalid; valid: an integer >= 1")
        if self.retries < 0:
            raise ValueError(f"--ray-retries={self.retries} is invalid; valid: an integer >= 0")
        if self.device.startswith("cuda:"):
            raise ValueError(f"--device {self.device} with --ray: each run gets its own GPU from Ray; "
                             "valid: cuda, auto or cpu")


@dataclass(frozen=True)
class RunFailure:
    """A run that raised, or whose worker died more often than allowed."""

    error: str
    details: str


def _connect(address: str) -> bool:
    """Connect to Ray unless already connected; True when this call started the connection."""
    import ray

    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(address="local", include_dashboard=False, log_to_driver=False)  # new, even where a cluster runs
    else:
        # the cluster's workers import the project from this copy of it, so only its dependencies
        # need to be installed on the nodes
        import agents
        import envs

        experiments = sys.modules[__name__.split(".")[0]]  # this module's own top-level package, already imported
        ray.init(address=address, log_to_driver=False, runtime_env={"py_modules": [envs, agents, experiments]})
    return True


def _run_with_threads(fn: Callable[[Item], Result], item: Item, threads: int) -> Result:
    import torch

    torch.set_num_threads(threads)
    return fn(item)


class RayResourceError(ValueError):
    """A run asks for more than the Ray cluster has: its tasks would wait forever."""


def _task_resources(options: RayOptions) -> tuple[int, int]:
    """``(num_cpus, num_gpus)`` of one run, checked against the cluster's current resources."""
    import ray

    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
    if options.cpus > cpus:
        raise RayResourceError(f"--ray-cpus={options.cpus} is more than the Ray cluster's {cpus:g} CPUs; "
                               f"valid: 1 to {cpus:g}")
    if options.device.startswith("cuda") and gpus < 1:
        raise RayResourceError(f"--device {options.device} with --ray: the Ray cluster has no GPU; valid: cpu or auto")
    wants_gpu = options.device.startswith("cuda") or (options.device == "auto" and gpus >= 1)
    return options.cpus, int(wants_gpu)


def run_on_ray(items: list[Item], fn: Callable[[Item], Result], options: RayOptions) -> Iterator[tuple[Item, Result | RunFailure]]:
    """Run ``fn(item)`` for every item as a Ray task; yield ``(item, result or RunFailure)`` in the
    order the tasks finish. Leaving the loop early cancels the tasks still pending. Raises
    :class:`RayResourceError` before any run starts when one run needs more than the cluster has.

    :param items: the runs (picklable)
    :param fn: the run; Ray pickles it (a module-level function is imported by the workers)
    :param options: where and with which resources
    """
    import ray
    from ray.exceptions import RayError, RayTaskError

    started = _connect(options.address)
    pending: dict[Any, Item] = {}
    try:
        num_cpus, num_gpus = _task_resources(options)
        task = ray.remote(_run_with_threads).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                     max_retries=options.retries, retry_exceptions=False)
        pending = {task.remote(fn, item, options.cpus): item for item in items}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            item = pending.pop(ref)
            outcome: Any
            try:
                outcome = ray.get(ref)
            except RayTaskError as err:  # the run itself raised
                cause = err.cause if err.cause is not None else err
                outcome = RunFailure(f"{type(cause).__name__}: {cause}".splitlines()[0], str(err))
            except RayError as err:  # its worker died on every attempt
                outcome = RunFailure(f"{type(err).__name__} after {options.retries} retries: {str(err).splitlines()[0]}",
                                     str(err))
            yield item, outcome
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
