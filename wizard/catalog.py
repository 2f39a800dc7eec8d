"""What caption-wizard knows about: models, datasets, tasks and tuning strategies, as data.

Add a model or dataset here and the wizard offers it. Numbers are approximate
(public model cards); the memory estimate (wizard/estimate.py) uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

QWEN_LM_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Kept out of 4-bit quantization: the vision tower (with its projector/merger) and the output head.
QWEN_SKIP_QUANT = ["visual", "lm_head"]


@dataclass(frozen=True)
class ModelInfo:
    id: str  # ModelScope id (or the demo id)
    title: str
    family: str  # transformers model_type
    params_b: float  # total parameters, billions
    vision_params_b: float  # of which the vision tower + projector
    hidden: int  # language model hidden size
    layers: int  # language model layers
    vocab: int
    pixels_per_token: int  # image pixels per language-model token (patch x merge)^2
    max_pixels: int  # recommended data.max_pixels
    lora_targets: list[str] = field(default_factory=lambda: list(QWEN_LM_TARGETS))
    skip_quant: list[str] = field(default_factory=lambda: list(QWEN_SKIP_QUANT))
    source: str = "modelscope"
    needs_gpu: bool = True
    note: str = ""


DEMO_MODEL_ID = "demo/tiny-qwen2-vl-shapes"

MODELS: dict[str, ModelInfo] = {m.id: m for m in [
    ModelInfo(DEMO_MODEL_ID, "Demo: tiny Qwen2-VL shapes captioner (offline, CPU)", "qwen2_vl",
              0.001, 0.0002, 128, 4, 2048, 784, 12544, source="demo", needs_gpu=False,
              note="built in; trains on a laptop CPU in about a minute"),
    ModelInfo("Qwen/Qwen2-VL-2B-Instruct", "Qwen2-VL 2B Instruct", "qwen2_vl",
              2.21, 0.675, 1536, 28, 151936, 784, 401408),
    ModelInfo("Qwen/Qwen2-VL-7B-Instruct", "Qwen2-VL 7B Instruct", "qwen2_vl",
              8.29, 0.675, 3584, 28, 152064, 784, 401408),
    ModelInfo("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL 3B Instruct", "qwen2_5_vl",
              3.75, 0.67, 2048, 36, 151936, 784, 401408),
    ModelInfo("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL 7B Instruct", "qwen2_5_vl",
              8.29, 0.67, 3584, 28, 152064, 784, 401408),
    ModelInfo("Qwen/Qwen3-VL-2B-Instruct", "Qwen3-VL 2B Instruct", "qwen3_vl",
              2.13, 0.41, 2048, 28, 151936, 1024, 524288),
    ModelInfo("Qwen/Qwen3-VL-4B-Instruct", "Qwen3-VL 4B Instruct", "qwen3_vl",
              4.44, 0.41, 2560, 36, 151936, 1024, 524288),
]}


def model_info(model_id: str) -> ModelInfo:
    """The catalog entry, or a cautious guess for an unknown id or folder (named like a catalog model)."""
    if model_id in MODELS:
        return MODELS[model_id]
    low = model_id.lower()
    for known in sorted(MODELS.values(), key=lambda m: -len(m.id)):
        tail = known.id.split("/")[-1].lower()
        if tail in low:
            return ModelInfo(**{**known.__dict__, "id": model_id, "title": model_id,
                                "note": f"assumed to be like {known.id}"})
    return ModelInfo(model_id, model_id, "unknown", 2.0, 0.6, 1536, 28, 151936, 784, 401408,
                     note="unknown model: estimates assume a 2B Qwen2-VL-like model")


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
