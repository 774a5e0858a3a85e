"""The documentation's cheap command examples run, and its generated reference covers
every built-in plugin and option (the site itself is built by CI with `mkdocs build --strict`)."""
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from benchkit.cli import main
from benchkit.plugin import hookspecs
from benchkit.plugin.options import option_specs
from benchkit.plugin.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def marked_commands() -> list[tuple[str, str]]:
    """(page, command line) of every line of the ```bash blocks marked ``<!-- docs-test -->``."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for block in re.findall(r"<!-- docs-test -->\n```bash\n(.*?)```", page.read_text(), re.S):
            found += [(page.relative_to(DOCS).as_posix(), line) for line in block.splitlines() if line.strip()]
    return found


def test_pages_mark_command_examples():
    pages = {page for page, _ in marked_commands()}
    assert {"getting-started.md", "plugins/tutorial.md"} <= pages


@pytest.mark.parametrize("page, line", marked_commands())
def test_documented_commands_run(page, line, tmp_path_factory, monkeypatch, capsys):
    folder = tmp_path_factory.getbasetemp() / "docs-commands"  # shared: later lines read earlier results
    folder.mkdir(exist_ok=True)
    monkeypatch.chdir(folder)
    words = shlex.split(line, comments=True)
    assert words[0] == "benchkit", line
    assert main(words[1:]) == 0, (page, line, capsys.readouterr().err)


def _hooks_module():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_lists_every_builtin_plugin_option_and_command():
    hooks = _hooks_module()
    plugins, cli = hooks._plugins(), hooks._cli()
    registry = Registry(block_external=True)
    for info in registry.all():
        assert f"### {info.kind} `{info.name}`" in plugins
        if info.kind != "preset":
            for option in option_specs(info.cls):
                assert option == "data_dir" or f"| `{option}` |" in plugins, (info.name, option)
    for command in ("run", "score", "report", "train", "data", "list", "info", "weights"):
        assert f"## benchkit {command}\n" in cli
    assert "--scheduler" in cli  # an executor's own flag, added through its add_arguments
    page = (DOCS / "reference" / "hooks.md").read_text()
    assert "::: benchkit.plugin.hookspecs" in page
    assert {name for name in dir(hookspecs) if name.startswith("register_")} == {
        "register_methods", "register_masks", "register_metrics", "register_datasets", "register_trainers",
        "register_presets", "register_executors", "register_commands"}
