"""Slow methods (repaint) stay out of the default run, with a note; --methods can name them."""
from benchkit.plugin.registry import Registry
from benchkit.run.plan import RunConfig


def test_slow_methods_leave_the_default_run_with_a_note_and_can_be_named(tmp_path):
    from benchkit.run.plan import plan

    registry = Registry(block_external=True)
    planned = plan(RunConfig(masks=["center"], metrics=["psnr"], n_images=2, out=tmp_path / "r"), registry)
    methods = {cell.key[2] for cell in planned.cells}
    assert "repaint" not in methods and "dip" in methods and "tv" in methods
    assert any(note.startswith("left out as slow: repaint") for note in planned.notes)
    named = plan(RunConfig(methods=["repaint"], masks=["center"], metrics=["psnr"], n_images=2, out=tmp_path / "s"),
                 registry)
    assert [cell.key[2] for cell in named.cells] == ["repaint"]
