"""cffi builder for the tracker's own C part -> ``mosfw_tracker._zeek``.

Zeek's conn.log view (samples/tracker/native/) is an observer of the
engine's core: it includes only the engine's public header
(``mosfw_api.h``) for the types it shares (struct mosfw_flow, struct
mosfw_observer, struct mosfw_seg) and calls nothing in the engine; the
tracker hands its observer to the engine with ``Core.attach_observer``.

Built by the tracker's own setup.py (``cffi_modules``): into the wheel by
``pip install ./samples/tracker``, and in place (``_zeek.abi3.so`` beside
app.py, for ``-p samples/tracker`` from a checkout) by ``make build``. The
header comes from the installed engine, ``mosfw.get_include()`` (the
struct layouts must be those of the engine the tracker runs with); where
mosfw is not importable at build time (pip's isolated build environment)
from the checkout this folder is in, ``native/``.
"""

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["zeek_view.c", "zeek_history.c", "zeek_dgram.c", "zeek_record.c", "zeek_log.c"]

CDEF = """
struct mosfw_flow { ...; };
struct mosfw_observer { ...; };
struct zeek_log;
struct zeek_conn {
    uint64_t flow_id;
    uint8_t orig_side;
    uint8_t hist_len;
    char history[...];
    ...;
};
#define ZEEK_VIEW_ONLY ...
#define ZEEK_JSON ...
#define ZEEK_TSV ...
#define ZEEK_LOCAL_NETS_MAX ...
struct zeek_log *zeek_log_new(uint32_t slots, int format);
const struct mosfw_observer *zeek_log_observer(struct zeek_log *z);
void zeek_log_free(struct zeek_log *z);
size_t zeek_log_take(const struct zeek_log *z, const char **data);
const struct zeek_conn *zeek_log_view(const struct zeek_log *z, const struct mosfw_flow *f,
                                      uint32_t slot);
const char *zeek_conn_state(const struct zeek_conn *k);
uint64_t zeek_conn_size(const struct zeek_conn *k, unsigned role);
void zeek_conn_uid(const struct mosfw_flow *f, char *buf);
struct zeek_nets;
int zeek_log_add_local_net(struct zeek_log *z, unsigned family, const uint8_t *addr,
                           unsigned bits);
int zeek_log_add_checksum_net(struct zeek_log *z, unsigned family, const uint8_t *addr,
                              unsigned bits);
const struct zeek_nets *zeek_log_nets(const struct zeek_log *z);
int zeek_is_local(const struct zeek_nets *nets, unsigned family, const uint8_t *addr);
size_t zeek_conn_record(const struct mosfw_flow *f, const struct zeek_conn *k,
                        const struct zeek_nets *nets, unsigned format, char *buf, size_t cap);
struct zeek_layers;
const struct zeek_layers *zeek_log_layers(const struct zeek_log *z, const struct mosfw_flow *f,
                                          uint32_t slot);
size_t zeek_conn_record_layers(const struct mosfw_flow *f, const struct zeek_conn *k,
                               const struct zeek_nets *nets, const struct zeek_layers *l,
                               unsigned format, char *buf, size_t cap);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)


def engine_include() -> str:
    """The folder holding the engine's public header, mosfw_api.h."""
    try:
        import mosfw
    except ImportError:
        checkout = HERE.parent.parent / "native"
        if (checkout / "mosfw_api.h").is_file():
            return str(checkout)
        raise SystemExit(
            "tracker: mosfw is not installed and this is not a mosfw checkout: install mosfw "
            "first, then `pip install --no-build-isolation ./samples/tracker`"
        ) from None
    return mosfw.get_include()


# paths relative to the tracker's folder (setuptools runs the build there)
rel = os.path.relpath(HERE / "native", os.getcwd())
ffibuilder.set_source(
    "mosfw_tracker._zeek",
    '#include "zeek.h"\n',
    sources=[os.path.join(rel, s) for s in SOURCES],
    include_dirs=[rel, engine_include()],
    # as the engine's build: calls between the files (the observer's
    # callback into the per-packet emulation and its history letters) are
    # inlined across them at link time, and hidden symbols (only the
    # module's init is exported) are called directly, not through the PLT
    extra_compile_args=[
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-fno-strict-aliasing",
        "-fvisibility=hidden",
        "-flto=auto",
    ],
    extra_link_args=["-flto=auto", "-O2", "-fvisibility=hidden"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
