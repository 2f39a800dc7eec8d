"""`caption-wizard serve`: the real server (a subprocess on 127.0.0.1) driven by the official openai client."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from PIL import Image

from tests.conftest import CLI, ROOT, cli_env
from tests.serve_hosts import ImageHosts
from wizard.demo.shapes import make_shapes
from wizard.errors import UserError
from wizard.serve.vllm import vllm_plan

DEMO_BASE = ROOT / "wizard" / "assets" / "demo-base"
KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, source: Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([CLI, "serve", str(source), "--port", str(self.port), *args],
                                     env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError("server did not answer /health in 180 s")

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
            return json.loads(r.read())

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=120)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """The server's --image-root: the only folder whose files clients may name."""
    return tmp_path_factory.mktemp("image-root")


@pytest.fixture(scope="module")
def server(image_root):
    # 127.0.0.2 (loopback like 127.0.0.1) stands for an internal network the operator allows by name
    s = Server(DEMO_BASE, "--api-key", KEY, "--batch-wait-ms", "200", "--max-body-mb", "1",
               "--image-root", str(image_root), "--allow-url-network", "127.0.0.2/32", "--fetch-timeout", "2")
    yield s
    s.stop()


def data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def ask(client, url: str, text: str | None = None, **kw):
    content = [{"type": "image_url", "image_url": {"url": url}}]
    if text:
        content.append({"type": "text", "text": text})
    return client.chat.completions.create(model="demo-base", messages=[{"role": "user", "content": content}], **kw)


def test_models_and_health(server):
    assert [m.id for m in server.client().models.list().data] == ["demo-base"]
    health = server.health()  # no key needed: a load balancer probes it
    assert (health["status"], health["engine"], health["model"]) == ("ok", "transformers", "demo-base")


def test_concurrent_requests_are_answered_in_batches(server):
    samples = make_shapes(8, seed=321)
    client = server.client()
    before = server.health()
    with cf.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda s: ask(client, data_uri(s.image)), samples))
    captions = [r.choices[0].message.content for r in replies]
    right = sum(f"{s.color} {s.shape}" in c for s, c in zip(samples, captions))
    assert right >= 6, list(zip(captions, samples))  # the demo base names colour and shape
    assert all(r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 10 for r in replies)
    after = server.health()
    assert after["requests"] - before["requests"] == 8
    assert after["batches"] - before["batches"] < 8 and after["largest_batch"] > 1


def test_generation_settings_per_request(server, image_root):
    sample = make_shapes(1, seed=5)[0]
    path = image_root / "shape.png"
    sample.image.save(path)
    client = server.client()
    full = ask(client, str(path), temperature=0, extra_body={"num_beams": 2})  # a file under --image-root
    assert full.choices[0].finish_reason == "stop" and sample.shape in full.choices[0].message.content
    short = ask(client, str(path), max_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
    with pytest.raises(openai.BadRequestError, match="num_beams 0"):
        ask(client, str(path), extra_body={"num_beams": 0})
    with pytest.raises(openai.BadRequestError, match="num_beams 100: at most 16"):
        ask(client, str(path), extra_body={"num_beams": 100})
    with pytest.raises(openai.BadRequestError, match="streaming is not supported"):
        ask(client, str(path), stream=True)


def test_http_image_url(server, image_hosts):
    reply = ask(server.client(), f"{image_hosts.allowed}/x.png")  # 127.0.0.2: --allow-url-network
    assert reply.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="HTTP 404"):
        ask(server.client(), f"{image_hosts.allowed}/missing.png")


@pytest.fixture(scope="module")
def image_hosts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hosted")
    make_shapes(1, seed=9)[0].image.save(folder / "x.png")
    (folder / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 2**20))  # over --max-body-mb 1
    (folder / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
    hosts = ImageHosts(folder)
    yield hosts
    hosts.close()


def test_urls_on_internal_addresses_are_refused(server, image_hosts):
    """Server-side request forgery: a client holding the key must not reach what only the server can."""
    port = image_hosts.internal_host.port
    cases = {
        f"http://127.0.0.1:{port}/x.png": "127.0.0.1, a loopback address",
        f"http://localhost:{port}/x.png": "localhost resolves to 127.0.0.1, a loopback address",
        f"http://[::1]:{port}/x.png": "::1, a loopback address",
        f"http://[::ffff:127.0.0.1]:{port}/x.png": "a loopback address inside an IPv6 address",
        f"http://0.0.0.0:{port}/x.png": "0.0.0.0, a private address",
        "http://10.1.2.3/x.png": "10.1.2.3, a private address",
        "http://192.168.0.1/x.png": "192.168.0.1, a private address",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254, a cloud metadata address",
        "http://100.100.100.200/latest/meta-data/": "a cloud metadata address",
        f"{image_hosts.allowed}/redirect?to=http://127.0.0.1:{port}/x.png":
            f"redirected from {image_hosts.allowed}/redirect",
    }
    for url, message in cases.items():
        with pytest.raises(openai.BadRequestError, match=re.escape(message)) as e:
            ask(server.client(), url)
        assert "public addresses only" in str(e.value) and "--allow-private-urls" in str(e.value)
    assert image_hosts.internal_host.requests == []  # nothing reached the internal service
    assert ask(server.client(), f"{image_hosts.allowed}/redirect?to=/x.png").choices[0].message.content


def test_fetched_images_are_capped_timed_and_checked_before_decoding(server, image_hosts):
    cases = {
        "/big.png": "larger than 1 MiB",  # refused from its Content-Length
        "/endless": "larger than 1 MiB",  # no Content-Length: counted while reading
        "/page": "the server sent text/html, not an image",
        "/fake.png": "cannot read the image",
        "/slow?s=5": "timed out",  # --fetch-timeout 2
    }
    for path, message in cases.items():
        with pytest.raises(openai.BadRequestError, match=re.escape(message)):
            ask(server.client(), image_hosts.allowed + path)
    assert server.health()["status"] == "ok"


def test_local_files_only_inside_the_image_root(server, image_root, tmp_path):
    make_shapes(1, seed=3)[0].image.save(image_root / "in.png")
    (image_root / "sub").mkdir(exist_ok=True)
    outside = tmp_path / "secret.png"
    make_shapes(1, seed=4)[0].image.save(outside)
    (image_root / "escape.png").unlink(missing_ok=True)
    (image_root / "escape.png").symlink_to(outside)  # a symlink out of the root
    client = server.client()
    for url in ("in.png", str(image_root / "in.png"), f"file://{image_root}/in.png", "sub/../in.png"):
        assert ask(client, url).choices[0].message.content
    refused = {}
    for url in (str(outside), f"file://{outside}", "escape.png", "../" + outside.parent.name + "/secret.png",
                "/etc/passwd", "sub", "missing.png", str(tmp_path / "missing.png")):
        with pytest.raises(openai.BadRequestError) as e:
            ask(client, url)
        refused[url] = e.value.body["message"].replace(url, "URL")
    assert len(set(refused.values())) == 1, refused  # existing or not, allowed or not: one answer
    assert "no readable image file at that path" in next(iter(refused.values()))


def test_fetch_connects_to_the_address_it_checked(image_hosts, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked, to loopback afterwards."""
    import socket

    from wizard.serve.images import ImagePolicy, fetch, parse_networks

    real = socket.getaddrinfo
    answers = iter(["127.0.0.2"] + ["127.0.0.1"] * 10)

    def rebinding(host, port, *args, **kw):
        if host != "images.test":
            return real(host, port, *args, **kw)
        return real(next(answers), port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = ImagePolicy(networks=parse_networks(["127.0.0.2"]), timeout_s=5)
    port = image_hosts.allowed_host.port
    assert fetch(f"http://images.test:{port}/x.png", policy).startswith(b"\x89PNG")
    assert image_hosts.allowed_host.requests[-1] == ("/x.png", f"images.test:{port}")  # the name, kept
    assert image_hosts.internal_host.requests == []


@pytest.fixture(scope="module")
def default_server():
    s = Server(DEMO_BASE)  # no --image-root, no --allow-*: the defaults
    yield s
    s.stop()


def test_the_default_server_reads_no_files_and_no_internal_urls(default_server, image_hosts, tmp_path):
    path = tmp_path / "x.png"
    make_shapes(1, seed=2)[0].image.save(path)
    client = default_server.client("unused")
    with pytest.raises(openai.BadRequestError, match="this server reads no local files"):
        ask(client, str(path))
    with pytest.raises(openai.BadRequestError, match="serve --image-root DIR"):
        ask(client, "file:///etc/passwd")
    for host in (image_hosts.internal, image_hosts.allowed):
        with pytest.raises(openai.BadRequestError, match="a loopback address"):
            ask(client, f"{host}/x.png")
    assert image_hosts.internal_host.requests == []
    assert ask(client, data_uri(make_shapes(1, seed=2)[0].image)).choices[0].message.content


def test_bad_requests_get_400_with_a_message(server, image_root):
    client = server.client()
    cases = {
        "data:image/png;base64,%%%not-base64": "base64 is invalid",
        "data:image/png;base64," + base64.b64encode(b"hello, not a picture").decode(): "cannot read the image",
        str(image_root / "nope.png"): "no readable image file at that path under the server's image root",
        "ftp://example.com/x.png": "ftp: URLs are not fetched",
    }
    for url, message in cases.items():
        with pytest.raises(openai.BadRequestError, match=re.escape(message)):
            ask(client, url)
    huge = image_root / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)  # 100 megapixels in a small file
    with pytest.raises(openai.BadRequestError, match=r"10000x10000 = 100.0 megapixels; at most 50 on this server"):
        ask(client, "huge.png")
    with pytest.raises(openai.BadRequestError, match="no image"):
        client.chat.completions.create(model="demo-base", messages=[{"role": "user", "content": "a caption?"}])
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        server.client("wrong-key").models.list()

    def post(body: bytes) -> tuple[int, str]:
        req = urllib.request.Request(server.url + "/v1/chat/completions", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, text = post(b"{not json")
    assert status == 400 and "not valid JSON" in text
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (2 * 2**20)}]}).encode()
    status, text = post(big)  # over --max-body-mb 1
    assert status == 400 and "larger than 1 MiB" in text
    assert server.health()["status"] == "ok"  # and the server lives on
    assert ask(client, data_uri(make_shapes(1, seed=1)[0].image)).choices[0].message.content


def test_other_addresses_need_an_api_key(cli):
    res = cli("serve", str(DEMO_BASE), "--host", "0.0.0.0")
    assert res.returncode == 2 and "an API key is required" in res.stderr and "--api-key" in res.stderr


def _export_folder(tmp_path: Path, **overrides) -> Path:
    from wizard.recipe import apply_overrides, load_recipe, recipe_to_yaml

    folder = tmp_path / "export-merged"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "demo-shapes.yaml"), [f"{k}={v}" for k, v in overrides.items()])
    (folder / "recipe.yaml").write_text(recipe_to_yaml(recipe))
    return folder


def test_vllm_command_for_a_merged_export(tmp_path):
    folder = _export_folder(tmp_path, **{"generation.num_beams": 3})
    plan = vllm_plan(folder, host="127.0.0.1", port=8001, api_key="k", model_name=None)
    argv = plan.argv
    assert argv[:3] == ["vllm", "serve", str(folder)]
    opt = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1) if argv[i].startswith("--")}
    assert opt["--served-model-name"] == "export-merged" and opt["--port"] == "8001"
    assert json.loads(opt["--mm-processor-kwargs"]) == {"min_pixels": 3136, "max_pixels": 12544}
    assert json.loads(opt["--override-generation-config"]) == {"max_new_tokens": 24, "repetition_penalty": 1.0,
                                                               "temperature": 0.0}
    assert opt["--dtype"] == "float32" and opt["--max-model-len"] == "256"
    assert "k" not in argv and plan.shown().endswith('--api-key "$VLLM_API_KEY"')
    assert any("num_beams=3" in n for n in plan.notes)


def test_vllm_command_for_a_lora_adapter_and_refusals(tmp_path, run_without_adapter):
    adapter = tmp_path / "adapter-export"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    from wizard.recipe import apply_overrides, load_recipe, recipe_to_yaml

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "demo-shapes.yaml"),
                             ["tuning.lora.modules_to_save=[]", "tuning.strategy=qlora", "tuning.lora.rank=12"])
    (adapter / "recipe.yaml").write_text(recipe_to_yaml(recipe))
    plan = vllm_plan(adapter, host="127.0.0.1", port=8000, api_key=None, model_name="mine")
    argv = plan.argv
    i = argv.index("--lora-modules")
    assert argv[i + 1] == f"mine={adapter}" and argv[argv.index("--max-lora-rank") + 1] == "16"
    assert Path(argv[2]).name == "demo-base" and "bitsandbytes" in argv  # the demo base, 4-bit like training
    (adapter / "recipe.yaml").write_text(recipe_to_yaml(load_recipe(ROOT / "recipes" / "demo-shapes.yaml")))
    with pytest.raises(UserError, match="lm_head, embed_tokens") as e:
        vllm_plan(adapter, host="127.0.0.1", port=8000, api_key=None, model_name=None)
    assert "--merge" in e.value.hint
    with pytest.raises(UserError, match="no adapter yet"):
        vllm_plan(run_without_adapter, host="127.0.0.1", port=8000, api_key=None, model_name=None)


def test_engine_vllm_prints_the_command_and_says_it_is_missing(tmp_path, cli):
    folder = _export_folder(tmp_path)
    res = cli("serve", str(folder), "--engine", "vllm", "--port", "9001")
    assert res.returncode == 2
    assert f"vllm serve {folder} --served-model-name export-merged --host 127.0.0.1 --port 9001" in res.stdout
    assert "vLLM is not installed" in res.stderr


@pytest.mark.slow
def test_serving_a_run_uses_its_adapter_and_prompt(demo_run):
    s = Server(demo_run)
    try:
        client = s.client("unused")
        sample = make_shapes(1, seed=11)[0]
        reply = client.chat.completions.create(model=demo_run.name, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_uri(sample.image)}}]}])
        caption = reply.choices[0].message.content
        assert any("\u4e00" <= ch <= "\u9fff" for ch in caption), caption  # the run learned Chinese captions
    finally:
        s.stop()


def test_batcher_groups_by_settings_and_survives_a_failing_batch():
    from wizard.recipe import GenerationSpec
    from wizard.serve.batching import Batcher

    calls = []
    gate = threading.Event()

    def caption(images, generation, prompt):
        gate.wait(10)  # hold the first batch so the rest queue up behind it
        calls.append((list(images), generation.num_beams, prompt))
        if "boom" in images:
            raise RuntimeError("CUDA out of memory")
        return [f"{prompt}:{im}" for im in images]

    b = Batcher(caption, max_batch_size=3, wait_s=0.0)
    g1, g2 = GenerationSpec(num_beams=1), GenerationSpec(num_beams=2)
    first = b.submit("a", g1, "p")
    time.sleep(0.2)  # the worker has taken "a" and waits at the gate
    rest = [b.submit(im, g, "p") for im, g in (("b", g1), ("c", g2), ("d", g1), ("e", g1), ("boom", g1))]
    gate.set()
    assert first.result(10) == "p:a"
    assert [f.result(10) for f in rest[:3]] == ["p:b", "p:c", "p:d"]
    for f in rest[3:]:  # "e" shared the failing batch: every request in it gets the error
        with pytest.raises(RuntimeError, match="out of memory"):
            f.result(10)
    assert b.submit("f", g1, "q").result(10) == "q:f"  # the worker lives on
    assert calls[0] == (["a"], 1, "p")
    assert calls[1:4] == [(["b", "d"], 1, "p"), (["c"], 2, "p"), (["e", "boom"], 1, "p")]  # split by settings
    assert b.stats.largest_batch == 2 and b.stats.requests == 7
    b.close()
