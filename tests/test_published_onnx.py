"""``onnx:FILE``: ONNX files in the two published conventions (Carve's LaMa export, MI-GAN's
pipeline) built here with onnx.helper and random weights, and the refusals."""
import numpy as np
import pytest
import torch
from PIL import Image

import benchkit
from benchkit.cli import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _save(path, nodes, inputs, outputs, initializers=(), domains=()):
    graph = helper.make_graph(nodes, "inpainter", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def carve_lama(path, weight, size=(64, 64)):
    """Carve's layout: float image and mask (1 = hole) of a fixed size, batch 1, the output
    composited by the model and in [0, 255]: here sigmoid(1x1 conv of cat(image * (1 - mask), mask))."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Sub", ["one", "mask"], ["keep"]), helper.make_node("Mul", ["image", "keep"], ["masked"]),
             helper.make_node("Concat", ["masked", "mask"], ["x"], axis=1),
             helper.make_node("Conv", ["x", "w"], ["y"]), helper.make_node("Sigmoid", ["y"], ["p"]),
             helper.make_node("Mul", ["p", "mask"], ["fill"]), helper.make_node("Add", ["fill", "masked"], ["c"]),
             helper.make_node("Mul", ["c", "scale"], ["output"])]
    inputs = [helper.make_tensor_value_info("image", f, [1, 3, *size]),
              helper.make_tensor_value_info("mask", f, [1, 1, *size])]
    consts = [numpy_helper.from_array(np.float32(1.0).reshape(()), "one"),
              numpy_helper.from_array(np.float32(255.0).reshape(()), "scale"),
              numpy_helper.from_array(weight.astype(np.float32), "w")]
    return _save(path, nodes, inputs, [helper.make_tensor_value_info("output", f, None)], consts)


def migan_echo(path):
    """MI-GAN's pipeline layout (uint8 image and mask, 255 = known, any size, uint8 ``result``),
    returning its mask input as the image: shows the polarity it was given."""
    u8 = TensorProto.UINT8
    nodes = [helper.make_node("Expand", ["mask", "shape"], ["result"])]
    inputs = [helper.make_tensor_value_info("image", u8, [1, 3, "h", "w"]),
              helper.make_tensor_value_info("mask", u8, [1, 1, "h", "w"])]
    shape = numpy_helper.from_array(np.array([1, 3, 1, 1], dtype=np.int64), "shape")
    return _save(path, nodes, inputs, [helper.make_tensor_value_info("result", u8, None)], [shape])


def _photos(root, n=3, size=(20, 28)):
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    return photos


def test_carve_lama_is_resized_run_one_at_a_time_and_scaled_back(tmp_path):
    from benchkit.builtins.published.onnx import OnnxInpainter

    weight = np.random.default_rng(0).normal(size=(3, 4, 1, 1))
    method = OnnxInpainter(str(carve_lama(tmp_path / "lama.onnx", weight)), family="lama")
    method.load(torch.device("cpu"))
    assert method.convention.size == (64, 64) and method.one_at_a_time
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.random((2, 3, 20, 28), dtype=np.float32))
    known = torch.from_numpy(rng.random((2, 1, 20, 28)) > 0.3)
    got = method.inpaint(images * known, known)
    # written out: bicubic to 64x64 (mask nearest), the model in numpy, /255, bicubic back
    import torch.nn.functional as F

    image = F.interpolate(images * known, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
    hole = (F.interpolate((~known).float(), size=(64, 64), mode="nearest") > 0.5).float()
    image, hole = image.numpy(), hole.numpy()
    masked = image * (1 - hole)
    x = np.concatenate([masked, hole], axis=1)
    p = 1 / (1 + np.exp(-np.einsum("oc,bchw->bohw", weight[:, :, 0, 0], x)))
    out = torch.from_numpy((p * hole + masked).astype(np.float32))
    expected = F.interpolate(out, size=(20, 28), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_migan_gets_uint8_and_255_for_known_and_runs_in_a_table(tmp_path, capsys):
    from benchkit.builtins.published.onnx import OnnxInpainter

    path = migan_echo(tmp_path / "migan.onnx")
    method = OnnxInpainter(str(path), family="migan")
    method.load(torch.device("cpu"))
    known = torch.rand(2, 1, 13, 17) > 0.5
    out = method.inpaint(torch.rand(2, 3, 13, 17) * known, known)
    torch.testing.assert_close(out, known.float().expand(-1, 3, -1, -1))  # 255 = known, back as 1.0
    weight = np.random.default_rng(0).normal(size=(3, 4, 1, 1))
    lama = carve_lama(tmp_path / "lama.onnx", weight)
    run = ["run", "--methods", f"onnx:{lama}[family=lama,name=carve],onnx:{path}[family=migan,name=echo],telea",
           "--datasets", f"folder:{_photos(tmp_path)}", "--masks", "center", "--metrics", "psnr,known-l1",
           "--out", str(tmp_path / "R")]
    assert main(run) == 0, capsys.readouterr().err
    df = benchkit.load_results(tmp_path / "R")
    assert set(df.method) == {"carve", "echo", "telea"} and np.isfinite(df.psnr).all()


def test_a_convention_the_session_contradicts_and_custom_operators_are_refused(tmp_path, capsys):
    migan = migan_echo(tmp_path / "migan.onnx")
    weight = np.random.default_rng(0).normal(size=(3, 4, 1, 1))
    lama = carve_lama(tmp_path / "lama.onnx", weight)
    custom = _save(tmp_path / "custom.onnx", [helper.make_node("Inpaint", ["image", "mask"], ["out"],
                                                               domain="com.example")],
                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8]),
                    helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 8, 8])],
                   [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], domains=["com.example"])
    outside = tmp_path / "model" / "outside.onnx"
    outside.parent.mkdir()
    model = onnx.load(str(lama))
    weights = next(t for t in model.graph.initializer if t.name == "w")
    (tmp_path / "weights.bin").write_bytes(weights.raw_data)  # beside the folder, not in it
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="../weights.bin")
    onnx.save(model, str(outside))
    big = tmp_path / "big"  # larger than the 64x64 a fixed-size model takes
    big.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(big / f"{i}.png")
    cases = ((f"onnx:{migan}[family=lama]", "is tensor(uint8), but the convention says scale=unit"),
             (f"onnx:{lama}[family=migan]", "is tensor(float), but the convention says scale=byte"),
             (f"onnx:{lama}[family=lama,strategy=pad]", "takes 64x64 images, smaller than"),
             (f"onnx:{custom}", "uses the custom operator domain 'com.example'"),
             (f"onnx:{outside}", "names the weight file ../weights.bin outside its folder"),
             (f"onnx:{tmp_path / 'lama.onnx.missing'}", "does not exist"))
    for spec, message in cases:
        out = tmp_path / "R"
        code = main(["run", "--methods", spec, "--masks", "center", "--n-images", "2", "--datasets",
                     f"folder:{big}[size=80]", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, (spec, err)
        assert not out.exists()
