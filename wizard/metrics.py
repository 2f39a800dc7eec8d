"""Caption metrics: BLEU-1..4, ROUGE-L and CIDEr, computed by pycocoevalcap's own scorers.

    from wizard.metrics import score_captions
    score_captions({"img1": ["a red circle", "a circle that is red"]}, {"img1": ["a red circle"]})
    # {'BLEU-1': 1.0, ..., 'ROUGE-L': 1.0, 'CIDEr': 0.0, 'n': 1}   (CIDEr needs several images: its IDF)

Every caption of an image is a reference (the COCO convention). pycocoevalcap's PTB tokenizer needs
Java, so tokenization is ours, per language:
  en: lowercased, punctuation replaced by spaces, split on whitespace ("A dog's ball." -> a dog s ball)
  zh: segmented into words with jieba ("蓝色背景上的红色圆形" -> 蓝色 背景 上 的 红色 圆形),
      punctuation dropped, Latin letters lowercased.
The scorers then see space-joined tokens, exactly as they would after the PTB tokenizer.
"""

from __future__ import annotations

import logging
import re
import tempfile
import unicodedata
from pathlib import Path

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")
_jieba = None


def _is_punct(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat.startswith("P") or cat.startswith("S")  # punctuation and symbols (，。！… $ + etc.)


def _strip_punct(text: str) -> str:
    return "".join(" " if _is_punct(ch) else ch for ch in text)


def _get_jieba():
    """jieba, initialised once: cache in a writable folder, no log lines on stderr."""
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        from wizard.paths import cache_dir

        cache = cache_dir("metrics")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=cache, delete=True)
            probe.close()
        except OSError:
            cache = Path(tempfile.gettempdir())
        jieba.dt.tmp_dir = str(cache)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def tokenize(text: str, language: str) -> str:
    """The caption as space-joined tokens for `language` ("en" or "zh")."""
    text = unicodedata.normalize("NFKC", text).lower()
    if language == "zh":
        words = _get_jieba().lcut(text)
        tokens = [t for w in words for t in _strip_punct(w).split()]
    elif language == "en":
        tokens = _strip_punct(text).split()
    else:
        raise ValueError(f"unknown language {language!r}; expected 'en' or 'zh'")
    return " ".join(tokens)


def detect_language(texts) -> str:
    """"zh" when at least a fifth of the non-space characters are CJK ideographs, else "en"."""
    chars = cjk = 0
    for t in texts:
        stripped = "".join(t.split())
        chars += len(stripped)
        cjk += len(_CJK.findall(stripped))
    return "zh" if chars and cjk / chars >= 0.2 else "en"


def score_tokenized(refs: dict, cands: dict) -> dict:
    """pycocoevalcap's Bleu(4), Rouge and Cider on already tokenized text ({id: [str, ...]})."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(refs, cands, verbose=0)
    rouge, _ = Rouge().compute_score(refs, cands)
    cider, _ = Cider().compute_score(refs, cands)
    out = {f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)}
    out["ROUGE-L"] = float(rouge)
    out["CIDEr"] = float(cider)
    return out


def score_captions(references: dict, candidates: dict, language: str | None = None) -> dict:
    """Score candidates against references.

    references: {image_id: [ref, ...]} (every caption of the image); candidates: {image_id: [caption]}
    or {image_id: caption}. Images without a candidate are not scored. `language` "en"/"zh", or None:
    detected from the references. Returns {"BLEU-1".."BLEU-4", "ROUGE-L", "CIDEr": float, "n": int}.
    """
    ids = [i for i in references if i in candidates]
    if not ids:
        raise ValueError("no image has both references and a candidate caption")
    cands = {i: candidates[i] if isinstance(candidates[i], list) else [candidates[i]] for i in ids}
    for i in ids:
        if len(cands[i]) != 1:
            raise ValueError(f"image {i!r}: expected one candidate caption, got {len(cands[i])}")
        if not references[i]:
            raise ValueError(f"image {i!r}: no reference captions")
    if language is None:
        language = detect_language(r for i in ids for r in references[i])
    tok = {i: [tokenize(r, language) for r in references[i]] for i in ids}
    res = {i: [tokenize(cands[i][0], language)] for i in ids}
    scores = score_tokenized(tok, res)
    scores["n"] = len(ids)
    return scores
