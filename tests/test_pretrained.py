"""Published checkpoints: the shared download cache (sha256 pins, one download per URL), member
extraction, the conversion of Cohen et al.'s and the robustness library's formats (checked against
forwards written out from the original key layouts), and the fetch_pretrained stage end to end
against a local HTTP server. Fixtures use the real layouts, prefixes and torch 1.x serialisation."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import threading
import types
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline_utils import load_script
from robust import checkpoint, pretrained
from robust.download import DataError, cache_path, cached_fetch, extract_member
from robust.io import sealed
from robust.models import build_model

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MEMBER = "models/cifar10/resnet110/noise_0.25/checkpoint.pth.tar"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a busy 2-core machine a second thread mostly waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- fixtures in the source formats


def random_state(arch: str, dataset: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The net's keys and shapes with random values, BN statistics included (so a mapping error
    in any tensor changes the logits)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in build_model(arch, dataset)[1].state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith(("running_var", ".weight")) and value.dim() == 1:
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif value.dim() == 1:  # biases and running means
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
        else:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * (1.0 / fan_in) ** 0.5
    return state


def cohen_file(state: dict, arch: str, parallel: bool = False) -> dict:
    """A checkpoint as Cohen et al.'s train.py saves it (Sequential(NormalizeLayer, net))."""
    prefix = "1.module." if parallel else "1."
    optimizer = {"state": {}, "param_groups": [{"lr": 0.001, "momentum": 0.9, "params": [0]}]}
    return {
        "epoch": 90,
        "arch": arch,
        "state_dict": {prefix + k: v for k, v in state.items()},
        "optimizer": optimizer,
    }


def robustness_file(state: dict, mean, std) -> dict:
    """A checkpoint as the robustness library saves its AttackerModel (DataParallel)."""
    model = {f"module.model.{k}": v for k, v in state.items()}
    model |= {f"module.attacker.model.{k}": v.clone() for k, v in state.items()}
    for prefix in ("module.normalizer", "module.attacker.normalize"):
        model[f"{prefix}.new_mean"] = torch.tensor(mean).view(3, 1, 1)
        model[f"{prefix}.new_std"] = torch.tensor(std).view(3, 1, 1)
    return {"model": model, "optimizer": {"state": {}}, "schedule": None, "epoch": 150}


def save_legacy(obj, path: Path) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)  # torch 1.x format
    return path


# ---------------------------------------------------------------- reference forwards


def _bn(x, sd, p):
    w, b = sd[f"{p}.weight"], sd[f"{p}.bias"]
    mean, var = sd[f"{p}.running_mean"], sd[f"{p}.running_var"]
    return F.batch_norm(x, mean, var, w, b, training=False, eps=1e-5)


def bearpaw_forward(sd, x):
    """Cohen et al.'s CIFAR ResNet from its keys: 3x3 stem; BasicBlocks, stride 2 in the first
    block of stages 2-3, shortcut 1x1 conv + BN named downsample; AvgPool(8); fc."""
    x = F.relu(_bn(F.conv2d(x, sd["conv1.weight"], padding=1), sd, "bn1"))
    for stage in (1, 2, 3):
        i = 0
        while f"layer{stage}.{i}.conv1.weight" in sd:
            p, s = f"layer{stage}.{i}", 2 if stage > 1 and i == 0 else 1
            out = F.relu(
                _bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=s, padding=1), sd, f"{p}.bn1")
            )
            out = _bn(F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(
                    F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=s), sd, f"{p}.downsample.1"
                )
            x, i = F.relu(out + x), i + 1
    return F.linear(F.avg_pool2d(x, 8).flatten(1), sd["fc.weight"], sd["fc.bias"])


def robustness_cifar_forward(sd, x):
    """The robustness library's CIFAR ResNet-50 from its keys: 3x3 stem, no max-pool; Bottlenecks
    (1x1, 3x3 with the stride, 1x1), shortcut 1x1 conv + BN; 4x4 average pool; linear."""
    x = F.relu(_bn(F.conv2d(x, sd["conv1.weight"], padding=1), sd, "bn1"))
    for stage in (1, 2, 3, 4):
        i = 0
        while f"layer{stage}.{i}.conv1.weight" in sd:
            p, s = f"layer{stage}.{i}", 2 if stage > 1 and i == 0 else 1
            out = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
            out = F.relu(
                _bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=s, padding=1), sd, f"{p}.bn2")
            )
            out = _bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            if f"{p}.shortcut.0.weight" in sd:
                x = _bn(F.conv2d(x, sd[f"{p}.shortcut.0.weight"], stride=s), sd, f"{p}.shortcut.1")
            x, i = F.relu(out + x), i + 1
    return F.linear(F.avg_pool2d(x, 4).flatten(1), sd["linear.weight"], sd["linear.bias"])


def torchvision_forward(sd, x):
    """torchvision's ResNet-50: the layout of Cohen et al.'s and the library's ImageNet nets."""
    from robust._torchvision import import_torchvision

    net = import_torchvision().models.resnet50(weights=None).eval()
    net.load_state_dict(sd)
    return net(x)


def normalised(x, mean, std):
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def images(size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def assert_same_logits(model, reference, x):
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- conversion


def test_robustness_resnet50_has_the_library_key_layout():
    keys = build_model("robustness_resnet50", "cifar10")[1].state_dict()
    assert "linear.weight" in keys and "fc.weight" not in keys
    assert "layer1.0.shortcut.0.weight" in keys and "layer1.1.shortcut.0.weight" not in keys
    assert tuple(keys["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
    assert tuple(keys["layer2.0.conv2.weight"].shape) == (128, 128, 3, 3)


@torch.no_grad()
def test_cohen_cifar_resnet110_equals_the_original_forward(tmp_path):
    state = random_state("cifar_resnet110", "cifar10")
    path = save_legacy(cohen_file(state, "cifar_resnet110"), tmp_path / "checkpoint.pth.tar")
    model, info = pretrained.convert(
        pretrained.read_source(path), "cohen", "cifar_resnet110", "cifar10"
    )
    ref = lambda x: bearpaw_forward(state, normalised(x, CIFAR_MEAN, CIFAR_STD))  # noqa: E731
    assert_same_logits(model, ref, images(32))
    assert info["source_arch"] == "cifar_resnet110" and info["source_epoch"] == 90


@torch.no_grad()
def test_robustness_cifar_resnet50_uses_the_checkpoint_normaliser(tmp_path):
    state = random_state("robustness_resnet50", "cifar10")
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)  # not the dataset's: the file's must win
    path = save_legacy(robustness_file(state, mean, std), tmp_path / "cifar_l2_0_5.pt")
    model, info = pretrained.convert(
        pretrained.read_source(path), "robustness", "robustness_resnet50", "cifar10"
    )
    assert_same_logits(
        model, lambda x: robustness_cifar_forward(state, normalised(x, mean, std)), images(32)
    )
    assert info["mean"] == pytest.approx(mean) and info["source_epoch"] == 150


@pytest.fixture(scope="module")
def imagenet_state():
    return random_state("resnet50", "imagenet")


@pytest.mark.parametrize("fmt", ["cohen", "robustness"])
@torch.no_grad()
def test_imagenet_resnet50_equals_torchvision(tmp_path, imagenet_state, fmt):
    if fmt == "cohen":  # the net was in DataParallel: keys 1.module.*
        source = cohen_file(imagenet_state, "resnet50", parallel=True)
    else:
        source = robustness_file(imagenet_state, IMAGENET_MEAN, IMAGENET_STD)
    path = save_legacy(source, tmp_path / "ckpt.pt")
    model, _ = pretrained.convert(pretrained.read_source(path), fmt, "resnet50", "imagenet")
    ref = lambda x: torchvision_forward(imagenet_state, normalised(x, IMAGENET_MEAN, IMAGENET_STD))  # noqa: E731
    assert_same_logits(model, ref, images(64))


def _converted_error(source, fmt="cohen", arch="cifar_resnet20") -> str:
    with pytest.raises(pretrained.PretrainedError) as err:
        pretrained.convert(source, fmt, arch, "cifar10")
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_unused_and_misshapen_tensors_are_named():
    state = random_state("cifar_resnet20", "cifar10")
    source = cohen_file(state, "cifar_resnet20")
    del source["state_dict"]["1.fc.bias"]
    assert "missing 1 (1.fc.bias)" in _converted_error(source)
    source = cohen_file(state, "cifar_resnet20")
    source["state_dict"]["1.extra.weight"] = torch.zeros(3)
    assert "unused 1 (1.extra.weight)" in _converted_error(source)
    source = cohen_file(state, "cifar_resnet20")
    source["state_dict"]["1.fc.weight"] = torch.zeros(5, 64)
    assert "size mismatch" in _converted_error(source) and "fc.weight" in _converted_error(source)
    source = cohen_file(state, "cifar_resnet20")
    source["state_dict"]["0.mean"] = torch.zeros(3)
    assert "outside '1.'" in _converted_error(source)
    assert "holds arch 'resnet50'" in _converted_error(cohen_file(state, "resnet50"))
    assert "no state_dict" in _converted_error({"model": {}})


def test_robustness_duplicates_must_agree():
    state = random_state("cifar_resnet20", "cifar10")
    source = robustness_file(state, CIFAR_MEAN, CIFAR_STD)
    source["model"]["module.attacker.model.fc.bias"] += 1.0
    assert "attacker's copy" in _converted_error(source, "robustness")
    source = robustness_file(state, CIFAR_MEAN, CIFAR_STD)
    del source["model"]["module.normalizer.new_std"]
    assert "normalizer.new_mean/new_std" in _converted_error(source, "robustness")


def test_a_pickle_needing_code_names_the_missing_global(tmp_path, monkeypatch):
    """A file written with dill references dill's helpers; the error names the global."""
    dill = types.ModuleType("dill")
    dill._dill = types.ModuleType("dill._dill")

    def _load_type(name):
        return getattr(__builtins__, name, None)

    _load_type.__module__, _load_type.__qualname__ = "dill._dill", "_load_type"
    dill._dill._load_type = _load_type
    monkeypatch.setitem(sys.modules, "dill", dill)
    monkeypatch.setitem(sys.modules, "dill._dill", dill._dill)

    class Typed:
        def __reduce__(self):
            return (_load_type, ("dict",))

    path = save_legacy({"model": {}, "schedule": Typed()}, tmp_path / "cifar_nat.pt")
    monkeypatch.delitem(sys.modules, "dill")
    monkeypatch.delitem(sys.modules, "dill._dill")
    with pytest.raises(pretrained.PretrainedError) as err:
        pretrained.read_source(path)
    message = str(err.value)
    assert "dill._dill._load_type" in message and "\n" not in message
    save_legacy(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(pretrained.PretrainedError, match="not a dict"):
        pretrained.read_source(tmp_path / "tensor.pt")


# ---------------------------------------------------------------- download cache and archives


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


def test_pinned_download_is_verified_cached_and_shared(tmp_path, server):
    folder, base, requests = server
    data = b"weights" * 1000
    (folder / "models.tar").write_bytes(data)
    url, cache = f"{base}/models.tar", tmp_path / "cache"
    # two jobs of one archive at once: one download, the other waits and reuses it
    threads = [threading.Thread(target=cached_fetch, args=(url, cache, _sha(data))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert requests == ["/models.tar"]
    (folder / "models.tar").unlink()  # served from the cache from now on
    path, digest = cached_fetch(url, cache, _sha(data))
    assert path == cache_path(cache, url) and path.read_bytes() == data and digest == _sha(data)
    path, digest = cached_fetch(url, cache, None)
    assert digest == _sha(data) and len(requests) == 1


def test_wrong_pin_is_one_line_and_leaves_no_file(tmp_path, server):
    folder, base, _ = server
    data = b"something else"
    (folder / "ckpt.pt").write_bytes(data)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        cached_fetch(f"{base}/ckpt.pt", cache, "0" * 64)
    message = str(err.value)
    assert "\n" not in message and "0" * 64 in message and _sha(data) in message
    assert _leftovers(cache) == []
    # A cached copy that no longer matches the pin is fetched again, then checked.
    cache_path(cache, f"{base}/ckpt.pt").write_bytes(b"stale")
    assert cached_fetch(f"{base}/ckpt.pt", cache, _sha(data))[1] == _sha(data)


def test_unpinned_download_returns_its_digest_and_refuses_web_pages(tmp_path, server):
    folder, base, _ = server
    (folder / "page").write_bytes(b"  <!DOCTYPE html><html>Confirm download</html>")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="web page"):
        cached_fetch(f"{base}/page", cache, None)
    assert _leftovers(cache) == []
    with pytest.raises(DataError, match="cannot fetch"):
        cached_fetch(f"{base}/absent", cache, None)


def _tar(members: dict[str, bytes], mode: str = "w:gz", link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return buffer.getvalue()


def test_extract_member_from_tar_and_zip(tmp_path):
    members = {f"./{MEMBER}": b"a", MEMBER.replace("0.25", "0.50"): b"b"}
    archive = tmp_path / "models.tgz"
    archive.write_bytes(_tar(members, link=MEMBER.replace("0.25", "1.00")))
    assert extract_member(archive, MEMBER, tmp_path / "out").read_bytes() == b"a"
    with pytest.raises(DataError, match="noise_0.50/checkpoint.pth.tar") as err:
        extract_member(archive, MEMBER.replace("0.25", "0.12"), tmp_path / "x")
    assert "no member" in str(err.value)
    with pytest.raises(DataError, match="not a regular file"):
        extract_member(archive, MEMBER.replace("0.25", "1.00"), tmp_path / "x")
    with pytest.raises(ValueError, match="without '..'"):
        extract_member(archive, "../etc/passwd", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    zipped = tmp_path / "models.zip"
    with zipfile.ZipFile(zipped, "w") as handle:
        handle.writestr(MEMBER, b"z")
    assert extract_member(zipped, MEMBER, tmp_path / "z").read_bytes() == b"z"
    (tmp_path / "plain").write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a tar or zip"):
        extract_member(tmp_path / "plain", MEMBER, tmp_path / "x")


# ---------------------------------------------------------------- the stage, end to end


@pytest.fixture
def scripts():
    """The stage scripts as modules (conftest drops the handlers they attach to the logger)."""
    return load_script


def _fetch_argv(url: str, sha256: str, tmp_path: Path, name: str = "cohen-025") -> list[str]:
    return [
        *("--model_id", name, "--url", url, "--sha256", sha256, "--format", "cohen"),
        *("--member", MEMBER, "--arch", "cifar_resnet20", "--dataset", "cifar10"),
        *("--kind", "gaussian", "--sigma", "0.25", "--norm", "l2", "--eps", "0.0"),
        *("--data", str(_prepared_cifar(tmp_path / "cifar10.pt"))),
        *("--cache_dir", str(tmp_path / "cache"), "--out", str(tmp_path / f"{name}.pt")),
        *("--record", str(tmp_path / f"{name}.json"), "--log", str(tmp_path / f"{name}.log")),
    ]


def _prepared_cifar(path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = {"dataset": "cifar10", "x_train": x, "y_train": torch.arange(8) % 10, "x_test": x}
    data |= {"y_test": torch.arange(8) % 10, "class_names": [str(i) for i in range(10)]}
    torch.save(sealed(data), path)
    return path


def test_fetch_pretrained_end_to_end(tmp_path, server, scripts, capsys):
    folder, base, _ = server
    state = random_state("cifar_resnet20", "cifar10")
    checkpoint_bytes = io.BytesIO()
    torch.save(
        cohen_file(state, "cifar_resnet20"), checkpoint_bytes, _use_new_zipfile_serialization=False
    )
    archive = _tar({MEMBER: checkpoint_bytes.getvalue(), "models/README": b"x"})
    (folder / "models.tgz").write_bytes(archive)
    url = f"{base}/models.tgz?id=1&confirm=t"  # a query string, as the released addresses have
    fetch = scripts("fetch_pretrained")

    assert fetch.main(_fetch_argv(url, "None", tmp_path)) == 0
    assert f"sha256 not pinned; the download has sha256 {_sha(archive)}" in capsys.readouterr().err
    model, ckpt = checkpoint.load_checkpoint(tmp_path / "cohen-025.pt")
    ref = lambda x: bearpaw_forward(state, normalised(x, CIFAR_MEAN, CIFAR_STD))  # noqa: E731
    assert_same_logits(model, ref, images(32))
    assert ckpt["params"] == {
        "kind": "gaussian",
        "sigma": 0.25,
        "norm": "l2",
        "eps": 0.0,
        "epochs": 90,
    }
    record = json.loads((tmp_path / "cohen-025.json").read_text())
    assert record["epochs"] == [] and record["pretrained"]["sha256"] == _sha(archive)
    assert (
        record["pretrained"]["sha256_pinned"] is False and record["pretrained"]["format"] == "cohen"
    )

    # A later stage takes it like a trained model.
    data = _prepared_cifar(tmp_path / "cifar10.pt")
    evaluate = [
        *("--model_id", "cohen-025", "--checkpoint", str(tmp_path / "cohen-025.pt")),
        *("--data", str(data), "--norm", "l2", "--eps", "0.25", "--steps", "1"),
        *("--step_factor", "2.5", "--no-random_start", "--skip", "1", "--max_images", "4"),
        *("--batch", "4", "--seed", "0", "--out", str(tmp_path / "eval.json")),
        *("--log", str(tmp_path / "eval.log"), "--device", "cpu"),
    ]
    assert scripts("evaluate").main(evaluate) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["train_sigma"] == 0.25

    # A wrong pin: one line, exit 2, nothing written and the cached copy removed.
    capsys.readouterr()
    assert fetch.main(_fetch_argv(url, "0" * 64, tmp_path, "bad")) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and _sha(archive) in errors[0]
    assert not (tmp_path / "bad.pt").exists() and _leftovers(tmp_path / "cache") == []
    assert fetch.main(_fetch_argv(url, _sha(archive), tmp_path, "pinned")) == 0
    assert "not pinned" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--sha256", "abc", "sha256 must be 64 lowercase hex digits or None"),
        ("--format", "dill", "unknown pretrained format 'dill'"),
        ("--member", "../x.pt", "must be a relative path without '..'"),
    ],
)
def test_bad_arguments_stop_before_any_download(tmp_path, scripts, capsys, flag, value, message):
    argv = _fetch_argv("http://127.0.0.1:9/never", "None", tmp_path)
    argv[argv.index(flag) + 1] = value
    assert scripts("fetch_pretrained").main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
