"""Caption data: the formats users already have, read into checked examples with a seeded split.

    from wizard.data import load_caption_set, load_image
    cs = load_caption_set(recipe.data, seed=recipe.train.seed, progress=RichProgress())
    print("\\n".join(cs.report.lines()))
    for ex in cs.train:                 # Example(id, image, captions): each caption is a target
        img = load_image(ex)            # PIL RGB, decoded on demand
    refs = {ex.id: ex.captions for ex in cs.eval}   # every caption is a reference

Formats (data.format, detected when "auto"): imagefolder, coco, messages, hf, shapes, m3it, coco_csv,
karpathy, blip, flickr, coco_cn, aic, table, webdataset, llama_factory; see wizard/data/detect.py
for the detection rules and wizard/data/formats.py for the readers. Image URLs are downloaded once
into a cache (wizard/data/urls.py). Never imports torch; `datasets` only for save_to_disk folders.

May import: wizard.errors, fsutil, progress, recipe, catalog, images (the one image loader), hub (datasets
on ModelScope), demo (the shapes), rundir-free; never the front end (commands, ask, dashboard, runner, console) or train/.
"""

from wizard.data.detect import FORMATS, locate
from wizard.data.examples import BadImage, BadRow, CaptionSet, DataReport, Example, load_image
from wizard.data.load import MAX_BAD_FRACTION, fingerprint, load_caption_set, split_examples

__all__ = ["FORMATS", "MAX_BAD_FRACTION", "BadImage", "BadRow", "CaptionSet", "DataReport", "Example",
           "fingerprint", "load_caption_set", "load_image", "locate", "split_examples"]
