"""File names no codec expected (issue 24): bytes that are not UTF-8, NFD against NFC, and terminals
that are not UTF-8. Real files with real byte names (os.fsencode), the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import unicodedata
from pathlib import Path

from tests.conftest import CLI, ROOT, cli_env
from tests.fixtures_data import caption, write_png
from wizard.data import load_caption_set, load_image
from wizard.demo.shapes import make_shapes
from wizard.recipe import DataSpec

DEMO_BASE = ROOT / "wizard" / "assets" / "demo-base"
LATIN1 = b"caf\xe9.png"  # as old archives and Windows shares write it: not UTF-8


def run_bytes(*args, cwd, **env) -> subprocess.CompletedProcess:
    """The console script with output kept as bytes (what a terminal gets)."""
    return subprocess.run([CLI, *map(str, args)], cwd=cwd, env=cli_env(**env), capture_output=True, timeout=300)


def test_a_latin1_file_name_is_captioned_to_out(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    first, second = make_shapes(2, seed=7)
    first.image.save(os.fsdecode(os.fsencode(folder) + b"/" + LATIN1), "PNG")
    second.image.save(folder / "plain.png")
    proc = run_bytes("caption", DEMO_BASE, folder, "--out", "captions.jsonl", cwd=tmp_path, COLUMNS="400")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    assert b"caf\\xe9.png" in proc.stdout  # printed as ls -b would, never as a crash
    lines = (tmp_path / "captions.jsonl").read_text(encoding="utf-8").splitlines()  # valid UTF-8
    records = [json.loads(line) for line in lines]
    assert [os.fsencode(r["image"]).rsplit(b"/", 1)[1] for r in records] == [LATIN1, b"plain.png"]
    assert os.path.exists(records[0]["image"]) and records[0]["caption"]  # the name leads back to the file


def test_a_data_set_that_names_a_non_utf8_file_is_read_and_indexed(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_png(Path(os.fsdecode(os.fsencode(folder) + b"/" + LATIN1)), 1)
    rows = [{"file_name": os.fsdecode(LATIN1), "text": caption(2)}]  # json: "caf\udce9.png", as caption --out writes
    for i in range(3):
        write_png(folder / f"{i}.png", i + 5)
        rows.append({"file_name": f"{i}.png", "text": caption(2 * i)})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for _ in range(2):  # the second run reads the index the first one wrote
        proc = run_bytes("data", folder, cwd=tmp_path, CAPTION_WIZARD_CACHE=str(tmp_path / "cache"))
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert b"4 images" in proc.stdout and b"bad rows: none" in proc.stdout


def test_nfd_names_on_disk_match_nfc_names_in_the_metadata(tmp_path):
    folder = tmp_path / unicodedata.normalize("NFD", "Fotos-Zürich")
    names = ["café.png", "Ångström.png", "plain.png"]
    for i, name in enumerate(names):
        write_png(folder / unicodedata.normalize("NFD", name), i)  # as macOS writes them
    meta = tmp_path / "metadata.jsonl"  # beside the folder, naming it in NFC
    meta.write_text("".join(json.dumps({"file_name": f"Fotos-Zürich/{unicodedata.normalize('NFC', n)}",
                                        "text": caption(2 * i)}, ensure_ascii=False) + "\n"
                            for i, n in enumerate(names)), encoding="utf-8")
    cs = load_caption_set(DataSpec(dataset=str(meta), eval_fraction=0), seed=0)
    assert cs.report.bad_rows == 0 and len(cs.examples) == 3
    assert all(load_image(ex).size == (6, 6) for ex in cs.examples)  # training finds them too


def test_output_to_a_terminal_that_is_not_utf8_degrades(tmp_path):
    folder = tmp_path / "zh"
    rows = []
    for i in range(1, 5):
        write_png(folder / f"图{i}.png", i)
        rows.append({"file_name": f"图{i}.png", "text": caption(2 * i + 1)})  # Chinese captions
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii",
           "CAPTION_WIZARD_CACHE": str(tmp_path / "cache")}
    proc = run_bytes("data", folder, cwd=tmp_path, **env)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert b"4 images" in proc.stdout and b"\\u" in proc.stdout  # the Chinese as escapes, the rest readable
    proc = run_bytes("caption", DEMO_BASE, folder, "--json", cwd=tmp_path, **env)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    records = [json.loads(line) for line in proc.stdout.decode("ascii").splitlines()]  # escapes are JSON
    assert [Path(r["image"]).name for r in records] == [f"图{i}.png" for i in range(1, 5)]
    proc = run_bytes("data", tmp_path / "nowhere-图", cwd=tmp_path, **env)  # an error message, too
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr and b"nowhere-\\u56fe" in proc.stderr
