"""The benchmark as a library: run specs, the method catalogue and runners, execution, statistics and the report.

``python -m experiments.benchmark`` is its command line; these modules are what it, Ray tasks and the GPU report
(:mod:`experiments.run.gpu_report`) run.
"""

from experiments.run.benchmark.execution import execute, run_record, run_spec
from experiments.run.benchmark.methods import (CONTROL_POLICIES, DATA_AGENT_METHODS, DATA_AGENT_POLICIES,
                                               DATA_AGENT_VARIANTS, DEFAULT_METHODS, RECOMMENDED_VARIANT,
                                               RL_SELECTOR_METHODS, RL_SELECTOR_VARIANTS, RUNNERS, RunCache,
                                               data_agent_method, data_agent_method_name)
from experiments.run.benchmark.report import write_outputs
from experiments.run.benchmark.spec import BenchConfig, RunSpec
from experiments.run.benchmark.stats import control_margins, matched_cost, savings_within, summarise

__all__ = ["BenchConfig", "RunSpec", "RunCache", "RUNNERS", "DEFAULT_METHODS", "DATA_AGENT_VARIANTS", "DATA_AGENT_METHODS",
           "DATA_AGENT_POLICIES", "CONTROL_POLICIES", "RECOMMENDED_VARIANT", "RL_SELECTOR_METHODS", "RL_SELECTOR_VARIANTS",
           "data_agent_method", "data_agent_method_name", "execute", "run_record", "run_spec", "summarise", "matched_cost",
           "savings_within", "control_margins", "write_outputs"]
