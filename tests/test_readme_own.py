"""docs/own-data.md (your own data, model and training loop): its code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"


def test_readme_own_data_model_and_loop_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)  # the example saves my_agent.zip
    namespace: dict = {"__name__": "readme"}
    exec(compile("\n".join(blocks), str(PAGE), "exec"), namespace)
    assert (tmp_path / "my_agent.zip").is_file()
    selector = namespace["selector"]
    assert selector.epoch == 4 and 0.5 < selector.backprop_fraction() < 0.7  # keep_ratio 0.5, last epoch annealed
    assert "back-propagated" in capsys.readouterr().out
