"""The plugin system: the hookspecs (each hook's contract), the value types that pass between the core and
plugins, and the manager that finds, loads and checks plugins."""
