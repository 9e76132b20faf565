"""The installed jhpo's version, read from the package metadata (pyproject.toml)."""

from importlib import metadata

try:
    __version__ = metadata.version("jhpo")
except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
