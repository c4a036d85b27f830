"""What the real Stability REST API accepts (see /work/shared/FACTS.md), as constants and validators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_PROMPT_CHARS = 10_000
MAX_SEED = 4_294_967_294
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # 413 above this

ASPECT_RATIOS = frozenset({"16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"})
OUTPUT_FORMATS = frozenset({"png", "jpeg", "webp"})
STYLE_PRESETS = frozenset(
    {
        "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
        "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami",
        "photographic", "pixel-art", "tile-texture",
    }
)  # fmt: skip
SD3_MODELS = frozenset({"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"})
SD3_DEFAULT_MODEL = "sd3.5-large"

V1_ENGINE = "stable-diffusion-xl-1024-v1-0"
V1_SIZES = frozenset(
    {(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (1344, 768), (768, 1344), (1536, 640), (640, 1536)}
)
V1_MAX_PROMPT_CHARS = 2_000
V1_MAX_SEED = 4_294_967_295

#: Credits per image, by model ("core", "ultra", the sd3.5 models, and the v1 engine).
PRICES: dict[str, float] = {
    "core": 3.0,
    "ultra": 8.0,
    "sd3.5-large": 6.5,
    "sd3.5-large-turbo": 4.0,
    "sd3.5-medium": 3.5,
    "sd3.5-flash": 2.5,
    V1_ENGINE: 0.9,
}


def _int(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _float(value: str) -> float | None:
    try:
        return float(value.strip())
    except ValueError:
        return None


def validate_v2(route: str, form: Mapping[str, str]) -> list[str]:
    """Errors (``"<field>: <why>"``) for a v2beta generate request; empty when valid. ``route`` is the last
    path segment: ``core``, ``ultra`` or ``sd3``."""
    errors: list[str] = []
    prompt = form.get("prompt")
    if prompt is None:
        errors.append("prompt: is required")
    elif not prompt.strip():
        errors.append("prompt: cannot be empty")
    elif len(prompt) > MAX_PROMPT_CHARS:
        errors.append(f"prompt: must be at most {MAX_PROMPT_CHARS} characters (got {len(prompt)})")
    negative = form.get("negative_prompt")
    if negative is not None and len(negative) > MAX_PROMPT_CHARS:
        errors.append(f"negative_prompt: must be at most {MAX_PROMPT_CHARS} characters (got {len(negative)})")
    ratio = form.get("aspect_ratio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        errors.append(f"aspect_ratio: must be one of {', '.join(sorted(ASPECT_RATIOS))}")
    seed = form.get("seed")
    if seed is not None:
        number = _int(seed)
        if number is None:
            errors.append("seed: must be an integer")
        elif not 0 <= number <= MAX_SEED:
            errors.append(f"seed: must be between 0 and {MAX_SEED}")
    fmt = form.get("output_format")
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        errors.append("output_format: must be one of jpeg, png, webp")
    style = form.get("style_preset")
    if style is not None and style not in STYLE_PRESETS:
        errors.append(f"style_preset: must be one of {', '.join(sorted(STYLE_PRESETS))}")
    if route == "sd3":
        model = form.get("model")
        if model is not None and model not in SD3_MODELS:
            errors.append(f"model: must be one of {', '.join(sorted(SD3_MODELS))}")
        mode = form.get("mode")
        if mode is not None and mode != "text-to-image":
            errors.append("mode: only text-to-image is supported by this fake")
        cfg = form.get("cfg_scale")
        if cfg is not None:
            scale = _float(cfg)
            if scale is None or not 1 <= scale <= 10:
                errors.append("cfg_scale: must be a number between 1 and 10")
    return errors


def v2_model(route: str, form: Mapping[str, str]) -> str:
    """The priced model a (valid) v2beta request runs on."""
    if route == "sd3":
        return form.get("model") or SD3_DEFAULT_MODEL
    return route


@dataclass(frozen=True, slots=True)
class V1Request:
    prompt: str
    width: int
    height: int
    samples: int
    seed: int


@dataclass(frozen=True, slots=True)
class V1Error:
    status: int
    name: str
    message: str


def _v1_int(body: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int | V1Error:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        return V1Error(400, "bad_request", f"{key}: must be an integer")
    if not low <= value <= high:
        return V1Error(400, "bad_request", f"{key}: must be between {low} and {high}")
    return value


def validate_v1(body: Any) -> V1Request | V1Error:
    """Check a v1 text-to-image JSON body like the real API (SDXL 1.0 engine)."""
    if not isinstance(body, dict):
        return V1Error(400, "bad_request", "body: must be a JSON object")
    prompts = body.get("text_prompts")
    if not isinstance(prompts, list) or not prompts:
        return V1Error(400, "invalid_prompts", "text_prompts: must be a non-empty list")
    texts: list[str] = []
    for item in prompts:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
            return V1Error(400, "invalid_prompts", "text_prompts: each prompt needs a non-empty 'text'")
        if len(item["text"]) > V1_MAX_PROMPT_CHARS:
            return V1Error(400, "invalid_prompts", f"text_prompts: at most {V1_MAX_PROMPT_CHARS} characters")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return V1Error(400, "invalid_prompts", "text_prompts: 'weight' must be a number")
        texts.append(item["text"])
    checked: dict[str, int] = {}
    for key, default, low, high in (
        ("width", 1024, 128, 2048),
        ("height", 1024, 128, 2048),
        ("steps", 30, 10, 50),
        ("samples", 1, 1, 10),
        ("seed", 0, 0, V1_MAX_SEED),
    ):
        value = _v1_int(body, key, default, low, high)
        if isinstance(value, V1Error):
            return value
        checked[key] = value
    cfg = body.get("cfg_scale", 7)
    if isinstance(cfg, bool) or not isinstance(cfg, int | float) or not 0 <= cfg <= 35:
        return V1Error(400, "bad_request", "cfg_scale: must be a number between 0 and 35")
    style = body.get("style_preset")
    if style is not None and style not in STYLE_PRESETS:
        return V1Error(400, "bad_request", f"style_preset: must be one of {', '.join(sorted(STYLE_PRESETS))}")
    if (checked["width"], checked["height"]) not in V1_SIZES:
        sizes = ", ".join(f"{w}x{h}" for w, h in sorted(V1_SIZES))
        return V1Error(
            400,
            "invalid_sdxl_v1_dimensions",
            f"for 1024 engines, the allowed dimensions are {sizes}, but we received "
            f"{checked['width']}x{checked['height']}",
        )
    return V1Request(
        prompt=" ".join(texts),
        width=checked["width"],
        height=checked["height"],
        samples=checked["samples"],
        seed=checked["seed"],
    )
