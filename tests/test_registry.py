import importlib.metadata

import pytest

import benchkit
from benchkit.errors import UserError
from benchkit.plugin.interfaces import Method
from benchkit.plugin.registry import Registry


def test_builtins_are_registered_by_module_not_entry_point():
    groups = {ep.name: ep.dist.name for ep in importlib.metadata.entry_points(group="benchkit")}
    assert "benchkit" not in groups.values()  # entry points are for third parties only
    reg = Registry(block_external=True)
    for kind, name in [("method", "mean-fill"), ("mask", "pattern"), ("metric", "ssim"),
                       ("dataset", "fashion-mnist-mini"), ("trainer", "gan"), ("preset", "yeh2017")]:
        info = reg.get(kind, name)
        assert info.distribution == "benchkit" and info.description


def test_example_plugin_is_found_through_its_entry_point():
    # installed by the README's test command: pip install -e examples/benchkit-example-plugin
    reg = Registry(block_external=False)
    assert reg.get("method", "flat-fill").distribution == "benchkit-example-plugin"
    assert reg.get("mask", "stripes").distribution == "benchkit-example-plugin"


def test_environment_variable_blocks_external_plugins(monkeypatch):
    monkeypatch.setenv("BENCHKIT_BLOCK_EXTERNAL_PLUGINS", "1")
    reg = Registry()
    assert "flat-fill" not in reg.names("method") and "mean-fill" in reg.names("method")


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(UserError) as err:
        Registry(block_external=True).get("method", "mean-fil")
    message = str(err.value)
    assert "did you mean 'mean-fill'" in message
    assert "known methods are biharmonic, ce, diffusers, dip, gan, lama, lowrank, mean-fill," in message


def test_options_are_converted_and_checked():
    reg = Registry(block_external=True)
    assert reg.create("mask", "random", {"missing": "0.5"}).missing == 0.5
    with pytest.raises(UserError, match="has no option 'colour'.*missing"):
        reg.create("mask", "random", {"colour": "red"})
    with pytest.raises(UserError, match="not a valid float"):
        reg.create("mask", "random", {"missing": "lots"})
    with pytest.raises(UserError, match="takes no ':' argument"):
        reg.create("mask", "random:x")


def test_duplicate_and_invalid_registrations_are_refused():
    class Clash(Method):
        name = "mean-fill"

        def inpaint(self, images, known):
            return images

    class Plugin:
        @benchkit.hookimpl
        def register_methods(self, register):
            register(Clash)

    with pytest.raises(UserError, match="registered by both"):
        Registry(block_external=True, extra=[Plugin()])

    class NotAMethod:
        @benchkit.hookimpl
        def register_methods(self, register):
            register(int)

    with pytest.raises(UserError, match="must be a Method subclass"):
        Registry(block_external=True, extra=[NotAMethod()])
