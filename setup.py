"""setuptools hook for the native extensions (pyproject.toml holds the rest):
the cffi engine module ``mosfw._native``, the C-API dispatch loop
``mosfw._dispatch`` (native/python/dispatch.c), and the engine's public
header ``native/mosfw_api.h`` shipped as ``mosfw/include/mosfw_api.h`` for
extensions built against the engine (``mosfw.get_include()``; the tracker
sample's C part is one, built by its own package: samples/tracker)."""

import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PUBLIC_HEADERS = [
    "native/mosfw_api.h",
    "native/mosfw_tunnel.h",
    "native/mosfw_observer.h",
    "native/mosfw_feed.h",
]


class build_py_with_headers(build_py):
    """build_py, plus the public header into the package's ``include/``."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "mosfw", "include")
        self.mkpath(dest)
        for header in PUBLIC_HEADERS:
            self.copy_file(header, dest)

    def get_outputs(self, *args, **kwargs):
        outputs = super().get_outputs(*args, **kwargs)
        dest = os.path.join(self.build_lib, "mosfw", "include")
        return outputs + [os.path.join(dest, os.path.basename(h)) for h in PUBLIC_HEADERS]


setup(
    cmdclass={"build_py": build_py_with_headers},
    cffi_modules=["native/build_ffi.py:ffibuilder"],
    ext_modules=[
        Extension(
            "mosfw._dispatch",
            ["native/python/dispatch.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-fno-strict-aliasing"],
        )
    ],
)
