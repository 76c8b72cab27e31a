"""tfe-accel build: setuptools drives CMake (pybind11's cmake_example pattern).

Honours CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL and TFE_ACCEL_CUDA=ON|OFF|AUTO (default AUTO); uses Ninja when present.
The TF op library is compiled with the flags of the TensorFlow importable by this Python, so build
in the environment that will run it: `pip install --no-build-isolation .` (an isolated build env
would compile against whatever TensorFlow pip picks for it, and the version guard would then refuse
the installed one). Any TF minor 2.12-2.21 works; constraints/tf2.<minor>.txt pin stacks known to work.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def read_version():
    text = (ROOT / "python" / "tfe_accel" / "_version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def built_tf_minor():
    """The TensorFlow minor ("2.21") the op library is compiled against here: the one installed in
    the building environment (no import: just its metadata). None without TensorFlow (an sdist, or a
    native-only build)."""
    import importlib.metadata as md

    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return ".".join(md.version(dist).split(".")[:2])
        except md.PackageNotFoundError:
            continue
    return None


# A binary (wheel, `pip install .`, editable) holds an op library for exactly one TF minor: it names
# that minor in its version's local label (tfe_accel-0.1.0+tf2.21-...whl) and requires it; the sdist
# compiles for whichever TF 2.12-2.21 the building environment has.
TF_MINOR = None if "sdist" in sys.argv else built_tf_minor()
ONNX_REQUIREMENT = "onnx<1.16" if TF_MINOR == "2.12" else "onnx"  # the reference stack keeps its pin
if TF_MINOR:
    _maj, _min = (int(v) for v in TF_MINOR.split("."))
    TF_REQUIREMENT = f"tensorflow>={_maj}.{_min},<{_maj}.{_min + 1}"
    VERSION = f"{read_version()}+tf{TF_MINOR}"
else:
    TF_REQUIREMENT = "tensorflow>=2.12,<2.22"
    VERSION = read_version()


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


# Artifacts CMake writes next to _native (copied into the source tree for editable installs).
EXTRA_ARTIFACTS = ("_tfe_accel_ops.so", "_build_info.json")


# Installed at the top of site-packages: installs TF Encrypted's compatibility shims at interpreter
# start, so `import tf_encrypted` works on new stacks without importing tfe_accel first.
COMPAT_PTH = "tfe_accel_compat.pth"


class BuildPy(build_py):
    def run(self):
        super().run()
        self.copy_file(str(ROOT / "python" / COMPAT_PTH), str(Path(self.build_lib) / COMPAT_PTH))

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / COMPAT_PTH)]


class CMakeBuild(build_ext):
    def copy_extensions_to_source(self):
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            for name in EXTRA_ARTIFACTS:
                src = Path(regular_file).parent / name
                if src.exists():
                    self.copy_file(str(src), str(Path(inplace_file).parent / name))

    def build_extension(self, ext):
        # The artifacts go into the package directory of this extension's output.
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        # A persistent CMake build tree under the source root keeps rebuilds incremental
        # (editable installs otherwise build in a fresh temporary directory each time).
        tag = f"cmake-py{sys.version_info[0]}{sys.version_info[1]}-tf{TF_MINOR or 'none'}"
        if not (self.inplace or getattr(self, "editable_mode", False)):
            tag += "-wheel"  # `pip install .` / wheels: never reconfigure the editable tree
        build_temp = ROOT / "build" / tag
        build_temp.mkdir(parents=True, exist_ok=True)
        cfg = "Debug" if self.debug else "Release"
        args = [
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DTFE_ACCEL_OUTPUT_DIR={out_dir}",
            f"-DTFE_ACCEL_VERSION={read_version()}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
        ]
        cuda = os.environ.get("TFE_ACCEL_CUDA", "").strip().upper()
        if cuda:  # ON / OFF / AUTO (unset: CMake's default, AUTO)
            args.append("-DTFE_ACCEL_CUDA=" + {"1": "ON", "0": "OFF"}.get(cuda, cuda))
        if "CMAKE_ARGS" in os.environ:
            args += [a for a in os.environ["CMAKE_ARGS"].split(" ") if a]
        if shutil.which("ninja") and not any(a.startswith("-G") for a in args):
            args += ["-G", "Ninja"]
        build_args = ["--config", cfg]
        if "CMAKE_BUILD_PARALLEL_LEVEL" not in os.environ:
            build_args += ["--parallel", str(os.cpu_count() or 2)]
        cache = build_temp / "CMakeCache.txt"
        if cache.exists() and "Ninja" in args and "CMAKE_GENERATOR:INTERNAL=Ninja" not in cache.read_text():
            shutil.rmtree(build_temp)
            build_temp.mkdir(parents=True)
        subprocess.run(["cmake", str(ROOT), *args], cwd=build_temp, check=True)
        subprocess.run(["cmake", "--build", ".", *build_args], cwd=build_temp, check=True)


setup(
    name="tfe-accel",
    version=VERSION,
    description="Fused C++/CUDA kernels and an accelerated ABY3 protocol for TF Encrypted",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.14",
    package_dir={"": "python"},
    packages=find_packages("python"),
    py_modules=["tfe_accel_launcher", "tfe_accel_compat"],
    package_data={"tfe_accel": ["data/*", "_build_info.json"]},
    ext_modules=[CMakeExtension("tfe_accel._native")],
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPy},
    install_requires=[
        # The TF minor the op library was compiled for (any of 2.12-2.21; tfe_accel_compat adapts
        # TFE 0.9.1 to it). Per-minor stacks known to work: constraints/tf2.<minor>.txt.
        TF_REQUIREMENT,
        "tf-encrypted==0.9.1",
        ONNX_REQUIREMENT,  # TFE's converter; onnx >= 1.19 (no onnx.mapping) works through tfe_accel_compat
        "numpy",  # the range the installed TF requires
        "tqdm",
        "cryptography>=42",  # certificates for the mutual-TLS links (tfe_accel.tls)
        "matplotlib",
    ],
    entry_points={"console_scripts": ["tfe-accel=tfe_accel_launcher:run"]},
    zip_safe=False,
)
