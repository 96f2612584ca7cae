"""setuptools hook for the native extensions (pyproject.toml holds the rest):
the cffi engine module ``mosfw._native``, the C-API dispatch loop
``mosfw._dispatch`` (native/python/dispatch.c) and the tracker sample's own
C part, ``samples/tracker/_zeek`` (an observer of the engine, built on its
public header only)."""

from setuptools import Extension, setup

setup(
    cffi_modules=["native/build_ffi.py:ffibuilder", "samples/tracker/build_zeek.py:ffibuilder"],
    ext_modules=[
        Extension(
            "mosfw._dispatch",
            ["native/python/dispatch.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-strict-aliasing"],
        )
    ],
)
