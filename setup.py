"""setuptools hook for the cffi extension (pyproject.toml holds the rest)."""
from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
