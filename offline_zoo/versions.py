"""Versions of the packages a result depends on, and the checkout's commit.

Below every other module (data, algos and bench all record versions), so it imports nothing of
offline-zoo.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
from pathlib import Path
from typing import Iterable

__all__ = ["RESULT_PACKAGES", "package_versions", "versions"]

#: the packages whose versions every result records; the physics (mujoco, the kitchen's
#: gymnasium-robotics, the ALE) is among them because it changes scores, and generated data too
RESULT_PACKAGES = ("offline-zoo", "torch", "transformers", "peft", "d3rlpy", "gymnasium", "mujoco",
                   "gymnasium-robotics", "ale-py", "numpy", "minari")


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    """``{package: installed version}``, None for a package that is not installed.

    Examples:
        >>> package_versions(["numpy", "no-such-package"])["no-such-package"] is None
        True
    """
    out: dict[str, str | None] = {}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def versions(packages: Iterable[str] = RESULT_PACKAGES) -> dict[str, str]:
    """Versions of offline-zoo and the libraries results depend on, plus the git commit if any.

    Packages that are not installed are left out.

    Examples:
        >>> import mujoco
        >>> v = versions()
        >>> v["mujoco"] == mujoco.__version__, "git_commit" in v, "no-such-package" in versions(["no-such-package"])
        (True, True, False)
    """
    out = {"python": platform.python_version()}
    out.update({pkg: v for pkg, v in package_versions(packages).items() if v is not None})
    out["git_commit"] = _git_commit()
    return out


def _git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files have uncommitted changes."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        commit = r.stdout.strip() or None
        if commit:
            d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
            if d.stdout.strip():
                commit += "+dirty"
        return commit
    except Exception:
        return None
