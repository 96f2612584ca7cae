"""Sphinx configuration: Markdown pages (MyST), the hook reference from
mosfw/hookspecs.py docstrings, the state diagram with graphviz."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

project = "mosfw"
author = "the mosfw developers"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.napoleon",
    "mosfw_docs",
]
source_suffix = {".md": "markdown"}
master_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"
graphviz_output_format = "svg"
html_theme = "alabaster"
nitpicky = False
suppress_warnings = ["myst.xref_missing"]
