"""setuptools hook for the Redis sink's C part (pyproject.toml holds the
rest): the cffi module ``mosfw_redis._resp``, from native/ by
build_resp.py. ``make build`` runs ``setup.py build_ext --inplace`` here
for a checkout."""

from setuptools import setup

setup(cffi_modules=["build_resp.py:ffibuilder"])
