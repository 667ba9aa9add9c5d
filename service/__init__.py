"""patina-serve: hybrid project search and an agent-safe secrets broker."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("patina-serve")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

NAME = "patina-serve"
