"""What the command modules share: one-line errors, loading models, building predictors.

Bad input is reported as one line on stderr, ``cefl-zoo COMMAND: error: MESSAGE``, with
a non-zero exit code, never as a traceback. A command raises :class:`CommandError` (or
returns :func:`error`'s code) and :func:`cefl_zoo.cli.main` prints it.

Example:
    >>> plural(1, "window"), plural(3, "window"), plural(2, "process", "processes")
    ('1 window', '3 windows', '2 processes')
    >>> one_line(ValueError("two\\n   lines"))
    'two lines'
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from ..predict import Predictor

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MODEL_ERRORS",
    "CommandError",
    "HelpFormatter",
    "check_inputs",
    "error",
    "load_model_for_cli",
    "loading_model",
    "make_predictor",
    "model_error",
    "one_line",
    "optional_value_argv",
    "plural",
    "raised_inside",
    "run_folder_checkpoint",
    "training_setup_error",
    "warn",
]

#: Exit codes (success, some inputs failed with the others done, bad usage or input).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The exit codes, as the help epilogs state them (lines for a raw epilog).
EXIT_CODES_HELP = """exit status:
  0  everything done
  1  some inputs failed, or an output could not be written (one line on stderr each;
     the other results are still made)
  2  bad usage or input, nothing done: a bad option, an input path that does not exist,
     an unknown model
  141  the reader of stdout went away (cefl-zoo ... | head): stopped quietly"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default as ``(default: X)``.

    Left out where the help already says its default (it mentions "default"), and for
    defaults that say nothing (``None``, ``False``, empty). Descriptions and epilogs are
    printed as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text.lower()
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default in ("", [], ())
        ):
            return text
        return text + " (default: %(default)s)"


def optional_value_argv(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    options: dict[str, tuple[str, Callable[[str], bool]]],
) -> list[str]:
    """Keep options whose value is optional (``nargs="?"``) from swallowing an input.

    For ``OPTION X`` with ``options[OPTION] = (const, is_value)``: a value of the option
    (``is_value(X)``) is its value, even where a file or folder ``X`` exists. When ``X``
    is not a value but an input (an existing path, a folder written as ``DIR/``, or a
    video file name), ``OPTION`` becomes ``OPTION=const`` and ``X`` stays a positional
    argument, so ``cefl-zoo predict --faces clip.mp4`` means what it says. Unique
    abbreviations of ``OPTION`` count; ``--`` ends the options.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> _ = p.add_argument("--window", nargs="?", const="105")
        >>> optional_value_argv(p, ["--window", "a.mp4", "--window", "4s"],
        ...                     {"--window": ("105", lambda v: v.endswith("s"))})
        ['--window=105', 'a.mp4', '--window', '4s']
    """
    out: list[str] = []
    names = list(getattr(parser, "_option_string_actions", {}))
    argv = list(argv)
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        option = token if token in options else None
        if option is None and token.startswith("--") and len(token) > 2 and "=" not in token:
            matches = [n for n in names if n.startswith(token)]
            if len(matches) == 1 and matches[0] in options:
                option = matches[0]
        if option is not None and i + 1 < len(argv):
            value = argv[i + 1]
            const, is_value = options[option]
            if not value.startswith("-") and not is_value(value) and _looks_like_input(value):
                out.append(f"{option}={const}")
                i += 1
                continue
        out.append(token)
        i += 1
    return out


def _looks_like_input(value: str) -> bool:
    """Whether a command-line word names an input: an existing path, a folder (``DIR/``)
    or a video file name."""
    from ..data.generic import VIDEO_EXTENSIONS

    return (
        os.path.exists(value)
        or value.endswith(("/", os.sep))
        or value.lower().endswith(VIDEO_EXTENSIONS)
    )


def check_inputs(paths: Sequence[str], expanded: Sequence[str]) -> None:
    """Raise a :class:`CommandError` (exit 2) for inputs that cannot be predicted at all.

    ``paths`` are the arguments, ``expanded`` what
    :func:`~cefl_zoo.predict.expand_inputs` made of them: a path that does not exist, or
    a folder that holds neither videos nor frame folders, is a usage error, reported
    before any model loads (a typo must not cost a run).
    """
    from ..predict.inputs import is_frame_folder

    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        listed = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise CommandError(
            f"{plural(len(missing), 'input')} {'does' if len(missing) == 1 else 'do'} not "
            f"exist: {listed}"
        )
    empty = [p for p in expanded if os.path.isdir(p) and not is_frame_folder(p)]
    if empty:
        listed = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise CommandError(
            f"{listed}: {'holds' if len(empty) == 1 else 'hold'} no video files and no folders "
            "of frame images"
        )


#: What building or loading a model raises for bad input (an unknown name
#: (``UnknownModelError``, a ``ValueError``), weights that are not trained, missing or
#: corrupt (``PretrainedWeightsError``, a ``RuntimeError``; "no weight set registered"
#: is a plain ``RuntimeError``), bad model arguments (``ValueError`` such as an unknown
#: timm backbone, ``TypeError`` for an unexpected keyword), missing files (``OSError``)
#: and missing extras (``ImportError``)).
MODEL_ERRORS: tuple[type[BaseException], ...] = (
    ImportError,
    ValueError,
    TypeError,
    RuntimeError,
    OSError,
    KeyError,
)


class CommandError(Exception):
    """Bad input, reported by :func:`cefl_zoo.cli.main` as one line on stderr.

    Args:
        message: What was wrong and what to do (whitespace is collapsed to one line).
        exit_code: The command's exit code (default 2, a usage error).
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(one_line(message))
        self.exit_code = exit_code


def one_line(err: BaseException | str) -> str:
    """An error (or text) as one line: whitespace collapsed, the class name if empty."""
    text = " ".join(str(err).split())
    if not text and isinstance(err, BaseException):
        text = type(err).__name__
    return text


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``"1 window"``, ``"2 windows"``: ``n`` and ``word`` in the number ``n`` needs."""
    return f"{n} {word if n == 1 else (plural_form or word + 's')}"


def error(command: str, message: str | BaseException, code: int = EXIT_USAGE) -> int:
    """Print ``cefl-zoo COMMAND: error: MESSAGE`` on stderr; return ``code``."""
    print(f"cefl-zoo {command}: error: {one_line(message)}", file=sys.stderr)
    return code


def warn(message: str | Warning) -> None:
    """Print ``warning: MESSAGE`` on stderr, as one line."""
    print(f"warning: {one_line(str(message))}", file=sys.stderr)


def model_error(
    name: str | None, err: BaseException, hint: str = "", verb: str = "load"
) -> CommandError:
    """The :class:`CommandError` for model ``name`` failing to build or load with ``err``.

    Errors that already name the model (an unknown name, a missing extra) keep their own
    words; others are prefixed with ``cannot VERB model NAME:``.
    """
    from ..registry import UnknownModelError

    text = one_line(err)
    if not isinstance(err, (UnknownModelError, ImportError)) and name:
        text = f"cannot {verb} model {name!r}: {text}"
    return CommandError(text + hint)


@contextlib.contextmanager
def loading_model(name: str, hint: str = "") -> Iterator[None]:
    """Turn what loading model ``name`` raises for bad input into a :class:`CommandError`.

    Example:
        >>> from cefl_zoo import create_model
        >>> try:
        ...     with loading_model("ceflnet_tinyy"):
        ...         create_model("ceflnet_tinyy")
        ... except CommandError as err:
        ...     print(str(err)[:30])
        unknown model 'ceflnet_tinyy'.
    """
    try:
        yield
    except MODEL_ERRORS as err:
        raise model_error(name, err, hint) from err


def raised_inside(err: BaseException, *functions: Callable[..., Any] | None) -> bool:
    """Whether ``err`` was raised while one of ``functions`` was running.

    Looks for their code objects in the traceback (``None`` entries are ignored), so a
    command can tell "the model could not be built" from other errors of the same type.
    """
    codes = {getattr(f, "__code__", None) for f in functions if f is not None} - {None}
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


def training_setup_error(
    err: BaseException, model: str | None, init_from: str | None = None
) -> CommandError | None:
    """The :class:`CommandError` for a bad-input error of a training run's setup.

    ``err`` counts as bad input when it was raised building the model ``model`` (or the
    ``--init-from`` donor) or resolving ``--device``; ``None`` for any other error, which
    the caller re-raises.
    """
    from ..hub import PretrainedWeightsError
    from ..registry import UnknownModelError, create_model
    from ..train import distributed, trainer

    if raised_inside(err, getattr(trainer.Trainer, "_init_weights_from", None)):
        return CommandError(f"cannot load --init-from {init_from!r}: {one_line(err)}")
    if isinstance(err, (UnknownModelError, PretrainedWeightsError)) or raised_inside(
        err, create_model
    ):
        return model_error(model, err, verb="build")
    if raised_inside(err, distributed.resolve_device):
        return CommandError(err)
    return None


def _check_device(device: str) -> Any:
    from ..predict.predictor import _resolve_device

    try:
        return _resolve_device(device)
    except (RuntimeError, ValueError) as err:
        raise CommandError(f"--device {device}: {one_line(err)}") from err


def _check_faces(faces: str | None) -> None:
    from ..predict.predictor import FACE_DETECTORS

    if faces is not None and faces.lower() not in FACE_DETECTORS:
        raise CommandError(
            f"--faces {faces}: unknown face detector; use one of: {', '.join(FACE_DETECTORS)}"
        )


#: File names of training checkpoints that ``--model`` loads (a Trainer's run folder).
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def run_folder_checkpoint(name: str) -> str | None:
    """The checkpoint to load when ``name`` is a training run folder, else ``None``.

    A run folder holds ``best.pt`` and/or ``last.pt`` (``best.pt`` wins) and no
    ``model.safetensors``; its ``config.json`` is the run's
    :class:`~cefl_zoo.train.TrainConfig`, not a model config.
    """
    path = os.path.expanduser(name)
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "model.safetensors")):
        return None
    for ckpt in ("best.pt", "last.pt"):
        if os.path.isfile(os.path.join(path, ckpt)):
            return os.path.join(path, ckpt)
    return None


def load_model_for_cli(name: str) -> nn.Module:
    """:func:`~cefl_zoo.predict.load_model_for_inference`, and for the files users pass.

    * a training checkpoint (``best.pt``, ``last.pt``; any ``.pt`` / ``.pth`` / ``.ckpt``
      written by :class:`~cefl_zoo.train.Trainer`) is rebuilt with
      :func:`~cefl_zoo.train.checkpoint.model_from_checkpoint`, as ``cefl-zoo eval
      --checkpoint`` does;
    * a training run folder (``best.pt`` or ``last.pt`` and no ``model.safetensors``;
      its ``config.json`` is the run's :class:`~cefl_zoo.train.TrainConfig`) loads its
      ``best.pt``, else its ``last.pt``;
    * ``model.safetensors`` or ``config.json`` of a ``save_pretrained`` folder loads the
      folder;
    * any other file is a clear error (it is a file, and what ``--model`` takes).
    """
    from ..predict import load_model_for_inference

    path = run_folder_checkpoint(name) or os.path.expanduser(name)
    if os.path.isfile(path):
        from ..train.checkpoint import model_from_checkpoint

        folder = os.path.dirname(os.path.abspath(path))
        base = os.path.basename(path).lower()
        if base.endswith(_CHECKPOINT_SUFFIXES):
            return model_from_checkpoint(path)
        if base in ("model.safetensors", "config.json") and os.path.isfile(
            os.path.join(folder, "config.json")
        ):
            return load_model_for_inference(folder)
        raise ValueError(
            f"{name} is a file, not a model: --model takes a weight set (arch.tag), a folder "
            "saved with save_pretrained() (config.json + model.safetensors), hf-hub:org/repo, "
            "or a training checkpoint (.pt) or run folder; `cefl-zoo export RUN_DIR OUT_DIR` "
            "turns a training run into a model folder"
        )
    return load_model_for_inference(name)


def make_predictor(
    name: str,
    *,
    device: str = "auto",
    faces: str | None = None,
    hint: str = "",
    show_warnings: bool = True,
    loader: Callable[[str], nn.Module] | None = None,
    **kwargs: Any,
) -> Predictor:
    """A :class:`~cefl_zoo.predict.Predictor` for model ``name``, or a :class:`CommandError`
    that names what was wrong: ``--device``, ``--faces`` (checked before the model loads),
    the model (``hint`` appended), or a missing extra.

    Args:
        name: Model name, folder or ``hf-hub:`` reference.
        device: ``--device``.
        faces: ``--faces``.
        hint: Appended to model errors (e.g. "pass --model").
        show_warnings: Print the warnings of loading as ``warning:`` lines on stderr
            (else they are silenced).
        loader: Loads the model (default: :func:`load_model_for_cli`, which also takes
            training checkpoints).
        **kwargs: For :class:`~cefl_zoo.predict.Predictor`.
    """
    from ..predict import Predictor

    dev = _check_device(device)
    _check_faces(faces)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always" if show_warnings else "ignore")
        with loading_model(name, hint):
            model = (loader or load_model_for_cli)(name)
        try:
            predictor = Predictor(model, device=dev, face_detector=faces, model_name=name, **kwargs)
        except (ImportError, ValueError, TypeError, RuntimeError) as err:
            raise CommandError(err) from err
    for w in caught:
        warn(w.message)
    return predictor
