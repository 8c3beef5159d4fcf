"""The README tells the truth: its code runs, its tables are generated, CI runs its command."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

import cefl_zoo
from cefl_zoo.models.weights import weights_table

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def test_quick_start_is_two_commands_and_ci_runs_the_test_command():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```bash\n(.*?)^```", quick, flags=re.DOTALL | re.MULTILINE)
    assert len(commands) == 2 and all(len(c.strip().splitlines()) == 1 for c in commands)
    setup, tests = (c.strip() for c in commands)
    # The set-up installs with the pinned versions that exist in the repo.
    assert "-c .ci/constraints.txt" in setup and (REPO / ".ci" / "constraints.txt").is_file()
    assert "cefl-zoo predict" in setup  # and runs the main job
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == tests, "`.ci/run` must end with the README's test command, verbatim"
    pins = (REPO / ".ci" / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.14\.1$", pins, flags=re.MULTILINE), (
        "pin the torch the tests ran with"
    )


def test_weights_table_is_the_registry():
    block = re.search(
        r"<!-- weights-table -->\n(.*?)<!-- /weights-table -->", README, flags=re.DOTALL
    )
    assert block, "README lost its <!-- weights-table --> block"
    assert block.group(1).strip() == weights_table().strip(), (
        "README's weights table is stale: paste cefl_zoo.models.weights.weights_table()"
    )


def test_benchmark_tables_match_the_committed_results():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import tables
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    blocks = tables.render_blocks(REPO / "benchmarks" / "results")
    used = re.findall(r"<!-- bench:([\w-]+) -->", README)
    assert used, "README shows no generated benchmark table"
    assert set(used) <= set(blocks), (
        f"README names blocks no result produces: {set(used) - set(blocks)}"
    )
    stale = tables.check_file(REPO / "README.md", blocks)
    assert not stale, (
        f"README blocks {stale} are stale: python benchmarks/tables.py --update README.md"
    )


def test_python_snippets_run(tmp_path, monkeypatch):
    """Every ```python block, in order, in one namespace (as a reader would paste them)."""
    from cefl_zoo.data import write_synthetic_dataset

    monkeypatch.chdir(tmp_path)
    write_synthetic_dataset("data/synthetic", num_videos=7, seed=0, progress=False)
    real_load = torch.hub.load

    def local_hub(repo, model, *args, **kwargs):  # the GitHub repo is this checkout
        assert repo == "cefl-zoo/cefl-zoo", f"README names another hub repo: {repo}"
        return real_load(str(REPO), model, *args, source="local", **kwargs)

    monkeypatch.setattr(torch.hub, "load", local_hub)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace: dict = {}
    blocks = _blocks("python")
    assert len(blocks) >= 4
    try:
        for code in blocks:
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    finally:
        torch.set_num_threads(threads)
    # What the snippets promise, checked on what they produced.
    assert namespace["logits"].shape == (1, 7)
    assert namespace["out"].clip_scores.shape == (1, 7, 7)
    assert namespace["model"].num_classes == 7  # the last hub call
    result = namespace["result"]
    assert result.label in result.label_names and 0 <= result.rich_clip < 7
    assert isinstance(namespace["encoder"], cefl_zoo.ClipEncoder)


@pytest.mark.parametrize(
    "name",
    [
        "ClipEncoder",
        "EmotionIntensityActivation",
        "CEFLNet",
        "create_model",
        "list_models",
        "Predictor",
    ],
)
def test_readme_names_exist(name):
    assert name in README and hasattr(cefl_zoo, name)
