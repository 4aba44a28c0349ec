"""herd under pytest: the pytest plugin, `machines` (machines as a fixture of any scope), and the
conformance kit that every backend passes."""

from herd.testing.fixtures import machines

__all__ = ["machines"]
