"""The header of an array stored in an ``.npz`` (a zip of ``.npy`` members), read without
loading the array: what code that opens a hostile ``.npz`` checks before trusting it.

>>> import io, zipfile, numpy as np
>>> buf = io.BytesIO(); np.savez(buf, a=np.zeros((2, 3), np.float32))
>>> with zipfile.ZipFile(buf) as zf:
...     shape, dtype, start = npy_header(zf, zf.infolist()[0])
>>> shape, str(dtype)
((2, 3), 'float32')
"""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np


def npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], Any, int]:
    """``(shape, dtype, offset of the data)`` of member ``info``; ValueError for a ``.npy``
    version other than 1.0 and 2.0."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"its member {info.filename} has .npy version {version}")
        return shape, dtype, fh.tell()
