"""Sphinx configuration of jhpo's documentation (MyST markdown pages, autodoc API)."""

import sys
from pathlib import Path

# Document the checkout these pages sit in, not some other installed copy of jhpo.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jhpo  # noqa: E402  (after the path is set)

project = "jhpo"
author = "the jhpo authors"
release = jhpo.__version__
version = jhpo.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "design"]  # design notes are read in the repository

myst_heading_anchors = 3  # links such as [text](cli.md#jhpo-show) reach a section

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}

html_theme = "alabaster"
html_title = f"jhpo {release}"
