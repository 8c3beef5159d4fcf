"""Sphinx configuration of the cefl-zoo documentation.

Build (offline, warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -b doctest docs docs/_build/doctest   # run the guides' code

The model-zoo and benchmark tables are generated at build time from the registry and
from ``benchmarks/results/*.json`` by ``docs/_ext/cefl_docs.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent

# The docs never download anything: autodoc imports cefl_zoo (which imports
# huggingface_hub), and the doctests load only local or packaged weights. Must be set
# before huggingface_hub is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(DOCS / "_ext"))
if str(REPO) not in sys.path:  # a checkout that is not pip-installed
    sys.path.insert(0, str(REPO))

import cefl_zoo

# -- project ---------------------------------------------------------------------------
project = "cefl-zoo"
author = "The cefl-zoo developers"
copyright = "The cefl-zoo developers"
release = cefl_zoo.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "cefl_docs",
    "external_links",
]
# No intersphinx: the build must work without network access. external_links links the
# torch / numpy / standard-library / huggingface_hub names the API uses to their docs.

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
root_doc = "index"
default_role = "py:obj"
# Every cross-reference must resolve (to these docs or, through external_links, to
# another project's), so -W fails on a name that would render as dead text.
nitpicky = True
# cefl_docs resolves every reference to a cefl_zoo object to where it is documented and
# reports (as a warning, so -W fails) references to cefl_zoo names that do not exist.
cefl_docs_check_references = True

# -- autodoc / napoleon / autosummary ----------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = True
autosummary_generate = False  # tables only; every object is documented on its module page
autosummary_imported_members = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_attr_annotations = True
napoleon_custom_sections = ["Shape", ("Keys", "params_style")]

# -- doctest: the guides' code blocks ----------------------------------------------------
# Only explicit ``.. doctest::`` / ``.. testcode::`` blocks of the guides run here; the
# ``>>>`` examples in docstrings run under pytest (``--doctest-modules``).
doctest_test_doctest_blocks = ""
doctest_global_setup = f"""
import os, tempfile
os.environ.setdefault("HF_HUB_OFFLINE", "1")
repo_dir = {str(REPO)!r}
_docs_cwd = os.getcwd()
_docs_tmp = tempfile.mkdtemp(prefix="cefl-docs-")
os.chdir(_docs_tmp)
import cefl_zoo as _cefl_zoo
# Blocks that need the weights shipped inside the package run only where they exist.
SYNTHETIC_WEIGHTS = _cefl_zoo.get_pretrained_cfg("ceflnet_tiny.synthetic").has_weights
"""
doctest_global_cleanup = """
import shutil
os.chdir(_docs_cwd)
shutil.rmtree(_docs_tmp, ignore_errors=True)
"""

# -- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"cefl-zoo {release}"
html_static_path = ["_static"]
html_css_files = ["cefl.css"]
html_show_sourcelink = False
html_theme_options = {
    "source_repository": "https://github.com/cefl-zoo/cefl-zoo",
    "source_branch": "main",
    "source_directory": "docs/",
}
pygments_style = "sphinx"
