"""Time and peak memory of the chunked ε-cover degrees on one large class.

    python -m experiments.bench_cover --n 50000 --dim 512 --epsilon mean --chunk-mib 256 --threads 2

Random Gaussian features stand in for one class of a real dataset (the cost does not depend on
the values). On CPU the extra memory is the growth of the process's peak resident set during the
call (Linux: ``VmHWM`` after resetting it through ``/proc/self/clear_refs``; run with
``MALLOC_MMAP_THRESHOLD_=131072`` so freed blocks leave the resident set at once); on CUDA it is
``torch.cuda.max_memory_allocated`` above the features. Prints one JSON line.
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from envs.core.trainer import resolve_device
from envs.methods.cover import chunk_rows, cover_degrees, parse_epsilon
from experiments.cli import console_script, make_parser


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def bench_cover(n: int = 50_000, dim: int = 512, epsilon: str | float = "mean", chunk_mib: int = 256,
                device: str = "auto", seed: int = 0) -> dict[str, Any]:
    """Degrees of ``n`` random ``dim``-d features as one class; seconds and extra peak memory (MiB)."""
    dev = resolve_device(device)
    budget = chunk_mib * 2**20
    feats = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    members = [torch.arange(n, device=dev)]
    cover_degrees(feats[:256], [members[0][:256]], epsilon, chunk_bytes=budget)  # warm-up (kernels)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current resident set
        base = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    degrees, eps = cover_degrees(feats, members, epsilon, chunk_bytes=budget)
    mean_degree = float(degrees.mean())  # synchronises
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else _status_kib("VmHWM") * 1024
    return {"n": n, "dim": dim, "epsilon": str(parse_epsilon(epsilon)), "chunk_mib": chunk_mib,
            "chunk_rows": chunk_rows(n, budget), "device": str(dev), "threads": torch.get_num_threads(),
            "seconds": round(seconds, 2), "extra_peak_mib": round((peak - base) / 2**20, 1),
            "eps": float(eps[0]), "mean_degree": mean_degree}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="samples in the class")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension")
    parser.add_argument("--epsilon", default="mean", help="mean | median | quantile:<q> | a float > 0")
    parser.add_argument("--chunk-mib", type=int, default=256, help="byte budget of one distance block, in MiB")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        epsilon: str | float = float(args.epsilon)
    except ValueError:
        epsilon = args.epsilon
    result = bench_cover(args.n, args.dim, epsilon, args.chunk_mib, args.device)
    print(json.dumps(result))
    return result


cli = console_script(main)

if __name__ == "__main__":
    main()
