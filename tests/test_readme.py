"""The README's commands stay true: CI runs exactly the README's test command."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    lines = (ROOT / "README.md").read_text().splitlines()
    marker = lines.index("<!-- test-command -->")
    assert lines[marker + 1] == "```bash"
    command = lines[marker + 2]
    assert command.startswith("pip install torch==2.13.0") and "pytest" in command
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
