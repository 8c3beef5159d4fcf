"""Parameters and MACs: every zoo model, the paper's Tables 8 and 9, torchvision's peers.

All counts come from one counter in one run: ``torch.utils.flop_counter`` through
:func:`cefl_zoo.count_macs` (matrix products and convolutions; MACs = FLOPs / 2), on
the ``meta`` device, so nothing is allocated and the whole run takes seconds. The paper
counted with ptflops; when it is installed (``pip install cefl-zoo[bench]``) the CEFLNet
rows are also counted with ptflops' module-hook backend on real CPU tensors, as a cross
check of the counter itself.

What is written (``benchmarks/results/complexity.json``):

* ``paper_table8``: CEFLNet measured against 12.83 M / 63.80 G; the paper's C3D and
  C3D-LSTM rows are quoted (``"source": "quoted"``), not measured: no C3D is in the zoo.
* ``paper_table9``: frames per clip 2 / 5 / 10 / 15 against 25.52 / 63.80 / 127.59 /
  191.39 GMACs.
* ``models``: every registry model at 7 clips x 5 frames x 224 px, and at its own
  ``pretrained_cfg`` size where that differs.
* ``peers``: torchvision's video classifiers at their usual input (frames x size named
  in each row), with torchvision's own published operation count as a second check.

Usage::

    python benchmarks/complexity.py            # everything, writes results/complexity.json
    python benchmarks/complexity.py --quick    # the paper's rows only (seconds)
    python benchmarks/tables.py --print complexity-paper
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SCHEMA_VERSION, environment, result_path, write_json

import cefl_zoo
from cefl_zoo import count_macs, count_parameters

__all__ = [
    "PAPER_TABLE8",
    "PAPER_TABLE9",
    "PEERS",
    "ceflnet_rows",
    "main",
    "peer_rows",
    "registry_rows",
    "run",
]

#: Table 8 of the paper (BU-3DFE): params in millions, MACs in billions, accuracy in %.
PAPER_TABLE8: list[dict[str, Any]] = [
    {"method": "C3D", "backbone": "C3D", "params_m": 79.99, "gmacs": 326.41, "acc": 75.83},
    {"method": "C3D-LSTM", "backbone": "C3D", "params_m": 110.24, "gmacs": 282.26, "acc": 79.17},
    {"method": "CEFLNet", "backbone": "ResNet-18", "params_m": 12.83, "gmacs": 63.80, "acc": 85.33},
]

#: Table 9 of the paper: frames per clip (7 clips, 224 px) -> GMACs and accuracy (%).
PAPER_TABLE9: list[dict[str, Any]] = [
    {"frames_per_clip": 2, "gmacs": 25.52, "acc": 85.0},
    {"frames_per_clip": 5, "gmacs": 63.80, "acc": 85.33},
    {"frames_per_clip": 10, "gmacs": 127.59, "acc": 84.17},
    {"frames_per_clip": 15, "gmacs": 191.39, "acc": 84.17},
]

#: torchvision video classifiers a user would pick instead, at their usual input.
#: ``frames`` x ``size``: the clip torchvision's Kinetics-400 weights are evaluated with
#: (``clip_len`` and crop of the weights' metadata and transforms), except S3D, whose
#: weights are evaluated on 128-frame clips: it is counted on 16 frames like the others
#: (its cost is linear in the frame count).
PEERS: list[dict[str, Any]] = [
    {
        "name": "r3d_18",
        "weights": "R3D_18_Weights",
        "frames": 16,
        "size": 112,
        "why": "K400 weights: clip_len 16, crop 112",
    },
    {
        "name": "mc3_18",
        "weights": "MC3_18_Weights",
        "frames": 16,
        "size": 112,
        "why": "K400 weights: clip_len 16, crop 112",
    },
    {
        "name": "r2plus1d_18",
        "weights": "R2Plus1D_18_Weights",
        "frames": 16,
        "size": 112,
        "why": "K400 weights: clip_len 16, crop 112",
    },
    {
        "name": "s3d",
        "weights": "S3D_Weights",
        "frames": 16,
        "size": 224,
        "why": "crop 224; 16 frames (the K400 weights were evaluated on 128-frame clips)",
    },
    {
        "name": "mvit_v2_s",
        "weights": "MViT_V2_S_Weights",
        "frames": 16,
        "size": 224,
        "why": "K400 weights: clip_len 16 (fixed by the model), crop 224",
    },
    {
        "name": "swin3d_t",
        "weights": "Swin3D_T_Weights",
        "frames": 32,
        "size": 224,
        "why": "K400 weights: clip_len 32, crop 224",
    },
]

#: The frame count torchvision used for the ``_ops`` figure in its weights' metadata.
TORCHVISION_OPS_FRAMES = 16


def _rel(measured: float, reference: float) -> float:
    return (measured - reference) / reference


def _build(name: str, device: str = "meta", **kwargs: Any) -> nn.Module:
    with torch.device(device):
        model = cefl_zoo.create_model(name, **kwargs)
    return model.eval()


def _video(n: int, k: int, size: int, device: str = "meta") -> torch.Tensor:
    return torch.zeros(1, n, k, 3, size, size, device=device)


def _ptflops_macs(model: nn.Module, x: torch.Tensor) -> int | None:
    """MACs by ptflops' module-hook backend (the paper's counter), or None if absent."""
    try:
        from ptflops import get_model_complexity_info
    except ImportError:
        return None
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        macs, _ = get_model_complexity_info(
            model,
            tuple(x.shape[1:]),
            input_constructor=lambda shape: x,
            as_strings=False,
            print_per_layer_stat=False,
            backend="pytorch",
        )
    return int(macs)


def _imagenet_fc_params(backbone: str = "resnet18") -> int:
    """Parameters of a timm backbone's ImageNet classifier (1000 classes)."""
    import timm

    with torch.device("meta"):
        full = timm.create_model(backbone, num_classes=1000)
        pooled = timm.create_model(backbone, num_classes=0)
    return count_parameters(full) - count_parameters(pooled)


def ceflnet_rows(use_ptflops: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The paper's CEFLNet (``ceflnet_resnet18``) against Tables 8 and 9.

    Args:
        use_ptflops: Also count with ptflops (real CPU tensors; a few seconds), if it is
            installed.

    Returns:
        ``(table8_row, table9_rows)``: measured params/MACs, the paper's figures and the
        relative differences; the Table 8 row also splits the parameters into the
        backbone and the CFE + EIAN modules, and gives the count with ResNet-18's
        unused 1000-way ImageNet classifier included.
    """
    model = _build("ceflnet_resnet18")
    params = count_parameters(model)
    backbone_params = count_parameters(model.backbone)
    fc_params = _imagenet_fc_params("resnet18")
    paper = next(r for r in PAPER_TABLE8 if r["method"] == "CEFLNet")
    macs = count_macs(model, _video(7, 5, 224))
    import importlib.util

    have_ptflops = use_ptflops and importlib.util.find_spec("ptflops") is not None
    cpu_model = _build("ceflnet_resnet18", device="cpu") if have_ptflops else None

    def pt(k: int) -> int | None:
        if cpu_model is None:
            return None
        return _ptflops_macs(cpu_model, _video(7, k, 224, device="cpu"))

    pt_macs = pt(5)
    row = {
        "method": "CEFLNet",
        "model": "ceflnet_resnet18",
        "backbone": "ResNet-18",
        "source": "measured",
        "input": {"num_clips": 7, "frames_per_clip": 5, "size": 224},
        "params": params,
        "params_backbone": backbone_params,
        "params_cfe_eian": params - backbone_params,
        "params_imagenet_fc_unused": fc_params,
        "params_with_imagenet_fc": params + fc_params,
        "macs": macs,
        "macs_ptflops": pt_macs,
        "paper_params_m": paper["params_m"],
        "paper_gmacs": paper["gmacs"],
        "paper_acc": paper["acc"],
        "params_rel_diff": _rel(params / 1e6, paper["params_m"]),
        "params_with_imagenet_fc_rel_diff": _rel((params + fc_params) / 1e6, paper["params_m"]),
        "macs_rel_diff": _rel(macs / 1e9, paper["gmacs"]),
        "macs_ptflops_rel_diff": _rel(pt_macs / 1e9, paper["gmacs"]) if pt_macs else None,
    }
    table9 = []
    for ref in PAPER_TABLE9:
        k = ref["frames_per_clip"]
        m = macs if k == 5 else count_macs(model, _video(7, k, 224))
        p = pt_macs if k == 5 else pt(k)
        table9.append(
            {
                "frames_per_clip": k,
                "num_clips": 7,
                "size": 224,
                "macs": m,
                "macs_ptflops": p,
                "paper_gmacs": ref["gmacs"],
                "paper_acc": ref["acc"],
                "macs_rel_diff": _rel(m / 1e9, ref["gmacs"]),
                "macs_ptflops_rel_diff": _rel(p / 1e9, ref["gmacs"]) if p else None,
            }
        )
    return row, table9


def registry_rows(names: list[str] | None = None, size: int = 224) -> list[dict[str, Any]]:
    """Params and MACs of registry models at 7 x 5 x ``size`` and at their own cfg size.

    Args:
        names: Registry names; all of :func:`cefl_zoo.list_models` by default.
        size: The common frame size (the paper's 224).
    """
    rows = []
    for name in names or cefl_zoo.list_models():
        model = _build(name)
        cfg = model.pretrained_cfg
        n, k = 7, 5
        macs = count_macs(model, _video(n, k, size))
        row: dict[str, Any] = {
            "model": name,
            "params": count_parameters(model),
            "input": {"num_clips": n, "frames_per_clip": k, "size": size},
            "frames": n * k,
            "macs": macs,
            "cfg_input": {
                "num_clips": cfg.num_clips,
                "frames_per_clip": cfg.frames_per_clip,
                "size": cfg.input_size[-1],
            },
            "macs_at_cfg": None,
        }
        if (cfg.num_clips, cfg.frames_per_clip, cfg.input_size[-1]) != (n, k, size):
            x = torch.zeros(1, cfg.num_clips, cfg.frames_per_clip, *cfg.input_size, device="meta")
            row["macs_at_cfg"] = count_macs(model, x)
        rows.append(row)
    return rows


def peer_rows(peers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """torchvision video classifiers at their usual input, counted by the same counter.

    Each row also carries torchvision's own figure from the weights' metadata (its
    ``_ops``, documented as GFLOPS but equal to this counter's MACs) and this counter at
    the 16-frame input that figure was computed on, so the two counters can be compared.
    """
    import torchvision.models.video as tvv

    rows = []
    for spec in peers or PEERS:
        with torch.device("meta"):
            model = getattr(tvv, spec["name"])().eval()
        t, s = spec["frames"], spec["size"]
        macs = count_macs(model, torch.zeros(1, 3, t, s, s, device="meta"))
        if t == TORCHVISION_OPS_FRAMES:
            macs_ref_shape = macs
        else:
            x = torch.zeros(1, 3, TORCHVISION_OPS_FRAMES, s, s, device="meta")
            macs_ref_shape = count_macs(model, x)
        meta = getattr(tvv, spec["weights"]).DEFAULT.meta
        tv_ops = meta.get("_ops")
        rows.append(
            {
                "model": spec["name"],
                "source": "torchvision",
                "params": count_parameters(model),
                "input": {"frames": t, "size": s},
                "input_shape": [1, 3, t, s, s],
                "frames": t,
                "why": spec["why"],
                "macs": macs,
                "torchvision_ops_g": tv_ops,
                "macs_at_torchvision_ops_input": macs_ref_shape,
                "torchvision_ops_rel_diff": (
                    _rel(macs_ref_shape / 1e9, tv_ops) if tv_ops else None
                ),
            }
        )
    return rows


NOTES = [
    (
        "MACs = FLOPs / 2 from torch.utils.flop_counter.FlopCounterMode (convolutions and "
        "matrix products; element-wise work such as BatchNorm, ReLU, pooling and softmax is "
        "not counted), on the meta device."
    ),
    (
        "ceflnet_resnet18 has 12.24 M parameters: ResNet-18 without its ImageNet classifier "
        "(11.18 M) plus 1.06 M in the clip encoder (SAL, LRL) and EIAN. The paper's 12.83 M "
        "is matched within 0.7 % when ResNet-18's unused 1000-way classifier (0.51 M) is "
        "counted, which ptflops does when that layer stays in the model: "
        "params_with_imagenet_fc. Which way the authors counted is not stated."
    ),
    (
        "The paper counted MACs with ptflops, whose module hooks also count BatchNorm, ReLU "
        "and pooling; its figure is therefore slightly above this counter's (macs_ptflops, "
        "when ptflops is installed)."
    ),
    "C3D and C3D-LSTM rows of Table 8 are quoted from the paper, not measured.",
    (
        "Peers process a different number of frames at a different size than CEFLNet's "
        "7 x 5 x 224: compare GMACs per video and per frame with that in mind."
    ),
]


def run(quick: bool = False, use_ptflops: bool = True, argv: list[str] | None = None) -> dict:
    """Count everything and return the JSON payload.

    Args:
        quick: Only the paper's rows (Tables 8 and 9), no registry sweep or peers.
        use_ptflops: Cross-check CEFLNet with ptflops when installed.
        argv: Command line recorded in the environment.
    """
    table8_row, table9 = ceflnet_rows(use_ptflops=use_ptflops and not quick)
    quoted = [
        {
            **{k: r[k] for k in ("method", "backbone", "acc")},
            "source": "quoted",
            "paper_params_m": r["params_m"],
            "paper_gmacs": r["gmacs"],
            "paper_acc": r["acc"],
        }
        for r in PAPER_TABLE8
        if r["method"] != "CEFLNet"
    ]
    return {
        "benchmark": "complexity",
        "schema_version": SCHEMA_VERSION,
        "quick": quick,
        "environment": environment("cpu", argv),
        "counter": "torch.utils.flop_counter.FlopCounterMode via cefl_zoo.count_macs (meta)",
        "paper_table8": [*quoted, table8_row],
        "paper_table9": table9,
        "models": [] if quick else registry_rows(),
        "peers": [] if quick else peer_rows(),
        "notes": NOTES,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the paper's Table 8/9 rows")
    parser.add_argument("--no-ptflops", action="store_true", help="skip the ptflops cross-check")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON path (default results/complexity.json)"
    )
    args = parser.parse_args(argv)
    full_argv = [__file__, *(sys.argv[1:] if argv is None else argv)]
    payload = run(quick=args.quick, use_ptflops=not args.no_ptflops, argv=full_argv)
    path = write_json(args.output or result_path("complexity"), payload)
    row = payload["paper_table8"][-1]
    print(
        f"ceflnet_resnet18: {row['params'] / 1e6:.2f} M params "
        f"({row['params_rel_diff']:+.1%} vs 12.83 M), {row['macs'] / 1e9:.2f} GMACs "
        f"({row['macs_rel_diff']:+.1%} vs 63.80 G) -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
