"""nbops.promotion.wheelfile: the wheel a model package ships, checked against the format and installed by pip."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from nbops.promotion.wheelfile import wheel_name, write_wheel


def make_package(root: Path) -> Path:
    pkg = root / "my_model"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pathlib import Path\nDATA = (Path(__file__).parent / 'model.bin').read_bytes()\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "model.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"never shipped")
    return pkg


def build(root: Path, dest: str, **overrides) -> Path:
    options = dict(name="my_model", version="1.2.3", summary="a model", requires_python=">=3.9",
                   requires=["numpy==2.0.0"], readme="# my model\n", stored=["model.bin"])
    options.update(overrides)
    return write_wheel(root / dest, root / "my_model", **options)


def test_the_wheel_follows_the_format_and_stores_the_model_as_is(tmp_path):
    make_package(tmp_path)
    wheel = build(tmp_path, "dist")
    assert wheel.name == wheel_name("my-model", "1.2.3") == "my_model-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        assert list(infos) == ["my_model/__init__.py", "my_model/model.bin", "my_model/sub/__init__.py",
                               "my_model-1.2.3.dist-info/METADATA", "my_model-1.2.3.dist-info/WHEEL",
                               "my_model-1.2.3.dist-info/RECORD"]
        assert infos["my_model/model.bin"].compress_type == zipfile.ZIP_STORED
        assert infos["my_model/__init__.py"].compress_type == zipfile.ZIP_DEFLATED
        record = archive.read("my_model-1.2.3.dist-info/RECORD").decode().splitlines()
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data), path
        metadata = archive.read("my_model-1.2.3.dist-info/METADATA").decode()
        assert "Name: my_model\nVersion: 1.2.3\n" in metadata and "Requires-Dist: numpy==2.0.0" in metadata
        assert metadata.endswith("\n\n# my model\n")
        assert "Root-Is-Purelib: true\nTag: py3-none-any" in archive.read("my_model-1.2.3.dist-info/WHEEL").decode()


def test_a_digest_the_caller_has_is_used_and_the_bytes_are_reproducible(tmp_path):
    pkg = make_package(tmp_path)
    known = hashlib.sha256((pkg / "model.bin").read_bytes()).hexdigest()
    first = build(tmp_path, "a", sha256={"model.bin": known})
    second = build(tmp_path, "b")
    assert first.read_bytes() == second.read_bytes()  # same RECORD whether hashed here or given
    wrong = build(tmp_path, "c", sha256={"model.bin": "00" * 32})
    with zipfile.ZipFile(wrong) as archive:  # given digests are trusted, not recomputed
        assert "my_model/model.bin,sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA," in archive.read(
            "my_model-1.2.3.dist-info/RECORD").decode()


def test_pip_installs_the_wheel(tmp_path):
    make_package(tmp_path)
    wheel = build(tmp_path, "dist", requires=[])
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    check = "import my_model, my_model.sub; assert my_model.DATA == bytes(range(256)) * 4096; print('ok')"
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True)
    assert out.stdout == "ok\n", out.stderr
    record = next(target.glob("my_model-1.2.3.dist-info")) / "RECORD"
    assert "my_model/model.bin" in record.read_text()
