"""``DataAgent-v0``: the environment (:mod:`envs.data_agent.env`) and its rewards (:mod:`envs.data_agent.rewards`)."""
