"""herd under pytest: the pytest plugin and the conformance kit that every backend passes."""
