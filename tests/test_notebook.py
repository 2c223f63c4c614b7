"""The example notebook (docs/notebook.ipynb) runs headlessly, and its outputs are there (issue 11).

nbclient runs it in an ipykernel started with this interpreter (a kernel spec written to a temporary
JUPYTER_PATH), from docs/ as a person would, on the bundled model with an in-memory cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernel spec for this interpreter, found through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / "attention-explorer-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Attention Explorer tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("ATTN_CACHE_TYPE", "simple")
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ATTN_REDIS_URL", raising=False)
    monkeypatch.delenv("ATTN_CELERY_BROKER_URL", raising=False)
    return "attention-explorer-test"


def _outputs(nb) -> list[dict]:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def test_the_example_notebook_runs_and_shows_its_figures(kernel_name):
    import nbclient  # test dependencies (pyproject.toml): missing is a failure, not a skip
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it without outputs"
    client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=120, allow_errors=False,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # a cell that hangs fails on nbclient's timeout
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o["data"][PLOTLY_MIME] for o in outputs if PLOTLY_MIME in o.get("data", {})]
    assert len(figures) >= 3, [list(o.get("data", {})) for o in outputs]  # head grid, heatmap, token focus
    kinds = [[trace.get("type") for trace in figure["data"]] for figure in figures]
    assert kinds[0][0] == "image" and kinds[1][0] == "image" and kinds[2] == ["heatmap"], kinds
    assert "it" in figures[2]["layout"]["title"]["text"]  # the token focus follows "it"
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "(6, 12, 13, 13) float16" in text
    assert "round trip: True True True float16" in text
    assert "layer,head,query_index,query_token,key_index,key_token,weight" in text
    assert "169 rows" in text  # 13 x 13 weights of one head
    assert "all-MiniLM-L6-v2_layer2_head5_heatmap.html" in text
    frames = [o["data"]["text/html"] for o in outputs if "<iframe" in o.get("data", {}).get("text/html", "")]
    assert frames and "http://127.0.0.1:" in frames[0]  # show_dashboard's inline frame
