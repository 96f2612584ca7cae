"""setuptools hook for the native extensions (pyproject.toml holds the rest):
the cffi engine module ``mosfw._native`` and the C-API dispatch loop
``mosfw._dispatch`` (native/python/dispatch.c)."""
from setuptools import Extension, setup

setup(
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    ext_modules=[
        Extension(
            "mosfw._dispatch",
            ["native/python/dispatch.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-strict-aliasing"],
        )
    ],
)
