"""finder.embed.registry: the registry as plain data, build by name or file, identity, and
the fixed-shape batches of every backbone (run on a real Keras model with random weights)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finder.embed import identity, registry
from finder.embed.identity import BackboneInfo
from finder.embed.registry import BACKBONES, build
from finder.errors import BackboneError
from finder.show.text import error_line
from tests.conftest import REPO


def test_import_does_not_load_tensorflow():
    code = (
        "import finder.embed.registry, finder.embed.runtime, finder.embed.pipeline, sys; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_registry_is_plain_data():
    assert registry.DEFAULT_BACKBONE == "vgg16"
    for name, spec in BACKBONES.items():
        assert spec.name == name and spec.description
        assert callable(spec.builder)
    assert BACKBONES["vgg16"].gflops == pytest.approx(30.9)
    light = min(BACKBONES["mobilenetv3-large"].gflops, BACKBONES["efficientnetv2-b0"].gflops)
    assert light * 6 < BACKBONES["vgg16"].gflops


def test_unknown_name_lists_choices():
    with pytest.raises(BackboneError) as e:
        build("alexnet", weights=None)
    msg = str(e.value)
    assert "alexnet" in msg and "vgg16" in msg and "tflite" in msg and "\n" not in msg


def test_unknown_model_file_type(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"x")
    with pytest.raises(BackboneError, match="model.onnx"):
        build(model=str(p))


def test_info_roundtrip_and_same_as():
    info = BackboneInfo("vgg16", "fc1", 4096, "imagenet", "abcd" * 4, (224, 224))
    d = json.loads(json.dumps(info.to_dict()))
    assert BackboneInfo.from_dict(d) == info
    assert info.same_as(BackboneInfo("vgg16", "fc1", 4096, "/x/w.h5", "abcd" * 4, (224, 224)))
    assert not info.same_as(BackboneInfo("vgg16", "fc2", 4096, "imagenet", "abcd" * 4, (224, 224)))
    assert not info.same_as(BackboneInfo("vgg16", "fc1", 4096, "imagenet", "ffff" * 4, (224, 224)))
    with pytest.raises(BackboneError):
        BackboneInfo.from_dict({"name": "vgg16"})


def test_identity_key_is_stable_and_one_for_records_and_infos():
    """The key is stored with every learned class: its format must not change."""
    info = BackboneInfo("vgg16", "fc1", 4096, "imagenet", "abcd" * 4, (224, 224))
    assert identity.identity_key(info) == "vgg16:fc1:4096:" + "abcd" * 4
    d = info.to_dict()
    assert identity.identity_key(d) == identity.identity_key(info)
    four = BackboneInfo("tflite", None, 1024, "/m.tflite", "ef01" * 4, (224, 224), views=4)
    assert identity.identity_key(four.to_dict()) == "tflite:None:1024:" + "ef01" * 4 + ":views4"
    assert identity.same_as(info, d) and not identity.same_as(info, four)


def test_describe_names_what_a_person_needs():
    assert identity.describe(None) == "none yet"
    info = BackboneInfo("vgg16", "fc1", 4096, "imagenet", "abcd" * 4, (224, 224))
    assert identity.describe(info) == "vgg16 fc1 4096-d" == info.describe()
    other = BackboneInfo("resnet50", None, 2048, "/w.h5", "abcd" * 4, (224, 224), views=2)
    assert identity.describe(other.to_dict()) == "resnet50 2048-d 2 views weights /w.h5"


def test_model_kind_by_file_ending():
    assert identity.model_kind("/a/b/m.TFLITE") == "tflite"
    for name in ("m.keras", "m.h5", "m.hdf5"):
        assert identity.model_kind(name) == "keras-file"
    with pytest.raises(BackboneError, match="m.onnx"):
        identity.model_kind("m.onnx")


def test_check_choice_refuses_another_backbone(tmp_path):
    from finder.errors import BackboneMismatch

    model = tmp_path / "m.tflite"
    recorded = BackboneInfo("tflite", None, 1024, str(model), "ab" * 8, (224, 224)).to_dict()
    C = identity.BackboneChoice
    for ok in (C(), C(model=str(model)), C(name="tflite"), C(views=1), C(weights="x")):
        identity.check_choice(ok, recorded, "LIB")
    for bad in (
        C(name="vgg16"),
        C(model=str(tmp_path / "other.tflite")),
        C(model=str(tmp_path / "m.keras")),
        C(views=2),
        C(layer="fc1"),
    ):
        with pytest.raises(BackboneMismatch) as e:
            identity.check_choice(bad, recorded, "LIB")
        assert "LIB" in str(e.value) and "cannot mix" in str(e.value)


def test_precision_is_part_of_the_identity_and_old_records_mean_float32():
    info = BackboneInfo("vgg16", "fc1", 4096, "none", "random-seed0", (224, 224))
    old = info.to_dict()
    del old["precision"]  # recorded before precisions were
    assert BackboneInfo.from_dict(old).precision == "float32"
    assert identity.same_as(info, old)
    bf16 = BackboneInfo(
        "vgg16", "fc1", 4096, "none", "random-seed0", (224, 224), precision="bfloat16"
    )
    assert not bf16.same_as(info) and identity.identity_key(bf16).endswith(":bfloat16")
    assert identity.identity_key(info) == "vgg16:fc1:4096:random-seed0"  # unchanged for float32
    assert BackboneInfo.from_dict(json.loads(json.dumps(bf16.to_dict()))) == bf16
    with pytest.raises(BackboneError, match="float8"):
        BackboneInfo.from_dict({**old, "precision": "float8"})


def test_check_choice_refuses_another_precision():
    from finder.errors import BackboneMismatch, UsageError

    old = BackboneInfo("vgg16", "fc1", 4096, "none", "random-seed0", (224, 224)).to_dict()
    del old["precision"]
    C = identity.BackboneChoice
    for ok in (C(precision="float32"), C(precision="auto"), C(name="vgg16", precision="float32")):
        identity.check_choice(ok, old, "LIB")
    with pytest.raises(BackboneMismatch) as e:
        identity.check_choice(C(precision="bfloat16"), old, "LIB")
    msg = str(e.value)
    assert "LIB" in msg and "float32" in msg and "bfloat16" in msg and "\n" not in msg
    bf16 = {**old, "precision": "bfloat16"}
    identity.check_choice(C(precision="bfloat16"), bf16, "LIB")
    with pytest.raises(BackboneMismatch, match="cannot mix"):
        identity.check_choice(C(precision="float32"), bf16, "LIB")
    with pytest.raises(UsageError) as refused:
        identity.check_choice(C(precision="half"), bf16, "LIB")
    said = error_line(refused.value)  # as the command line says it
    assert said.startswith("--precision must be one of auto, float32, bfloat16"), said


def test_pick_precision_by_backbone_and_cpu(monkeypatch):
    monkeypatch.setattr(registry.runtime, "gpus", lambda: [])
    monkeypatch.setattr(registry.runtime, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert registry.pick_precision(BACKBONES["vgg16"], "auto").precision == "bfloat16"
    assert registry.pick_precision(BACKBONES["vgg16"], "float32").precision == "float32"
    for spec in BACKBONES.values():  # auto picks bfloat16 only where it was measured faster
        want = "bfloat16" if spec.bfloat16 else "float32"
        assert registry.pick_precision(spec, "auto").precision == want
    monkeypatch.setattr(registry.runtime, "cpu_flags", lambda: {"avx2", "fma"})
    chosen = registry.pick_precision(BACKBONES["vgg16"], "auto")
    assert chosen.precision == "float32" and "no native bfloat16" in chosen.reason
    # asked for, it is honoured even where it is slow
    assert registry.pick_precision(BACKBONES["vgg16"], "bfloat16").precision == "bfloat16"
    # model files run as saved
    assert registry.pick_precision(BACKBONES["tflite"], "auto").precision == "float32"
    with pytest.raises(BackboneError, match="runs as its model file says"):
        registry.pick_precision(BACKBONES["tflite"], "bfloat16")
