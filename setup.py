"""Build of the C++ extension ``hpo_bench._native`` (everything else is in pyproject.toml).

The extension is plain C++17 + OpenMP over raw buffers (csrc/*.cpp); ``csrc/bindings.cpp`` is the only
file that knows Python. ``pip install .`` and ``pip install -e .`` both build it.
"""
import glob
import os

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

_opt = os.environ.get("HPO_BENCH_CXXFLAGS", "-O3").split()

ext = Pybind11Extension(
    "hpo_bench._native",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=[*_opt, "-fopenmp"],
    extra_link_args=["-fopenmp"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
