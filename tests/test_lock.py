"""requirements.lock (issue 16): every runtime and test dependency pinned, nothing tied to this machine.

A fresh clone resolves packages anew unless something pins them: make run, make test and CI install
with ``pip -c requirements.lock``. A line such as ``attention-explorer @ file:///work/main`` (what
``pip freeze`` writes for the project itself) makes every other checkout's install fail.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")


def _pins() -> dict[str, str]:
    lines = [line.strip() for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines()]
    pins, bad = {}, []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        if match is None:
            bad.append(line)
        else:
            pins[canonicalize_name(match["name"])] = match["version"]
    assert not bad, f"lines that are not name==version (a path or URL ties the lock to one machine): {bad}"
    return pins


def test_every_line_is_a_plain_pin_and_the_project_is_not_in_it():
    pins = _pins()
    assert len(pins) > 50
    assert "attention-explorer" not in pins


def test_every_dependency_of_pyproject_is_pinned_and_allowed_by_it():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = _pins()
    missing = [str(r) for r in wanted if canonicalize_name(r.name) not in pins]
    assert not missing, f"not in requirements.lock (run `make lock`): {missing}"
    outside = [f"{r} but locked {pins[canonicalize_name(r.name)]}" for r in wanted
               if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"the lock pins versions pyproject.toml does not allow (run `make lock`): {outside}"
    assert pins["torch"] == "2.13.0"  # the CPU build on this machine's disk, never a CUDA download


def test_the_installed_versions_are_the_locked_ones():
    """What this test run uses is what the lock says (make test installs from it)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = _pins()
    drift = []
    for name in ("dash", "plotly", "transformers", "babel", "numpy", "flask", "cachetools", "pytest"):
        try:
            installed = version(name).split("+")[0]
        except PackageNotFoundError:
            drift.append(f"{name} not installed")
            continue
        if installed != pins[name]:
            drift.append(f"{name} {installed} installed, {pins[name]} locked")
    assert not drift, drift
