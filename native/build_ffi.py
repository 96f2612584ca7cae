"""cffi builder for mosfw's native engine -> ``mosfw._native``.

Out-of-line API mode: the C sources in this folder are compiled into the
extension together with a thin wrapper that includes only
``mosfw_api.h``. Environment switches (validated here):

``MOSFW_CFLAGS``
    extra compiler flags, e.g. ``-O0 -g`` for debugging.
``MOSFW_SANITIZE``
    ``1`` builds with ``-fsanitize=address,undefined`` (then Python must
    run with the ASan runtime preloaded; the test suite instead uses the
    standalone sanitizer driver built by ``make asan``).
"""

import os
import shlex
import sysconfig
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = [
    # layers, lowest first (docs/architecture.md; tests/native/test_layers.py checks them)
    "names.c",
    "packet.c",
    "ipfrag.c",
    "linktypes.c",
    "decap.c",
    "dgram.c",
    "flow_table.c",
    "map_guard.c",
    "source_ring.c",
    "source.c",
    "source_live.c",
    "source_set.c",
    "feed.c",
    "tcp_state.c",
    "tunnels.c",
    # features, attached on demand
    "stream_mem.c",
    "stream_buf.c",
    "stream_read.c",
    "pkt_arena.c",
    "timers.c",
    "filters.c",
    "feature_set.c",
    # the core on top
    "core.c",
    "core_loop.c",
    "core_end.c",
    "core_dgram.c",
    "core_api.c",
]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "mosfw_api.cdef").read_text())

extra = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]
extra += shlex.split(os.environ.get("MOSFW_CFLAGS", ""))
sanitize = os.environ.get("MOSFW_SANITIZE", "0")
if sanitize not in ("0", "1"):
    raise SystemExit(f"MOSFW_SANITIZE must be 0 or 1, not {sanitize!r}")
link_extra = []
if sanitize == "1":
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    link_extra += ["-fsanitize=address,undefined"]
else:
    # link-time optimisation: the packet loop crosses files (source.c,
    # core_loop.c, flow_table.c, tcp_state.c) on every packet; inlined
    # across them the bench capture reads ~7% faster
    # (-fno-semantic-interposition: calls between the engine's own
    # functions may be inlined although they are visible; without it
    # each goes through the PLT)
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    lto = "-flto=thin" if "clang" in cc else "-flto=auto"
    extra += [lto, "-fno-semantic-interposition"]
    link_extra += [lto, "-O2", "-fno-semantic-interposition"]

# Paths relative to the project root (setuptools runs the build there);
# absolute paths make setuptools refuse the sources.
rel = os.path.relpath(HERE, os.getcwd())
ffibuilder.set_source(
    "mosfw._native",
    '#include "mosfw_api.h"\n',
    sources=[os.path.join(rel, s) for s in SOURCES],
    include_dirs=[rel],
    libraries=["pcap", "m"],
    extra_compile_args=extra,
    extra_link_args=link_extra,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
