"""Sphinx extension of the cefl-zoo docs: generated tables and API pages.

Everything a page shows about the code is generated from the code at build time, so the
docs cannot drift from it:

``.. cefl-model-zoo::``
    One row per registered architecture (:func:`cefl_zoo.list_models`): class, backbone,
    parameters and GMACs at its default input (:func:`cefl_zoo.model_complexity`, on the
    ``meta`` device: no memory, no arithmetic) and its weight sets with their status.
``.. cefl-weights-table::``
    :func:`cefl_zoo.models.weights.weights_table`, the registered weight sets.
``.. cefl-bench-table:: NAME [NAME ...]`` / ``.. cefl-bench-tables::``
    Tables rendered by ``benchmarks/tables.py`` from ``benchmarks/results/*.json`` (its
    Markdown is converted to docutils nodes here; the logic stays in ``tables.py``).
    ``cefl-bench-tables`` shows every block, the ones named in ``:skip:`` excepted.
``.. cefl-extras::``
    The install extras of ``pyproject.toml``.
``.. cefl-hub-entries::``
    The ``torch.hub`` entry points of ``hubconf.py``.
``.. cefl-cli::``
    ``cefl-zoo --help`` and the help of every sub-command, from the real parser.
``.. cefl-automodule:: MODULE``
    ``automodule`` with ``:members:`` for the names in ``MODULE.__all__``, leaving out
    those documented on a higher module (a package that re-exports them), so each
    object is documented once, where users import it from.

A ``missing-reference`` handler links a reference to any import path of a documented
object (``cefl_zoo.ClipEncoder``, ``cefl_zoo.models.clip_encoder.ClipEncoder`` and
``cefl_zoo.models.ClipEncoder`` all reach the one description). With
``cefl_docs_check_references = True`` a reference to a ``cefl_zoo`` name that exists
nowhere is a warning, so ``-W`` fails on it.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode, nested_parse_with_titles

__all__ = [
    "API_MODULES",
    "canonical_module",
    "markdown_to_nodes",
    "model_zoo_rows",
    "setup",
]

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]

#: Modules with an API page section, in the order that picks an object's home: the
#: first module whose ``__all__`` exports an object documents it (packages come before
#: their modules, so ``ClipEncoder`` is documented as ``cefl_zoo.models.ClipEncoder``).
#: ``tests/test_docs.py`` checks that every public module of the package is listed.
API_MODULES: tuple[str, ...] = (
    "cefl_zoo.registry",
    "cefl_zoo.models",
    "cefl_zoo.models.base",
    "cefl_zoo.models.clip_encoder",
    "cefl_zoo.models.eian",
    "cefl_zoo.models.ceflnet",
    "cefl_zoo.models.baselines",
    "cefl_zoo.models.backbones",
    "cefl_zoo.models.weights",
    "cefl_zoo.labels",
    "cefl_zoo.losses",
    "cefl_zoo.complexity",
    "cefl_zoo.transforms",
    "cefl_zoo.video",
    "cefl_zoo.video.io",
    "cefl_zoo.video.sampling",
    "cefl_zoo.data",
    "cefl_zoo.data.base",
    "cefl_zoo.data.factory",
    "cefl_zoo.data.generic",
    "cefl_zoo.data.synthetic",
    "cefl_zoo.data.cache",
    "cefl_zoo.data.folds",
    "cefl_zoo.data.datasets",
    "cefl_zoo.data.datasets.dfew",
    "cefl_zoo.data.datasets.ferv39k",
    "cefl_zoo.data.datasets.mafw",
    "cefl_zoo.data.datasets.afew",
    "cefl_zoo.data.datasets.mmi",
    "cefl_zoo.data.datasets.bu3dfe",
    "cefl_zoo.faces",
    "cefl_zoo.faces.detectors",
    "cefl_zoo.faces.tracking",
    "cefl_zoo.faces.cropper",
    "cefl_zoo.faces.cache",
    "cefl_zoo.hub",
    "cefl_zoo.hub_mixin",
    "cefl_zoo.model_card",
    "cefl_zoo.train",
    "cefl_zoo.train.config",
    "cefl_zoo.train.trainer",
    "cefl_zoo.train.evaluate",
    "cefl_zoo.train.kfold",
    "cefl_zoo.train.metrics",
    "cefl_zoo.train.checkpoint",
    "cefl_zoo.train.loaders",
    "cefl_zoo.train.schedule",
    "cefl_zoo.train.distributed",
    "cefl_zoo.train.plots",
    "cefl_zoo.predict",
    "cefl_zoo.predict.predictor",
    "cefl_zoo.predict.result",
    "cefl_zoo.predict.timeline",
    "cefl_zoo.predict.plot",
    "cefl_zoo.predict.inputs",
    "cefl_zoo.predict.benchmark",
    "cefl_zoo.cli",
    "cefl_zoo.commands",
    "cefl_zoo.commands.export",
    "cefl_zoo.commands.push",
)


# -- where an object is documented --------------------------------------------------------
def _exports(module: str) -> dict[str, Any]:
    mod = importlib.import_module(module)
    return {name: getattr(mod, name) for name in getattr(mod, "__all__", ())}


def _attr_documented(module: str, name: str) -> bool:
    """Whether ``module``'s source documents ``name`` with a ``#:`` comment or docstring."""
    from sphinx.pycode import ModuleAnalyzer

    try:
        return ("", name) in ModuleAnalyzer.for_module(module).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source: not documented there
        return False


def canonical_module(name: str, obj: Any) -> str | None:
    """The module of :data:`API_MODULES` that documents ``obj``, exported as ``name``.

    Classes and functions: the first module that exports them. Constants: the first
    exporter whose source documents them (``#:``), as autodoc finds their text there.
    """
    exporters = [m for m in API_MODULES if name in _exports(m) and _exports(m)[name] is obj]
    if not exporters:
        return None
    if not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)):
        documented = [m for m in exporters if _attr_documented(m, name)]
        if documented:
            return documented[0]
    return exporters[0]


def _shadowed(module: str) -> bool:
    """Whether the parent package binds the module's name to another object."""
    parent, _, leaf = module.rpartition(".")
    if not parent:
        return False
    return getattr(importlib.import_module(parent), leaf, None) is not importlib.import_module(
        module
    )


#: The private/special member names the running ``cefl-automodule`` lists.
_LISTED_MEMBERS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "cefl_listed_members", default=frozenset()
)


def _keep_listed_members(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """``autodoc-skip-member``: keep the members a directive lists."""
    return False if name in _LISTED_MEMBERS.get() else None


def _autodoc_lines(module: str, name: str, obj: Any) -> list[str]:
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return [f".. {kind}:: {module}.{name}", "   :members:", "   :show-inheritance:"]
    if callable(obj):
        return [f".. autofunction:: {module}.{name}"]
    return [f".. autodata:: {module}.{name}"]


class CeflAutomodule(SphinxDirective):
    """``automodule`` of one module, without the members documented on a higher module."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {
        "no-members": directives.flag,
        "private-members": directives.unchanged,
        "special-members": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        if module not in API_MODULES:
            raise self.error(f"cefl-automodule: {module} is not in cefl_docs.API_MODULES")
        lines = [f".. automodule:: {module}"]
        shadowed = _shadowed(module)
        if shadowed:
            # The package binds this module's name to something else (cefl_zoo.train.evaluate
            # is the function evaluate): the name is that object's, not the module's.
            lines.append("   :no-index:")
        after: list[str] = []
        if "no-members" not in self.options:
            exported = _exports(module)
            elsewhere = [n for n, obj in exported.items() if canonical_module(n, obj) != module]
            mine = [n for n in exported if n not in elsewhere]
            if mine and not shadowed:
                lines.append("   :members: " + ", ".join(mine))
                lines.append("   :member-order: bysource")
                lines.append("   :show-inheritance:")
            elif mine:
                after += ["", f".. py:currentmodule:: {module}"]
                for name in mine:
                    after += ["", *_autodoc_lines(module, name, exported[name])]
            if elsewhere:
                links = ", ".join(
                    f":py:obj:`~{canonical_module(n, exported[n])}.{n}`" for n in elsewhere
                )
                lines += ["", f"   Also exported here, documented where shown: {links}."]
        # The private and special members to show are kept by _keep_listed_members while
        # this directive's autodoc runs, not passed to automodule: before Sphinx 9 a name
        # in automodule's :private-members: that is not a module attribute (a method,
        # such as VideoDataset._load_items) is warned about.
        listed = {
            name.strip()
            for option in ("private-members", "special-members")
            for name in (self.options.get(option) or "").split(",")
            if name.strip()
        }
        token = _LISTED_MEMBERS.set(frozenset(listed))
        try:
            return self._parse(lines + after)
        finally:
            _LISTED_MEMBERS.reset(token)

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(
            self.state, StringList(lines, source=self.get_source_info()[0]), node
        )
        return node.children


# -- Markdown (as benchmarks/tables.py and weights_table write it) to docutils ---------------
_INLINE = re.compile(r"(`[^`]+`)|(\*\*[^*]+\*\*)|(<br\s*/?>)|(</?[A-Za-z][^>]*>)")


def _inline(text: str) -> list[list[nodes.Node]]:
    """Inline Markdown to node lists; ``<br>`` splits the text into several lines."""
    lines: list[list[nodes.Node]] = [[]]
    pos = 0
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            lines[-1].append(nodes.Text(text[pos : m.start()]))
        code, bold, br, _tag = m.groups()
        if code:
            lines[-1].append(nodes.literal(code[1:-1], code[1:-1]))
        elif bold:
            lines[-1].append(nodes.strong(bold[2:-2], bold[2:-2]))
        elif br:
            lines.append([])
        # other HTML tags (<sub>) are dropped; their text stays
        pos = m.end()
    if pos < len(text):
        lines[-1].append(nodes.Text(text[pos:]))
    return lines


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line.removeprefix("|")
    line = line.removesuffix("|")
    return [c.strip() for c in line.split("|")]


def _table(lines: list[str]) -> nodes.table:
    header = _cells(lines[0])
    aligns = [
        ("right" if c.endswith(":") and not c.startswith(":") else "left") for c in _cells(lines[1])
    ]
    rows = [_cells(line) for line in lines[2:]]
    table = nodes.table(classes=["cefl-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)

    def row(cells: list[str], head: bool) -> nodes.row:
        out = nodes.row()
        for i, cell in enumerate(cells + [""] * (len(header) - len(cells))):
            entry = nodes.entry()
            if i < len(aligns) and aligns[i] == "right":
                entry["classes"].append("cefl-right")
            for parts in _inline(cell):
                entry += nodes.paragraph("", "", *parts)
            out += entry
        return out

    thead = nodes.thead()
    thead += row(header, True)
    tbody = nodes.tbody()
    for cells in rows:
        tbody += row(cells, False)
    group += thead
    group += tbody
    return table


def markdown_to_nodes(text: str) -> list[nodes.Node]:
    """Pipe tables and paragraphs (with inline code, bold, ``<br>``, ``<sub>``) to nodes.

    ``<!-- ... -->`` comments are dropped; a paragraph wrapped in ``<sub>`` becomes a
    small "source" line.
    """
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    out: list[nodes.Node] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if (
            lines[0].lstrip().startswith("|")
            and len(lines) >= 2
            and set(lines[1].replace(" ", "")) <= set("|:-")
        ):
            out.append(_table(lines))
            continue
        joined = " ".join(line.strip() for line in lines)
        classes = ["cefl-source"] if joined.startswith("<sub>") else []
        for parts in _inline(joined):
            out.append(nodes.paragraph("", "", *parts, classes=classes))
    return out


# -- model zoo -------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def model_zoo_rows() -> list[list[str]]:
    """The rows of the model-zoo table, one per registered architecture."""
    import torch

    import cefl_zoo

    rows = []
    for name in cefl_zoo.list_models():
        with torch.device("meta"):
            model = cefl_zoo.create_model(name)
        cx = cefl_zoo.model_complexity(model)
        _, n, k, _, h, w = cx["input_shape"]
        backbone = model.config.get("backbone") or "-"
        weights = [
            f"``.{c.tag}``" + (f" ({c.dataset})" if c.dataset != c.tag else "") + f": {c.status}"
            for c in cefl_zoo.list_pretrained(f"{name}.*")
        ]
        rows.append(
            [
                f"``{name}``",
                f":py:class:`~cefl_zoo.{type(model).__name__}`",
                f"``{backbone}``",
                _fmt(cx["params"] / 1e6),
                _fmt(cx["macs"] / 1e9),
                f"{n} x {k} x {h} px" if h == w else f"{n} x {k} x {h}x{w}",
                ", ".join(weights) or "none (untrained architecture)",
            ]
        )
        del model
    return rows


class ModelZoo(SphinxDirective):
    """The registry as a table (see the module docstring)."""

    def run(self) -> list[nodes.Node]:
        header = [
            "Model",
            "Class",
            "Backbone",
            "Params (M)",
            "GMACs / video",
            "Default input",
            "Weight sets: status",
        ]
        lines = [".. list-table::", "   :header-rows: 1", "   :class: cefl-table", ""]
        for row in [header, *model_zoo_rows()]:
            lines.append(f"   * - {row[0]}")
            lines.extend(f"     - {cell}" for cell in row[1:])
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(
            StringList(lines, source="<cefl-model-zoo>"), self.content_offset, node
        )
        return node.children


class WeightsTable(SphinxDirective):
    """``weights_table()`` of :mod:`cefl_zoo.models.weights`."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from cefl_zoo.models.weights import weights_table

        return markdown_to_nodes(weights_table(self.arguments[0] if self.arguments else ""))


# -- benchmark tables ----------------------------------------------------------------------
def _bench_tables_module() -> types.ModuleType:
    path = REPO / "benchmarks" / "tables.py"
    name = "cefl_docs_bench_tables"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def bench_blocks() -> dict[str, str]:
    """``{block name: markdown}`` of ``benchmarks/tables.py`` for the committed results."""
    return _bench_tables_module().render_blocks()


class BenchTable(SphinxDirective):
    """Named blocks of ``benchmarks/tables.py``."""

    required_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        blocks = bench_blocks()
        self._note_results()
        out: list[nodes.Node] = []
        for name in self.arguments[0].split():
            if name not in blocks:
                raise self.error(
                    f"cefl-bench-table: no block {name!r}; benchmarks/tables.py renders "
                    f"{', '.join(sorted(blocks))}"
                )
            out.extend(markdown_to_nodes(blocks[name]))
        return out

    def _note_results(self) -> None:
        for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
            self.env.note_dependency(str(path))
        self.env.note_dependency(str(REPO / "benchmarks" / "tables.py"))


class BenchTables(BenchTable):
    """Every block of ``benchmarks/tables.py`` under a rubric, minus ``:skip:``."""

    required_arguments = 0
    option_spec: ClassVar[dict[str, Any]] = {
        "skip": directives.unchanged,
        "first": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        blocks = bench_blocks()
        self._note_results()
        skip = set((self.options.get("skip") or "").split())
        first = [n for n in (self.options.get("first") or "").split() if n in blocks]
        order = first + sorted(n for n in blocks if n not in first)
        out: list[nodes.Node] = []
        for name in order:
            if name in skip:
                continue
            out.append(nodes.rubric(name, name, ids=[f"bench-{name}"]))
            out.extend(markdown_to_nodes(blocks[name]))
        return out


# -- install extras ----------------------------------------------------------------------
def extras() -> dict[str, list[str]]:
    """``[project.optional-dependencies]`` of ``pyproject.toml``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    with open(REPO / "pyproject.toml", "rb") as fh:
        return dict(tomllib.load(fh)["project"].get("optional-dependencies", {}))


class Extras(SphinxDirective):
    """The install extras as a table: ``pip install "cefl-zoo[EXTRA]"`` and what it adds."""

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(REPO / "pyproject.toml"))
        rows = [["Extra", "Adds"]]
        for name, reqs in extras().items():
            rows.append(
                [f'``pip install "cefl-zoo[{name}]"``', ", ".join(f"``{r}``" for r in reqs)]
            )
        lines = [".. list-table::", "   :header-rows: 1", "   :class: cefl-table", ""]
        for row in rows:
            lines.append(f"   * - {row[0]}")
            lines.extend(f"     - {cell}" for cell in row[1:])
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(
            StringList(lines, source="<cefl-extras>"), self.content_offset, node
        )
        return node.children


# -- torch.hub entry points ---------------------------------------------------------------
def hub_entries() -> dict[str, str]:
    """``{entry point: first line of its docstring}`` of the repository's ``hubconf.py``."""
    spec = importlib.util.spec_from_file_location("cefl_docs_hubconf", REPO / "hubconf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {
        name: (inspect.getdoc(obj) or "").splitlines()[0]
        for name, obj in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(obj)
    }


class HubEntries(SphinxDirective):
    """The entry points of ``hubconf.py`` with the first line of their docstrings."""

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(REPO / "hubconf.py"))
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :class: cefl-table",
            "",
            "   * - ``torch.hub.load(repo, NAME)``",
            "     - What it builds",
        ]
        for name, doc in hub_entries().items():
            lines += [f"   * - ``{name}``", f"     - {doc}"]
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(
            StringList(lines, source="<cefl-hub-entries>"), self.content_offset, node
        )
        return node.children


# -- CLI help ----------------------------------------------------------------------------
@contextlib.contextmanager
def _columns(width: int) -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def cli_help() -> dict[str, str]:
    """``{"": top-level help, command: its help}`` from :func:`cefl_zoo.cli.build_parser`."""
    from cefl_zoo.cli import build_parser

    with _columns(92):
        parser = build_parser()
        out = {"": parser.format_help()}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out[name] = sub.format_help()
    return out


class CliHelp(SphinxDirective):
    """``cefl-zoo --help`` and every sub-command's ``--help``."""

    def run(self) -> list[nodes.Node]:
        helps = cli_help()
        out: list[nodes.Node] = []
        for name, text in helps.items():
            title = f"cefl-zoo {name}".strip()
            section = nodes.section(ids=[f"cli-{name or 'main'}"])
            section += nodes.title(title, title)
            block = nodes.literal_block(text, text)
            block["language"] = "text"
            section += block
            out.append(section)
        return out


# -- references to any import path of a documented object --------------------------------------
_KINDS = (type, types.FunctionType, types.ModuleType, property, classmethod, staticmethod)


def _getattr(obj: Any, attr: str) -> Any:
    # Class attributes are read statically: a classmethod stays the same object.
    return inspect.getattr_static(obj, attr) if inspect.isclass(obj) else getattr(obj, attr)


def _import(path: str) -> Any:
    """The object a dotted path names, or ``None``.

    Attributes win over submodules of the same name (``cefl_zoo.train.evaluate`` is the
    function the package exports, not the module); a path through the shadowed module
    (``cefl_zoo.train.evaluate.autocast_context``) still resolves.
    """
    parts = path.split(".")
    try:
        obj: Any = importlib.import_module(parts[0])
        for i, attr in enumerate(parts[1:], 1):
            try:
                obj = _getattr(obj, attr)
            except AttributeError:
                if not inspect.ismodule(obj):
                    raise
                obj = importlib.import_module(".".join(parts[: i + 1]))
        return obj
    except Exception:  # noqa: BLE001, S110 - fall back to the longest importable module prefix
        pass
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:  # noqa: BLE001, S112 - not importable: try a shorter prefix
            continue
        try:
            for attr in parts[i:]:
                obj = _getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, (classmethod, staticmethod)):
        return obj.__func__
    return obj


_DOCUMENTED: dict[int, dict[int, tuple[str, Any]]] = {}


def _documented(env: Any) -> dict[int, tuple[str, Any]]:
    """``{key: (documented name, object)}`` of every documented cefl_zoo object.

    The key is ``id(object)`` for classes, functions, modules and properties, and
    ``hash((id(object), short name))`` for constants.

    Kept outside the environment (which Sphinx pickles) and rebuilt for every write.
    """
    cache = _DOCUMENTED.get(id(env))
    if cache is not None:
        return cache
    domain = env.get_domain("py")
    found: dict[int, tuple[str, Any]] = {}
    for name, entry in sorted(domain.objects.items(), key=lambda kv: len(kv[0])):
        if not name.startswith("cefl_zoo") or getattr(entry, "aliased", False):
            continue
        obj = _unwrap(_import(name))
        if isinstance(obj, _KINDS):
            found.setdefault(id(obj), (name, obj))
        elif obj is not None:
            # Constants: identity alone could confuse two equal interned values, so the
            # name must match too (cefl_zoo.predict.VIDEO_EXTENSIONS is the same tuple as
            # the documented cefl_zoo.data.generic.VIDEO_EXTENSIONS).
            found.setdefault(hash((id(obj), name.rsplit(".", 1)[-1])), (name, obj))
    _DOCUMENTED.clear()
    _DOCUMENTED[id(env)] = found
    return found


def _owner(node: nodes.Node) -> Any:
    """The documented object whose description contains ``node`` (or ``None``)."""
    from sphinx import addnodes

    parent = node.parent
    while parent is not None and not isinstance(parent, addnodes.desc):
        parent = parent.parent
    if parent is None:
        return None
    for sig in parent.findall(addnodes.desc_signature):
        module, fullname = sig.get("module"), sig.get("fullname")
        if module and fullname:
            obj = _unwrap(_import(f"{module}.{fullname}"))
            return obj.fget if isinstance(obj, property) else obj
    return None


def _missing_reference(app: Sphinx, env: Any, node: Any, contnode: nodes.Node) -> nodes.Node | None:
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or target.startswith("."):
        return None
    module = node.get("py:module") or ""
    klass = node.get("py:class") or ""
    candidates = [target]
    if module and klass:
        candidates.append(f"{module}.{klass}.{target}")
    if module:
        candidates.append(f"{module}.{target}")
    # The module that defines the object whose description holds the reference (a
    # docstring of a re-exported object refers to names of its own module).
    owner = _owner(node)
    if owner is not None:
        home = getattr(owner, "__module__", None)
        if home:
            candidates.append(f"{home}.{target}")
            qual = getattr(owner, "__qualname__", "")
            if "." in qual:
                candidates.append(f"{home}.{qual.rsplit('.', 1)[0]}.{target}")
            elif inspect.isclass(owner):
                candidates.append(f"{home}.{qual}.{target}")
    if isinstance(_import(target), typing.TypeVar):  # ``Callable[[_T], _T]``: no page
        return contnode
    documented = _documented(env)
    domain = env.get_domain("py")
    for cand in candidates:
        obj = _unwrap(_import(cand))
        if obj is None:
            continue
        if isinstance(obj, _KINDS):
            hit = documented.get(id(obj))
        else:
            hit = documented.get(hash((id(obj), cand.rsplit(".", 1)[-1])))
        if hit is None:
            continue
        entry = domain.objects[hit[0]]
        return make_refnode(
            app.builder, node.get("refdoc", ""), entry.docname, entry.node_id, contnode, hit[0]
        )
    if (
        app.config.cefl_docs_check_references
        and target.startswith("cefl_zoo")
        and _import(target) is None
    ):
        logger.warning(
            "reference to %r: no such cefl_zoo object (renamed or removed?)",
            target,
            location=node,
            type="cefl",
            subtype="ref",
        )
    return None


def _dataclass_defaults(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None, ret: Any
) -> tuple[str | None, Any] | None:
    """Write a dataclass field's ``default_factory`` as a call (``metrics: dict = dict()``)
    instead of ``<factory>``, which is not Python: Sphinx would fail to parse the whole
    signature and split it at every comma, annotations included."""
    if not signature or "<factory>" not in signature or not dataclasses.is_dataclass(obj):
        return None
    for field in dataclasses.fields(obj):
        factory = field.default_factory
        if factory is dataclasses.MISSING:
            continue
        label = getattr(factory, "__qualname__", "")
        call = f"{label}()" if label.isidentifier() else _factory_value(factory)
        signature = re.sub(
            rf"(\b{re.escape(field.name)}\s*:[^=]*?=\s*)<factory>",
            lambda m, call=call: m.group(1) + call,
            signature,
        )
    return signature, ret


def _factory_value(factory: Any) -> str:
    """What a lambda ``default_factory`` makes, when it is a short literal (``{}``,
    ``['a']``); else ``...``."""
    try:
        value = factory()
    except Exception:  # noqa: BLE001 - a factory that needs more than docs can give
        return "..."
    text = repr(value)
    literal = isinstance(value, (dict, list, tuple, set, str, int, float, bool))
    return text if literal and len(text) <= 60 and "<" not in text else "..."


def _forget_documented(app: Sphinx, env: Any) -> None:
    _DOCUMENTED.clear()


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the reference resolver."""
    app.add_config_value("cefl_docs_check_references", True, "env")
    app.add_directive("cefl-automodule", CeflAutomodule)
    app.add_directive("cefl-model-zoo", ModelZoo)
    app.add_directive("cefl-weights-table", WeightsTable)
    app.add_directive("cefl-bench-table", BenchTable)
    app.add_directive("cefl-bench-tables", BenchTables)
    app.add_directive("cefl-cli", CliHelp)
    app.add_directive("cefl-extras", Extras)
    app.add_directive("cefl-hub-entries", HubEntries)
    app.connect("missing-reference", _missing_reference)
    app.connect("autodoc-process-signature", _dataclass_defaults)
    app.connect("autodoc-skip-member", _keep_listed_members)
    app.connect("env-updated", _forget_documented)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
