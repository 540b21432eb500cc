"""Weights manager: download/resume/verify against a local HTTP server, import, produce, safe loading, CLI."""

from __future__ import annotations

import hashlib
import http.server
import json
import pathlib
import pickle
import random
import re
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from remaster import (
    ChecksumError,
    StageKind,
    StageSpec,
    UnsafeWeightsError,
    UsageError,
    WeightsError,
    WeightsNotFoundError,
    WrongWeightsError,
    hookimpl,
)
from remaster.plugin.host import PluginHost
from remaster.weights import (
    WeightsManager,
    WeightsSpec,
    cache_dir,
    expect_network,
    load_state_dict,
    load_state_dict_layout,
    save_state_dict,
    sha256_file,
)

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB + 4 bytes: more than one chunk
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# --------------------------------------------------------------------------- fixtures


class _Server:
    """A loopback HTTP server with optional Range support, recording what it was asked."""

    def __init__(self, root: Path):
        self.root = root
        self.ignore_range = False
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                file = server.root / self.path.lstrip("/")
                if not file.is_file():
                    self.send_error(404, "Not Found")
                    return
                data = file.read_bytes()
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[:server.cut_after])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "model.bin").write_bytes(PAYLOAD)
    srv = _Server(root)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REMASTER_CACHE", str(tmp_path / "cache"))
    # These tests count and list weights: leave out the built-in metrics' backbone weights.
    monkeypatch.setattr("remaster.plugin.host.BUILTIN_PLUGINS", ("remaster.stages.builtin",))
    return tmp_path / "cache"


def make_plugin(class_name: str, weights: list[WeightsSpec], stages: tuple[StageSpec, ...] = ()) -> object:
    """A plugin object (its class name is its plugin name) registering ``weights`` and ``stages``."""

    def remaster_register_weights(self: object, register: Any) -> None:
        for spec in weights:
            register(spec)

    def remaster_register_stages(self: object, register: Any) -> None:
        for spec in stages:
            register(spec)

    namespace = {"remaster_register_weights": hookimpl(remaster_register_weights)}
    if stages:
        namespace["remaster_register_stages"] = hookimpl(remaster_register_stages)
    return type(class_name, (), namespace)()


def manager_for(*specs: WeightsSpec) -> tuple[PluginHost, WeightsManager]:
    host = PluginHost(load_entry_points=False, extra_plugins=(make_plugin("WeightsPlugin", list(specs)),))
    host.ensure_loaded()
    assert not host.errors, host.errors
    return host, WeightsManager(host.weights)


# --------------------------------------------------------------------------- fetch


def test_cache_dir_follows_remaster_cache(cache):
    assert cache_dir() == cache
    _, manager = manager_for(WeightsSpec("m", "model.bin"))
    assert manager.path("m") == cache / "weights" / "model.bin"


def test_fetch_downloads_verifies_and_reports_progress(server, cache):
    host, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin"), sha256=PAYLOAD_SHA,
                                            license="MIT"))
    assert host.weights.get("m").plugin == "WeightsPlugin"
    assert host.plugins[-1].weights == ["m"]
    seen: list[tuple[int, int | None]] = []
    path = manager.fetch("m", progress=lambda done, total: seen.append((done, total)))
    assert path == cache / "weights" / "model.bin"
    assert path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert not (cache / "weights" / "model.bin.part").exists()
    assert manager.ensure("m") == path
    # Cached and valid: a second fetch does not touch the network.
    before = len(server.requests)
    assert manager.fetch("m") == path
    assert len(server.requests) == before


def test_fetch_resumes_an_interrupted_download(server, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin"), sha256=PAYLOAD_SHA))
    half = len(PAYLOAD) // 2
    part = cache / "weights" / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:half])
    path = manager.fetch("m")
    assert server.requests == [("/model.bin", f"bytes={half}-")]
    assert sha256_file(path) == PAYLOAD_SHA
    assert not part.exists()


def test_a_download_cut_short_keeps_the_part_and_the_next_fetch_resumes(server, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin"), sha256=PAYLOAD_SHA))
    server.cut_after = 1000
    with pytest.raises(WeightsError, match="run the same command again to resume") as info:
        manager.fetch("m")
    assert "weights import" in str(info.value)
    part = cache / "weights" / "model.bin.part"
    assert part.stat().st_size == 1000
    assert not manager.path("m").exists()
    server.cut_after = None
    assert sha256_file(manager.fetch("m")) == PAYLOAD_SHA
    assert server.requests[-1] == ("/model.bin", "bytes=1000-")


def test_server_ignoring_range_restarts_from_zero(server, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin"), sha256=PAYLOAD_SHA))
    server.ignore_range = True
    part = cache / "weights" / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 5000)  # appended to, this would break the hash
    path = manager.fetch("m")
    assert server.requests == [("/model.bin", "bytes=5000-")]
    assert path.read_bytes() == PAYLOAD


def test_complete_part_refused_with_416_restarts(server, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin"), sha256=PAYLOAD_SHA))
    part = cache / "weights" / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD + b"junk")
    assert manager.fetch("m").read_bytes() == PAYLOAD
    assert [r[1] for r in server.requests] == [f"bytes={len(PAYLOAD) + 4}-", None]


def test_checksum_mismatch_quarantines_and_is_never_loadable(server, cache):
    wrong = hashlib.sha256(b"something else").hexdigest()
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin"), sha256=wrong))
    with pytest.raises(ChecksumError) as info:
        manager.fetch("m")
    message = str(info.value)
    assert wrong in message and PAYLOAD_SHA in message
    assert not manager.path("m").exists()
    assert not (cache / "weights" / "model.bin.part").exists()
    quarantined = list((cache / "weights" / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == PAYLOAD
    with pytest.raises(WeightsNotFoundError):
        manager.ensure("m")


def test_network_errors_name_the_url_and_the_manual_route(server):
    url = server.url("absent.bin")
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=url))
    with pytest.raises(WeightsError) as info:
        manager.fetch("m")
    assert "HTTP 404" in str(info.value) and url in str(info.value)
    assert "remaster weights import FILE --name m" in str(info.value)
    dead = "http://127.0.0.1:1/model.bin"  # nothing listens on port 1
    with pytest.raises(WeightsError, match="download of weights 'm' failed"):
        manager.fetch("m", url=dead)
    with pytest.raises(UsageError):
        manager.fetch("m", url="file:///etc/passwd")


def test_trust_on_first_use_pins_and_catches_later_tampering(server, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("model.bin")))
    assert manager.status()[0].sha256_text == "pinned on first use"
    path = manager.fetch("m")
    pins = json.loads((cache / "weights" / "pins.json").read_text())
    assert pins == {"m": PAYLOAD_SHA}
    assert manager.status()[0].sha256_text == f"{PAYLOAD_SHA} (pinned on first use)"
    assert manager.ensure("m") == path
    path.write_bytes(PAYLOAD[:-1] + b"X")
    with pytest.raises(ChecksumError, match="remaster weights fetch m"):
        manager.ensure("m")
    assert not path.exists()
    assert len(list((cache / "weights" / "quarantine").iterdir())) == 1
    # The pin survives: a good copy is accepted again, a bad one still is not.
    assert manager.fetch("m").read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- ensure, producers


def test_missing_weights_say_exactly_what_fixes_it():
    url = "http://127.0.0.1:9/RealESRGAN_x4plus.pth"
    _, manager = manager_for(WeightsSpec("realesrgan-x4plus", "RealESRGAN_x4plus.pth", url=url))
    with pytest.raises(WeightsNotFoundError) as info:
        manager.ensure("realesrgan-x4plus")
    message = str(info.value)
    assert "remaster weights fetch realesrgan-x4plus" in message
    assert "remaster weights import FILE --name realesrgan-x4plus" in message
    assert "RealESRGAN_x4plus.pth" in message and url in message
    assert "\n" not in message
    with pytest.raises(UsageError, match="did you mean realesrgan-x4plus"):
        manager.ensure("realesrgan-x4")


PRODUCED = {"conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
producer_calls: list[Path] = []


def produce_small(target: Path) -> None:
    """A producer: writes a small safetensors file (as a converter of packaged weights would)."""
    producer_calls.append(target)
    save_state_dict(PRODUCED, target)


def test_producer_runs_once_then_the_cache_is_used(cache):
    producer_calls.clear()
    _, manager = manager_for(WeightsSpec("conv", "conv.safetensors", producer=produce_small))
    assert manager.status()[0].state == "packaged"
    path = manager.ensure("conv")
    assert len(producer_calls) == 1 and producer_calls[0].parent == cache / "weights"
    assert path == cache / "weights" / "conv.safetensors"
    assert torch.equal(load_state_dict(path)["conv.weight"], PRODUCED["conv.weight"])
    assert json.loads((cache / "weights" / "pins.json").read_text()) == {"conv": sha256_file(path)}
    assert manager.ensure("conv") == path
    assert len(producer_calls) == 1
    assert sorted(p.name for p in (cache / "weights").iterdir()) == ["conv.safetensors", "pins.json"]  # no temp left


def test_producer_given_as_string_is_imported_only_when_needed(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "wt_producer_mod.py").write_text(textwrap.dedent("""
        import torch
        from remaster.weights import save_state_dict

        def make(target):
            save_state_dict({"w": torch.ones(2)}, target)
        """))
    monkeypatch.syspath_prepend(str(site))
    try:
        _, manager = manager_for(WeightsSpec("w", "w.safetensors", producer="wt_producer_mod:make"))
        assert "wt_producer_mod" not in sys.modules
        assert torch.equal(load_state_dict(manager.ensure("w"))["w"], torch.ones(2))
        broken = manager_for(WeightsSpec("b", "b.safetensors", producer="wt_producer_mod:nope"))[1]
        with pytest.raises(WeightsError, match="cannot load the producer 'wt_producer_mod:nope'"):
            broken.ensure("b")
    finally:
        sys.modules.pop("wt_producer_mod", None)


# --------------------------------------------------------------------------- import


def test_import_recognises_the_file_by_hash(tmp_path, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", sha256=PAYLOAD_SHA), WeightsSpec("other", "o.bin"))
    mine = tmp_path / "downloaded-by-hand (1).bin"
    mine.write_bytes(PAYLOAD)
    path = manager.import_file(mine)
    assert path == cache / "weights" / "model.bin" and path.read_bytes() == PAYLOAD
    assert mine.exists()  # copied, not moved
    assert manager.ensure("m") == path
    assert not [p for p in (cache / "weights").iterdir() if p.name.startswith(".")]  # no temp files left


def test_import_by_name_pins_and_rejects_wrong_files(tmp_path, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin"), WeightsSpec("n", "n.bin", sha256="0" * 64))
    mine = tmp_path / "whatever.dat"
    mine.write_bytes(PAYLOAD)
    with pytest.raises(UsageError, match="name=NAME; known weights: m, n") as caught:  # in Python, the argument
        manager.import_file(mine)
    assert "pass --name NAME" in caught.value.for_cli()  # on the command line, the flag
    assert manager.import_file(mine, name="m") == cache / "weights" / "model.bin"
    assert manager.expected_sha256("m") == PAYLOAD_SHA
    with pytest.raises(ChecksumError, match="expected " + "0" * 64):
        manager.import_file(mine, name="n")
    assert not (cache / "weights" / "n.bin").exists()
    # The official file name is recognised too.
    official = tmp_path / "model.bin"
    official.write_bytes(PAYLOAD)
    assert manager.import_file(official) == cache / "weights" / "model.bin"


# --------------------------------------------------------------------------- verify


def test_verify_reports_ok_mismatch_and_missing(tmp_path, cache):
    _, manager = manager_for(WeightsSpec("a", "a.bin", sha256=PAYLOAD_SHA), WeightsSpec("b", "b.bin"))
    assert manager.verify() == [("a", "missing"), ("b", "missing")]
    src = tmp_path / "a.bin"
    src.write_bytes(PAYLOAD)
    manager.import_file(src)
    assert manager.verify() == [("a", "ok"), ("b", "missing")]
    manager.path("a").write_bytes(b"tampered")
    assert manager.verify(["a"]) == [("a", "mismatch → quarantined")]
    assert manager.verify(["a"]) == [("a", "missing")]


# --------------------------------------------------------------------------- safe loading


class _Touch:
    """Unpickling this creates ``marker``: the proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
@pytest.mark.parametrize("load", [load_state_dict, load_state_dict_layout])
def test_unsafe_pickle_is_refused_without_running_it(tmp_path, writer, load):
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Touch(control)))
    assert control.exists()  # the payload is live: unpickling it for real does run code
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    content = {"conv.weight": torch.zeros(2), "payload": _Touch(marker)}
    if writer == "torch.save":
        torch.save(content, evil)
    else:
        evil.write_bytes(pickle.dumps(content, protocol=4))
    with pytest.raises(UnsafeWeightsError) as info:
        load(evil)  # the layout (a memory-mapped torch.save zip) goes through the same restricted unpickler
    message = str(info.value)
    assert str(evil) in message and "would run code" in message and ".safetensors" in message
    assert not marker.exists()


@pytest.mark.parametrize("name", ["net.safetensors", "net.pth", "legacy.pth"])
def test_layout_has_the_names_shapes_and_dtypes_and_no_data(tmp_path, name):
    state = {"conv.weight": torch.ones(4, 3, 3, 3), "conv.bias": torch.zeros(4, dtype=torch.float16)}
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_state_dict(state, path)
    else:
        torch.save({"params_ema": state}, path, _use_new_zipfile_serialization=name != "legacy.pth")
    layout = load_state_dict_layout(path)
    assert {k: (tuple(v.shape), v.dtype, v.device.type) for k, v in layout.items()} == {
        "conv.weight": ((4, 3, 3, 3), torch.float32, "meta"), "conv.bias": ((4,), torch.float16, "meta")}


def test_params_ema_is_preferred_and_containers_are_unwrapped(tmp_path):
    ema, raw = {"w": torch.ones(3)}, {"w": torch.zeros(3)}
    torch.save({"params": raw, "params_ema": ema, "iter": 5}, tmp_path / "basicsr.pth")
    assert torch.equal(load_state_dict(tmp_path / "basicsr.pth")["w"], torch.ones(3))
    torch.save({"params": raw}, tmp_path / "params.pt")
    assert torch.equal(load_state_dict(tmp_path / "params.pt")["w"], torch.zeros(3))
    torch.save({"model": {"state_dict": ema}}, tmp_path / "nested.ckpt")
    assert torch.equal(load_state_dict(tmp_path / "nested.ckpt")["w"], torch.ones(3))
    torch.save(ema, tmp_path / "plain.bin")
    assert set(load_state_dict(tmp_path / "plain.bin")) == {"w"}


def test_safetensors_round_trip_with_metadata(tmp_path):
    target = tmp_path / "sub" / "m.safetensors"
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    save_state_dict({"a": base.t(), "b": base}, target, metadata={"source": "test"})  # non-contiguous + shared
    loaded = load_state_dict(target)
    assert torch.equal(loaded["a"], base.t()) and torch.equal(loaded["b"], base)
    from safetensors import safe_open

    with safe_open(str(target), "pt") as handle:
        assert handle.metadata() == {"source": "test"}


@pytest.mark.parametrize("name", ["m.pth", "m.safetensors"])
def test_damaged_files_are_weights_errors_not_crashes(tmp_path, name):
    good = tmp_path / f"good-{name}"
    if name.endswith(".pth"):
        torch.save({"w": torch.ones(100)}, good)
    else:
        save_state_dict({"w": torch.ones(100)}, good)
    bad = tmp_path / name
    bad.write_bytes(good.read_bytes()[:-150])
    with pytest.raises(WeightsError) as info:
        load_state_dict(bad)
    assert not isinstance(info.value, UnsafeWeightsError)
    assert str(bad) in str(info.value)


def test_unknown_and_absent_files_are_weights_errors(tmp_path):
    onnx = tmp_path / "x.onnx"
    onnx.write_bytes(b"\0")
    with pytest.raises(WeightsError, match="unknown weights file type"):
        load_state_dict(onnx)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_state_dict(tmp_path / "absent.safetensors")
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="not a state dict"):
        load_state_dict(tmp_path / "list.pt")


# --------------------------------------------------------------------------- plugins


def test_duplicate_weights_from_a_second_plugin_are_its_error_and_atomic():
    first = make_plugin("FirstPlugin", [WeightsSpec("shared", "a.bin")])
    second = make_plugin("SecondPlugin", [WeightsSpec("own", "own.bin"), WeightsSpec("shared", "b.bin")],
                         stages=(StageSpec("wt-second-stage", StageKind.FILTER, "x:Y"),))
    host = PluginHost(load_entry_points=False, extra_plugins=(first, second)).ensure_loaded()
    by_name = {p.name: p for p in host.plugins}
    assert by_name["FirstPlugin"].error is None and by_name["FirstPlugin"].weights == ["shared"]
    error = str(by_name["SecondPlugin"].error)
    assert "'shared' is already registered by plugin 'FirstPlugin'" in error and "SecondPlugin" in error
    # Nothing of the failing plugin is kept: neither its other weights nor its stages.
    assert "own" not in host.weights and "wt-second-stage" not in host.stages
    assert host.weights.get("shared").plugin == "FirstPlugin"


@pytest.mark.parametrize("spec, fragment", [
    (WeightsSpec("ok", "../escape.bin"), "file name"),
    (WeightsSpec("Bad Name", "x.bin"), "weights name"),
    (WeightsSpec("ok", "x.bin", url="ftp://127.0.0.1/x.bin"), "URL"),
    (WeightsSpec("ok", "x.bin", sha256="abc"), "sha256"),
    (WeightsSpec("ok", "x.bin", check="no_colon"), "check"),
    ("not a spec", "instead of a WeightsSpec"),
])
def test_invalid_weights_specs_are_the_plugins_error(spec, fragment):
    host = PluginHost(load_entry_points=False, extra_plugins=(make_plugin("BadPlugin", [spec]),)).ensure_loaded()
    assert fragment in str(host.plugins[-1].error)
    assert len(host.weights) == 0


def test_upper_case_sha256_is_normalised():
    _, manager = manager_for(WeightsSpec("m", "m.bin", sha256=PAYLOAD_SHA.upper()))
    assert manager.expected_sha256("m") == PAYLOAD_SHA


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_host(process_host, monkeypatch):
    specs = [WeightsSpec("m", "model.bin", sha256=PAYLOAD_SHA, license="BSD-3-Clause",
                         url="http://127.0.0.1:9/model.bin", description="test model"),
             WeightsSpec("tofu", "tofu.bin", license="MIT")]
    host = PluginHost(load_entry_points=False, extra_plugins=(make_plugin("CliPlugin", specs),)).ensure_loaded()

    process_host(host)
    return host


def test_cli_weights_list_path_import_verify(cli_host, cache, tmp_path, capsys):
    from remaster.cli import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "m  [CliPlugin]  missing" in out and PAYLOAD_SHA in out and "BSD-3-Clause" in out
    assert "tofu  [CliPlugin]  missing" in out and "sha256: pinned on first use" in out
    assert "http://127.0.0.1:9/model.bin" in out

    assert main(["weights", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "weights")
    assert main(["weights", "path", "m"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "weights" / "model.bin")

    mine = tmp_path / "mine.bin"
    mine.write_bytes(PAYLOAD)
    assert main(["weights", "import", str(mine), "--name", "tofu"]) == 0
    assert capsys.readouterr().out.strip() == f"tofu: {cache / 'weights' / 'tofu.bin'}"
    assert main(["weights", "import", str(mine), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "m", "path": str(cache / "weights" / "model.bin"),
                                                   "sha256": PAYLOAD_SHA}

    assert main(["weights", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tofu"]["state"] == "cached" and rows["tofu"]["pinned_sha256"] == PAYLOAD_SHA
    assert rows["m"]["size"] == len(PAYLOAD)

    assert main(["weights", "verify"]) == 0
    assert capsys.readouterr().out.splitlines() == ["m  ok", "tofu  ok"]
    (cache / "weights" / "tofu.bin").write_bytes(b"changed")
    assert main(["weights", "verify"]) == 1
    assert "tofu  mismatch → quarantined" in capsys.readouterr().out
    assert main(["weights", "verify", "tofu"]) == 1  # asked for, and now missing
    capsys.readouterr()


def test_cli_weights_errors_are_one_line_with_exit_codes(cli_host, tmp_path, capsys):
    from remaster.cli import main

    assert main(["weights"]) == 2
    assert "required" in capsys.readouterr().err
    assert main(["weights", "fetch", "nope"]) == 2
    assert "no weights named 'nope'" in capsys.readouterr().err
    assert main(["weights", "fetch", "tofu"]) == 2  # no URL known
    err = capsys.readouterr().err
    assert "remaster weights import FILE --name tofu" in err and err.count("\n") == 1
    other = tmp_path / "other.bin"
    other.write_bytes(b"not it")
    assert main(["weights", "import", str(other), "--name", "m"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("remaster: error: ") and "expected " + PAYLOAD_SHA in err and err.count("\n") == 1


# --------------------------------------------------------------------------- content checks and replacing a pin

#: What a user got from a broken download or a wrong link: bytes that are no checkpoint at all.
#: The first byte is no pickle opcode, as with most random files.
JUNK = b"\xff" + random.Random(0).randbytes(4095)


def check_x2(path: Path) -> None:
    """A ``WeightsSpec.check``: the file holds an ESRGAN x2 network (as RealESRGAN_x2plus.pth does)."""
    expect_network(path, "ESRGAN", scale=2)


def tiny_esrgan(path: Path, scale: int) -> Path:
    """A real (tiny, random) ESRGAN checkpoint at ``scale``, saved as the official files are."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)
    torch.save({"params_ema": net.state_dict()}, path)
    return path


def x2_spec(url: str | None = None) -> WeightsSpec:
    return WeightsSpec("x2", "RealESRGAN_x2plus.pth", url=url, check=check_x2)


def test_import_checks_the_network_before_pinning(tmp_path, cache):
    _, manager = manager_for(x2_spec())
    junk = tmp_path / "RealESRGAN_x2plus.pth"
    junk.write_bytes(JUNK)
    with pytest.raises(WrongWeightsError) as info:
        manager.import_file(junk)  # recognised by its file name, as a user's download would be
    message = str(info.value)
    assert message.startswith(f"{junk}: is not weights 'x2'") and "\n" not in message
    assert "not a PyTorch checkpoint" in message and "would run code" not in message
    x4 = tiny_esrgan(tmp_path / "x4" / "RealESRGAN_x2plus.pth", 4)
    with pytest.raises(WrongWeightsError, match="holds an ESRGAN x4 network, expected ESRGAN x2"):
        manager.import_file(x4, name="x2")
    # The cache keeps the spec's file name, so a .safetensors file cannot become RealESRGAN_x2plus.pth.
    safetensors = tmp_path / "x2.safetensors"
    save_state_dict(load_state_dict(tiny_esrgan(tmp_path / "x2" / "x2.pth", 2)), safetensors)
    with pytest.raises(WrongWeightsError, match="not a PyTorch checkpoint but a safetensors file named .pth"):
        manager.import_file(safetensors, name="x2")
    # Nothing was pinned or copied: the right file is still accepted without any --replace.
    assert not (cache / "weights" / "pins.json").exists()
    assert sorted(p.name for p in (cache / "weights").iterdir()) == []
    good = tiny_esrgan(tmp_path / "good" / "RealESRGAN_x2plus.pth", 2)
    assert manager.import_file(good).read_bytes() == good.read_bytes()
    assert manager.expected_sha256("x2") == sha256_file(good)


def test_fetched_and_hand_copied_files_are_checked_before_pinning(server, cache):
    (server.root / "RealESRGAN_x2plus.pth").write_bytes(JUNK)
    _, manager = manager_for(x2_spec(server.url("RealESRGAN_x2plus.pth")))
    with pytest.raises(WrongWeightsError, match="is not weights 'x2'"):
        manager.fetch("x2")
    assert not (cache / "weights" / "pins.json").exists()
    assert [p.name for p in (cache / "weights").iterdir()] == ["quarantine"]  # no .part, no cached file
    manager.path("x2").write_bytes(JUNK)  # copied into the cache by hand
    with pytest.raises(WrongWeightsError, match="is not weights 'x2'"):
        manager.ensure("x2")
    assert not manager.path("x2").exists() and not (cache / "weights" / "pins.json").exists()
    assert len(list((cache / "weights" / "quarantine").iterdir())) == 2
    # The right file passes the same check, downloaded or copied in, and is pinned.
    good = tiny_esrgan(server.root / "RealESRGAN_x2plus.pth", 2)
    assert manager.fetch("x2").read_bytes() == good.read_bytes()
    assert manager.expected_sha256("x2") == sha256_file(good)
    assert sorted(p.name for p in (cache / "weights").iterdir()) == ["RealESRGAN_x2plus.pth", "pins.json",
                                                                       "quarantine"]


def test_a_pin_made_on_first_use_is_replaced_only_with_replace(tmp_path, cache):
    _, manager = manager_for(x2_spec(), WeightsSpec("official", "o.pth", sha256="0" * 64, check=check_x2))
    # What an older remaster left behind: junk in the cache, and its hash pinned.
    folder = cache / "weights"
    folder.mkdir(parents=True)
    (folder / "RealESRGAN_x2plus.pth").write_bytes(JUNK)
    (folder / "pins.json").write_text(json.dumps({"x2": hashlib.sha256(JUNK).hexdigest()}))
    good = tiny_esrgan(tmp_path / "RealESRGAN_x2plus.pth", 2)
    with pytest.raises(ChecksumError) as info:
        manager.import_file(good, name="x2")
    message = str(info.value)
    assert "expected " + hashlib.sha256(JUNK).hexdigest() in message
    assert f"remaster weights import {good} --name x2 --replace" in message
    assert manager.import_file(good, name="x2", replace=True).read_bytes() == good.read_bytes()
    assert manager.expected_sha256("x2") == sha256_file(good)
    # --replace still checks the file: junk never replaces a good pin.
    junk = tmp_path / "junk.pth"
    junk.write_bytes(JUNK)
    with pytest.raises(WrongWeightsError):
        manager.import_file(junk, name="x2", replace=True)
    # A file that fails the check is refused for what it holds, not with a --replace hint that could not work.
    with pytest.raises(WrongWeightsError) as info:
        manager.import_file(tiny_esrgan(tmp_path / "x4.pth", 4), name="x2")
    assert "--replace" not in str(info.value)
    assert manager.expected_sha256("x2") == sha256_file(good)
    # An official sha256 is never replaced.
    with pytest.raises(UsageError, match="official sha256"):
        manager.import_file(good, name="official", replace=True)
    assert not (folder / "o.pth").exists()


def test_verify_finds_a_pinned_file_that_is_not_the_network_and_drops_its_pin(tmp_path, cache):
    _, manager = manager_for(x2_spec())
    folder = cache / "weights"
    folder.mkdir(parents=True)
    (folder / "RealESRGAN_x2plus.pth").write_bytes(JUNK)
    (folder / "pins.json").write_text(json.dumps({"x2": hashlib.sha256(JUNK).hexdigest()}))
    assert manager.verify() == [("x2", "wrong content → quarantined")]
    assert manager.expected_sha256("x2") is None
    good = tiny_esrgan(tmp_path / "RealESRGAN_x2plus.pth", 2)
    assert manager.import_file(good).is_file()
    assert manager.verify() == [("x2", "ok")]


def test_a_check_given_as_string_is_imported_only_when_a_file_is_checked(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "wt_check_mod.py").write_text(textwrap.dedent("""
        from remaster import WrongWeightsError

        def refuse(path):
            raise WrongWeightsError("holds nothing this spec can use", path=path)

        def broken(path):
            raise KeyError("a bug in the check")
        """))
    monkeypatch.syspath_prepend(str(site))
    mine = tmp_path / "c.bin"
    mine.write_bytes(PAYLOAD)
    try:
        _, manager = manager_for(WeightsSpec("c", "c.bin", check="wt_check_mod:refuse"),
                                 WeightsSpec("d", "d.bin", check="wt_check_mod:nope"),
                                 WeightsSpec("e", "e.bin", check="wt_check_mod:broken"))
        assert "wt_check_mod" not in sys.modules
        with pytest.raises(WrongWeightsError, match=f"^{re.escape(str(mine))}: is not weights 'c': holds nothing"):
            manager.import_file(mine)
        # A check that cannot be loaded, or that breaks, is the plugin's problem: an error, never a pin.
        with pytest.raises(WeightsError, match="cannot load the check 'wt_check_mod:nope'"):
            manager.import_file(mine, name="d")
        with pytest.raises(WeightsError, match="the check 'wt_check_mod:broken' of weights 'e' failed: KeyError"):
            manager.import_file(mine, name="e")
        assert manager.expected_sha256("c") is manager.expected_sha256("d") is manager.expected_sha256("e") is None
    finally:
        sys.modules.pop("wt_check_mod", None)


def test_cli_import_replace(process_host, tmp_path, cache, monkeypatch, capsys):
    from remaster.cli import main

    host = PluginHost(load_entry_points=False, extra_plugins=(make_plugin("CliPlugin", [x2_spec()]),))
    host.ensure_loaded()
    process_host(host)
    first = tiny_esrgan(tmp_path / "a" / "RealESRGAN_x2plus.pth", 2)
    assert main(["weights", "import", str(first)]) == 0
    second = tmp_path / "b" / "RealESRGAN_x2plus.pth"
    second.parent.mkdir()
    torch.save({"params_ema": {k: v + 1 for k, v in load_state_dict(first).items()}}, second)
    capsys.readouterr()
    assert main(["weights", "import", str(second)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("remaster: error: ") and err.count("\n") == 1
    assert f"remaster weights import {second} --name x2 --replace" in err
    assert main(["weights", "import", str(second), "--name", "x2", "--replace"]) == 0
    assert capsys.readouterr().out.strip() == f"x2: {cache / 'weights' / 'RealESRGAN_x2plus.pth'}"
    assert sha256_file(cache / "weights" / "RealESRGAN_x2plus.pth") == sha256_file(second)


def test_a_damaged_pickle_is_not_called_unsafe(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(JUNK)
    with pytest.raises(WeightsError) as info:
        load_state_dict(junk)
    assert not isinstance(info.value, UnsafeWeightsError)
    assert "not a PyTorch checkpoint" in str(info.value)


# --------------------------------------------------------------------------- packaged files, failed downloads


def test_a_damaged_packaged_file_says_it_is_rebuilt_and_it_is(cache):
    producer_calls.clear()
    packaged = WeightsSpec("conv", "conv.safetensors", producer=produce_small)
    _, probe = manager_for(packaged)
    official = sha256_file(probe.ensure("conv"))
    probe.path("conv").unlink()
    (cache / "weights" / "pins.json").unlink()
    _, manager = manager_for(replace(packaged, sha256=official))
    path = manager.ensure("conv")
    path.write_bytes(path.read_bytes()[:-4] + b"XXXX")
    with pytest.raises(ChecksumError) as info:
        manager.ensure("conv")
    message = str(info.value)
    assert "rebuilt from the packaged weights on the next run" in message
    assert "weights fetch" not in message and "weights import" not in message
    assert len(list((cache / "weights" / "quarantine").iterdir())) == 1
    assert manager.verify(["conv"]) == [("conv", "packaged")]  # not missing: made offline on the next use
    calls = len(producer_calls)
    assert sha256_file(manager.ensure("conv")) == official  # the next run rebuilds it
    assert len(producer_calls) == calls + 1
    # 'fetch' of packaged weights without a URL makes them offline instead of failing.
    path.unlink()
    assert sha256_file(manager.fetch("conv")) == official


def test_a_failed_fetch_leaves_no_empty_part(server, cache):
    _, manager = manager_for(WeightsSpec("m", "model.bin", url=server.url("absent.bin")))
    part = cache / "weights" / "model.bin.part"
    with pytest.raises(WeightsError, match="HTTP 404"):
        manager.fetch("m")
    assert not part.exists()
    with pytest.raises(WeightsError, match="failed"):
        manager.fetch("m", url="http://127.0.0.1:1/model.bin")  # nothing listens on port 1: refused
    assert not part.exists()
    # A partial download that can be resumed stays, even when a later attempt fails.
    part.write_bytes(PAYLOAD[:1000])
    with pytest.raises(WeightsError, match="HTTP 404"):
        manager.fetch("m")
    assert part.read_bytes() == PAYLOAD[:1000]
    assert sha256_file(manager.fetch("m", url=server.url("model.bin"))) == PAYLOAD_SHA
