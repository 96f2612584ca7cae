"""cffi builder for the Redis sink's C part -> ``mosfw_redis._resp``
(native/resp_frame.c: XADD commands of a batch of records in one pass,
without the GIL). Built by setup.py (``cffi_modules``) into the wheel by
``pip install ./plugins/redis_sink``, and in place (beside
``mosfw_redis/__init__.py``) by ``make build``. The sink works without it
(pure Python, slower: bench/README.md)."""

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef(
    """
size_t resp_lines_end(const uint8_t *data, size_t len, size_t max_lines, size_t *lines);
size_t resp_frame_bound(size_t len, size_t lines, size_t plen);
size_t resp_frame(const uint8_t *data, size_t len, const uint8_t *prefix, size_t plen, uint8_t *out);
"""
)
# (relative: setuptools refuses absolute source paths)
rel = os.path.relpath(HERE / "native", os.getcwd())
ffibuilder.set_source(
    "mosfw_redis._resp",
    '#include "resp_frame.h"',
    sources=[os.path.join(rel, "resp_frame.c")],
    include_dirs=[rel],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
