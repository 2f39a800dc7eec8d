"""What caption-wizard knows about: models, datasets, tasks and tuning strategies, as data.

Add a model or dataset here and the wizard offers it. Numbers are approximate
(public model cards); the memory estimate (wizard/estimate.py) uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard import families as fam_table

QWEN_LM_TARGETS = list(fam_table.LLAMA_LINEARS)
# Kept out of 4-bit quantization: the vision tower (with its projector/merger) and the output head.
QWEN_SKIP_QUANT = ["visual", "lm_head"]


@dataclass(frozen=True)
class ModelInfo:
    id: str  # ModelScope id (or the demo id, or a local folder)
    title: str
    family: str  # transformers model_type: the row of wizard/families.py
    params_b: float  # total parameters, billions
    vision_params_b: float  # of which the vision tower + projector
    hidden: int  # language model hidden size
    layers: int  # language model layers (encoder + decoder for Florence-2)
    vocab: int
    pixels_per_token: int  # grid families: image pixels per language-model token (patch x merge)^2
    max_pixels: int  # recommended data.max_pixels
    source: str = "modelscope"
    needs_gpu: bool = True
    note: str = ""
    tokens_per_image: int | None = None  # other families: language-model tokens of one image (at most)
    intermediate: int | None = None  # MLP width (None: Qwen's known widths)
    kv_dim: int | None = None  # k/v projection width (None: Qwen's grouped-query guess)
    tied: bool | None = None  # lm_head shares the embeddings (None: Qwen's rule, below 5B)
    default_ok: bool = False  # the wizard may pick it by itself for a machine (the tested Qwen-VL line)
    tile: int = 0  # tiling families: tokens_per_image is per tile of tile x tile pixels, at most max_tiles
    max_tiles: int = 0

    @property
    def row(self) -> fam_table.Family:
        return fam_table.FAMILIES.get(self.family, fam_table.DEFAULT)

    @property
    def lora_targets(self) -> list[str]:
        return list(self.row.lora_targets)

    @property
    def skip_quant(self) -> list[str]:
        return list(self.row.skip_quant)

    @property
    def group(self) -> str:
        return self.row.group

    def image_tokens(self, max_pixels: int) -> int:
        """Language-model tokens of one image at data.max_pixels (at most)."""
        if self.tokens_per_image is not None and self.tile:
            return fam_table.tiled_tokens(self.tokens_per_image, self.tile, self.max_tiles, max_pixels,
                                          base=self.row.image_tokens == "tiles+base")
        if self.tokens_per_image is not None and self.row.image_tokens != "grid":
            return self.tokens_per_image
        return max(1, max_pixels // self.pixels_per_token)

    @property
    def download_gb(self) -> float:
        return self.params_b * 2  # bf16 safetensors


DEMO_MODEL_ID = "demo/tiny-qwen2-vl-shapes"


def _m(model_id, title, family, params_b, vision_b, hidden, layers, vocab, **kw) -> ModelInfo:
    kw.setdefault("pixels_per_token", 784)
    kw.setdefault("max_pixels", 401408)
    return ModelInfo(model_id, title, family, params_b, vision_b, hidden, layers, vocab, **kw)


# ModelScope ids as ms-swift's model registry lists them (they mirror the Hugging Face repos of the
# same or the noted name); sizes from the model cards and config.json files.
MODELS: dict[str, ModelInfo] = {m.id: m for m in [
    ModelInfo(DEMO_MODEL_ID, "Demo: tiny Qwen2-VL shapes captioner (offline, CPU)", "qwen2_vl",
              0.001, 0.0002, 128, 4, 2048, 784, 12544, source="demo", needs_gpu=False,
              note="built in; trains on a laptop CPU in about a minute"),
    _m("Qwen/Qwen2-VL-2B-Instruct", "Qwen2-VL 2B Instruct", "qwen2_vl", 2.21, 0.675, 1536, 28, 151936,
       default_ok=True),
    _m("Qwen/Qwen2-VL-7B-Instruct", "Qwen2-VL 7B Instruct", "qwen2_vl", 8.29, 0.675, 3584, 28, 152064,
       default_ok=True),
    _m("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL 3B Instruct", "qwen2_5_vl", 3.75, 0.67, 2048, 36, 151936,
       default_ok=True),
    _m("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL 7B Instruct", "qwen2_5_vl", 8.29, 0.67, 3584, 28, 152064,
       default_ok=True),
    _m("Qwen/Qwen3-VL-2B-Instruct", "Qwen3-VL 2B Instruct", "qwen3_vl", 2.13, 0.41, 2048, 28, 151936,
       pixels_per_token=1024, max_pixels=524288, default_ok=True),
    _m("Qwen/Qwen3-VL-4B-Instruct", "Qwen3-VL 4B Instruct", "qwen3_vl", 4.44, 0.41, 2560, 36, 151936,
       pixels_per_token=1024, max_pixels=524288, default_ok=True),
    _m("ZhipuAI/GLM-4.1V-9B-Thinking", "GLM-4.1V 9B Thinking", "glm4v", 10.29, 0.59, 4096, 40, 151552,
       intermediate=13696, kv_dim=256, tied=False),
    _m("llava-hf/llava-1.5-7b-hf", "LLaVA-1.5 7B", "llava", 7.06, 0.31, 4096, 32, 32064, tokens_per_image=576,
       intermediate=11008, kv_dim=4096, tied=False),
    _m("llava-hf/llava-v1.6-mistral-7b-hf", "LLaVA-NeXT (1.6) Mistral 7B", "llava_next", 7.57, 0.32, 4096, 32,
       32064, tokens_per_image=576, tile=336, max_tiles=4, intermediate=14336, kv_dim=1024, tied=False),
    _m("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "LLaVA-OneVision 0.5B", "llava_onevision", 0.89, 0.40, 896, 24,
       151647, tokens_per_image=729, tile=384, max_tiles=9, intermediate=4864, kv_dim=128, tied=True),
    _m("llava-hf/llava-onevision-qwen2-7b-ov-hf", "LLaVA-OneVision 7B", "llava_onevision", 8.03, 0.40, 3584, 28,
       152128, tokens_per_image=729, tile=384, max_tiles=9, intermediate=18944, kv_dim=512, tied=False),
    _m("OpenGVLab/InternVL3-1B-hf", "InternVL3 1B (-hf)", "internvl", 0.94, 0.30, 896, 24, 151674,
       tokens_per_image=256, tile=448, max_tiles=12, intermediate=4864, kv_dim=128, tied=True),
    _m("OpenGVLab/InternVL3-8B-hf", "InternVL3 8B (-hf)", "internvl", 7.94, 0.34, 3584, 28, 151674,
       tokens_per_image=256, tile=448, max_tiles=12, intermediate=18944, kv_dim=512, tied=False),
    _m("HuggingFaceTB/SmolVLM-256M-Instruct", "SmolVLM 256M Instruct", "smolvlm", 0.256, 0.093, 576, 30, 49280,
       tokens_per_image=64, tile=512, max_tiles=16, intermediate=1536, kv_dim=192, tied=False),
    _m("HuggingFaceTB/SmolVLM-500M-Instruct", "SmolVLM 500M Instruct", "smolvlm", 0.507, 0.093, 960, 32, 49280,
       tokens_per_image=64, tile=512, max_tiles=16, intermediate=2560, kv_dim=320, tied=False),
    _m("AI-ModelScope/Idefics3-8B-Llama3", "Idefics3 8B Llama3", "idefics3", 8.46, 0.43, 4096, 32, 128259,
       tokens_per_image=169, tile=364, max_tiles=16, intermediate=14336, kv_dim=1024, tied=False),
    _m("LLM-Research/gemma-3-4b-it", "Gemma 3 4B it", "gemma3", 4.30, 0.42, 2560, 34, 262208, tokens_per_image=256,
       intermediate=10240, kv_dim=1024, tied=True),
    _m("LLM-Research/gemma-3-12b-it", "Gemma 3 12B it", "gemma3", 12.19, 0.42, 3840, 48, 262208,
       tokens_per_image=256, intermediate=15360, kv_dim=2048, tied=True),
    _m("AI-ModelScope/paligemma2-3b-pt-224", "PaliGemma 2 3B (224 px)", "paligemma", 3.03, 0.41, 2304, 26, 257216,
       tokens_per_image=256, intermediate=9216, kv_dim=1024, tied=True),
    _m("florence-community/Florence-2-base-ft", "Florence-2 base (ft)", "florence2", 0.23, 0.09, 768, 12, 51289,
       tokens_per_image=577, intermediate=3072, kv_dim=768, tied=True, needs_gpu=False,
       note="transformers-native conversion; the microsoft/Florence-2-* originals need remote code"),
    _m("florence-community/Florence-2-large-ft", "Florence-2 large (ft)", "florence2", 0.77, 0.36, 1024, 24, 51289,
       tokens_per_image=577, intermediate=4096, kv_dim=1024, tied=True),
    _m("LLM-Research/Llama-3.2-11B-Vision-Instruct", "Llama 3.2 Vision 11B Instruct", "mllama", 10.67, 0.86, 4096,
       40, 128256, tokens_per_image=1, intermediate=14336, kv_dim=1024, tied=False),
    _m("mistralai/Mistral-Small-3.1-24B-Instruct-2503", "Mistral Small 3.1 24B (Pixtral vision)", "mistral3", 24.01,
       0.44, 5120, 40, 131072, tokens_per_image=506, intermediate=32768, kv_dim=1024, tied=False),
]}


def model_info(model_id: str) -> ModelInfo:
    """The catalog entry, a local folder's own facts (its config.json), or a cautious guess for an
    unknown id (named like a catalog model)."""
    if model_id in MODELS:
        return MODELS[model_id]
    local = _folder_info(model_id)
    if local is not None:
        return local
    low = model_id.lower()
    for known in sorted(MODELS.values(), key=lambda m: -len(m.id)):
        tail = known.id.split("/")[-1].lower()
        if tail in low:
            return ModelInfo(**{**known.__dict__, "id": model_id, "title": model_id,
                                "note": f"assumed to be like {known.id}", "default_ok": False})
    return ModelInfo(model_id, model_id, "unknown", 2.0, 0.6, 1536, 28, 151936, 784, 401408,
                     note="unknown model: estimates assume a 2B Qwen2-VL-like model")


def _folder_info(model_id: str) -> ModelInfo | None:
    """What a local model folder's config.json says (its family, widths, image tokens); None: not a folder."""
    from pathlib import Path

    folder = Path(model_id).expanduser()
    config = fam_table.read_config(folder)
    if config is None or config.get("model_type") not in fam_table.FAMILIES:
        return None
    row = fam_table.FAMILIES[config["model_type"]]
    text = config.get("text_config") or config
    w = row.widths

    def width(key, default=0):
        names = w[key] if isinstance(w[key], tuple) else (w[key],)
        return sum(int(text.get(n) or config.get(n) or default) for n in names)

    settings = fam_table.processor_settings(folder)
    vis = config.get("vision_config") or {}
    patch = settings.get("patch_size") or vis.get("patch_size") or 14
    patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
    merge = int(settings.get("merge_size") or vis.get("spatial_merge_size") or 2)
    tokens = fam_table.max_image_tokens(row, settings, config, max_pixels=401408)
    return ModelInfo(model_id, f"{row.title} ({folder.name})", row.model_type, 0.0, 0.0, width("hidden", 1),
                     width("layers", 1), width("vocab", 1), (patch * merge) ** 2, 401408, source="local",
                     tokens_per_image=None if row.image_tokens == "grid" else tokens,
                     note=f"read from {folder}/config.json")


def is_repo_id(text: str) -> bool:
    """Owner/Name as on ModelScope: one slash, no leading ./ ~ or /."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~"))


def infer_source(model_id: str) -> str:
    """A model.id's model.source when the recipe leaves it out: demo for the built-in demo, local for a
    folder path (or an existing folder), else modelscope."""
    from pathlib import Path

    if model_id == DEMO_MODEL_ID:
        return "demo"
    return "local" if not is_repo_id(model_id) or Path(model_id).expanduser().is_dir() else "modelscope"


def model_family(model) -> "fam_table.Family | None":
    """The family row of a recipe's model section (or a model id): the local folder's config.json, the
    demo, the catalog entry; None when it is not known without downloading (an unknown ModelScope id).
    An architecture outside the table is a UserError naming it (wizard.families.family)."""
    from pathlib import Path

    model_id = str(getattr(model, "id", model))
    source = getattr(model, "source", None)
    if source == "demo" or model_id == DEMO_MODEL_ID:
        return fam_table.DEFAULT
    folder = Path(model_id).expanduser()
    if (folder / "config.json").is_file():
        return fam_table.family_of_folder(folder, trust_remote_code=bool(getattr(model, "trust_remote_code", False)))
    info = MODELS.get(model_id)
    return fam_table.FAMILIES.get(info.family) if info is not None else None


@dataclass(frozen=True)
class DatasetInfo:
    id: str  # what goes in data.dataset
    title: str
    language: str  # en | zh
    format: str  # data.format
    subset: str | None = None
    source: str = "modelscope"  # modelscope | builtin | local
    note: str = ""


DEMO_DATASET_ID = "shapes"


def is_demo_data(data) -> bool:
    """recipe.data (or its dict) names the built-in shapes set (format shapes, or auto with dataset shapes)."""
    get = data.get if isinstance(data, dict) else lambda k: getattr(data, k)
    return get("format") == "shapes" or (get("format") == "auto" and get("dataset") == DEMO_DATASET_ID)

DATASETS: list[DatasetInfo] = [
    DatasetInfo(DEMO_DATASET_ID, "Demo: synthetic shapes (offline; English or Chinese captions)", "zh",
                "shapes", source="builtin", note="generated on the fly; no download"),
    DatasetInfo("modelscope/coco_2014_caption", "COCO 2014 captions (English)", "en", "coco_csv",
                note="images are fetched by URL; unreachable ones are skipped and counted"),
    DatasetInfo("AI-ModelScope/M3IT", "M3IT COCO-CN (Chinese)", "zh", "m3it", subset="coco-cn",
                note="about 18k images embedded in the files; downloads only this subset"),
    DatasetInfo("AI-ModelScope/M3IT", "M3IT Flickr8k-CN (Chinese)", "zh", "m3it", subset="flickr8k-cn",
                note="about 6k images embedded in the files"),
]

# Tasks: the instruction given with each image. Only tasks that work end to end are listed.
TASKS: dict[str, dict[str, str]] = {
    "caption": {
        "title": "Image captioning",
        "en": "Describe this image.",
        "zh": "用中文描述这张图片。",
    },
}


def task_prompt(task: str, language: str) -> str:
    return TASKS[task][language]


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    title: str
    needs: str
    cost: str


STRATEGIES: dict[str, StrategyInfo] = {s.name: s for s in [
    StrategyInfo("qlora", "QLoRA: 4-bit base + LoRA adapter",
                 "bitsandbytes (CUDA GPU; the CPU backend works for the demo)",
                 "least memory: a 7B model fits a 24 GB GPU; a little slower per step than LoRA"),
    StrategyInfo("lora", "LoRA: 16-bit base + LoRA adapter",
                 "a GPU with room for the 16-bit weights (or the CPU for the demo)",
                 "2 bytes per parameter for the frozen base; fastest steps"),
    StrategyInfo("full", "Full fine-tune of the language model",
                 "much GPU memory: weights, gradients and AdamW states for every parameter",
                 "about 16 bytes per trained parameter; a full copy of the model to save"),
]}
