"""Build step of the wheel (the rest of the packaging is in pyproject.toml).

The repository keeps its folders at the top (``app.py``, ``services/``, ``components/``,
``callbacks/``, ``assets/``) and its code imports them by those names, which is what a checkout runs.
A wheel must not install such generic names into site-packages, so the wheel holds them under one
package, ``attention_explorer`` (pyproject maps the folders to its subpackages), and this build step:

- copies ``app.py`` to ``attention_explorer/app.py``, ``gunicorn.conf.py`` to
  ``attention_explorer/gunicorn_conf.py`` and ``assets/`` to ``attention_explorer/assets/`` (Dash
  serves ``/assets/`` from the folder beside the app module);
- rewrites, in the built copies only, the imports of those top-level names: ``from services.x import y``
  becomes ``from attention_explorer.services.x import y``, ``import services`` becomes
  ``from attention_explorer import services``, and so on.

tests/test_packaging.py builds the wheel, installs it in a fresh virtual environment and serves from it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE = "attention_explorer"
TOP_LEVEL = ("services", "components", "callbacks", "app")
ROOT = Path(__file__).resolve().parent
COPIED = {"app.py": "app.py", "gunicorn.conf.py": "gunicorn_conf.py"}

_NAMES = "|".join(TOP_LEVEL)
_FROM = re.compile(rf"^(?P<indent>[ \t]*)from[ \t]+(?P<name>{_NAMES})(?P<rest>(\.[\w.]+)?[ \t]+import\b)", re.M)
_IMPORT = re.compile(rf"^(?P<indent>[ \t]*)import[ \t]+(?P<name>{_NAMES})(?P<sub>(\.[\w.]+)?)"
                     rf"(?P<alias>[ \t]+as[ \t]+\w+)?[ \t]*(?P<end>#.*)?$", re.M)


def rewrite_imports(source: str) -> str:
    """``source`` with its imports of the repository's top-level names moved under ``attention_explorer``."""
    source = _FROM.sub(lambda m: f"{m['indent']}from {PACKAGE}.{m['name']}{m['rest']}", source)

    def one(m: re.Match) -> str:
        indent, name, sub, alias = m["indent"], m["name"], m["sub"] or "", m["alias"] or ""
        if alias:
            return f"{indent}import {PACKAGE}.{name}{sub}{alias}"
        if sub:  # "import services.tasks" binds "services": bind the same package under that name
            return f"{indent}import {PACKAGE}.{name}{sub}; from {PACKAGE} import {name}"
        return f"{indent}from {PACKAGE} import {name}"

    return _IMPORT.sub(one, source)


class BuildPy(build_py):
    """setuptools' build_py, then the copies and rewrites above (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib, PACKAGE)
        for source, name in COPIED.items():
            shutil.copyfile(ROOT / source, target / name)
        assets = target / "assets"
        if assets.exists():
            shutil.rmtree(assets)
        shutil.copytree(ROOT / "assets", assets, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in target.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            rewritten = rewrite_imports(text)
            if rewritten != text:
                path.write_text(rewritten, encoding="utf-8")


setup(cmdclass={"build_py": BuildPy})
