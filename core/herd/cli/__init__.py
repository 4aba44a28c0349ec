"""The `herd` command: `run`, `plugins`, `doctor`, `devices`, `clean` and `--version`."""
