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
# Every cross-reference must resolve, the type hints autodoc writes included; the standard
# library's are left unresolved, for the build has no network to fetch Python's inventory.
nitpicky = True
nitpick_ignore_regex = [("py:class", r"(pathlib|collections\.abc|os|typing|ipaddress)\.\w+|Path")]
