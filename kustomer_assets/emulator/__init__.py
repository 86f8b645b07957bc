"""Local Kustomer API emulator for tests and demos; production code never imports it."""

from .dataset import Dataset, generate_dataset
from .server import NO_SEARCH_KEY, Emulator, EmulatorConfig, serve_forever

__all__ = [
    "NO_SEARCH_KEY",
    "Dataset",
    "Emulator",
    "EmulatorConfig",
    "generate_dataset",
    "serve_forever",
]
