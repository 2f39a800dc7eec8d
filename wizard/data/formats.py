"""The readers of the formats added for data as it is shipped, by data.format name.

    READERS[fmt](path, spec, base_dirs) -> ReadResult

karpathy, blip, flickr, coco_cn: wizard/data/papers.py (with the files' own train/test split);
table, aic: wizard/data/records.py (any CSV/TSV/JSONL/JSON table, data.columns);
webdataset: wizard/data/webdataset.py; llama_factory: wizard/data/llama_factory.py.
The older formats (imagefolder, coco, messages, hf, shapes, m3it, coco_csv) are read in load.py.
"""

from __future__ import annotations

from wizard.data.adapters import EXPLAIN


def _karpathy(path, spec, dirs):
    from wizard.data.papers import read_karpathy

    return read_karpathy(path, spec, dirs)


def _blip(path, spec, dirs):
    from wizard.data.papers import read_blip

    return read_blip(path, spec, dirs)


def _tokens(fmt):
    def read(path, spec, dirs):
        from wizard.data.papers import read_tokens

        return read_tokens(path, spec, dirs, fmt)
    return read


def _table(fmt):
    def read(path, spec, dirs):
        from wizard.data.records import read_table

        return read_table(path, spec, dirs, fmt)
    return read


def _webdataset(path, spec, dirs):
    from wizard.data.webdataset import read_webdataset

    return read_webdataset(path, spec)


def _llama_factory(path, spec, dirs):
    from wizard.data.llama_factory import read_llama_factory

    return read_llama_factory(path, spec)


READERS = {"karpathy": _karpathy, "blip": _blip, "flickr": _tokens("flickr"), "coco_cn": _tokens("coco_cn"),
           "table": _table("table"), "aic": _table("aic"), "webdataset": _webdataset,
           "llama_factory": _llama_factory}

__all__ = ["EXPLAIN", "READERS"]
