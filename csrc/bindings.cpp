// Placeholder: the native kernels are being written (issue 3). Binds nothing yet.
#include <pybind11/pybind11.h>
PYBIND11_MODULE(_native, m) { m.doc() = "hpo_bench native kernels (C++17 + OpenMP)"; }
