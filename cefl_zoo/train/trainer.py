"""The reference trainer: the paper's recipe, resumable, mixed precision, multi-GPU.

:class:`Trainer` trains any registry model (CEFLNet, its ablation siblings, the
baselines) on any dataset :func:`cefl_zoo.data.build_dataset` knows, or on datasets
you pass in. One process or many (``torchrun``), CPU or GPU.

What it writes to ``output_dir`` (rank 0 only):

* ``config.json``: the resolved :class:`~cefl_zoo.train.TrainConfig`;
* ``last.pt`` (every epoch and every ``checkpoint_every_steps`` steps), ``best.pt``
  (best validation ``best_metric``), optionally ``epoch_XXX.pt``; all written
  atomically;
* ``history.json`` (one record per epoch), ``steps.jsonl`` (one line per log step:
  ``loss``, the mean since the previous line, and the epoch's ``videos`` and
  ``elapsed_s`` training seconds so far, the same after a resume as in a run never
  stopped; ``loss_steps`` only where the loss averages another number of steps than
  ``log_every_steps`` (after a resume with another ``log_every_steps``, or from a
  checkpoint that did not keep the loss since the previous line), ``clock_from_step``
  only where ``elapsed_s`` and ``videos_per_s`` count from that global step instead of
  the epoch's start (after a resume from a checkpoint that did not keep the epoch's
  seconds));
* ``metrics.json`` (last and best validation metrics), ``confusion_matrix.png`` (best
  epoch), ``training_curves.png``;
* ``train.log``: the log and the warnings of the run, including those of setting it up
  (videos a dataset lists but lacks, ...), and under ``torchrun`` every rank's warnings
  about its share of the data (the unreadable videos it skipped), marked ``[rank R]``.

A run stopped by SIGTERM (e.g. a cluster pre-empting the job) or Ctrl-C (SIGINT; a
second one aborts at once) finishes the current optimizer step, writes ``last.pt`` and
returns (under ``torchrun`` the processes agree on a stop at every step and stop
together); one killed outright (SIGKILL, power
loss) resumes from the last checkpoint. ``fit(resume="auto")`` continues either and
reaches the same weights as a run that was never stopped.

Example:
    >>> import torch
    >>> from cefl_zoo.train import Trainer, TrainConfig
    >>> class Videos(torch.utils.data.Dataset):
    ...     classes = ["happiness", "sadness"]
    ...     def __len__(self): return 8
    ...     def __getitem__(self, i):
    ...         g = torch.Generator().manual_seed(i)
    ...         return {"video": torch.randn(2, 2, 3, 32, 32, generator=g) + i % 2, "label": i % 2}
    >>> import tempfile
    >>> cfg = TrainConfig(model="ceflnet_tiny", epochs=1, batch_size=4, num_workers=0,
    ...                   output_dir=tempfile.mkdtemp(), progress=False, save_plots=False)
    >>> summary = Trainer(cfg, train_dataset=Videos(), val_dataset=Videos()).fit()
    >>> summary["status"], summary["global_step"]
    ('completed', 2)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..losses import CEFLNetLoss
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    atomic_save,
    capture_rng_state,
    check_compatible,
    find_resume_checkpoint,
    load_checkpoint,
    load_model_weights,
    model_state_dict,
    remove_stale_temp_files,
    restore_rng_state,
    unwrap_model,
)
from .config import ConfigError, TrainConfig, config_differences
from .distributed import (
    DistInfo,
    StopFlag,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    gather_objects,
    init_distributed,
    launch_rank,
)
from .evaluate import EvalResult, autocast_context, evaluate
from .loaders import (
    DataError,
    build_loader,
    build_split,
    check_not_empty,
    dataset_classes_of,
    label_mapping,
)
from .metrics import format_metrics
from .schedule import build_scheduler

__all__ = ["Trainer", "build_optimizer", "seed_everything", "train"]

log = logging.getLogger("cefl_zoo.train")


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (
        sys.stdout,
        sys.stderr,
    )


def _console_loggers() -> list[logging.Logger]:
    """Loggers whose console handlers must write through tqdm while bars are shown."""
    found = []
    lg: logging.Logger | None = logging.getLogger("cefl_zoo")
    while lg is not None:
        if any(_is_console(h) for h in lg.handlers):
            found.append(lg)
        lg = lg.parent if lg.propagate else None
    return found


class _AppendLines(logging.Handler):
    """Appends each record to a file as one line, in one ``write`` on an ``O_APPEND``
    descriptor.

    Every rank and every loader worker (forked, the descriptor inherited) appends to
    rank 0's ``train.log``: a line written by one system call at the end of the file is
    never cut into or overwritten by another process's line on a local filesystem.

    Args:
        path: The file (created if missing, never truncated).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            while data and self.fd is not None:
                data = data[os.write(self.fd, data) :]
        except Exception:  # noqa: BLE001 - as logging's handlers: a log write never stops a run
            self.handleError(record)

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None
        super().close()


class _RecordBuffer(logging.Handler):
    """Keeps the log records of the thread that made it until the handler they are for
    exists (``train.log`` opens in :meth:`Trainer.fit`, after setting up and loading a
    checkpoint have had their say). Other threads' records (another Trainer's) are not
    its business."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # (emit runs in the thread that logs; record.thread is None with logThreads off)
        if threading.get_ident() == self.thread:
            self.records.append(record)


@contextlib.contextmanager
def _info_for_train_log() -> Iterator[None]:
    """While setting up and training, let the ``cefl_zoo`` logger pass INFO records on
    the reporting process, so that ``train.log`` has the run's INFO lines whatever the
    caller configured (the CLI's :func:`~cefl_zoo.train.distributed.setup_logging`
    already does); the caller's level is back afterwards."""
    logger = logging.getLogger("cefl_zoo")
    if launch_rank() != 0 or logger.getEffectiveLevel() <= logging.INFO:
        yield
        return
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        if logger.level == logging.INFO:  # (unless changed meanwhile)
            logger.setLevel(level)


def _missing_note(dataset: Dataset | None) -> str:
    """`` (3 listed but missing)`` for a dataset whose index lists videos it lacks (left
    out, see its ``missing``), else ``""``: the run's first log line says so even where
    the dataset's own warning was shown once already (an earlier run in the process)."""
    missing = getattr(dataset, "missing", None)
    return f" ({len(missing)} listed but missing)" if isinstance(missing, list) and missing else ""


def _step_of(line: str) -> int | None:
    """The ``step`` of a ``steps.jsonl`` line; ``None`` for a blank or broken one (the
    half-written last line of a process killed mid-write)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, TypeError, KeyError):
        return None


def _warning_record(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, prefix: str = ""
) -> logging.LogRecord:
    """A Python warning as the log record ``train.log`` shows it."""
    return logging.LogRecord(
        "cefl_zoo.warnings",
        logging.WARNING,
        str(filename),
        int(lineno or 0),
        f"{prefix}{category.__name__}: {message}",
        None,
        None,
    )


def _tee_warnings_to(
    handler: logging.Handler,
    categories: tuple[type[Warning], ...] = (Warning,),
    prefix: str = "",
    thread: int | None = None,
) -> Callable[[], None]:
    """Also send Python warnings of ``categories`` (shown in ``thread``, or any) to
    ``handler``, as well as showing them as usual; returns the function that undoes it.

    Undone out of order (two Trainers in two threads), the wrapper cannot leave the
    chain of ``warnings.showwarning`` at once: it holds no handler any more, and is
    stepped over (and dropped from the chain by the next tee made or undone), so the chain
    never grows with the tees a long-lived process has made.
    """
    shown = _live_showwarning(warnings.showwarning)
    target: list[logging.Handler] = [handler]  # emptied by undo()

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if (
            target
            and (thread is None or threading.get_ident() == thread)
            and isinstance(category, type)
            and issubclass(category, categories)
        ):
            with contextlib.suppress(Exception):
                target[0].handle(_warning_record(message, category, filename, lineno, prefix))
        _live_showwarning(shown)(message, category, filename, lineno, file, line)

    showwarning._cefl_tee = (target, shown)  # type: ignore[attr-defined]
    warnings.showwarning = showwarning

    def undo() -> None:
        target.clear()
        if warnings.showwarning is showwarning:
            warnings.showwarning = _live_showwarning(shown)

    return undo


def _live_showwarning(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, or what it passes warnings on to when it is an undone tee (see
    :func:`_tee_warnings_to`)."""
    tee = getattr(fn, "_cefl_tee", None)
    while tee is not None and not tee[0]:
        fn = tee[1]
        tee = getattr(fn, "_cefl_tee", None)
    return fn


#: File suffixes that make ``init_from`` a checkpoint path rather than a model name.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")

#: What a new (not resumed) run removes from ``output_dir`` before it starts, so that
#: nothing of the run it replaces (``overwrite``) is taken for its own (a finished
#: ``metrics.json``, a ``last.pt`` to resume) should the new run be interrupted.
RUN_OUTPUTS: tuple[str, ...] = (
    "last.pt",
    "best.pt",
    "epoch_*.pt",
    "metrics.json",
    "history.json",
    "confusion_matrix.png",
    "training_curves.png",
)

#: The warnings every rank, not only rank 0, writes into ``train.log``: those about its
#: share of the data (:func:`cefl_zoo.data.base.warn_skipped`'s skipped unreadable videos
#: are RuntimeWarnings). Others (PyTorch's, say) are the same on every rank: rank 0's copy
#: is enough.
DATA_WARNINGS: tuple[type[Warning], ...] = (RuntimeWarning,)

#: Devices whose optimizers use PyTorch's fused kernels (one launch for all parameters;
#: with a GradScaler the inf check stays on the device, no host sync per step).
FUSED_OPTIMIZER_DEVICES: tuple[str, ...] = ("cuda",)


def build_optimizer(
    params: Any,
    name: str = "adam",
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    device: torch.device | str = "cpu",
    fused_devices: tuple[str, ...] = FUSED_OPTIMIZER_DEVICES,
) -> torch.optim.Optimizer:
    """The trainer's optimizer (``"adam"``, ``"adamw"`` or ``"sgd"``); also used by
    ``benchmarks/throughput.py`` so that its training step is the trainer's.

    On a device in ``fused_devices`` (CUDA) the optimizer uses PyTorch's fused kernel;
    elsewhere PyTorch's default implementation. The fused kernel computes the same
    update (up to float rounding) in one launch for all parameters.
    """
    kwargs: dict[str, Any] = {}
    if torch.device(device).type in fused_devices:
        kwargs["fused"] = True
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kwargs
        )
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {name!r}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    """Train and evaluate a video classifier with the paper's recipe.

    Args:
        config: The run's configuration.
        model: A model to train instead of ``create_model(config.model, ...)``.
        train_dataset: Training data instead of ``config.data``'s ``train_split``.
            Items are dicts with ``video`` ``(N, K, 3, H, W)`` and ``label``; the
            dataset names its classes in ``.classes`` (or set ``config.classes``).
        val_dataset: Validation data instead of ``config.data``'s ``val_split``.

    Attributes:
        model: The bare model (no DDP / compile wrapper), on the training device.
        classes: Output class names, in order.
        info: This process's :class:`~cefl_zoo.train.distributed.DistInfo`.
        history: One dict per finished epoch.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module | None = None,
        train_dataset: Dataset | None = None,
        val_dataset: Dataset | None = None,
    ) -> None:
        # What setting up says (videos a dataset lists but lacks, a backbone without
        # weights, ...) belongs in train.log too, which opens in fit(): kept until then.
        self._pending_records: list[logging.LogRecord] = []
        with _info_for_train_log(), self._keeping_records():
            self._set_up(config, model, train_dataset, val_dataset)

    @contextlib.contextmanager
    def _keeping_records(self) -> Iterator[None]:
        """Keep this thread's ``cefl_zoo`` log records and Python warnings for
        ``train.log`` (written when :meth:`_open_logs` opens it). What a step that failed
        said is not kept: the user saw it with the error, and a later run is not it."""
        buffer = _RecordBuffer()
        logger = logging.getLogger("cefl_zoo")
        logger.addHandler(buffer)
        undo_tee = _tee_warnings_to(buffer, thread=buffer.thread)
        try:
            yield
        finally:
            logger.removeHandler(buffer)
            undo_tee()
        self._pending_records.extend(buffer.records)

    def _set_up(
        self,
        config: TrainConfig,
        model: nn.Module | None,
        train_dataset: Dataset | None,
        val_dataset: Dataset | None,
    ) -> None:
        config.validate()
        self.cfg = config
        self.info: DistInfo = init_distributed(config.device)
        self.device = self.info.device
        self.output_dir = Path(config.output_dir)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": None, "value": None, "metrics": None}
        self.last_eval: EvalResult | None = None
        self.last_metrics: dict[str, Any] | None = (
            None  # of the latest evaluation (kept in checkpoints)
        )
        self._stop_requested = False
        self._half_restored: str | None = None  # a load_state that failed half-way
        self._stop_flag = StopFlag(self.info)  # agreed every optimizer step by all processes
        self._log_handler: logging.Handler | None = None
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        seed_everything(config.seed)

        self.amp = self._resolve_amp(config.amp)
        self.model = self._create_model(model)
        torch.manual_seed(
            config.seed + self.info.rank
        )  # same init everywhere; own dropout per rank
        self.gpu_decode = self._resolve_gpu_decode(train_dataset is None)
        self.train_dataset = (
            train_dataset
            if train_dataset is not None
            else build_split(
                config, config.train_split, train=True, model=self.model, encoded=self.gpu_decode
            )
        )
        check_not_empty(
            self.train_dataset,
            f"training dataset ({config.data or 'given'}, split {config.train_split!r})",
        )
        self.classes = self._resolve_classes()
        if val_dataset is not None:
            self.val_dataset: Dataset | None = val_dataset
        elif config.val_split and config.data:
            self.val_dataset = build_split(config, config.val_split, train=False, model=self.model)
        else:
            self.val_dataset = None
        self.train_lut = label_mapping(
            dataset_classes_of(self.train_dataset, self.classes),
            self.classes,
            what=f"training dataset ({config.data or type(self.train_dataset).__name__})",
        ).to(self.device)
        # The loss's targets as one-hot rows, looked up on the device like the labels:
        # index targets make the loss check their range with two host syncs per step
        # (int(target.min()), int(target.max())); rows of this table are in range by
        # construction and give the loss the very same one-hot matrix.
        self.train_targets = torch.nn.functional.one_hot(self.train_lut, len(self.classes)).float()
        if self.val_dataset is not None:
            label_mapping(  # fail now, not after the first epoch
                dataset_classes_of(self.val_dataset, self.classes),
                self.classes,
                what=f"validation dataset ({config.data or type(self.val_dataset).__name__}, "
                f"split {config.val_split!r})",
            )

        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.loss_fn = CEFLNetLoss(config.loss, label_smoothing=config.label_smoothing)
        self.optimizer = self._create_optimizer()
        collate = None
        if self.gpu_decode:
            from ..data.cache import collate_encoded
            from ..transforms import transforms_for

            collate = collate_encoded
            size = {"input_size": config.img_size} if config.img_size else {}
            tf_kwargs = {**size, **dict(config.data_kwargs.get("transform_kwargs") or {})}
            self._gpu_transform = transforms_for(self.model, train=True, **tf_kwargs)
        self.train_loader, self.train_sampler = build_loader(
            self.train_dataset, config, self.info, train=True, collate_fn=collate
        )
        num_batches = math.ceil(self.train_sampler.samples_per_epoch / config.batch_size)
        self.batches_per_epoch = num_batches
        steps = math.ceil(num_batches / config.grad_accum_steps)
        if config.limit_train_steps is not None:
            steps = min(steps, config.limit_train_steps)
        self.steps_per_epoch = steps
        self.total_steps = steps * config.epochs
        warmup = round(config.warmup_epochs * steps)
        if warmup > self.total_steps // 2:
            warmup = self.total_steps // 2
            if self.info.is_main:
                log.info(
                    "warm-up of %g epochs is longer than half the run; warming up for %d steps",
                    config.warmup_epochs,
                    warmup,
                )
        self.warmup_steps = warmup
        self.scheduler = build_scheduler(
            self.optimizer,
            config.scheduler,
            self.total_steps,
            warmup_steps=warmup,
            start_factor=config.warmup_start_factor,
            min_lr=config.min_lr,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self._frozen: bool | None = None
        self._train_model: nn.Module = self.model
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self._epoch_stats = torch.zeros(3, dtype=torch.float64)  # loss sum, videos, correct
        self._live_stats: tuple[torch.Tensor, int] | None = None  # this session's part of the epoch
        # The loss since the last steps.jsonl line (loss sum, videos, optimizer steps), and
        # the epoch's training seconds, both before this session (kept in checkpoints, so
        # a resumed run logs what an uninterrupted one does).
        self._log_window = torch.zeros(3, dtype=torch.float64)
        self._live_window: tuple[torch.Tensor, int, int] | None = None  # this session's
        self._epoch_seconds = 0.0
        self._epoch_clock: float | None = None  # perf_counter() at the epoch's start
        # The epoch step the clock started at: 0, or the resumed step of a checkpoint that
        # did not keep the epoch's seconds (the rate then counts this session's videos).
        self._clock_from_step = 0

    # -- setup -----------------------------------------------------------------------------
    def _resolve_amp(self, amp: str) -> str:
        if amp == "fp16" and self.device.type != "cuda":
            if self.info.is_main:  # (the same on every rank: said once)
                log.warning("amp=fp16 needs CUDA; training in fp32 on %s", self.device)
            return "none"
        if amp == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            if self.info.is_main:
                log.warning("this GPU has no bf16 support; training in fp32 (try --amp fp16)")
            return "none"
        return amp

    #: Devices on which ``gpu_decode`` runs (tests add ``"cpu"`` to exercise the path).
    _gpu_decode_devices: tuple[str, ...] = ("cuda",)

    def _resolve_gpu_decode(self, from_spec: bool) -> bool:
        cfg = self.cfg
        if not cfg.gpu_decode:
            return False
        if not from_spec or cfg.data_spec is None or cfg.data_spec.name != "cache":
            raise ConfigError(
                "gpu_decode needs a JPEG frame cache as the data: --data cache:DIR (build one with "
                "cefl_zoo.data.build_frame_cache(dataset, DIR, size=...))"
            )
        if self.device.type not in self._gpu_decode_devices:
            if self.info.is_main:
                log.warning(
                    "gpu_decode needs CUDA; decoding the cache on the CPU in the loader workers"
                )
            return False
        return True

    def _to_device(self, batch: dict[str, Any]) -> torch.Tensor:
        """The batch's video on the training device (decoded there with ``gpu_decode``)."""
        if self.gpu_decode:
            from ..data.cache import prepare_batch

            return prepare_batch(
                batch, self.device, self._gpu_transform, channels_last=self.cfg.channels_last
            )
        return batch["video"].to(self.device, non_blocking=True)

    def _create_model(self, model: nn.Module | None) -> nn.Module:
        from ..registry import create_model, is_model

        cfg = self.cfg
        given = model is not None
        if model is None:
            kwargs = dict(cfg.model_kwargs)
            if cfg.classes:
                kwargs["num_classes"] = len(cfg.classes)
            if cfg.pretrained_backbone and not cfg.pretrained and is_model(cfg.model):
                kwargs.setdefault("pretrained_backbone", True)
            model = create_model(cfg.model, pretrained=cfg.pretrained, **kwargs)
            from_scratch = not (
                cfg.pretrained or cfg.init_from or kwargs.get("pretrained_backbone")
            )
            backbone = getattr(model, "config", {}).get("backbone")
            if (
                from_scratch
                and is_model(cfg.model)
                and isinstance(backbone, str)
                and not backbone.startswith("test_")  # timm's tiny test models
                and self.info.is_main
            ):
                log.warning(
                    "%s starts from a randomly initialised %s backbone; the paper starts "
                    "from ImageNet weights: pass --pretrained-backbone (or --init-from / "
                    "--pretrained) unless training from scratch is what you want",
                    cfg.model,
                    backbone,
                )
        # Where the weights that training starts from came from, for the model's notes.
        start = getattr(model, "pretrained_cfg", None)
        if cfg.init_from:
            self._weights_origin = str(cfg.init_from)
        elif start is not None and start.tag:
            self._weights_origin = start.name  # a registered weight set
        elif given:
            name = getattr(model, "architecture", None) or type(model).__name__
            self._weights_origin = f"the {name} model it was given"
        elif not is_model(cfg.model):
            self._weights_origin = str(cfg.model)  # a saved folder or hf-hub: repo
        elif cfg.pretrained_backbone:
            self._weights_origin = "an ImageNet backbone"
        else:
            self._weights_origin = "random weights"
        if cfg.init_from:
            self._init_weights_from(model, cfg.init_from)
        return model

    def _init_weights_from(self, model: nn.Module, source: str) -> None:
        """Copy weights from a checkpoint / model directory; a head of other classes is dropped."""
        path = Path(source)
        local = Path(source.removeprefix("local-dir:"))
        looks_like_a_path = not source.startswith(("hf-hub:", "hf_hub:")) and (
            source.startswith("local-dir:")
            or local.suffix.lower() in CHECKPOINT_SUFFIXES
            or any(sep in source for sep in ("/", os.sep))
        )
        if looks_like_a_path and not local.exists():
            raise CheckpointError(
                f"init_from (--init-from) {source!r} does not exist: there is no checkpoint "
                "file or model folder of that name"
            )
        if path.is_file():
            ckpt = load_checkpoint(path)
            check_compatible(ckpt, model, path, allow_new_head=True)
            state, names = ckpt["model"], ckpt.get("label_names")
        else:
            from ..registry import create_model, is_model

            donor = create_model(source, pretrained=is_model(source))  # "arch.tag": its weights
            check_compatible(
                {
                    "architecture": getattr(donor, "architecture", None),
                    "model_config": getattr(donor, "config", {}),
                },
                model,
                source,
                allow_new_head=True,
            )
            state, names = donor.state_dict(), list(getattr(donor, "label_names", []) or [])
        own = unwrap_model(model).state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        dropped = sorted(set(state) - set(fits))
        if len(state) and len(dropped) == len(state):
            raise DataError(
                f"no weights of {source} fit model {getattr(model, 'architecture', '?')}"
            )
        load_model_weights(model, fits, strict=False)
        if (
            names
            and hasattr(model, "pretrained_cfg")
            and len(names) == getattr(model, "num_classes", -1)
            and not dropped
        ):
            model.pretrained_cfg = model.pretrained_cfg.replace(label_names=tuple(names))
        if self.info.is_main:
            log.info(
                "initialised from %s (%d tensors%s)",
                source,
                len(fits),
                f"; new head, dropped {len(dropped)}: {', '.join(dropped[:4])}" if dropped else "",
            )

    def _resolve_classes(self) -> list[str]:
        """Output classes: ``config.classes``, a pretrained head's classes, or the dataset's."""
        cfg = self.cfg
        data_classes = dataset_classes_of(self.train_dataset, cfg.classes)
        model = self.model
        if cfg.classes:
            classes = list(cfg.classes)
        else:
            names = list(getattr(model, "label_names", []) or [])
            real = names and not all(n.startswith("class_") for n in names)
            keep_head = False
            if real and len(names) == getattr(model, "num_classes", -1):
                try:
                    label_mapping(data_classes, names)
                    keep_head = True
                except DataError:
                    keep_head = False
            classes = names if keep_head else data_classes
            if keep_head and self.info.is_main:
                log.info("keeping the pretrained head: classes %s", ", ".join(classes))
        if getattr(model, "num_classes", len(classes)) != len(classes) or (
            not cfg.classes
            and list(getattr(model, "label_names", [])) not in ([], classes)
            and not all(n.startswith("class_") for n in getattr(model, "label_names", []))
        ):
            if not hasattr(model, "reset_classifier"):
                raise DataError(
                    f"model has {model.num_classes} outputs but the data has {len(classes)} classes"
                )
            if self.info.is_main:
                log.info(
                    "new classification head: %d classes (%s)", len(classes), ", ".join(classes)
                )
            model.reset_classifier(len(classes))
        if hasattr(model, "pretrained_cfg"):
            start = model.pretrained_cfg
            notes = f"trained with cefl-zoo's Trainer, starting from {self._weights_origin}"
            # The trained weights are new ones: not the tag, scores or data of the weights
            # training started from.
            model.pretrained_cfg = start.derived(notes) if start.has_provenance else start
            changes: dict[str, Any] = {
                "notes": notes,
                "label_names": tuple(classes),
                "num_clips": cfg.num_clips,
                "frames_per_clip": cfg.frames_per_clip,
                "train_command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) or None,
            }
            if cfg.img_size is not None:
                changes["input_size"] = (
                    model.pretrained_cfg.input_size[0],
                    cfg.img_size,
                    cfg.img_size,
                )
            if cfg.data:
                changes["dataset"] = cfg.data_spec.name  # type: ignore[union-attr]
                changes["fold"] = None if cfg.fold is None else str(cfg.fold)
            model.pretrained_cfg = model.pretrained_cfg.replace(**changes)
        return classes

    #: Devices on which the optimizer is fused (tests add ``"cpu"`` to exercise the path).
    _fused_optimizer_devices: tuple[str, ...] = FUSED_OPTIMIZER_DEVICES

    def _create_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        return build_optimizer(
            list(self.model.parameters()),
            cfg.optimizer,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
            device=self.device,
            fused_devices=self._fused_optimizer_devices,
        )

    def _load_optimizer_state(self, state: dict[str, Any], lr_ratio: float = 1.0) -> None:
        """Load a saved optimizer state (its moments and step counters) under this run's
        hyper-parameters.

        ``load_state_dict`` takes every hyper-parameter from the checkpoint: a resumed run
        with another ``--weight-decay`` or ``--momentum`` would silently keep the old one,
        and ``fused`` / ``foreach`` place the step counters. This run's values are kept
        instead (fused on CUDA, PyTorch's default elsewhere); the learning rate, which
        the schedule moves, is the saved one times ``lr_ratio`` (new ``--lr`` / old).
        """
        own = self.optimizer.param_groups[0]
        keep = {k: v for k, v in own.items() if k not in ("params", "lr", "initial_lr")}
        groups = []
        for saved in state.get("param_groups", []):
            group = {**saved, **keep}
            for key in ("lr", "initial_lr"):
                if key in group:
                    group[key] = group[key] * lr_ratio
            groups.append(group)
        self.optimizer.load_state_dict({**state, "param_groups": groups})

    def _set_frozen(self, frozen: bool) -> None:
        """Freeze / unfreeze the backbone and (re)build the DDP / compile wrapper."""
        if frozen == self._frozen:
            return
        backbone = getattr(self.model, "backbone", None)
        if frozen and backbone is None:
            raise DataError("freeze_backbone_epochs needs a model with a `backbone` attribute")
        if backbone is not None:
            for p in backbone.parameters():
                p.requires_grad_(not frozen)
                if frozen:
                    p.grad = None
        self._frozen = frozen
        wrapped: nn.Module = self.model
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DDP(self.model, device_ids=ids)
        if self.cfg.compile:
            wrapped = torch.compile(wrapped)
        self._train_model = wrapped
        if self.info.is_main and frozen:
            log.info("backbone frozen for the first %d epoch(s)", self.cfg.freeze_backbone_epochs)

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The full training state (gathers every rank's RNG state; call on all ranks)."""
        rng = gather_objects(capture_rng_state(), self.info)
        stats = gather_objects(self._current_epoch_stats().tolist(), self.info)
        window = gather_objects(self._current_log_window().tolist(), self.info)
        bare = unwrap_model(self.model)
        from .. import __version__

        return {
            "format": CHECKPOINT_FORMAT,
            "cefl_zoo_version": __version__,
            "torch_version": str(torch.__version__),
            "architecture": getattr(bare, "architecture", None),
            "model_config": dict(getattr(bare, "config", {}) or {}),
            "pretrained_cfg": bare.pretrained_cfg.to_dict()
            if hasattr(bare, "pretrained_cfg")
            else None,
            "label_names": list(self.classes),
            "model": model_state_dict(bare),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.info.world_size,
            "rng": rng,
            "epoch_stats": stats,
            "log_window": window,
            "epoch_seconds": None if self._clock_from_step else self._current_epoch_seconds(),
            "history": self.history,
            "best": {k: v for k, v in self.best.items()},
            "last_metrics": self.last_metrics,
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self, name: str = "last.pt", extra_names: tuple[str, ...] = ()) -> Path:
        """Write the training state to ``output_dir/name`` (rank 0; call on all ranks)."""
        state = self.state_dict()
        path = self.output_dir / name
        if self.info.is_main:
            atomic_save(state, path)
            for extra in extra_names:
                atomic_save(state, self.output_dir / extra)
        barrier(self.info)
        return path

    def load_state(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (model, optimizer,
        scheduler, scaler, epoch, step, RNG, history).

        Raises:
            CheckpointMismatchError: The checkpoint belongs to another architecture.
        """
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, self.model, path)
        if list(ckpt.get("label_names") or []) != list(self.classes):
            raise DataError(
                f"checkpoint {path} was trained on classes {ckpt.get('label_names')}, but this run "
                f"has {self.classes}; resume with the same data and --classes"
            )
        try:
            self._restore(ckpt, path)
        except BaseException as err:
            # weights, optimizer, ... may be the checkpoint's, the rest this trainer's own
            self._half_restored = f"{path} ({type(err).__name__}: {err})"
            raise
        self._half_restored = None

    def _restore(self, ckpt: dict[str, Any], path: str | os.PathLike) -> None:
        """The part of :meth:`load_state` that changes this trainer's state."""
        load_model_weights(self.model, ckpt["model"])
        # A changed --lr applies from here on, as a changed schedule does: the saved state
        # would bring the old one back (scheduler base_lrs, the groups' lr).
        saved_lr = (ckpt.get("config") or {}).get("lr")
        ratio = float(self.cfg.lr) / float(saved_lr) if saved_lr else 1.0
        self._load_optimizer_state(ckpt["optimizer"], lr_ratio=ratio)
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ratio != 1.0:
            self.scheduler.base_lrs = [b * ratio for b in self.scheduler.base_lrs]
            self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.scaler.load_state_dict(ckpt["scaler"])
        if ckpt.get("steps_per_epoch") not in (None, self.steps_per_epoch) and self.info.is_main:
            log.warning(
                "checkpoint %s had %s steps per epoch, this run has %d: the resumed run will "
                "not retrace the original one exactly",
                path,
                ckpt["steps_per_epoch"],
                self.steps_per_epoch,
            )
        self.epoch = int(ckpt["epoch"])
        self.step_in_epoch = int(ckpt["step_in_epoch"])
        self.global_step = int(ckpt["global_step"])
        self.history = list(ckpt.get("history") or [])
        self.best = dict(ckpt.get("best") or self.best)
        self.last_metrics = ckpt.get("last_metrics")
        rng, stats = ckpt["rng"], ckpt.get("epoch_stats")
        same_world = ckpt.get("world_size") == self.info.world_size
        restore_rng_state(rng[self.info.rank] if same_world else rng[0])
        if stats is not None and same_world:
            self._epoch_stats = torch.tensor(stats[self.info.rank], dtype=torch.float64)
        elif stats is not None:
            # Another number of processes: the epoch's sums so far (loss, videos, correct)
            # are summed over the ranks at the epoch's end, so rank 0 carries them all.
            total = torch.tensor(stats, dtype=torch.float64).reshape(-1, 3).sum(0)
            self._epoch_stats = total if self.info.is_main else torch.zeros(3, dtype=torch.float64)
        # The loss since the last steps.jsonl line; a checkpoint written before it was kept
        # has none, and the first line says how many steps its loss averages instead.
        window = ckpt.get("log_window")
        self._log_window = torch.zeros(3, dtype=torch.float64)
        if window is not None and same_world:
            self._log_window = torch.tensor(window[self.info.rank], dtype=torch.float64)
        elif window is not None:  # rank 0 carries the sums, as for the epoch statistics
            rows = torch.tensor(window, dtype=torch.float64).reshape(-1, 3)
            if self.info.is_main:
                self._log_window[:2] = rows[:, :2].sum(0)
            self._log_window[2] = rows[0, 2]  # (the same steps on every rank)
        seconds = ckpt.get("epoch_seconds")
        self._epoch_seconds = float(seconds or 0.0)
        self._clock_from_step = self.step_in_epoch if seconds is None else 0
        if self.info.is_main:
            changed = config_differences(ckpt.get("config") or {}, self.cfg)
            if changed and ckpt.get("config"):
                log.warning(
                    "resuming with changed options (they apply from here on): %s",
                    ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()),
                )
            log.info(
                "resumed from %s: epoch %d, step %d of %d, global step %d",
                path,
                self.epoch + 1,
                self.step_in_epoch,
                self.steps_per_epoch,
                self.global_step,
            )

    # -- signals -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the run to checkpoint and return after the current optimizer step."""
        self._stop_requested = True

    def _refuse_to_replace_a_run(self) -> None:
        """A new run must not overwrite the checkpoints of an earlier one unasked."""
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ConfigError(
                f"output dir {self.output_dir} is a file, not a folder: choose another --output-dir"
            )
        for parent in self.output_dir.absolute().parents:
            if parent.exists() and not parent.is_dir():
                raise ConfigError(
                    f"output dir {self.output_dir} lies under {parent}, which is a file, not a "
                    "folder: choose another --output-dir"
                )
        if not self.output_dir.is_dir():
            return
        found = sorted(
            p.name
            for p in self.output_dir.iterdir()
            if p.is_file() and (p.name in ("last.pt", "best.pt") or p.name.startswith("epoch_"))
        )
        if found:
            raise ConfigError(
                f"{self.output_dir} already holds a training run ({', '.join(found[:4])}"
                f"{' ...' if len(found) > 4 else ''}). Pass --resume to continue it, "
                "--overwrite to start again and replace it, or choose another --output-dir."
            )

    def _clear_previous_run(self) -> None:
        """Remove what an earlier run left in ``output_dir`` (:data:`RUN_OUTPUTS`).

        A new run replaces the earlier one from its start: were it interrupted before
        writing its own files, the earlier ``metrics.json`` would pass for its result and
        the earlier ``last.pt`` would be resumed.
        """
        removed = sorted(
            {p for pattern in RUN_OUTPUTS for p in self.output_dir.glob(pattern) if p.is_file()}
        )
        for path in removed:
            path.unlink()
        if removed:
            log.info(
                "starting a new run in %s: removed the earlier run's %s",
                self.output_dir,
                ", ".join(p.name for p in removed),
            )

    @contextlib.contextmanager
    def _sigterm_checkpoints(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum, frame):
            self._stop_requested = True
            if signum == signal.SIGINT:
                # Ctrl-C: finish the step and write last.pt; a second Ctrl-C aborts at once.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                if self.info.is_main:
                    log.warning(
                        "Ctrl-C: finishing the current step and writing last.pt "
                        "(press Ctrl-C again to abort without saving)"
                    )

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _should_stop(self) -> bool:
        """Whether to stop after this optimizer step: asked for here or, in a distributed
        run, on any process. The processes agree at every step (one all-reduce of one
        number on the CPU), so they stop together and rank 0 writes ``last.pt`` in time."""
        if not self.info.distributed:
            return self._stop_requested
        return self._stop_flag(self._stop_requested)

    # -- logging -----------------------------------------------------------------------------
    def _open_logs(self, resumed_step: int | None) -> None:
        """Open ``train.log`` (and ``steps.jsonl``, rank 0) for this session.

        Rank 0 writes its log and its Python warnings there; every other rank appends
        only its warnings about the data (a skipped unreadable video, ...), each marked
        with its rank: the videos of the run are split between the ranks, so only the
        rank that read a broken one can tell. Their ordinary log lines (rank 0's, again)
        stay out.
        """
        if not self.info.is_main:
            self._pending_records.clear()  # (every rank sets up alike: rank 0's suffice)
            try:
                handler = _AppendLines(self.output_dir / "train.log")
            except OSError as err:  # e.g. an output dir that this node does not share
                log.warning(
                    "cannot append to %s (%s): the videos this process skips are not listed there",
                    self.output_dir / "train.log",
                    err,
                )
                return
            self._log_handler = handler  # (not on the logger: warnings only)
            self._tee_warnings(handler, categories=DATA_WARNINGS)
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        handler = _AppendLines(self.output_dir / "train.log")
        logging.getLogger("cefl_zoo").addHandler(handler)
        self._log_handler = handler
        for record in self._pending_records:  # what was said before the log was open
            handler.handle(record)
        self._pending_records.clear()
        self._tee_warnings(handler)
        steps_file = self.output_dir / "steps.jsonl"
        if resumed_step is not None and steps_file.is_file():
            keep = [
                line
                for line in steps_file.read_text().splitlines()
                if (step := _step_of(line)) is not None and step <= resumed_step
            ]
            steps_file.write_text("".join(line + "\n" for line in keep))
        elif resumed_step is None:
            steps_file.write_text("")

    def _tee_warnings(
        self, handler: logging.Handler, categories: tuple[type[Warning], ...] = (Warning,)
    ) -> None:
        """Also write Python warnings (a skipped unreadable video, ...) into train.log.

        Loader workers started after this (fork) inherit it, so the videos they skip are
        logged too. In a distributed run each line names its rank (``[rank 1]``).

        Args:
            handler: Where the warnings go.
            categories: The warnings to write (the others are only shown as usual).
        """
        rank = f"[rank {self.info.rank}] " if self.info.distributed else ""
        self._untee_warnings = _tee_warnings_to(handler, categories, rank)

    def _close_logs(self) -> None:
        untee = getattr(self, "_untee_warnings", None)
        if untee is not None:
            untee()
            self._untee_warnings = None
        if self._log_handler is not None:
            logging.getLogger("cefl_zoo").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def _write_step(self, record: dict[str, Any]) -> None:
        if self.info.is_main:
            with open(self.output_dir / "steps.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    # -- training ----------------------------------------------------------------------------
    def fit(self, resume: str | os.PathLike | None = None) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (from a checkpoint with ``resume``).

        Args:
            resume: ``None`` (fresh run), ``"auto"`` (``output_dir/last.pt`` when it
                exists) or a checkpoint path.

        Returns:
            A summary: ``status`` (``"completed"`` or ``"interrupted"`` by SIGTERM /
            :meth:`request_stop`), ``epoch``, ``global_step``, ``best_epoch``,
            ``best`` and ``last`` validation metrics, ``history``, ``output_dir`` and
            ``stop_requested`` (a completed run that was asked to stop after its last
            step, e.g. during the final evaluation: a caller running more, such as the
            next fold, should stop too).
        """
        with _info_for_train_log():
            return self._fit(resume)

    def _fit(self, resume: str | os.PathLike | None) -> dict[str, Any]:
        from tqdm.contrib.logging import logging_redirect_tqdm

        cfg = self.cfg
        with self._keeping_records():  # (for train.log, which opens once they are done)
            resume_path = self._prepare_run(resume)
        status = "completed"
        late_stop = False
        try:
            self._open_logs(self.global_step if resume_path is not None else None)
            self._log_run()
            with self._sigterm_checkpoints(), logging_redirect_tqdm(loggers=_console_loggers()):
                while self.epoch < cfg.epochs:
                    if not self._train_epoch():
                        status = "interrupted"
                        break
                    self._end_epoch()
                if status == "completed" and self.info.is_main:
                    self._write_final_outputs()
                if status == "completed":  # a stop asked for after the last step (agreed)
                    late_stop = self._should_stop()
        finally:
            self._stop_requested = False  # honoured (or too late): a later fit() trains on
            self._close_logs()
        summary = self.summary(status)
        summary["stop_requested"] = late_stop
        return summary

    def _prepare_run(self, resume: str | os.PathLike | None) -> Path | None:
        """Find the checkpoint to resume, prepare ``output_dir``, load the checkpoint;
        returns its path (``None``: a new run)."""
        cfg = self.cfg
        resume_path: Path | None = None
        if resume == "auto":
            resume_path = find_resume_checkpoint(self.output_dir)
            if resume_path is None and self.info.is_main:
                log.info("no checkpoint in %s: starting a new run", self.output_dir)
        elif resume:
            resume_path = Path(resume)
        if resume_path is None and self._half_restored:
            raise CheckpointError(
                f"this Trainer was left half-restored by a failed load of {self._half_restored}: "
                "build a new Trainer for a new run, or resume from a checkpoint that loads"
            )
        if resume_path is None and not cfg.overwrite:
            self._refuse_to_replace_a_run()
        if self.info.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temp_files(self.output_dir):
                log.info("removed %s, left by an interrupted write", stale.name)
            if resume_path is None:
                self._clear_previous_run()
            cfg.save(self.output_dir / "config.json")
        barrier(self.info)
        if resume_path is not None:
            self.load_state(resume_path)
        return resume_path

    def _log_run(self) -> None:
        """The run's first line in the log: model, device, data, schedule."""
        cfg = self.cfg
        if self.info.is_main:
            n_params = sum(p.numel() for p in self.model.parameters())
            log.info(
                "training %s (%.2f M params) on %s x%d | %d train videos%s, %s val videos%s | "
                "%d epoch%s x "
                "%d steps, batch %d x %d process(es) x %d accumulation | amp %s",
                getattr(self.model, "architecture", type(self.model).__name__),
                n_params / 1e6,
                self.device,
                self.info.world_size,
                len(self.train_dataset),  # type: ignore[arg-type]
                _missing_note(self.train_dataset),
                len(self.val_dataset) if self.val_dataset is not None else "no",  # type: ignore[arg-type]
                _missing_note(self.val_dataset),
                cfg.epochs,
                "" if cfg.epochs == 1 else "s",
                self.steps_per_epoch,
                cfg.batch_size,
                self.info.world_size,
                cfg.grad_accum_steps,
                self.amp,
            )

    def _train_epoch(self) -> bool:
        """Train (the rest of) epoch ``self.epoch``; False when stopped by a signal."""
        from tqdm.auto import tqdm

        cfg, info = self.cfg, self.info
        epoch, start_step = self.epoch, self.step_in_epoch
        if start_step == 0:
            self._epoch_stats.zero_()
            self._log_window.zero_()
            self._epoch_seconds = 0.0
            self._clock_from_step = 0
        self.train_sampler.set_epoch(epoch)
        self.train_sampler.set_start_index(start_step * cfg.grad_accum_steps * cfg.batch_size)
        self._set_frozen(epoch < cfg.freeze_backbone_epochs)
        self.model.train()
        if self._frozen and hasattr(self.model, "backbone"):
            self.model.backbone.eval()  # frozen norm statistics
        if start_step >= self.steps_per_epoch:
            return True
        accum = cfg.grad_accum_steps
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=start_step,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and info.is_main),
            dynamic_ncols=True,
            leave=False,
        )
        bar_every = max(1, min(10, cfg.log_every_steps))
        # Reading the running loss waits for the device: only at log steps, and for a
        # shown progress bar every ``bar_every`` steps.
        bar_shown = not bar.disable
        stats = torch.zeros(
            2, dtype=torch.float64, device=self.device
        )  # loss sum, correct (on device)
        # The loss since the last log line, restored by a resume (saved in checkpoints)
        saved_loss, saved_videos, saved_steps = self._log_window.tolist()
        window = torch.tensor(
            [saved_loss], dtype=torch.float64, device=self.device
        )  # loss sum since the last log
        window_videos, window_steps = int(saved_videos), int(saved_steps)
        # the epoch's clock: its training seconds before a resume count
        t0 = time.perf_counter() - self._epoch_seconds
        self._epoch_clock = t0
        videos_seen = 0  # this process's videos in this session, the sampler's padding left out
        position = start_step * accum * cfg.batch_size  # in this rank's share
        clock_from = self._clock_from_step * accum * cfg.batch_size  # where t0 counts from
        self._live_stats = (stats, 0)
        self._live_window = (window, window_videos, window_steps)
        step = start_step
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(self.train_loader):
            batch_idx = start_step * accum + i
            group_start = batch_idx - batch_idx % accum
            group_size = min(accum, self.batches_per_epoch - group_start)
            group_end = batch_idx - group_start == group_size - 1
            video = self._to_device(batch)
            label_idx = batch["label"].to(self.device, non_blocking=True).long()
            labels = self.train_lut[label_idx]
            targets = self.train_targets[label_idx]
            sync = contextlib.nullcontext()
            if info.distributed and not group_end:
                inner = getattr(self._train_model, "_orig_mod", self._train_model)
                sync = inner.no_sync() if hasattr(inner, "no_sync") else sync
            b = labels.shape[0]
            real = self._real_videos(position, b)
            with sync:
                with autocast_context(self.device, self.amp):
                    logits = self._train_model(video)
                loss = self.loss_fn(logits.float(), targets)
                train_loss = loss
                real_everywhere = self._global_videos(position, position + b)
                if real_everywhere < b * info.world_size:
                    # DistributedSampler padded a share with repeats: leave them out of
                    # the gradient too. Each rank's loss is its real videos' sum over all
                    # ranks' real videos (x world size: DDP averages the ranks), so the
                    # step is the mean over the real videos, as in one process.
                    part = (
                        self.loss_fn(logits[:real].float(), targets[:real]) * real
                        if real
                        else logits.float().sum() * 0.0  # keeps every rank in the backward
                    )
                    train_loss = part * info.world_size / max(real_everywhere, 1)
                self.scaler.scale(train_loss / group_size).backward()
            position += b
            with torch.no_grad():
                out, seen_labels, batch_loss = logits.detach(), labels, loss.detach()
                if real < b:  # the sampler's padding (repeats) is left out of the statistics
                    out, seen_labels = out[:real], labels[:real]
                    batch_loss = (
                        self.loss_fn(out.float(), targets[:real]) if real else loss.new_zeros(())
                    )
                weighted = batch_loss.double() * real
                stats[0] += weighted
                stats[1] += (out.argmax(-1) == seen_labels).sum()
                window += weighted
            videos_seen += real
            window_videos += real
            self._live_stats = (stats, videos_seen)
            if not group_end:
                continue
            if cfg.clip_grad_norm:  # None or 0: no clipping
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
            self.scheduler.step()
            step += 1
            self.step_in_epoch = step
            self.global_step += 1
            window_steps += 1
            log_now = self.global_step % cfg.log_every_steps == 0 or step == self.steps_per_epoch
            if log_now or (bar_shown and step % bar_every == 0):
                local = float(window) / max(window_videos, 1)  # (waits for the device)
                elapsed = time.perf_counter() - t0
                videos_all = self._global_videos(0, position)  # the epoch's so far
                rate = self._global_videos(clock_from, position) / max(1e-9, elapsed)
                if log_now:
                    loss_avg = all_reduce_mean(local, info, weight=window_videos)
                    record = {
                        "step": self.global_step,
                        "epoch": epoch + 1,
                        "loss": loss_avg,
                        "lr": lr,
                        "videos_per_s": rate,
                        "elapsed_s": elapsed,
                        "videos": videos_all,
                    }
                    if window_steps != self._steps_since_log_line(step):
                        # (resumed from a checkpoint without the loss since the last line)
                        record["loss_steps"] = window_steps
                    if self._clock_from_step:  # (resumed without the epoch's seconds)
                        record["clock_from_step"] = self.global_step - step + self._clock_from_step
                    self._write_step(record)
                    window.zero_()
                    window_videos = window_steps = 0
                else:
                    loss_avg = local
                bar.set_postfix(
                    loss=f"{loss_avg:.4f}", lr=f"{lr:.2e}", vid_s=f"{rate:.1f}", refresh=False
                )
            self._live_window = (window, window_videos, window_steps)
            bar.update(1)
            done = step >= self.steps_per_epoch
            if self._should_stop():
                bar.close()
                if done:  # the epoch's last step: finish the epoch normally, then stop
                    self._finish_epoch_session(t0, clock_from, position)
                    self._end_epoch()
                else:
                    self.save_checkpoint("last.pt")
                    self._suspend_epoch_session()
                if info.is_main:
                    log.info(
                        "stop requested: saved %s at global step %d",
                        self.output_dir / "last.pt",
                        self.global_step,
                    )
                return False
            if (
                cfg.checkpoint_every_steps
                and self.global_step % cfg.checkpoint_every_steps == 0
                and not done
            ):
                self.save_checkpoint("last.pt")
            if done:
                break
        bar.close()
        self._finish_epoch_session(t0, clock_from, position)
        return True

    def _steps_since_log_line(self, step: int) -> int:
        """Optimizer steps since the epoch's previous ``steps.jsonl`` line (or its start)
        at step ``step`` of the epoch: what a log line's loss averages."""
        every = self.cfg.log_every_steps
        previous = max(self.global_step - step, (self.global_step - 1) // every * every)
        return self.global_step - previous

    def _finish_epoch_session(self, t0: float, clock_from: int, position: int) -> None:
        """The epoch's training is done: its statistics and time, for :meth:`_end_epoch`
        (the time and rate since ``t0``, when the sample at ``clock_from`` was next)."""
        self._fold_live_stats()
        self._live_window = None
        self._log_window.zero_()  # (every epoch's last step writes a line)
        seconds = time.perf_counter() - t0
        self._epoch_rate = self._global_videos(clock_from, position) / max(1e-9, seconds)
        # the epoch's time is unknown when the clock started after a resume
        self._epoch_time = None if self._clock_from_step else seconds
        self._epoch_clock = None
        self._epoch_seconds = 0.0
        self._clock_from_step = 0

    def _suspend_epoch_session(self) -> None:
        """Stopped mid-epoch: keep what the checkpoint holds for a later :meth:`fit`."""
        self._log_window = self._current_log_window()
        self._epoch_seconds = self._current_epoch_seconds()
        self._fold_live_stats()
        self._live_window = None
        self._epoch_clock = None

    def _real_videos(self, position: int, size: int) -> int:
        """How many of this rank's ``size`` samples from ``position`` of its epoch share are
        videos of the dataset, not the repeats DistributedSampler pads the share with.

        Rank ``r`` of ``w`` gets the positions ``r, r + w, r + 2w, ...`` of the padded
        permutation; those from ``len(dataset)`` on are padding, so the real samples of a
        batch come first.
        """
        n, w, r = len(self.train_sampler.dataset), self.info.world_size, self.info.rank
        share = max(0, (n - r + w - 1) // w)  # this rank's real samples per epoch
        return max(0, min(size, share - position))

    def _global_videos(self, start: int, end: int) -> int:
        """Videos all ranks trained on between positions ``start`` and ``end`` of their
        shares (every rank is at the same position), the sampler's padding left out."""
        n, w = len(self.train_sampler.dataset), self.info.world_size
        return min(n, end * w) - min(n, start * w)

    def _live_totals(self) -> torch.Tensor:
        """This session's part of the epoch as (loss sum, videos, correct) on the CPU."""
        if self._live_stats is None:
            return torch.zeros(3, dtype=torch.float64)
        stats, videos = self._live_stats
        loss_sum, correct = stats.tolist()
        return torch.tensor([loss_sum, float(videos), correct], dtype=torch.float64)

    def _current_log_window(self) -> torch.Tensor:
        """The loss since the last log line as (loss sum, videos, steps) on the CPU."""
        if self._live_window is None:
            return self._log_window.clone()
        window, videos, steps = self._live_window
        return torch.tensor([float(window), float(videos), float(steps)], dtype=torch.float64)

    def _current_epoch_seconds(self) -> float:
        """The current epoch's training seconds so far (its earlier sessions' included)."""
        if self._epoch_clock is None:
            return self._epoch_seconds
        return time.perf_counter() - self._epoch_clock

    def _fold_live_stats(self) -> None:
        self._epoch_stats += self._live_totals()
        self._live_stats = None

    def _current_epoch_stats(self) -> torch.Tensor:
        return self._epoch_stats + self._live_totals()

    def _last_step_lr(self) -> float:
        """The learning rate the last optimizer step used (the scheduler has moved on to
        the next step's; after a resume too, where no step of this session was taken)."""
        sched = self.scheduler
        if sched.last_epoch < 1:  # no step yet
            return self.optimizer.param_groups[0]["lr"]
        return sched.base_lrs[0] * sched.lr_lambdas[0](sched.last_epoch - 1)

    def _end_epoch(self) -> None:
        """Reduce the epoch's statistics, evaluate, record history, checkpoint."""
        cfg, info = self.cfg, self.info
        totals = torch.tensor(self._epoch_stats.tolist(), dtype=torch.float64)
        if info.distributed:
            totals = totals.to(self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(totals)
            totals = totals.cpu()
        record: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "global_step": self.global_step,
            "train_loss": float(totals[0] / totals[1]) if totals[1] else None,
            "train_acc": float(totals[2] / totals[1]) if totals[1] else None,
            "lr": self._last_step_lr(),
            "time_s": getattr(self, "_epoch_time", None),
            "videos_per_s": getattr(self, "_epoch_rate", None),
        }
        last_epoch = self.epoch + 1 == cfg.epochs
        if self.val_dataset is not None and (
            (self.epoch + 1) % cfg.eval_every_epochs == 0 or last_epoch
        ):
            result = self.evaluate()
            m = result.metrics
            record.update(
                val_loss=m.get("loss"),
                val_war=m["war"],
                val_uar=m["uar"],
                val_clip_locating=(m.get("clip_locating") or {}).get("gt_class"),
            )
            self.last_eval = result
            self.last_metrics = m
            value = m["loss"] if cfg.best_metric == "loss" else m[cfg.best_metric]
            best = self.best["value"]
            # nan / inf (an overflowed loss) never wins, and never blocks a real value
            better = value is not None and math.isfinite(value)
            if better and best is not None and math.isfinite(best):
                better = value < best if cfg.best_metric == "loss" else value > best
            if info.is_main:
                log.info(
                    "epoch %d/%d  train loss %.4f acc %.4f | val %s",
                    self.epoch + 1,
                    cfg.epochs,
                    record["train_loss"],
                    record["train_acc"],
                    format_metrics(m).splitlines()[0],
                )
        else:
            better = self.val_dataset is None
            if info.is_main:
                log.info(
                    "epoch %d/%d  train loss %.4f acc %.4f",
                    self.epoch + 1,
                    cfg.epochs,
                    record["train_loss"],
                    record["train_acc"],
                )
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self._epoch_stats.zero_()
        names: list[str] = []
        if better:
            self.best = {
                "epoch": self.epoch,
                "value": record.get(f"val_{cfg.best_metric}"),
                "metrics": self.last_metrics if self.val_dataset is not None else None,
            }
            names.append("best.pt")
        if cfg.keep_epoch_checkpoints:
            names.append(f"epoch_{self.epoch:03d}.pt")
        self.save_checkpoint("last.pt", extra_names=tuple(names))
        if info.is_main:
            self._write_json("history.json", self.history)
            if cfg.save_plots:
                from .plots import plot_training_curves

                plot_training_curves(self.history, self.output_dir / "training_curves.png")

    def evaluate(self, dataset: Dataset | None = None, progress: bool | None = None) -> EvalResult:
        """Evaluate the current model on ``dataset`` (default: the validation split)."""
        dataset = dataset if dataset is not None else self.val_dataset
        if dataset is None:
            raise DataError("no validation dataset: set val_split or pass val_dataset")
        return evaluate(
            self.model,
            dataset,
            class_names=self.classes,
            batch_size=self.cfg.batch_size,
            num_workers=min(self.cfg.num_workers, 2) if self.cfg.num_workers else 0,
            device=self.device,
            amp=self.amp,
            loss_fn=self.loss_fn,
            dist_info=self.info,
            progress=self.cfg.progress if progress is None else progress,
            desc="eval",
        )

    # -- outputs -----------------------------------------------------------------------------
    def _write_json(self, name: str, data: Any) -> Path:
        path = self.output_dir / name
        tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
        os.replace(tmp, path)
        return path

    def _write_final_outputs(self) -> None:
        last = self.last_metrics
        best = self.best.get("metrics")
        self._write_json(
            "metrics.json",
            {
                "architecture": getattr(self.model, "architecture", None),
                "data": self.cfg.data,
                "fold": self.cfg.fold,
                "split": self.cfg.val_split,
                "epochs": self.epoch,
                "best_metric": self.cfg.best_metric,
                "best_epoch": self.best.get("epoch"),
                "last": last,
                "best": best,
                "config": self.cfg.to_dict(),
            },
        )
        if self.cfg.save_plots and (best or last):
            from .plots import plot_confusion_matrix

            m = best or last
            plot_confusion_matrix(
                m["confusion_matrix"],
                m["class_names"],
                self.output_dir / "confusion_matrix.png",
                title=f"{getattr(self.model, 'architecture', '')} epoch "
                f"{self.best.get('epoch') if best else self.epoch}",
            )
        if last is not None:
            log.info("final evaluation:\n%s", format_metrics(last))

    def summary(self, status: str = "completed") -> dict[str, Any]:
        """What :meth:`fit` returns."""
        return {
            "status": status,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_epoch": self.best.get("epoch"),
            "best": self.best.get("metrics"),
            "last": self.last_metrics,
            "history": self.history,
            "output_dir": str(self.output_dir),
        }

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        self._stop_flag.close()
        cleanup_distributed(self.info)


def train(
    config: TrainConfig, resume: str | os.PathLike | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Build a :class:`Trainer`, :meth:`~Trainer.fit` it and clean up; returns the summary."""
    trainer = Trainer(config, **kwargs)
    try:
        return trainer.fit(resume=resume)
    finally:
        trainer.close()
