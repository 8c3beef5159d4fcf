"""Model cards: the ``README.md`` that travels with every set of weights.

The card is generated from ``config.json`` (architecture, labels, preprocessing,
metrics, provenance), so it cannot drift from the weights it describes. Its YAML header
uses the Hugging Face model-card metadata (``library_name: cefl-zoo``, licence, tags,
datasets), so the Hub indexes it.

Example:
    >>> card = render_model_card({
    ...     "architecture": "ceflnet_tiny", "model_class": "CEFLNet", "num_classes": 2,
    ...     "pretrained_cfg": {"label_names": ["happiness", "sadness"], "license": "mit"}})
    >>> card.startswith("---")
    True
    >>> "| 1 | sadness |" in card
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CITATION", "HF_LICENSES", "render_model_card"]

#: BibTeX entry of the CEFLNet paper.
CITATION = """@article{liu2022ceflnet,
  title   = {Clip-aware Expressive Feature Learning for Video-based Facial Expression Recognition},
  author  = {Liu, Y. and Feng, C. and Yuan, X. and Zhou, L. and Wang, W. and Qin, J. and Luo, Z.},
  journal = {Information Sciences},
  year    = {2022},
  doi     = {10.1016/j.ins.2022.03.062}
}"""

#: Licence identifiers the Hugging Face Hub knows; anything else is written as
#: ``license: other`` with the text in ``license_name``.
HF_LICENSES = frozenset(
    {
        "mit",
        "apache-2.0",
        "bsd-3-clause",
        "cc0-1.0",
        "cc-by-4.0",
        "cc-by-sa-4.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nc-nd-4.0",
        "openrail",
        "other",
    }
)

_DATASET_NAMES = {
    "dfew": "DFEW",
    "afew": "AFEW 8.0",
    "mmi": "MMI",
    "bu3dfe": "BU-3DFE",
    "ferv39k": "FERV39k",
    "mafw": "MAFW",
    "synthetic": "cefl-zoo built-in synthetic data",
}


def _metadata(config: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    from huggingface_hub import ModelCardData

    license_text = (cfg.get("license") or "").strip()
    extra: dict[str, Any] = {}
    if license_text.lower() in HF_LICENSES:
        license_id = license_text.lower()
    elif license_text:
        license_id = "other"
        slug = "".join(c if c.isalnum() else "-" for c in license_text.lower()).strip("-")
        extra["license_name"] = "-".join(filter(None, slug.split("-")))[:64]
    else:
        license_id = None
    dataset = cfg.get("dataset")
    data = ModelCardData(
        library_name="cefl-zoo",
        license=license_id,
        pipeline_tag="video-classification",
        tags=[
            "facial-expression-recognition",
            "video-classification",
            "ceflnet",
            "pytorch",
            str(config.get("architecture") or config.get("model_class")),
        ],
        datasets=[dataset] if dataset and dataset != "synthetic" else None,
        metrics=sorted(cfg.get("metrics") or {}) or None,
        **extra,
    )
    return data.to_yaml()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_model_card(
    config: Mapping[str, Any],
    *,
    repo_id: str | None = None,
    intended_use: str | None = None,
    limitations: str | None = None,
) -> str:
    """Write the ``README.md`` of a weights folder.

    Args:
        config: The folder's ``config.json`` content (``architecture``,
            ``model_class``, constructor arguments, ``pretrained_cfg``, optional
            ``training`` with ``seed`` / ``command`` / other provenance).
        repo_id: Hub repository the card is for (used in the usage snippet).
        intended_use: Replaces the default "Intended use" text.
        limitations: Replaces the default "Limitations" text.

    Returns:
        Markdown with a YAML metadata header.
    """
    cfg = dict(config.get("pretrained_cfg") or {})
    training = dict(config.get("training") or {})
    arch = config.get("architecture") or config.get("model_class") or "model"
    name = f"{arch}.{cfg['tag']}" if cfg.get("tag") else arch
    dataset_key = cfg.get("dataset")
    dataset = _DATASET_NAMES.get(dataset_key or "", dataset_key or "unspecified data")
    labels = list(
        cfg.get("label_names") or [f"class_{i}" for i in range(int(config.get("num_classes", 0)))]
    )
    load_name = f"hf-hub:{repo_id}" if repo_id else "<this folder>"
    n_clips, n_frames = cfg.get("num_clips", 7), cfg.get("frames_per_clip", 5)
    c, h, w = tuple(cfg.get("input_size") or (3, 224, 224))
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    interpolation = cfg.get("interpolation", "bilinear")
    # as cefl_zoo.transforms.video_transform does at evaluation
    cover = f"{round(h / crop_pct)} x {round(w / crop_pct)}"
    resize = (
        f"{interpolation} resize of the frame to cover {cover}"
        + (f" (crop_pct {crop_pct:g})" if crop_pct < 1 else "")
        + f", then a centre crop to {h} x {w}"
    )

    lines = ["---", _metadata(config, cfg).rstrip(), "---", "", f"# {name}", ""]
    lines += [
        (
            f"A `{config.get('model_class', 'model')}` video facial-expression classifier "
            f"(`{arch}`, backbone `{config.get('backbone')}`) from "
            "[cefl-zoo](https://github.com/cefl-zoo/cefl-zoo), trained on "
            f"{dataset}{' (' + str(cfg['fold']) + ')' if cfg.get('fold') else ''}. "
            "CEFLNet splits a video into clips, encodes each clip with self-attention and "
            "local-global relation learning, scores the emotional intensity of every clip and "
            "classifies the video from its emotion-rich clips (Liu et al., Information Sciences 2022)."
        ),
        "",
        "## Usage",
        "",
        "```python",
        "import torch, cefl_zoo",
        f'model = cefl_zoo.create_model("{load_name}").eval()',
        (
            f"video = torch.randn(1, {n_clips}, {n_frames}, {c}, {h}, {w})"
            f"  # (B, N clips, K frames, {c}, H, W), normalised"
        ),
        "probs = model(video).softmax(-1)",
        "print(dict(zip(model.label_names, probs[0].tolist())))",
        "```",
        "",
        "## Labels (output order)",
        "",
        "| index | label |",
        "|---|---|",
        *[f"| {i} | {label} |" for i, label in enumerate(labels)],
        "",
        "## Preprocessing",
        "",
        f"- clips per video (N): {n_clips}; frames per clip (K): {n_frames}",
        f"- frame size: {(c, h, w)}, {resize}",
        f"- mean {tuple(cfg.get('mean') or ())}, std {tuple(cfg.get('std') or ())}",
        "- `cefl_zoo.transforms_for(model)` builds exactly this pipeline.",
        "",
        "## Metrics",
        "",
    ]
    metrics = cfg.get("metrics") or {}
    if metrics:
        lines += [
            "| metric | value |",
            "|---|---|",
            *[f"| {k} | {_fmt(v)} |" for k, v in sorted(metrics.items())],
        ]
        lines += [
            "",
            f"Evaluated on {dataset}{', ' + str(cfg['fold']) if cfg.get('fold') else ''}.",
        ]
    else:
        lines += ["No evaluation results were recorded with these weights."]
    lines += ["", "## Training", ""]
    command = training.get("command") or cfg.get("train_command")
    if command:
        lines += ["Produced by:", "", "```bash", str(command), "```", ""]
    if "seed" in training:
        lines += [f"- seed: {training['seed']}"]
    for key, value in sorted(training.items()):
        if key not in ("command", "seed"):
            lines += [f"- {key}: {_fmt(value)}"]
    lines += [f"- weights sha256 (`model.safetensors`): `{cfg.get('sha256') or 'not recorded'}`"]
    if cfg.get("notes"):
        lines += [f"- notes: {cfg['notes']}"]
    lines += [
        "",
        "## Intended use",
        "",
        intended_use
        or (
            "Research on video-based facial expression recognition: benchmarking, ablations, "
            "and as a starting point for fine-tuning. Not for decisions about people "
            "(hiring, policing, health, education) and not for inferring what someone feels: "
            "the model classifies visible facial configurations into the label set above."
        ),
        "",
        "## Limitations",
        "",
        limitations
        or (
            f"The weights reflect {dataset}: its populations, recording conditions, face "
            "crops and label set. Expect lower accuracy on other data, on faces the detector "
            "crops differently, and for under-represented classes. Outputs are "
            "probabilities over these labels only."
        ),
        "",
        "## Licence",
        "",
        f"{cfg.get('license') or 'not specified'}. Training data keep their own terms of use.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)
