"""setuptools hook for the tracker's C part (pyproject.toml holds the rest):
the cffi module ``mosfw_tracker._zeek``, from native/ by build_zeek.py.
``make build`` runs ``setup.py build_ext --inplace`` here for a checkout
(``_zeek.abi3.so`` beside app.py)."""

from setuptools import setup
from setuptools.command.build_py import build_py

#: modules of this folder that build the package and are not part of it
BUILD_SCRIPTS = {"setup", "build_zeek"}


class build_py_app_only(build_py):
    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if m[1] not in BUILD_SCRIPTS]


setup(cmdclass={"build_py": build_py_app_only}, cffi_modules=["build_zeek.py:ffibuilder"])
