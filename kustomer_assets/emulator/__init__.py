"""Local Kustomer API emulator for tests and demos; production code never imports it."""

from .dataset import Dataset, generate_dataset
from .server import Emulator, EmulatorConfig, serve_forever

__all__ = ["Dataset", "Emulator", "EmulatorConfig", "generate_dataset", "serve_forever"]
