"""The package version: the one place it is written (setup.py passes it to CMake and C++)."""
__version__ = "0.1.0"
