"""Slow methods (repaint) stay out of the default run, with a note; --methods can name them."""
from benchkit.plugin.registry import Registry
from benchkit.run.inputs import Inputs
from benchkit.run.plan import plan
from benchkit.run.resolve import RunConfig, resolve


def plan_of(config, registry):
    """The plan of a run configuration: resolved, then planned with a new Inputs."""
    return plan(resolve(config, registry), Inputs(registry))



def test_slow_methods_leave_the_default_run_with_a_note_and_can_be_named(tmp_path):
    registry = Registry(block_external=True)
    planned = plan_of(RunConfig(masks=["center"], metrics=["psnr"], n_images=2, out=tmp_path / "r"), registry)
    methods = {cell.key[2] for cell in planned.cells}
    assert "repaint" not in methods and "dip" in methods and "tv" in methods
    assert any(note.startswith("left out as slow: repaint") for note in planned.notes)
    named = plan_of(RunConfig(methods=["repaint"], masks=["center"], metrics=["psnr"], n_images=2, out=tmp_path / "s"),
                 registry)
    assert [cell.key[2] for cell in named.cells] == ["repaint"]
