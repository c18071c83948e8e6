"""Reader and writer for the IDX format of MNIST and Fashion-MNIST (LeCun et al., 1998).

An IDX file is: two zero bytes, one type byte, one byte with the number of dimensions ``d``, ``d``
big-endian uint32 sizes, then the data in C order, big-endian. Files may be gzip-compressed (detected from
the gzip magic bytes, not the file name), as the Debian package ``dataset-fashion-mnist`` ships them.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzip or plain), in native byte order."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (header bytes {raw[:4]!r})")
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    expected = int(np.prod(shape)) * dtype.itemsize
    data = raw[4 + 4 * ndim :]
    if len(data) != expected:
        raise ValueError(f"{path}: header announces shape {shape} ({expected} bytes), file has {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as IDX; gzip-compressed if ``compress`` (default: when ``path`` ends in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    type_code = next(
        (
            code
            for code, dtype in IDX_TYPES.items()
            if dtype.newbyteorder("=") == array.dtype.newbyteorder("=")
        ),
        None,
    )
    if type_code is None:
        raise ValueError(
            f"IDX cannot store dtype {array.dtype}; accepted: {sorted(map(str, IDX_TYPES.values()))}"
        )
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(IDX_TYPES[type_code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
