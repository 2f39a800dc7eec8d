"""wizard.metrics agrees with pycocoevalcap (English and Chinese) and is sane on obvious cases."""

import json
from pathlib import Path

import pytest

from wizard.metrics import METRICS, detect_language, score_captions, tokenize

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_agrees_with_pycocoevalcap_fixture(lang):
    # Expected scores: pycocoevalcap's scorers on hand-tokenized text (tests/fixtures/metrics_make.py).
    data = json.loads((FIXTURES / f"metrics_{lang}.json").read_text(encoding="utf-8"))
    for image_id, refs in data["references"].items():
        assert [tokenize(r, lang) for r in refs] == data["tokenized_references"][image_id]
        assert tokenize(data["candidates"][image_id][0], lang) == data["tokenized_candidates"][image_id][0]
    for language in (lang, None):  # given, and detected from the references
        got = score_captions(data["references"], data["candidates"], language=language)
        assert got["n"] == data["expected"]["n"]
        for name in METRICS:
            assert got[name] == pytest.approx(data["expected"][name], abs=1e-9), name


def test_identical_candidate_scores_perfectly():
    refs = {"a": ["A red circle on a blue background."], "b": ["a green star on a white background"],
            "c": ["a black square on a red background"]}
    cands = {k: [v[0]] for k, v in refs.items()}
    got = score_captions(refs, cands)
    for n in range(1, 5):
        assert got[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert got["ROUGE-L"] == pytest.approx(1.0)
    assert got["CIDEr"] > 5  # CIDEr is 10 x the cosine similarity of tf-idf n-gram vectors


def test_wrong_caption_scores_worse_and_empty_caption_is_zero():
    refs = {"a": ["蓝色背景上的红色圆形"], "b": ["白色背景上的绿色星形"], "c": ["红色背景上的黑色正方形"]}
    good = score_captions(refs, {"a": "蓝色背景上的红色圆形", "b": "白色背景上的绿色星形", "c": "红色背景上的黑色正方形"})
    bad = score_captions(refs, {"a": "蓝色背景上的红色三角形", "b": "白色背景上的黄色星形", "c": "a square"})
    empty = score_captions(refs, {"a": "", "b": "", "c": ""})
    assert good["CIDEr"] > bad["CIDEr"] > empty["CIDEr"] == 0
    assert empty["BLEU-1"] < 1e-6 and empty["ROUGE-L"] == 0


def test_tokenization_and_language_detection():
    assert tokenize("A Dog's ball, on GRASS!", "en") == "a dog s ball on grass"
    assert tokenize("一个红色圆形，背景是蓝色。", "zh") == "一个 红色 圆形 背景 是 蓝色"
    assert detect_language(["蓝色背景上的红色圆形"]) == "zh"
    assert detect_language(["a red circle", "一个 red circle"]) == "en"
