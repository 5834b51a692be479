"""The README's examples run as written."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_readme_python_and_shell_examples_run(tmp_path, monkeypatch):
    """Every python block runs, in order, in a fresh directory; then every ``sh`` block's
    ``ardens`` commands (blocks of ardens commands only) run there (a block may use the files an earlier one wrote)."""
    from test_cli import call

    monkeypatch.chdir(tmp_path)
    text = README.read_text()
    blocks = python_blocks(text)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    commands = []
    for block in shell_blocks(text):  # the blocks of ardens commands (not the install commands)
        lines = [line for line in block.splitlines() if line.strip()]
        if all(line.startswith("ardens ") for line in lines):
            commands += lines
    assert commands, "README has no shell example of ardens commands"
    outputs = []
    for line in commands:
        words = shlex.split(line)
        proc = call(*words[1:])
        assert proc.returncode == 0, (line, proc.stderr)
        outputs.append(proc.stdout)
    report = json.loads(next(o for line, o in zip(commands, outputs) if " evaluate " in line and "--json" in line))
    assert math.isfinite(report["nll"]) and math.isfinite(report["standardized_log_likelihood"])
    sampled = (tmp_path / "synthetic.csv").read_text().splitlines()
    assert sampled[0] == "alcohol,density,sugar" and len(sampled) == 101
