"""The README's "Your own data, model and training loop" section: its code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_own_data_model_and_loop_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", section("Your own data, model and training loop"), flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)  # the example saves my_agent.zip
    namespace: dict = {"__name__": "readme"}
    exec(compile("\n".join(blocks), "README.md", "exec"), namespace)
    assert (tmp_path / "my_agent.zip").is_file()
    selector = namespace["selector"]
    assert selector.epoch == 4 and 0.5 < selector.backprop_fraction() < 0.7  # keep_ratio 0.5, last epoch annealed
    assert "back-propagated" in capsys.readouterr().out
