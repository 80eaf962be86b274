"""``CoverSelect-v0``: the environment (:mod:`envs.cover_select.env`) and its rewards (:mod:`envs.cover_select.rewards`)."""
