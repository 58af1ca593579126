"""flowbus: typed workflow signals that travel over Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flowbus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
