"""The Sphinx documentation: it builds with ``-W``, its code runs, and it covers the API.

The HTML build and the doctest run (``sphinx.ext.doctest`` over the guides' ``..
doctest::`` blocks) happen once per session in a temporary directory, in a subprocess,
exactly as ``python -m sphinx -W --keep-going -b html docs OUT`` does; the doctest run
reuses the HTML build's environment, so the two cost little more than one build.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import cefl_zoo

# The docs extra (pip install -e ".[docs]"; .ci/run installs it) provides these.
pytest.importorskip(
    "sphinx", reason="building the docs needs the docs extra: pip install -e '.[docs]'"
)
pytest.importorskip(
    "furo", reason="building the docs needs the docs extra: pip install -e '.[docs]'"
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import cefl_docs

#: Guides whose code blocks must run in the doctest build.
GUIDES_WITH_CODE = (
    "index",
    "quickstart",
    "guides/predict",
    "guides/datasets",
    "guides/training",
    "guides/building_blocks",
    "guides/weights",
    "guides/paper",
)


def _sphinx(builder: str, out: Path, doctrees: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        builder,
        "-d",
        str(doctrees),
        str(DOCS),
        str(out),
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _report(run: subprocess.CompletedProcess) -> str:
    return f"exit status {run.returncode}\n--- stderr ---\n{run.stderr[-6000:]}\n--- stdout ---\n{run.stdout[-3000:]}"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    run = _sphinx("html", root / "html", root / "doctrees")
    assert run.returncode == 0, "the HTML build has warnings or errors:\n" + _report(run)
    return root / "html"


@pytest.fixture(scope="module")
def doctest_output(html: Path) -> str:
    root = html.parent
    run = _sphinx("doctest", root / "doctest", root / "doctrees")
    output = (
        (root / "doctest" / "output.txt").read_text()
        if (root / "doctest" / "output.txt").exists()
        else ""
    )
    assert run.returncode == 0, (
        "the guides' code failed:\n" + _report(run) + "\n--- output.txt ---\n" + output[-6000:]
    )
    return output


def _inventory(html: Path) -> dict[str, dict[str, object]]:
    from sphinx.util.inventory import InventoryFile

    with open(html / "objects.inv", "rb") as fh:
        inv = InventoryFile.load(fh, "", lambda base, uri: base + uri)
    return dict(inv.data) if hasattr(inv, "data") else dict(inv)


# -- the build ---------------------------------------------------------------------------------
def test_html_builds_without_warnings(html):
    for page in ("index", "quickstart", "zoo", "benchmarks", "api/index", *GUIDES_WITH_CODE):
        assert (html / f"{page}.html").is_file(), page


def test_guides_code_runs(doctest_output):
    assert re.search(r"\n\s+0 failures in tests\n", doctest_output), doctest_output[-3000:]
    for doc in GUIDES_WITH_CODE:
        assert f"Document: {doc}\n" in doctest_output, f"no code of {doc}.rst was run"


# -- the API reference -------------------------------------------------------------------------
def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(cefl_zoo.__path__, "cefl_zoo."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def test_every_public_module_has_a_section():
    missing = []
    for module in _public_modules():
        mod = importlib.import_module(module)
        plugin = module.startswith("cefl_zoo.commands.") and not hasattr(mod, "__all__")
        if module not in cefl_docs.API_MODULES and not plugin:
            missing.append(module)
    assert not missing, (
        f"modules without an API section: {missing}; add a `.. cefl-automodule::` to a page of "
        "docs/api/ and the module to cefl_docs.API_MODULES"
    )
    pages = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.rst"))
    unused = [m for m in cefl_docs.API_MODULES if f".. cefl-automodule:: {m}\n" not in pages]
    assert not unused, f"listed in cefl_docs.API_MODULES but on no page: {unused}"


def test_every_public_class_and_function_is_in_the_reference(html):
    inventory = _inventory(html)
    documented = {
        id(cefl_docs._unwrap(cefl_docs._import(name)))
        for kind, entries in inventory.items()
        if kind.startswith("py:")
        for name in entries
    }
    missing = []
    for module in ["cefl_zoo", *_public_modules()]:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in documented:
                missing.append(f"{module}.{name}")
    assert not missing, f"public names the API reference does not document: {sorted(set(missing))}"


def test_api_index_lists_every_top_level_name():
    text = (DOCS / "api" / "index.rst").read_text()
    listed = set(re.findall(r"^   ([A-Za-z_]\w*)$", text, flags=re.MULTILINE))
    listed |= set(re.findall(r"cefl_zoo\.(\w+)", text))
    missing = sorted(set(cefl_zoo.__all__) - listed)
    assert not missing, f"docs/api/index.rst does not list cefl_zoo.{missing}"


def test_top_level_names_link_to_their_documentation(html):
    page = (html / "api" / "index.html").read_text()
    for name in (
        "create_model",
        "ClipEncoder",
        "EmotionIntensityActivation",
        "CEFLNet",
        "Predictor",
    ):
        assert re.search(
            rf'<a class="reference internal" href="[^"]+"[^>]*><code[^>]*><span class="pre">{name}</span>',
            page,
        ), name


def test_other_projects_names_link_to_their_docs(html):
    """torch / standard-library types in signatures link out (offline, no intersphinx);
    a name nothing resolves fails the build, which is nitpicky."""
    import external_links

    assert external_links.external_url("torch.nn.modules.module.Module") == (
        "https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html"
    )
    assert external_links.external_url("torch.utils.data.DistributedSampler").endswith(
        "data.html#torch.utils.data.distributed.DistributedSampler"
    )
    assert external_links.external_url("os.PathLike") == (
        "https://docs.python.org/3/library/os.html#os.PathLike"
    )
    assert external_links.external_url("torch.made_up") is None
    assert external_links.external_url("numpy.float32") is None  # (no page of its own)
    assert external_links.external_url("cefl_zoo.CEFLNet") is None
    page = (html / "api" / "models.html").read_text()
    assert 'href="https://docs.pytorch.org/docs/stable/tensors.html#torch.Tensor"' in page
    assert 'href="https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html"' in page


def test_dataclass_signatures_parse(html):
    """A ``default_factory`` renders as a call, so Sphinx parses the signature (with
    ``<factory>`` it split ``tuple[float, ...]`` at the comma into dead references)."""
    text = re.sub(r"<[^>]+>", "", (html / "api" / "registry.html").read_text())
    text = text.replace("&#x27;", "'")
    assert "metrics: dict[str, float] = dict()" in text
    assert "mean: tuple[float, ...] = (0.485, 0.456, 0.406)" in text
    assert "&lt;factory&gt;" not in text
    train = re.sub(r"<[^>]+>", "", (html / "api" / "train.html").read_text())
    assert "model_kwargs: dict = {}" in train  # a lambda factory: the literal it makes


# -- generated tables --------------------------------------------------------------------------
def test_model_zoo_table_is_the_registry(html):
    rows = cefl_docs.model_zoo_rows()
    assert [r[0].strip("`") for r in rows] == cefl_zoo.list_models()
    paper = next(r for r in rows if r[0] == "``ceflnet_resnet18``")
    assert paper[3:5] == ["12.24", "63.50"]
    page = (html / "zoo.html").read_text()
    for name in cefl_zoo.list_models():
        assert name in page
    for cfg in cefl_zoo.list_pretrained():
        assert cfg.name in page


def test_benchmark_page_shows_every_result_table(html):
    page = (html / "benchmarks.html").read_text()
    blocks = cefl_docs.bench_blocks()
    assert "complexity-paper" in blocks
    for name in blocks:
        assert f'id="bench-{name}"' in page, name


def test_markdown_tables_become_tables():
    from docutils import nodes

    md = "| a | n |\n| :-- | --: |\n| `x` | 1<br>2 |\n\nCaption **bold**.\n\n<sub>Generated.</sub>"
    out = cefl_docs.markdown_to_nodes(md)
    assert [type(n) for n in out] == [nodes.table, nodes.paragraph, nodes.paragraph]
    entries = list(out[0].findall(nodes.entry))
    assert [e.astext() for e in entries] == ["a", "n", "x", "1\n\n2"]
    assert "cefl-right" in entries[3]["classes"] and "cefl-right" not in entries[2]["classes"]
    assert isinstance(next(entries[2].findall(nodes.literal)), nodes.literal)
    assert out[2]["classes"] == ["cefl-source"] and out[2].astext() == "Generated."


# -- code that is shown but not run --------------------------------------------------------------
def _rst_files() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for path in _rst_files():
        for line in path.read_text().splitlines():
            text = line.strip()
            if text.startswith(("$ cefl-zoo ", "$ torchrun ")):
                found.append((f"{path.relative_to(DOCS)}", text[2:]))
    return found


def test_docs_show_shell_commands():
    commands = [c for _, c in _command_lines()]
    assert sum(c.startswith("cefl-zoo ") for c in commands) > 20
    assert any("torchrun" in c for c in commands)


@pytest.mark.parametrize("where,command", _command_lines())
def test_shell_commands_in_the_docs_parse(where, command):
    """Every ``cefl-zoo`` command line shown in the docs is accepted by the real parser."""
    from cefl_zoo.cli import build_parser

    argv = shlex.split(command, comments=True)
    argv = argv[argv.index("cefl_zoo.cli") + 1 :] if argv[0] == "torchrun" else argv[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{where}: `{command}` does not parse (exit {exit_.code})")


def test_python_blocks_run_or_say_why_not():
    """Python shown in the guides is a doctest (which runs) or explicitly marked ``not-run``."""
    unmarked = []
    for path in _rst_files():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*\.\. code-block:: (python|pycon)\s*$", line):
                options = []
                for nxt in lines[i + 1 :]:
                    if not nxt.strip().startswith(":"):
                        break
                    options.append(nxt.strip())
                if ":class: not-run" not in options:
                    unmarked.append(f"{path.relative_to(DOCS)}:{i + 1}")
    assert not unmarked, f"Python code blocks that neither run nor say so: {unmarked}"
