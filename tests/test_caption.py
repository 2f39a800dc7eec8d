"""`caption-wizard caption`: captions from a model id or a run, folders, unreadable images, bad sources."""

from __future__ import annotations

import json

import pytest

from wizard.caption import expand_images, generation_with
from wizard.errors import UserError
from wizard.recipe import GenerationSpec

DEMO = "demo/tiny-qwen2-vl-shapes"


@pytest.mark.slow
def test_demo_base_names_colour_and_shape_and_skips_unreadable(cli, shape_images, tmp_path):
    paths, samples = shape_images
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"this is not a JPEG")
    proc = cli("caption", DEMO, *map(str, paths[:4]), str(broken), str(paths[4]), str(paths[5].parent / "none.png"),
               *map(str, paths[5:]), "--json")  # a bare model: default generation settings
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [line["image"] for line in lines] == [str(p) for p in paths]  # unreadable ones skipped, order kept
    right = [f"{s.color} {s.shape}" in line["caption"] for s, line in zip(samples, lines)]
    assert sum(right) >= 0.75 * len(samples), lines  # the English base names colour + shape
    assert "skipped" in proc.stderr and "holiday.jpg" in proc.stderr and "none.png" in proc.stderr


def test_nothing_readable_exits_2_naming_each_image(cli, tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG broken")
    proc = cli("caption", DEMO, str(bad), str(tmp_path / "missing.jpg"))
    assert proc.returncode == 2
    assert "scan.png" in proc.stderr and "missing.jpg" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_without_adapter_says_so(cli, run_without_adapter, shape_images):
    proc = cli("caption", str(run_without_adapter), str(shape_images[0][0]))
    assert proc.returncode == 2
    assert f"run {run_without_adapter.name} has no adapter yet (status: stopped)" in proc.stderr
    assert "resume" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_source_is_a_user_error(cli, shape_images, tmp_path):
    proc = cli("caption", str(tmp_path / "nowhere"), str(shape_images[0][0]))
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "Traceback" not in proc.stderr


def test_folders_expand_to_sorted_images(tmp_path):
    for name in ["b.png", "a.JPG", "notes.txt", "c.webp"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    empty = tmp_path / "sub"
    got = expand_images([tmp_path, tmp_path / "gone.png", empty])
    assert [(p.name, e is None) for p, e in got] == [
        ("a.JPG", True), ("b.png", True), ("c.webp", True), ("gone.png", False), ("sub", False)]


def test_generation_flags_override_the_recipe():
    base = GenerationSpec(num_beams=1, temperature=0.7, repetition_penalty=1.0, max_new_tokens=24)
    assert generation_with(base, {"num_beams": 3, "temperature": None}) == base.model_copy(update={"num_beams": 3})
    sampled = generation_with(base, {"temperature": 0.3})
    assert sampled.do_sample and sampled.temperature == 0.3  # a temperature only matters when sampling
    with pytest.raises(UserError, match="--max-new-tokens"):
        generation_with(base, {"max_new_tokens": 0})
