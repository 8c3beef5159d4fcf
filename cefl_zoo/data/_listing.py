"""Shared by the adapters that read an index of videos (a CSV, a benchmark's split files).

:class:`ListedVideo` is one video as an index lists it, and :func:`leave_out_missing`
handles the listed videos whose frames or file are missing when the dataset is built (not
mid-training): raised, or reported once and left out, following the dataset's
``on_error``. :func:`warn_user` attributes a warning to the user's code, not to
``cefl_zoo``'s.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ListedVideo", "leave_out_missing", "warn_user"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../cefl_zoo


_CLI = (os.path.join(_PACKAGE, "cli.py"), os.path.join(_PACKAGE, "commands") + os.sep)
_CLI_WARNINGS: dict[Any, Any] = {}  # the warnings registry of warn_user's CLI case


def warn_user(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside ``cefl_zoo``.

    Under the ``cefl-zoo`` command there is no such caller worth showing (only the
    console script's ``sys.exit(main())``), so the warning is attributed to
    ``<cefl-zoo>`` without a source line.
    """
    frame, level, via_cli = sys._getframe(1), 2, False  # stacklevel 2 is our caller
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE + os.sep):
            break
        via_cli = via_cli or filename == _CLI[0] or filename.startswith(_CLI[1])
        frame, level = frame.f_back, level + 1
    if via_cli:
        warnings.warn_explicit(
            message, category, "<cefl-zoo>", 0, module=__name__, registry=_CLI_WARNINGS
        )
    else:
        warnings.warn(message, category, stacklevel=level)


@dataclass
class ListedVideo:
    """One video as a dataset's index lists it.

    Attributes:
        where: Where it is listed, for messages (``"line 12"``, a folder name).
        path: Where its frames folder or video file is (or should be).
        label: Class index.
        exists: Whether ``path`` exists.
        meta: Item metadata (video id, subject, ...).
    """

    where: str
    path: str
    label: int
    exists: bool
    meta: dict[str, Any] = field(default_factory=dict)


def leave_out_missing(
    listed: Iterable[ListedVideo],
    source: str,
    on_error: str,
    check: str = "Check root= and the frames/video source argument",
) -> tuple[list[ListedVideo], list[dict[str, Any]]]:
    """Split the listed videos into those that exist and those that are missing.

    Args:
        listed: The videos as the index lists them.
        source: The index file (or folder), named in the messages.
        on_error: ``"skip"``: warn once, listing the missing videos, and leave them out;
            ``"raise"``: raise for the first one.
        check: What to check when none of the listed videos exist.

    Returns:
        The existing videos, and one record per missing one (``where``, ``path``,
        ``source``).

    Raises:
        FileNotFoundError: When none of the videos exist, or some do not and
            ``on_error="raise"``; the message names ``source`` and where the first missing
            video is listed.
    """
    listed = list(listed)
    missing = [v for v in listed if not v.exists]
    if not missing:
        return listed, []
    first = missing[0]
    if len(missing) == len(listed):
        raise FileNotFoundError(
            f"{source}: none of the {len(listed)} videos it lists exist; the first "
            f"({first.where}) should be at {first.path}. {check}"
        )
    if on_error == "raise":
        name = first.meta.get("video_id")
        what = f"{name} has no frames or video" if name else "no video file or frame folder"
        raise FileNotFoundError(
            f"{source}: {first.where}: {what} at {first.path} ({len(missing)} of "
            f"{len(listed)} listed videos are missing). Restore the files, or pass "
            "on_error='skip' to leave them out"
        )
    shown = "; ".join(f"{v.where}: {v.path}" for v in missing[:5])
    warn_user(
        f"{source}: leaving out {len(missing)} of {len(listed)} listed videos whose frames or "
        f"file are missing ({shown}{'; ...' if len(missing) > 5 else ''})"
    )
    records = [{"where": v.where, "path": v.path, "source": source} for v in missing]
    return [v for v in listed if v.exists], records
