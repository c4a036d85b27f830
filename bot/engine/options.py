"""What a generation can be asked for: models, aspect ratios and styles, as the image APIs accept them."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SEED = 4_294_967_294
MAX_PROMPT_CHARS = 10_000

ASPECT_RATIOS = ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")

STYLES = (
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
)


@dataclass(frozen=True)
class Model:
    name: str
    label: str
    credits: float  # Stability's price per image; failed generations are not charged.


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("core", "Stable Image Core", 3),
        Model("ultra", "Stable Image Ultra", 8),
        Model("sd3.5-large", "SD 3.5 Large", 6.5),
        Model("sd3.5-large-turbo", "SD 3.5 Large Turbo", 4),
        Model("sd3.5-medium", "SD 3.5 Medium", 3.5),
        Model("sd3.5-flash", "SD 3.5 Flash", 2.5),
        Model("stable-diffusion-xl-1024-v1-0", "SDXL 1.0 (legacy v1)", 0.9),
    )
}


@dataclass(frozen=True)
class GenerationOptions:
    """Options shared by every prompt of a job."""

    model: str = "core"
    aspect_ratio: str = "1:1"
    negative_prompt: str | None = None
    style: str | None = None
    seed: int | None = None  # None: a fresh random seed per prompt

    def problems(self) -> list[str]:
        """Every reason these options would be rejected, phrased as how to fix it."""
        found = []
        if self.model not in MODELS:
            found.append(f"Unknown model `{self.model}`: use one of {', '.join(MODELS)}.")
        if self.aspect_ratio not in ASPECT_RATIOS:
            found.append(
                f"Unknown aspect ratio `{self.aspect_ratio}`: use one of {', '.join(ASPECT_RATIOS)}."
            )
        if self.style is not None and self.style not in STYLES:
            found.append(f"Unknown style `{self.style}`: use one of {', '.join(STYLES)}.")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            found.append(f"Seed must be between 0 and {MAX_SEED}.")
        if self.negative_prompt is not None and len(self.negative_prompt) > MAX_PROMPT_CHARS:
            found.append(
                f"The negative prompt is {len(self.negative_prompt):,} characters long; "
                f"the limit is {MAX_PROMPT_CHARS:,}. Shorten it."
            )
        return found
