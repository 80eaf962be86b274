"""The methods layer: how samples are chosen (epoch plans, ranking, coresets, ε-cover, diagnosis, the reward terms
and the dynamic and static baselines). It imports only the core layer."""
