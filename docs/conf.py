"""Sphinx configuration: the guides (Markdown, through MyST) and a reference generated from the
docstrings of the code, so that the reference cannot drift from it. Built by `tox -e docs`, with
every warning an error."""

project = "herd"
copyright = "the herd authors"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
myst_heading_anchors = 4  # links to a guide's sections (`how-to/networks.md#port-forwards`) resolve
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
html_theme = "alabaster"
