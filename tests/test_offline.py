"""Offline for real: the CLI, the app and its page make no outside request, DNS lookups included.

Each process runs under strace, which records every connect() and sendto() it makes, from Python or from native
code (ONNX Runtime's telemetry is C++); the page runs in Chromium with every request it makes recorded. A
control run shows the watch sees a packet off this computer when there is one.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import photo, write_jpeg
from .fakecam import chromium_args, demo_to_first_prediction, write_y4m
from .routes import ROOT, clean_env
from .serving import app_process

pytestmark = pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed (make test installs it)")

CALL = re.compile(r"\b(connect|sendto|sendmsg)\(")
IPV4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
IPV6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')
# ONNX Runtime's telemetry thread wakes every 5 s; a watch of a few of its periods sees it if it is on.
TELEMETRY_WAIT_S = 12
TINY_ONNX_SESSION = """
import numpy as np, onnxruntime
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": np.ones(1, np.float32)})
"""


def outside_requests(trace: Path) -> list[str]:
    """The lines of an strace log that reach past this computer: any address off loopback, or any DNS query."""
    found = []
    for line in trace.read_text(errors="replace").splitlines():
        if not CALL.search(line):
            continue
        for port, address in IPV4.findall(line) + IPV6.findall(line):
            loopback = ipaddress.ip_address(address.split("%")[0]).is_loopback
            if int(port) == 53 or not loopback:
                found.append(line.strip())
    return found


def watched(command: list[str], trace: Path) -> list[str]:
    """``command`` run under strace (children included), writing the calls to ``trace``."""
    return ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), *command]


def run_watched(command: list[str], trace: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(watched(command, trace), env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_watch_sees_a_lookup_and_a_packet_when_there_is_one(tmp_path):
    """The control: whatever the network, a DNS query and a packet off loopback are both seen.

    ONNX Runtime's own telemetry lookup is not a dependable control: whether it fires depends on the machine's
    network. A UDP packet to a documentation address (TEST-NET-1) and a name lookup are sent from C either way.
    """
    env = clean_env(tmp_path / "home")
    script = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try: s.sendto(b'x', ('192.0.2.1', 9))\n"
        "except OSError: pass\n"
        "try: socket.getaddrinfo('teachable-offline-check.invalid', 80)\n"
        "except OSError: pass\n"
    )
    run_watched([sys.executable, "-c", script], tmp_path / "control.log", env, tmp_path)
    seen = outside_requests(tmp_path / "control.log")
    assert any("192.0.2.1" in line for line in seen), seen


def test_importing_teachable_keeps_onnx_runtime_quiet(tmp_path):
    env = clean_env(tmp_path / "home")
    script = "import teachable\n" + TINY_ONNX_SESSION + f"import time; time.sleep({TELEMETRY_WAIT_S})\n"
    run_watched([sys.executable, "-c", script], tmp_path / "quiet.log", env, tmp_path)
    assert outside_requests(tmp_path / "quiet.log") == []
    assert not (tmp_path / "home" / ".cache" / "Microsoft").exists()  # no device-id file either


def test_cli_makes_no_outside_request(tmp_path):
    env = clean_env(tmp_path / "home")
    for label, name in [("cat", "chelsea"), ("rocket", "rocket")]:
        for index in range(2):
            write_jpeg(tmp_path / "photos" / label / f"{index}.jpg", photo(name)[index * 10 :, index * 10 :])
    teachable = [sys.executable, "-m", "teachable.cli"]
    project, page = str(tmp_path / "p.zip"), str(tmp_path / "page")
    run_watched([*teachable, "fit", str(tmp_path / "photos"), "-o", project, "-q"], tmp_path / "fit.log", env, tmp_path)
    query = tmp_path / "photos" / "cat" / "0.jpg"
    run_watched([*teachable, "predict", project, str(query)], tmp_path / "predict.log", env, tmp_path)
    run_watched([*teachable, "export", project, "--format", "web", "-o", page], tmp_path / "export.log", env, tmp_path)
    for name in ["fit", "predict", "export"]:
        assert outside_requests(tmp_path / f"{name}.log") == [], name


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)")
def test_app_and_its_page_make_no_outside_request(tmp_path):
    from playwright.sync_api import sync_playwright

    video = write_y4m(tmp_path / "cat.y4m", [(photo("chelsea"), (255, 0, 0))], seconds=2)
    env = clean_env(tmp_path / "home")
    trace = tmp_path / "app.log"
    command = watched([sys.executable, "app.py"], trace)
    requested: list[str] = []
    with app_process(env, command=command, cwd=ROOT, log=tmp_path / "output.log") as (url, _):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("request", lambda request: requested.append(request.url))
                page.goto(url)
                demo_to_first_prediction(page, "cat")
                time.sleep(TELEMETRY_WAIT_S)  # frames keep flowing through ONNX Runtime meanwhile
            finally:
                browser.close()
    own = url.rstrip("/")
    elsewhere = [address for address in requested if not address.startswith((own, "data:", "blob:"))]
    assert elsewhere == []
    assert len(requested) > 10  # the page's own requests were seen
    assert outside_requests(trace) == []
