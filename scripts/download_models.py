"""Downloads the offered hub models into local folders, for a machine without network access (``make models``).

    python scripts/download_models.py                     # bert-base-chinese, gpt2, SmolLM2-135M,
                                                          # Qwen2.5-0.5B -> ./models/<name>
    python scripts/download_models.py --dest /srv/models  # elsewhere
    python scripts/download_models.py bert-base-chinese   # only this one

The models are those the app offers by default (``services.config.DEFAULT_MODELS``) except the bundled
one, which is installed with the app. Each is fetched with huggingface_hub's ``snapshot_download``: its
configuration, tokenizer files and PyTorch weights (safetensors when the repository has them), not the
TensorFlow, Flax or ONNX copies. A folder already downloaded is kept. At the end the script prints the
``ATTN_MODELS=...`` line that offers them (local folders are model ids the app accepts).

Without network access (or with ``HF_HUB_OFFLINE=1``) it stops with one plain message and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMPLETE = ".attention-explorer-download.json"  # written in a model's folder once it is all there
# What the app needs from a repository: configuration, tokenizer and PyTorch weights.
KEEP = ["*.json", "*.txt", "*.model", "*.tiktoken", "vocab*", "merges*", "tokenizer*", "spiece*", "sentencepiece*"]
WEIGHTS_SAFE = ["*.safetensors", "*.safetensors.index.json"]
WEIGHTS_TORCH = ["pytorch_model*.bin", "pytorch_model*.bin.index.json"]
OFFLINE_HELP = ("Run `make models` on a machine with network access, then copy the models folder to this one "
                "and set ATTN_MODELS as that machine printed.")


class DownloadError(Exception):
    """A failure to report in one line, without a traceback."""


def default_models() -> list[str]:
    from attention_explorer.services.config import DEFAULT_MODEL_ID, DEFAULT_MODELS

    return [m for m in DEFAULT_MODELS if m != DEFAULT_MODEL_ID]


def folder_name(model_id: str) -> str:
    """``bert-base-chinese`` -> ``bert-base-chinese``; ``org/name`` -> ``org--name`` (one folder level)."""
    return model_id.strip().replace("/", "--")


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE).is_file() and (folder / "config.json").is_file()


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _network_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the hub could not be reached."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError, TimeoutError)):
            return True
        name = type(exc).__name__
        if "Connect" in name or "Timeout" in name or "NameResolution" in name or "ProxyError" in name:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _weights(files: list[str]) -> list[str]:
    if any(f.endswith(".safetensors") for f in files):
        return WEIGHTS_SAFE
    if any(f.startswith("pytorch_model") and f.endswith(".bin") for f in files):
        return WEIGHTS_TORCH
    raise DownloadError("it has no PyTorch weights (model.safetensors or pytorch_model.bin)")


def download(model_id: str, dest: Path) -> Path:
    """``model_id`` from the hub into ``dest/<name>``; the folder (kept as is when already complete)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    folder = dest / folder_name(model_id)
    if is_complete(folder):
        print(f"{model_id}: already in {folder}")
        return folder
    try:
        files = HfApi().list_repo_files(model_id)
        patterns = KEEP + _weights(files)
        print(f"{model_id}: downloading into {folder} ...", flush=True)
        snapshot_download(model_id, local_dir=str(folder), allow_patterns=patterns)
    except GatedRepoError as exc:
        raise DownloadError(f"{model_id}: the hub asks you to sign in and accept its terms first "
                            "(huggingface-cli login)") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise DownloadError(f"{model_id}: no such model on the Hugging Face hub") from exc
    if not (folder / "config.json").is_file():
        raise DownloadError(f"{model_id}: the download has no config.json, so the app could not load it")
    (folder / COMPLETE).write_text(json.dumps({"model": model_id}) + "\n", encoding="utf-8")
    return folder


def attn_models_line(folders: list[Path]) -> str:
    from attention_explorer.services.config import DEFAULT_MODEL_ID

    return "ATTN_MODELS=" + ",".join([DEFAULT_MODEL_ID, *(str(f.resolve()) for f in folders)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download the offered Hugging Face models into local folders.")
    parser.add_argument("models", nargs="*", help="hub model ids (default: the offered ones except the bundled model)")
    parser.add_argument("--dest", default=os.environ.get("ATTN_MODELS_DIR", "models"),
                        help="folder to download into, one sub-folder per model (default: ./models, or $ATTN_MODELS_DIR)")
    args = parser.parse_args(argv)
    models = args.models or default_models()
    dest = Path(args.dest).expanduser()
    todo = [m for m in models if not is_complete(dest / folder_name(m))]
    try:
        if todo and _offline():
            raise DownloadError(f"cannot download {', '.join(todo)}: HF_HUB_OFFLINE is set, so the Hugging Face "
                                f"hub is not contacted. {OFFLINE_HELP}")
        dest.mkdir(parents=True, exist_ok=True)
        folders = []
        for model_id in models:
            try:
                folders.append(download(model_id, dest))
            except DownloadError:
                raise
            except Exception as exc:  # noqa: BLE001 - one line for the person, not a traceback
                if _network_error(exc):
                    raise DownloadError(f"cannot download {model_id}: the Hugging Face hub could not be reached "
                                        f"(no network access?). {OFFLINE_HELP}") from exc
                raise DownloadError(f"cannot download {model_id}: {type(exc).__name__}: {exc}") from exc
    except DownloadError as exc:
        print(f"download_models.py: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the destination folder cannot be written, the disk is full ...
        print(f"download_models.py: cannot write into {dest}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("make models: interrupted", file=sys.stderr)
        return 130
    print()
    print("Done. To offer these models, start the app with:")
    print()
    print(f"    {attn_models_line(folders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
