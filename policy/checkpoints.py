"""Reading and writing π₀.₅ weights in the layouts hearth meets.

* hearth's own folder: model.safetensors (our module names), config.json, norm_stats.json, tokenizer.json,
  optional fast_tokenizer.json, README.md.
* LeRobot's pi05 layout (`lerobot/pi05_base`; huggingface/lerobot src/lerobot/policies/pi05/modeling_pi05.py): keys with or without the leading
  `model.`, the VLM token embedding stored only as the tied `paligemma.lm_head.weight`.
* openpi's PyTorch conversion (Physical-Intelligence/openpi examples/convert_jax_model_to_pytorch.py): the same names without `model.`, the embedding
  under `language_model.embed_tokens.weight` (or lost to tied-weight dedup and present only as lm_head).
* Export of the VLM half in Hugging Face PaliGemma layout, so vLLM can serve it as System 2.

Every foreign load is strict: a missing, unexpected or mis-shaped tensor is an error that names it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from policy.model.config import Pi05Config, preset
from policy.model.pi05 import Pi05Model
from policy.normalize import FeatureStats, NormStats

logger = logging.getLogger(__name__)

FORMAT_NAME = "hearth-pi05"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
NORM_STATS_FILE = "norm_stats.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message names the offending keys or files."""


# ---- key mapping between our module names and the LeRobot/openpi names ----------------------------
_LEROBOT_ROOT = "paligemma_with_expert."
# (our prefix, their prefix), most specific first; heads (action_in_proj, ...) share names.
_PREFIXES: list[tuple[str, str]] = [
    ("vision.", "paligemma_with_expert.paligemma.model.vision_tower.vision_model."),
    ("projector.", "paligemma_with_expert.paligemma.model.multi_modal_projector.linear."),
    ("vlm.embed_tokens.weight", "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"),
    ("vlm.", "paligemma_with_expert.paligemma.model.language_model."),
    ("expert_lm_head.weight", "paligemma_with_expert.gemma_expert.lm_head.weight"),
    ("expert.", "paligemma_with_expert.gemma_expert.model."),
]
LM_HEAD_KEY = "paligemma_with_expert.paligemma.lm_head.weight"
EMBED_KEY = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"


def to_lerobot_key(ours: str) -> str:
    for mine, theirs in _PREFIXES:
        if ours.startswith(mine):
            return theirs + ours[len(mine) :]
    return ours


def from_lerobot_key(theirs: str) -> str:
    for mine, external in _PREFIXES:
        if theirs.startswith(external):
            return mine + theirs[len(external) :]
    return theirs


def _strict_load(model: Pi05Model, state: Mapping[str, Tensor], source: str) -> None:
    """load_state_dict(strict=True) with one error that lists every missing/unexpected/mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state))
        if tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(
                f"missing keys ({len(missing)}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}"
            )
        if unexpected:
            parts.append(
                f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}{' ...' if len(unexpected) > 20 else ''}"
            )
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:20])}")
        raise CheckpointError(f"{source} does not match the model: " + " | ".join(parts))
    model.load_state_dict(dict(state), strict=True)


# ---- hearth's own format ------------------------------------------------------------------------
@dataclass
class CheckpointInfo:
    """What a hearth checkpoint folder holds besides the weights."""

    config: Pi05Config
    metadata: dict[str, Any]


def write_config(folder: Path, config: Pi05Config, metadata: Mapping[str, Any]) -> None:
    data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": config.to_dict(), **dict(metadata)}
    (folder / CONFIG_FILE).write_text(json.dumps(data, indent=2))


def read_config(folder: str | Path) -> CheckpointInfo:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_FILE}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if data.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a hearth checkpoint config (format={data.get('format')!r})")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {data['version']}; this hearth reads <= {FORMAT_VERSION}")
    try:
        config = Pi05Config.from_dict(data["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    metadata = {k: v for k, v in data.items() if k not in ("format", "version", "model")}
    return CheckpointInfo(config=config, metadata=metadata)


def save_weights(model: Pi05Model, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = folder / WEIGHTS_FILE
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT_NAME})
    tmp.replace(path)
    return path


def load_weights(model: Pi05Model, folder: str | Path) -> None:
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS_FILE}")
    state = load_file(str(path))
    state = {k: v.to(model.dtype) if v.is_floating_point() else v for k, v in state.items()}
    _strict_load(model, state, str(path))


def is_hearth_checkpoint(folder: str | Path) -> bool:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT_NAME
    except (json.JSONDecodeError, AttributeError):
        return False


def load_hearth_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Pi05Model, CheckpointInfo]:
    info = read_config(folder)
    model = Pi05Model(info.config)
    load_weights(model, folder)
    return model.to(device).eval(), info


# ---- LeRobot / openpi-converted layouts ----------------------------------------------------------
def to_lerobot_state_dict(
    model: Pi05Model, with_model_prefix: bool = False, embedding_as_lm_head: bool = True
) -> dict[str, Tensor]:
    """Our weights under LeRobot's names (as `lerobot/pi05_base` stores them by default)."""
    out: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        name = to_lerobot_key(key)
        if embedding_as_lm_head and name == EMBED_KEY:
            name = LM_HEAD_KEY
        out[("model." if with_model_prefix else "") + name] = value.detach().contiguous().cpu()
    return out


def from_lerobot_state_dict(
    state: Mapping[str, Tensor], model: Pi05Model, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """Translate a LeRobot or openpi-converted state dict to our names, following LeRobot's load rules.

    Accepts keys with or without `model.`; takes the VLM embedding from `embed_tokens` or, failing that,
    from the tied `paligemma.lm_head.weight`; drops pi0-only expert RMSNorm weights when the expert is
    adaptive. Whatever is left over or absent is reported by the strict load.
    """
    stripped: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key[len("model.") :] if key.startswith("model.") else key
        if name in stripped:
            raise CheckpointError(f"{source}: key {name!r} appears both with and without the 'model.' prefix")
        stripped[name] = value
    lm_head = stripped.pop(LM_HEAD_KEY, None)
    if EMBED_KEY not in stripped and lm_head is not None:
        stripped[EMBED_KEY] = lm_head
    elif (
        EMBED_KEY in stripped
        and lm_head is not None
        and (lm_head.shape != stripped[EMBED_KEY].shape or not torch.equal(lm_head, stripped[EMBED_KEY]))
    ):
        logger.warning("%s: lm_head and embed_tokens differ; using embed_tokens (the LM head is tied)", source)
    # old names used by early conversions (LeRobot `_fix_pytorch_state_dict_keys`)
    for old, new in (("action_time_mlp_in.", "time_mlp_in."), ("action_time_mlp_out.", "time_mlp_out.")):
        for key in [k for k in stripped if k.startswith(old)]:
            stripped[new + key[len(old) :]] = stripped.pop(key)
    ours = {from_lerobot_key(k): v for k, v in stripped.items()}
    if model.expert_lm_head is None:
        ours.pop("expert_lm_head.weight", None)  # unused by action generation; not part of small presets
    elif "expert_lm_head.weight" not in ours:
        # openpi conversions may drop the expert's (never used) LM head with tied-weight dedup; it only
        # exists so that lerobot/pi05_base loads strictly, so zeros are an exact stand-in.
        logger.warning("%s: no action-expert lm_head; filling it with zeros (it is never used)", source)
        ours["expert_lm_head.weight"] = torch.zeros(tuple(model.expert_lm_head.weight.shape))
    return ours


def load_lerobot_weights(model: Pi05Model, path: str | Path) -> None:
    """Strictly load a LeRobot pi05 (or openpi-converted) `model.safetensors` file or folder into `model`."""
    path = Path(path)
    file = path / WEIGHTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS_FILE}")
    state = load_file(str(file))
    ours = from_lerobot_state_dict(state, model, source=str(file))
    ours = {k: v.to(model.dtype) if v.is_floating_point() else v for k, v in ours.items()}
    _strict_load(model, ours, str(file))


def save_lerobot_weights(model: Pi05Model, folder: str | Path, with_model_prefix: bool = False) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_FILE
    save_file(to_lerobot_state_dict(model, with_model_prefix=with_model_prefix), str(path))
    return path


def _require_pi05_variants(data: Mapping[str, Any], path: Path) -> None:
    """Released π₀.₅ weights are gemma_2b + gemma_300m; other variants would load into the wrong shapes."""
    if (
        data.get("paligemma_variant", "gemma_2b") != "gemma_2b"
        or data.get("action_expert_variant", "gemma_300m") != "gemma_300m"
    ):
        raise CheckpointError(f"{path}: only gemma_2b + gemma_300m checkpoints are supported")


def lerobot_config(folder: str | Path) -> Pi05Config:
    """Build a Pi05Config from a LeRobot pi05 `config.json` (variants, chunk size, dims, resolution)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read LeRobot config: {exc}") from None
    if data.get("type") not in (None, "pi05"):
        raise CheckpointError(f"{path}: policy type {data.get('type')!r} is not pi05")
    _require_pi05_variants(data, path)
    resolution = data.get("image_resolution", [224, 224])
    if resolution[0] != 224 or resolution[1] != 224:
        raise CheckpointError(f"{path}: image_resolution {resolution} differs from SigLIP So400m/14's 224")
    return preset(
        "pi05",
        action_horizon=int(data.get("chunk_size", 50)),
        max_action_dim=int(data.get("max_action_dim", 32)),
        max_state_dim=int(data.get("max_state_dim", 32)),
        max_token_len=int(data.get("tokenizer_max_length", 200)),
        num_steps=int(data.get("num_inference_steps", 10)),
    )


def lerobot_key_shapes(model: Pi05Model) -> dict[str, tuple[int, ...]]:
    """LeRobot names and shapes of our parameters (works on the meta device; the embedding as lm_head)."""
    out = {}
    for key, value in model.state_dict().items():
        name = to_lerobot_key(key)
        out[LM_HEAD_KEY if name == EMBED_KEY else name] = tuple(value.shape)
    return out


def read_lerobot_norm_stats(folder: str | Path) -> NormStats | None:
    """Stats from LeRobot's processor files (`policy_preprocessor_step_*_normalizer_processor.safetensors`).

    Keys are `<feature>.<stat>`; `observation.state` becomes "state" and `action` becomes "actions".
    Returns None when the checkpoint carries no stats (as `lerobot/pi05_base` does not).
    """
    folder = Path(folder)
    files = sorted(folder.glob("policy_preprocessor_step_*_normalizer_processor.safetensors"))
    if not files:
        return None
    flat = load_file(str(files[0]))
    features = {}
    for theirs, ours in (("observation.state", "state"), ("action", "actions")):
        stats = {stat: flat.get(f"{theirs}.{stat}") for stat in ("mean", "std", "q01", "q99")}
        if all(v is not None for v in stats.values()):
            features[ours] = FeatureStats(**{k: v.float().numpy() for k, v in stats.items()})
    return NormStats(features) if features else None


def openpi_config(folder: str | Path) -> Pi05Config:
    """Pi05Config from openpi's conversion `config.json` (action_dim, action_horizon, variants, precision)."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read openpi config: {exc}") from None
    _require_pi05_variants(data, path)
    return preset(
        "pi05",
        action_horizon=int(data.get("action_horizon", 50)),
        max_action_dim=int(data.get("action_dim", 32)),
        max_state_dim=int(data.get("action_dim", 32)),
    )


def read_openpi_norm_stats(folder: str | Path) -> NormStats | None:
    """`assets/<asset_id>/norm_stats.json` next to an openpi-converted checkpoint (if exactly one exists)."""
    found = sorted(Path(folder).glob("assets/**/norm_stats.json"))
    if len(found) > 1:
        raise CheckpointError(f"{folder}: several norm_stats.json under assets/ ({[str(p) for p in found]}); pick one")
    return NormStats.load(found[0]) if found else None


def detect_layout(folder: str | Path) -> str:
    """ "hearth", "lerobot" or "openpi" for a checkpoint folder (by its config.json)."""
    folder = Path(folder)
    if is_hearth_checkpoint(folder):
        return "hearth"
    path = folder / CONFIG_FILE
    if not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS_FILE}")
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if data.get("type") == "pi05" or (folder / "policy_preprocessor.json").is_file():
        return "lerobot"
    if "paligemma_variant" in data or "action_horizon" in data:
        return "openpi"
    raise CheckpointError(f"{folder}: cannot tell the checkpoint layout from {CONFIG_FILE}")


def load_pretrained(folder: str | Path, config: Pi05Config | None = None) -> tuple[Pi05Model, NormStats | None]:
    """Any supported layout -> (model in float32 on CPU, norm stats if the checkpoint has them).

    `config` overrides what the folder says (e.g. a tiny model stored in LeRobot layout).
    """
    layout = detect_layout(folder)
    if layout == "hearth":
        model, _ = load_hearth_model(folder)
        stats_path = Path(folder) / NORM_STATS_FILE
        return model, NormStats.load(stats_path) if stats_path.is_file() else None
    if layout == "lerobot":
        model = Pi05Model(config or lerobot_config(folder))
        load_lerobot_weights(model, folder)
        return model.eval(), read_lerobot_norm_stats(folder)
    model = Pi05Model(config or openpi_config(folder))
    load_lerobot_weights(model, folder)
    return model.eval(), read_openpi_norm_stats(folder)


# ---- Hugging Face PaliGemma export (System 2 served by vLLM) -------------------------------------
def export_paligemma(
    model: Pi05Model, folder: str | Path, num_image_tokens: int | None = None, tokenizer: Any | None = None
) -> Path:
    """Write the VLM half (SigLIP + projector + Gemma + tied LM head) as a `PaliGemmaForConditionalGeneration`.

    The image placeholder id is the first id past the text vocabulary (as in lerobot/pi05_base, 257152).
    Also writes `preprocessor_config.json` (SigLIP image processor: resize to the model's size, scale to
    [-1, 1]) and, if given, the tokenizer (a policy.tokenizers TextTokenizer). A serving stack that expands
    `<image>` placeholders needs that token in the tokenizer; PaliGemma's own SentencePiece has it, the
    household BPE does not. Returns the weights file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    vision, vlm = config.vision, config.vlm
    state: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if key.startswith("vision."):
            name = "model.vision_tower.vision_model." + key[len("vision.") :]
        elif key.startswith("projector."):
            name = "model.multi_modal_projector.linear." + key[len("projector.") :]
        elif key.startswith("vlm."):
            name = "model.language_model." + key[len("vlm.") :]
        else:
            continue
        state[name] = value.detach().to(torch.float32).contiguous().cpu()
    path = folder / WEIGHTS_FILE
    save_file(state, str(path), metadata={"format": "pt"})
    hf_config = {
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "model_type": "paligemma",
        "image_token_index": config.vocab_size,
        "vocab_size": config.vocab_size,
        "projection_dim": vlm.width,
        "hidden_size": vlm.width,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": config.eos_token_id,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "text_config": {
            "model_type": "gemma",
            "vocab_size": config.vocab_size,
            "hidden_size": vlm.width,
            "intermediate_size": vlm.mlp_dim,
            "num_hidden_layers": vlm.depth,
            "num_attention_heads": vlm.num_heads,
            "num_key_value_heads": vlm.num_kv_heads,
            "head_dim": vlm.head_dim,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_activation": "gelu_pytorch_tanh",
            "rms_norm_eps": config.rms_norm_eps,
            "rope_theta": config.rope_max_wavelength,
            "max_position_embeddings": 8192,
            "pad_token_id": config.pad_token_id,
            "eos_token_id": config.eos_token_id,
            "tie_word_embeddings": True,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": vision.width,
            "intermediate_size": vision.mlp_dim,
            "num_hidden_layers": vision.depth,
            "num_attention_heads": vision.num_heads,
            "image_size": vision.image_size,
            "patch_size": vision.patch_size,
            "projection_dim": vlm.width,
            "num_image_tokens": num_image_tokens or vision.num_patches,
            "layer_norm_eps": vision.layer_norm_eps,
            "hidden_act": "gelu_pytorch_tanh",
            "vision_use_head": False,
        },
    }
    (folder / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2))
    preprocessor = {
        "image_processor_type": "SiglipImageProcessor",
        "processor_class": "PaliGemmaProcessor",
        "do_resize": True,
        "size": {"height": vision.image_size, "width": vision.image_size},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "image_seq_length": num_image_tokens or vision.num_patches,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    if tokenizer is not None:
        tokenizer.save(folder)
    return path
