"""Write a pure-Python wheel from a folder (stdlib only): the files, METADATA, WHEEL and RECORD.

A model package's wheel is simple — one import package, no build step — so it is written here
rather than by a build backend, which lets it:
* store files that are already compressed (a skops model is a zip of deflated arrays) instead of
  deflating them a second time: 1.5 s saved on a 50 MB model, for a wheel about as large;
* take a digest the caller already has (the manifest's sha256 of the model) for RECORD, so a
  large model is read once here, to copy it, and hashed nowhere;
* be byte-for-byte reproducible: entries sorted, fixed timestamps and permissions.

The format is PEP 427 / the wheel binary format spec and PEP 566 core metadata.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

#: 2020-02-02, as hatchling and other reproducible builders stamp wheel entries.
_TIMESTAMP = (2020, 2, 2, 0, 0, 0)
_FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--
_BLOCK = 1 << 20


def normalized(name: str) -> str:
    """The distribution name as wheel file names write it (PEP 427/503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_name(name: str, version: str) -> str:
    return f"{normalized(name)}-{version}-py3-none-any.whl"


def write_wheel(
    dest_dir: str | os.PathLike[str],
    package_dir: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    summary: str,
    requires_python: str,
    requires: Iterable[str] = (),
    readme: str = "",
    stored: Iterable[str] = (),
    sha256: Mapping[str, str] | None = None,
    generator: str = "nbops",
) -> Path:
    """Write `dest_dir/<name>-<version>-py3-none-any.whl` holding the import package `package_dir`.

    `stored`: file names (relative to `package_dir`) written uncompressed; `sha256`: hex digests
    the caller already computed, by the same relative names, used for RECORD instead of hashing.
    """
    package_dir = Path(package_dir)
    dist = normalized(name)
    dist_info = f"{dist}-{version}.dist-info"
    target = Path(dest_dir) / wheel_name(name, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    stored, known = set(stored), dict(sha256 or {})
    records: list[str] = []
    files = sorted(p for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    with zipfile.ZipFile(target, "w") as archive:
        for file in files:
            relative = file.relative_to(package_dir).as_posix()
            arcname = f"{package_dir.name}/{relative}"
            compression = zipfile.ZIP_STORED if relative in stored else zipfile.ZIP_DEFLATED
            digest, size = _add_file(archive, arcname, file, compression, known.get(relative))
            records.append(f"{arcname},sha256={digest},{size}")
        metadata = _metadata(dist, version, summary, requires_python, requires, readme)
        wheel = f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        for arcname, text in ((f"{dist_info}/METADATA", metadata), (f"{dist_info}/WHEEL", wheel)):
            data = text.encode("utf-8")
            archive.writestr(_info(arcname, zipfile.ZIP_DEFLATED), data)
            records.append(f"{arcname},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}")
        records.append(f"{dist_info}/RECORD,,")
        archive.writestr(_info(f"{dist_info}/RECORD", zipfile.ZIP_DEFLATED), "\n".join(records) + "\n")
    return target


def _metadata(dist: str, version: str, summary: str, requires_python: str, requires: Iterable[str], readme: str) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}", f"Summary: {summary}",
             f"Requires-Python: {requires_python}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        return "\n".join(lines) + "\n\n" + readme
    return "\n".join(lines) + "\n"


def _info(arcname: str, compression: int, size: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_TIMESTAMP)
    info.compress_type = compression
    info.external_attr = _FILE_MODE
    info.file_size = size  # lets zipfile choose ZIP64 up front for files over 2 GiB
    return info


def _add_file(archive: zipfile.ZipFile, arcname: str, file: Path, compression: int, known_sha256: str | None) -> tuple[str, int]:
    size = file.stat().st_size
    digest = None if known_sha256 else hashlib.sha256()
    with open(file, "rb") as source, archive.open(_info(arcname, compression, size), "w") as sink:
        for block in iter(lambda: source.read(_BLOCK), b""):
            if digest is not None:
                digest.update(block)
            sink.write(block)
    raw = bytes.fromhex(known_sha256) if known_sha256 else digest.digest()  # type: ignore[union-attr]
    return _b64(raw), size


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
