"""The wheel works outside the checkout, under one name; `make` copes with a python3 without venv (issue 9).

Fails on the code before issue 9: the wheel had no assets/ (``/assets/clientside.js`` was a 404) and put
``app``, ``services``, ``components`` and ``callbacks`` at the top of site-packages, and ``make run``
on a python3 without venv stopped at ``ensurepip is not available``.

The wheel is installed into a fresh virtual environment with ``--no-deps``; that environment sees the
project venv's packages (torch, dash ...) through a ``.pth`` line, so nothing is downloaded, and the
project itself comes only from the wheel (the project venv's editable-install hook is not loaded).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from tests.servers import PROJECT_ROOT, free_port

pytestmark = pytest.mark.servers

GENERIC = ("app", "services", "components", "callbacks")
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                              "docs", "bench", "tests", "*.pyc")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh venv's python, its site-packages, the wheel's path)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a clean copy: no stale build/ folder of the checkout ends up in the wheel
    shutil.copytree(PROJECT_ROOT, source, ignore=SKIP)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((root / "dist").glob("attention_explorer-*.whl"))

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project-venv-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return python, site, wheel


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTN_") and k != "PYTHONPATH"}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def test_the_wheel_holds_one_top_level_name_and_the_assets(installed):
    _python, site, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"attention_explorer", wheel.name.split("-py3")[0] + ".dist-info"}
    assets = {n.rsplit("/", 1)[-1] for n in names if n.startswith("attention_explorer/assets/")}
    assert {p.name for p in (PROJECT_ROOT / "assets").iterdir() if p.is_file()} <= assets
    assert {"attention_explorer/app.py", "attention_explorer/gunicorn_conf.py"} <= set(names)
    for generic in GENERIC:
        assert not (site / generic).exists() and not (site / f"{generic}.py").exists(), generic


def test_the_python_api_imports_from_the_wheel_only(installed, tmp_path):
    python, site, _wheel = installed
    probe = (
        "import json, sys\n"
        "import attention_explorer, attention_explorer.app\n"
        "from attention_explorer import extract_attention\n"
        "r = extract_attention('The cat sat on the mat.')\n"
        "generic = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n"
        "try:\n    import services\n    importable = True\nexcept ImportError:\n    importable = False\n"
        "print(json.dumps({'file': attention_explorer.__file__, 'generic': generic, 'importable': importable,"
        " 'tokens': r.tokens, 'assets': attention_explorer.app.app.config.assets_folder}))\n" % (GENERIC,)
    )
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=_env(ATTN_CACHE_DIR=str(tmp_path / "c")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(site))
    assert out["generic"] == [] and out["importable"] is False  # no generic names, even at run time
    assert out["tokens"][:3] == ["[CLS]", "the", "cat"]
    assert out["assets"].startswith(str(site))


def test_notebook_figures_and_exports_work_from_the_wheel(installed, tmp_path):
    """Issue 11: the figure functions, the JSON round trip and the standalone HTML (with the app's own
    plotly.js bundle, found beside the installed package) from the installed package alone."""
    python, site, _wheel = installed
    probe = (
        "import json\n"
        "from attention_explorer import AttentionResult, extract_attention, head_heatmap, token_focus\n"
        "from attention_explorer.components.export import figure_html\n"
        "r = extract_attention('The cat sat on the mat because it was tired.')\n"
        "back = AttentionResult.from_json(r.to_json())\n"
        "fig = head_heatmap(r, 1, 2)\n"
        "page = figure_html(token_focus(r, 'it'))\n"
        "print(json.dumps({'same': back.tokens == r.tokens and back.token_ids == r.token_ids,"
        " 'figure': type(fig).__module__ + '.' + type(fig).__name__, 'cartesian': 'plotly.js (cartesian' in page,"
        " 'csv': r.to_csv(0, 0).splitlines()[0]}))\n"
    )
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=_env(ATTN_CACHE_DIR=str(tmp_path / "c")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"same": True, "figure": "plotly.graph_objs._figure.Figure", "cartesian": True,
                   "csv": "layer,head,query_index,query_token,key_index,key_token,weight"}


def _serve(argv: list[str], cwd: Path, env: dict[str, str], port: int, log: Path):
    import requests

    handle = open(log, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, handle
        except requests.RequestException:
            pass
        time.sleep(0.25)
    _stop(proc, handle)
    raise AssertionError("the installed app did not answer:\n" + log.read_text(errors="replace")[-3000:])


def _stop(proc, handle) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    handle.close()


def _check_pages(port: int) -> None:
    import requests

    base = f"http://127.0.0.1:{port}"
    page = requests.get(base + "/", timeout=10)
    assert page.status_code == 200 and "Attention Explorer" in page.text
    for asset in ("20-core.js", "style.css", "00-bootstrap-flatly.min.css"):
        served = requests.get(f"{base}/assets/{asset}", timeout=10)
        assert served.status_code == 200, asset
        assert served.content == (PROJECT_ROOT / "assets" / asset).read_bytes(), asset
    assert "/assets/00-bootstrap-flatly.min.css" in page.text  # the page links what is served
    health = requests.get(base + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # the first layout embeds the first analysis: it waits for the model (seconds, more on a busy machine)
    assert requests.get(base + "/_dash-layout", timeout=120).status_code == 200


def test_the_installed_command_serves_the_app_with_its_assets(installed, tmp_path):
    python, _site, _wheel = installed
    port = free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(ATTN_PORT=str(port), ATTN_CACHE_DIR=str(tmp_path / "cache"))
    proc, handle = _serve([str(python.parent / "attention-explorer")], elsewhere, env, port, tmp_path / "app.log")
    try:
        _check_pages(port)
    finally:
        _stop(proc, handle)


def test_gunicorn_serves_the_installed_app_with_the_shipped_config(installed, tmp_path):
    python, _site, _wheel = installed
    port = free_port()
    env = _env(ATTN_CACHE_DIR=str(tmp_path / "cache"), ATTN_WARMUP="0", ATTN_WORKERS="1", ATTN_THREADS="2")
    argv = [str(python), "-m", "gunicorn", "-c", "python:attention_explorer.gunicorn_conf", "-b", f"127.0.0.1:{port}"]
    import gunicorn

    if tuple(gunicorn.version_info[:2]) >= (25, 1):
        argv.append("--no-control-socket")
    proc, handle = _serve(argv + ["attention_explorer.app:server"], tmp_path, env, port, tmp_path / "gunicorn.log")
    try:
        _check_pages(port)
    finally:
        _stop(proc, handle)


# --------------------------------------------------------------------------------------------- make on Debian


FAKE_PYTHON = """#!/bin/sh
# A python3 whose venv module is missing until "python3.11-venv" is installed (by the fake apt-get).
case "$*" in
  *ensurepip*) [ -f "$STATE/installed" ] && exit 0; echo "No module named 'ensurepip'" >&2; exit 1 ;;
  *version_info*) echo 3.11; exit 0 ;;
  *"-m venv"*) echo "$*" >> "$STATE/venv"; exit 1 ;;
esac
exit 2
"""
FAKE_APT = """#!/bin/sh
echo "$*" >> "$STATE/apt"
case "$*" in *install*python3.11-venv*) : > "$STATE/installed" ;; esac
exit 0
"""


def _fake_machine(tmp_path: Path, uid: int, apt: bool) -> tuple[dict[str, str], Path, Path]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (("python3", FAKE_PYTHON), ("id", f"#!/bin/sh\necho {uid}\n")) + ((("apt-get", FAKE_APT),) if apt else ()):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    os.symlink(shutil.which("sh"), bin_dir / "sh")  # no sudo on this PATH
    env = {"PATH": str(bin_dir), "STATE": str(state), "HOME": str(tmp_path)}
    return env, bin_dir, state


def _make_run(env: dict[str, str], bin_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    return subprocess.run([make, "-C", str(PROJECT_ROOT), "run", f"PYTHON={bin_dir / 'python3'}",
                           f"VENV={tmp_path / 'venv'}"], env=env, capture_output=True, text=True, timeout=60)


def test_make_run_installs_python_venv_as_root(tmp_path):
    env, bin_dir, state = _fake_machine(tmp_path, uid=0, apt=True)
    done = _make_run(env, bin_dir, tmp_path)
    apt = (state / "apt").read_text()
    assert "update" in apt and "install -y -q python3.11-venv" in apt, done.stdout + done.stderr
    assert (state / "venv").exists()  # then it went on to create the venv
    assert not (tmp_path / "venv").exists()


def test_make_run_says_what_to_install_without_root(tmp_path):
    env, bin_dir, state = _fake_machine(tmp_path, uid=1000, apt=True)
    done = _make_run(env, bin_dir, tmp_path)
    assert done.returncode != 0
    assert "apt-get install python3.11-venv" in done.stderr
    assert not (state / "apt").exists() and not (state / "venv").exists()
