"""Third-party plugins installed as real distributions (a package and a dist-info folder
on ``sys.path``), found through the ``benchkit`` entry-point group as pip-installed ones are."""
import ast
import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest

from benchkit.cli import main
from benchkit.errors import UserError
from benchkit.plugin.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def install(site: Path, dist: str, module: str, source: str, entry_name: str = "plugin") -> None:
    """Write ``module`` and a dist-info declaring ``entry_name = module`` in the group benchkit."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[benchkit]\n{entry_name} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("BENCHKIT_BLOCK_EXTERNAL_PLUGINS", raising=False)
    yield folder
    importlib.invalidate_caches()
    for name in [m for m in sys.modules if m.startswith("throwaway_")]:
        del sys.modules[name]


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return code, out, err


def test_shadowing_a_builtin_name_names_both_distributions(site, capsys):
    install(site, "shadow-plugin", "throwaway_shadow", """
        import benchkit
        from benchkit.plugin.interfaces import Method

        class MyMeanFill(Method):
            name = "mean-fill"
            def inpaint(self, images, known):
                return images

        @benchkit.hookimpl
        def register_methods(register):
            register(MyMeanFill)
    """)
    with pytest.raises(UserError, match="method 'mean-fill' is registered by both 'benchkit' and 'shadow-plugin'"):
        Registry()
    code, _, err = cli(capsys, "list")
    assert code == 2 and err.count("\n") == 1 and "BENCHKIT_BLOCK_EXTERNAL_PLUGINS=1" in err
    assert "mean-fill" in Registry(block_external=True).names("method")


def test_an_entry_point_named_like_a_builtin_module_shadows_nothing(site):
    install(site, "more-metrics", "throwaway_metrics", """
        import benchkit
        from benchkit.plugin.interfaces import ImageMetric

        class Zero(ImageMetric):
            name = "zero"
            def score(self, prediction, target, known):
                return (prediction - target).flatten(1).sum(1) * 0

        @benchkit.hookimpl
        def register_metrics(register):
            register(Zero)
    """, entry_name="metrics")
    names = Registry().names("metric")
    assert {"psnr", "ssim", "l1", "psnr_hole", "zero"} <= set(names)
    assert Registry().get("metric", "zero").distribution == "more-metrics"


@pytest.mark.parametrize("hook,message", [
    ("def register_method(register):", "'throwaway_typo' from 'typo-plugin' has a hook that benchkit does not "
                                       "define ('register_method')"),
    ("def register_methods(reg):", "'throwaway_typo' from 'typo-plugin' has an invalid hook (for hook "
                                   "'register_methods' hookimpl definition: register_methods(reg) Argument(s) {'reg'}"),
])
def test_misnamed_hooks_are_one_line_errors(site, capsys, hook, message):
    install(site, "typo-plugin", "throwaway_typo", f"""
        import benchkit

        @benchkit.hookimpl
        {hook}
            pass
    """)
    code, _, err = cli(capsys, "run", "--methods", "mean-fill")
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_typed_options_are_converted_by_annotation(site):
    install(site, "typed-plugin", "throwaway_typed", """
        from typing import Annotated, Literal, Optional
        import benchkit
        from benchkit.plugin.interfaces import Method
        from benchkit.plugin.options import Range

        class Typed(Method):
            name = "typed"
            def __init__(self, limit: int | None = None, mode: Literal["a", "b"] = "a",
                         scale: Optional[Annotated[float, Range(0, 1)]] = None, flag: bool = False):
                self.limit, self.mode, self.scale, self.flag = limit, mode, scale, flag
            def inpaint(self, images, known):
                return images

        @benchkit.hookimpl
        def register_methods(register):
            register(Typed)
    """)
    registry = Registry()
    typed = registry.create("method", "typed", {"limit": "5", "mode": "b", "scale": "0.25", "flag": "yes"})
    assert (typed.limit, typed.mode, typed.scale, typed.flag) == (5, "b", 0.25, True)
    assert type(typed.limit) is int and registry.create("method", "typed", {"limit": "none"}).limit is None
    for options, message in [({"mode": "c"}, "must be one of a, b"), ({"limit": "5.5"}, "not a valid int | None"),
                             ({"scale": "2"}, "out of range"), ({"limt": "1"}, "did you mean 'limit'")]:
        with pytest.raises(UserError, match=message):
            registry.create("method", "typed", options)


def test_a_plugin_adds_a_trainer_a_preset_and_a_command(site, tmp_path, capsys, monkeypatch):
    install(site, "toy-plugin", "throwaway_toy", """
        import json
        from pathlib import Path
        import benchkit
        from benchkit.plugin.interfaces import Preset, Trainer

        class ToyTrainer(Trainer):
            '''Counts the images it is given.

            Parameters
            ----------
            factor : int
                Multiplies the count.
            '''
            name = "toy"
            description = "writes the number of training images"
            def __init__(self, factor: int = 1):
                self.factor = factor
            def train(self, images, config, out, command, masks):
                path = Path(out) / f"toy-{config.dataset}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"images": len(images) * self.factor, "masks": sorted(masks)}))
                return path

        @benchkit.hookimpl
        def register_trainers(register):
            register(ToyTrainer)

        @benchkit.hookimpl
        def register_presets(register):
            register(Preset(name="toy-preset", description="mean-fill on center", datasets=("fashion-mnist-mini",),
                            masks=("center",), methods=("mean-fill",), pair=("mean-fill", "mean-fill"), metric="psnr"))

        def shout(args):
            print(args.word.upper())
            return 0

        @benchkit.hookimpl
        def register_commands(subparsers):
            parser = subparsers.add_parser("shout")
            parser.add_argument("word")
            parser.set_defaults(handler=shout)
    """)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "train", "toy", "--dataset", "fashion-mnist-mini", "-o", "factor=2", "--out", "m")
    assert code == 0 and json.loads((tmp_path / "m" / "toy-fashion-mnist-mini.json").read_text())["images"] == 20000
    code, out, _ = cli(capsys, "run", "--preset", "toy-preset", "--n-images", "4")
    assert code == 0 and "| center" in out and "mean-fill" in out
    assert cli(capsys, "shout", "hey")[1] == "HEY\n"
    code, out, _ = cli(capsys, "info", "toy")
    assert code == 0 and "| factor   | int    |         1 |" in out and "Multiplies the count." in out
    assert cli(capsys, "train", "nope", "--dataset", "fashion-mnist-mini")[0] == 2


def test_info_lists_options_with_types_and_defaults(capsys):
    code, out, _ = cli(capsys, "info", "gan")
    assert code == 0
    assert "| iterations | int             | 1500      | value >= 0" in out
    assert "| precision  | 'fp32' | 'bf16' | 'fp32'" in out
    assert "trainer gan (from benchkit)" in out and "| width    | int    |   64      | 8 <= value <= 1024 |" in out
    assert cli(capsys, "info", "tvv")[0] == 2


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_core_imports_no_plugin_and_has_no_import_cycle():
    """The core (everything but benchkit.builtins) never imports a built-in plugin; the plugin
    contract (benchkit.plugin) imports nothing of the implementation; no module imports in a cycle."""
    package = ROOT / "benchkit"
    core = {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in package.rglob("*.py")
            if "builtins" not in p.parts and p.stem != "__init__"}
    assert {"benchkit.plugin.registry", "benchkit.run.runner", "benchkit.store.results",
            "benchkit.report.tables"} <= set(core)
    graph = {}
    for name, path in core.items():
        imports = _imports(path)  # module-level and lazy imports alike
        builtin = [i for i in imports if i.startswith(("benchkit.builtins", "benchkit_plugins", "plugins"))]
        assert not builtin, (name, builtin)
        if name.startswith("benchkit.plugin."):
            outside = {i for i in imports
                       if i.startswith("benchkit.") and not i.startswith(("benchkit.plugin", "benchkit.errors"))}
            assert not outside, (name, outside)
        graph[name] = {i for i in imports if i in core and i != name}

    def visit(node, stack):
        assert node not in stack, f"import cycle: {' -> '.join(stack + [node])}"
        for child in graph[node]:
            visit(child, stack + [node])

    for name in graph:
        visit(name, [])


# the documented helpers every plugin may use (docs/plugins/contract.md), and the built-ins' own package
PLUGIN_HELPERS = ("benchkit.plugin", "benchkit.errors", "benchkit.imaging", "benchkit.files", "benchkit.checkpoints",
                  "benchkit.datafiles", "benchkit.masking", "benchkit.builtins", "benchkit.__version__",
                  "benchkit.hookimpl")


def test_built_in_plugins_stand_on_the_contract_as_a_third_party_must():
    """A built-in plugin imports only the contract, the documented helpers and its own package;
    commands may also use the run, the store and the reports."""
    modules = sorted((ROOT / "benchkit" / "builtins").rglob("*.py"))
    assert len(modules) > 30 and {p.parent.name for p in modules} >= {"methods", "masks", "metrics", "datasets",
                                                                         "training", "nets", "commands"}
    for path in modules:
        allowed = PLUGIN_HELPERS + (("benchkit.run", "benchkit.store", "benchkit.report")
                                    if "commands" in path.parts else ())
        outside = {i for i in _imports(path) if i.startswith("benchkit.") and not i.startswith(allowed)}
        assert not outside, (str(path.relative_to(ROOT)), outside)
