import ctypes
import json
import platform
import sys

import pytest
import torch
from conftest import SpyMethod

from benchkit.errors import UserError
from benchkit.run.runner import run
from benchkit.store.cells import cell_path
from benchkit.store.results import load_results


def test_methods_see_zeroed_holes_and_shared_masks(registry, config):
    config.methods = ["spy", "mean-fill"]
    config.masks = ["random"]
    run(config, registry, show_progress=False)
    images = registry.create("dataset", "tiny").images("test")
    seen, known = torch.cat([c[0] for c in SpyMethod.calls]), torch.cat([c[1] for c in SpyMethod.calls])
    assert (seen[~known.expand_as(seen)] == 0).all()
    torch.testing.assert_close(seen, images * known)
    # both methods were scored on the same masks: identical missing fractions per image
    df = load_results(config.out)
    spy, mean = (df[df.method == m].sort_values("image_id") for m in ("spy", "mean-fill"))
    assert list(spy.missing_fraction) == list(mean.missing_fraction)
    torch.testing.assert_close(torch.tensor(spy.missing_fraction.values, dtype=torch.float32),
                               (~known).flatten(1).float().mean(1))


def test_composite_keeps_known_pixels(registry, config):
    config.methods = ["spy"]
    config.masks = ["center"]
    run(config, registry, show_progress=False)
    images = registry.create("dataset", "tiny").images("test")
    known = torch.cat([c[1] for c in SpyMethod.calls])
    composite = torch.where(known, images, torch.full_like(images, 0.5))
    expected_psnr = 10 * torch.log10(1 / (composite.double() - images.double()).pow(2).flatten(1).mean(1))
    df = load_results(config.out).sort_values("image_id")
    torch.testing.assert_close(torch.tensor(df.psnr.values), expected_psnr)


def test_failing_method_is_recorded_and_run_goes_on(registry, config):
    config.methods = ["broken", "nan-out", "mean-fill"]
    outcome = run(config, registry, show_progress=False)
    errors = {r.method: r.error for r in outcome.failed}
    assert errors["broken"] == "RuntimeError: kaboom" and "NaN" in errors["nan-out"]
    assert set(load_results(config.out).method) == {"mean-fill"}
    record = json.loads(cell_path(config.out, "tiny", "center", "broken").read_text())
    assert record["status"] == "failed" and "kaboom" in record["traceback"]


def test_rerun_skips_finished_cells_and_force_redoes(registry, config):
    first = run(config, registry, show_progress=False)
    assert len(first.ran) == 2 and not first.skipped
    second = run(config, registry, show_progress=False)
    assert not second.ran and len(second.skipped) == 2
    config.force = True
    assert len(run(config, registry, show_progress=False).ran) == 2


def test_changed_options_redo_only_affected_cells(registry, config):
    run(config, registry, show_progress=False)
    config.options = {"random": {"missing": "0.5"}}
    outcome = run(config, registry, show_progress=False)
    assert [r.mask for r in outcome.ran] == ["random[missing=0.5]"]  # its own cell: the old one stays


def test_changed_seed_needs_another_folder_or_replace_folder(registry, config):
    run(config, registry, show_progress=False)
    config.seed = 1
    for force in (False, True):
        config.force = force
        with pytest.raises(UserError, match="choose another --out .* or add --replace-folder"):
            run(config, registry, show_progress=False)
    config.replace_folder = True
    assert not run(config, registry, show_progress=False).failed


@pytest.mark.parametrize("dataset,message", [
    ("nan-images", "NaN"), ("big-values", r"values in \[0.0.*, 255\]: expected \[0, 1\]"),
    ("flat-shape", "expected float N x C x H x W"),
])
def test_bad_images_fail_before_any_output(registry, config, dataset, message):
    config.datasets = [dataset]
    with pytest.raises(UserError, match=message):
        run(config, registry, show_progress=False)
    assert not config.out.exists()


@pytest.mark.parametrize("mask,message", [
    ("nothing-missing", "no missing pixel"), ("all-missing", "no known pixel"), ("wrong-shape", "returned shape"),
])
def test_bad_masks_fail_before_any_output(registry, config, mask, message):
    config.masks = [mask]
    with pytest.raises(UserError, match=message):
        run(config, registry, show_progress=False)
    assert not config.out.exists()


def test_mismatched_mask_shape_is_refused():
    from benchkit.masking import check_known

    with pytest.raises(UserError, match="expected bool"):
        check_known(torch.ones(2, 1, 8, 9, dtype=torch.bool), torch.rand(2, 1, 8, 8), "test")


def test_unknown_names_and_missing_data_fail_before_output(registry, config):
    for field, value, message in [("methods", ["nope"], "unknown method 'nope'"),
                                  ("masks", ["centre"], "did you mean 'center'"),
                                  ("metrics", ["psrn"], "did you mean 'psnr'"),
                                  ("datasets", ["folder:/does/not/exist"], "does not exist")]:
        setattr(config, field, value)
        with pytest.raises(UserError, match=message):
            run(config, registry, show_progress=False)
        assert not config.out.exists()
        config.methods, config.masks, config.metrics, config.datasets = ["mean-fill"], ["center"], ["psnr"], ["tiny"]


def test_unwritable_output(registry, config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config.out = blocker / "run"
    with pytest.raises(UserError, match="cannot write to results folder"):
        run(config, registry, show_progress=False)


def test_corrupt_cell_is_reported(registry, config):
    run(config, registry, show_progress=False)
    cell_path(config.out, "tiny", "center", "mean-fill").write_text("{truncated")
    with pytest.raises(UserError, match="is corrupt"):
        load_results(config.out)
    with pytest.raises(UserError, match="is corrupt"):
        run(config, registry, show_progress=False)


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_batch_sized_allocation_is_not_a_fresh_mapping_once_freed_memory_is_kept():
    """glibc's own accounting (mallinfo2: bytes in mmapped blocks) shows a 48 MiB block, a batch of
    64 RGB images of 256 px in float32, served from the heap rather than a mapping of its own, which
    it would be by default (glibc's threshold adapts to at most 32 MiB)."""
    from benchkit.run.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc before 2.33 has no mallinfo2")
    libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    assert keep_freed_memory()
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(48 << 20)
    during = libc.mallinfo2().hblkhd
    libc.free(block)
    assert block and during - before < 48 << 20
