"""Caption files in the encodings people save them in (issue 24): GBK/GB18030, UTF-16, UTF-8 with or
without a BOM, read with a note; what cannot be decoded is named by its exact line. Files are encoded
by Python's own codecs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.fixtures_data import write_png
from wizard.data import load_caption_set
from wizard.errors import UserError
from wizard.recipe import DataSpec

ZH = ["一只灰猫趴在窗台上", "蓝色背景上的红色圆形", "两个孩子在公园里放风筝", "桌子上有一碗热气腾腾的面条"]


def folder_with(tmp_path: Path, name: str, text: str, encoding: str, n: int) -> Path:
    folder = tmp_path / "d"
    for i in range(n):
        write_png(folder / f"{i:02d}.png", i)
    (folder / name).write_bytes(text.encode(encoding))
    return folder


def jsonl(n: int, english_first: int = 0) -> str:
    """n rows; the first `english_first` captions are English (ASCII), the rest Chinese."""
    return "".join(json.dumps({"file_name": f"{i:02d}.png", "text": f"picture {i}" if i < english_first
                               else ZH[i % 4]}, ensure_ascii=False) + "\n" for i in range(n))


def load(folder: Path):
    return load_caption_set(DataSpec(dataset=str(folder), eval_fraction=0, language="zh"), seed=0)


def captions_of(cs) -> dict[str, list[str]]:
    return {ex.id: ex.captions for ex in cs.examples}


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_a_gbk_captions_file_is_read_with_the_right_captions_and_a_note(tmp_path, encoding):
    text = jsonl(24, english_first=19)  # Chinese from line 20 on: what once read as "line 1"
    cs = load(folder_with(tmp_path, "metadata.jsonl", text, encoding, 24))
    assert captions_of(cs)["19.png"] == [ZH[19 % 4]] and captions_of(cs)["03.png"] == ["picture 3"]
    assert cs.report.bad_rows == 0 and len(cs.examples) == 24
    assert any("metadata.jsonl is GB18030/GBK text, not UTF-8" in n for n in cs.report.notes)


def test_a_gbk_csv_and_the_note_in_the_data_report(tmp_path):
    text = "file_name,text\r\n" + "".join(f"{i:02d}.png,{ZH[i % 4]}\r\n" for i in range(8))
    folder = folder_with(tmp_path, "metadata.csv", text, "gbk", 8)
    proc = run_cli("data", str(folder), cwd=tmp_path, env=cli_env(CAPTION_WIZARD_CACHE=str(tmp_path / "c")))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "note: metadata.csv is GB18030/GBK text, not UTF-8: read as GB18030/GBK" in out
    assert "8 images, 8 captions" in out and ZH[1] in out  # an example line shows the caption decoded


@pytest.mark.parametrize("encoding, note", [("utf-8", None), ("utf-8-sig", None), ("utf-16", "UTF-16"),
                                            ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16")])
def test_utf8_with_or_without_bom_and_utf16_with_or_without_bom(tmp_path, encoding, note):
    cs = load(folder_with(tmp_path, "metadata.jsonl", jsonl(6), encoding, 6))
    assert captions_of(cs)["01.png"] == [ZH[1]] and len(cs.examples) == 6
    assert [n for n in cs.report.notes if "not UTF-8" in n] == ([] if note is None else [
        f"metadata.jsonl is {note} text, not UTF-8: read as {note} (save it as UTF-8 to drop this note)"])


def test_what_cannot_be_decoded_is_named_by_its_exact_line(tmp_path):
    utf8 = jsonl(19).encode("utf-8") + '{"file_name": "19.png", "text": "un café"}\n'.encode("latin-1")
    folder = folder_with(tmp_path, "metadata.jsonl", "", "utf-8", 20)
    (folder / "metadata.jsonl").write_bytes(utf8 + jsonl(3).encode("utf-8") * 100)  # far past any read-ahead
    with pytest.raises(UserError, match=r"metadata.jsonl: line 20 is not UTF-8 text") as e:
        load(folder)
    assert "iconv" in e.value.hint
    gbk = jsonl(19).encode("gbk") + b'{"file_name": "19.png", "text": "\x81"}\n'  # a lead byte, no trail
    (folder / "metadata.jsonl").write_bytes(gbk)
    with pytest.raises(UserError, match=r"line 20 is not GB18030/GBK text, like the lines before it"):
        load(folder)
    (folder / "metadata.jsonl").write_bytes(jsonl(4).encode("utf-16") + "\udc80".encode("utf-16", "surrogatepass"))
    with pytest.raises(UserError, match=r"line 5 is not UTF-16 text"):
        load(folder)


def test_latin1_is_not_taken_for_chinese(tmp_path):
    text = "".join(json.dumps({"file_name": f"{i:02d}.png", "text": "Élevé naïve tête"}, ensure_ascii=False) + "\n"
                   for i in range(4))
    with pytest.raises(UserError, match="line 1 is not UTF-8 text"):
        load(folder_with(tmp_path, "metadata.jsonl", text, "latin-1", 4))


def test_a_broken_json_line_reads_properly(tmp_path):
    lines = jsonl(40).splitlines()
    lines[6] = '{"file_name": "06.png", "text": "a tab\there"}'  # a raw control character inside a string
    folder = folder_with(tmp_path, "metadata.jsonl", "\n".join(lines) + "\n", "utf-8", 40)
    cs = load(folder)
    assert [str(b) for b in cs.report.first_bad] == [
        "metadata.jsonl:7: not valid JSON (at column 39: invalid control character)"]
    (folder / "doc.json").write_text('{"images": [\n  {"id": 1, "file_name": "a\tb.png"}]}')
    with pytest.raises(UserError) as e:
        load_caption_set(DataSpec(dataset=str(folder / "doc.json"), format="coco"), seed=0)
    assert e.value.message.endswith("doc.json: invalid JSON at line 2, column 28: invalid control character")
