"""The one compiled part of the package: the inference plan's kernels (scratch_models/inference/_kernels.c).

Everything else is declared in pyproject.toml. The extension is optional: without a C compiler or the Python
headers the install still succeeds (setuptools prints a warning) and the engine runs its NumPy path.
No NumPy C API: arrays cross through the buffer protocol, so build isolation needs only setuptools.
"""
import sys

from setuptools import Extension, setup

# GCC/Clang: -O3 unrolls the register tiles; contracting a*b+c into FMA is what the kernel is written for;
# the kernel splits small batches over POSIX threads.
POSIX = sys.platform != "win32"
COMPILE = ["-O3", "-ffp-contract=fast", "-pthread"] if POSIX else []
LINK = ["-pthread"] if POSIX else []

setup(ext_modules=[Extension("scratch_models.inference._kernels", ["scratch_models/inference/_kernels.c"],
                             extra_compile_args=COMPILE, extra_link_args=LINK, optional=True)])
