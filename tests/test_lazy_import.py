"""``import cefl_zoo`` is lazy (PEP 562): light to import, complete on first use."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import cefl_zoo
import cefl_zoo.train

HEAVY = ("torch", "torchvision", "timm", "numpy")


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet); return its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _type_checking_names(package) -> set[str]:
    """Names imported under ``if TYPE_CHECKING:`` in a package's ``__init__.py``."""
    tree = ast.parse(Path(package.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
                names |= {alias.asname or alias.name for alias in stmt.names}
    return names


def test_import_loads_no_heavy_library():
    out = _fresh(f"import sys, cefl_zoo; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert out == "[]"


def test_help_of_every_command_loads_no_heavy_library():
    code = (
        "import sys\nfrom cefl_zoo.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert _fresh(code).endswith("[]")


@pytest.mark.parametrize("first", ["cefl_zoo.registry", "cefl_zoo"])
def test_registry_lists_the_builtin_models_whichever_module_loads_first(first):
    """``from cefl_zoo.registry import list_models`` sees every built-in architecture
    without ``cefl_zoo.models`` having been imported."""
    out = _fresh(
        f"from {first} import list_models, list_pretrained\n"
        "print(','.join(list_models()), len(list_pretrained()))"
    )
    names, n_cfgs = out.split()
    assert names.split(",") == cefl_zoo.list_models()
    assert int(n_cfgs) == len(cefl_zoo.list_pretrained()) > 0


def test_create_model_from_the_registry_module_alone():
    out = _fresh(
        "from cefl_zoo.registry import create_model, is_model\n"
        "m = create_model('ceflnet_tiny', num_classes=3)\n"
        "print(type(m).__name__, m.num_classes, is_model('ceflnet_resnet18'))"
    )
    assert out == "CEFLNet 3 True"


def test_registering_a_builtin_name_first_is_refused():
    """The built-in models register before a user's, so a clash is reported at once,
    naming the module that owns the name."""
    code = (
        "from cefl_zoo.registry import register_model\n"
        "def ceflnet_tiny(pretrained=False, **kwargs):\n    raise AssertionError\n"
        "try:\n    register_model(ceflnet_tiny)\n"
        "except ValueError as e:\n    print(e)\n"
    )
    assert _fresh(code) == "model 'ceflnet_tiny' is already registered by cefl_zoo.models.ceflnet"


def test_submodules_are_attributes_without_importing_them():
    out = _fresh(
        "import cefl_zoo; print(cefl_zoo.models.build_model.__module__, cefl_zoo.data.__name__)"
    )
    assert out == "cefl_zoo.models.base cefl_zoo.data"


@pytest.mark.parametrize("package", [cefl_zoo, cefl_zoo.train], ids=lambda p: p.__name__)
def test_every_public_name_resolves_to_its_defining_module(package):
    lazy = package._LAZY_IMPORTS
    assert set(package.__all__) - {"__version__"} == set(lazy)
    assert _type_checking_names(package) == set(lazy)  # type checkers see the same names
    for name, module in lazy.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name), name
    assert set(lazy) <= set(dir(package))


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'cefl_zoo' has no attribute 'nope'"):
        cefl_zoo.nope  # noqa: B018
    assert not hasattr(cefl_zoo.train, "nope")


def test_star_import_gives_every_public_name():
    namespace: dict = {}
    exec("from cefl_zoo import *", namespace)  # noqa: S102 (a star import needs a namespace)
    assert {"CEFLNet", "Predictor", "TrainConfig", "__version__"} <= set(namespace)
    assert namespace["CEFLNet"] is cefl_zoo.models.CEFLNet


def test_a_function_named_like_its_module_stays_the_function():
    """``cefl_zoo.train.evaluate`` is the function even after something imports the
    module ``cefl_zoo.train.evaluate`` (the trainer does); the module's other names
    still import from it."""
    out = _fresh(
        "import cefl_zoo.train.trainer, cefl_zoo.train, cefl_zoo\n"
        "from cefl_zoo.train.evaluate import EvalResult\n"
        "print(type(cefl_zoo.train.evaluate).__name__, cefl_zoo.evaluate is "
        "cefl_zoo.train.evaluate, EvalResult.__module__)"
    )
    assert out == "function True cefl_zoo.train.evaluate"


def test_threads_that_reach_the_registry_first_at_once_all_see_every_model():
    """The import lock makes every thread wait for the registration to finish (a flag
    set before the import let a second thread read a half-filled registry)."""
    code = (
        "import threading, cefl_zoo\n"
        "start = threading.Barrier(6)\n"
        "out = []\n"
        "calls = [lambda: type(cefl_zoo.create_model('ceflnet_tiny')).__name__,\n"
        "         lambda: len(cefl_zoo.list_models()), lambda: cefl_zoo.is_model('ceflnet_tiny'),\n"
        "         lambda: cefl_zoo.CEFLNet.__name__, lambda: len(cefl_zoo.list_pretrained()) > 0,\n"
        "         lambda: cefl_zoo.get_pretrained_cfg('ceflnet_tiny.synthetic').tag]\n"
        "def run(f):\n"
        "    start.wait()\n"
        "    try:\n        out.append(repr(f()))\n"
        "    except Exception as e:\n        out.append(type(e).__name__)\n"
        "threads = [threading.Thread(target=run, args=(f,)) for f in calls]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(sorted(out))"
    )
    expected = sorted(
        ["'CEFLNet'", str(len(cefl_zoo.list_models())), "True", "'CEFLNet'", "True", "'synthetic'"]
    )
    assert _fresh(code) == repr(expected)


def test_an_attribute_error_while_loading_a_module_is_an_import_error_with_its_cause(
    monkeypatch,
):
    """Not a silent "no such attribute": the import that failed is named, cause kept."""
    monkeypatch.delitem(cefl_zoo.__dict__, "canonical_label", raising=False)
    monkeypatch.delitem(sys.modules, "cefl_zoo.labels", raising=False)
    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "cefl_zoo.labels":
            raise AttributeError("module 'difflib' has no attribute 'get_close_matches'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(
        ImportError, match="importing cefl_zoo.labels for cefl_zoo.canonical_label"
    ) as err:
        cefl_zoo.canonical_label  # noqa: B018
    assert isinstance(err.value.__cause__, AttributeError)


@pytest.mark.parametrize("package", [cefl_zoo, cefl_zoo.train], ids=lambda p: p.__name__)
def test_the_listed_submodules_are_the_package_s_public_modules(package):
    """The hand-kept ``_SUBMODULES`` list matches the package's files."""
    import pkgutil

    found = {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}
    assert set(package._SUBMODULES) == found
