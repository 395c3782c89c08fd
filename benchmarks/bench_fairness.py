"""Fair sharing: six normal pages keep classifying while one client attacks the server, one attack at a time.

The real app runs in its own process on loopback (`app.py`, CPU), with autosave on and the model on live frames in
the participants' browsers (``TEACHABLE_LIVE_MODEL=browser``, a workshop's usual case). Six normal pages speak
browser.js's protocol (bench_room's ``BrowserPage``: the demo project, then a frame's embedding ten times a second,
on the frame route once the page has its channel); with ``--pages server`` they stream their webcams to the
server's model instead. A victim's saved project is put in the autosave folder before the server starts. Then, for
``--seconds`` each:

* ``baseline``: nothing else;
* ``reembed``: an attacker opens a large project (``--examples`` examples) and changes "Embedding read at";
* ``big_images``: two attacker loops classify a 7000x7000 PNG (about 160 KB, just under the 50-megapixel limit);
* ``command_flood``: three attacker sessions send 100 card commands each as fast as they can, while a victim page
  sends "add" once a second (its latency is reported);
* ``save_export``: an attacker clicks "Save project" 20 times and "Export model" 4 times at once, from two pages;
* ``upload_flood``: 30 distinct 19 MB files posted to the upload route as one remote client (the count accepted is
  reported).

Each attack runs in a process of its own, at the lowest CPU priority (``lowest_priority``), standing for another
person's computer: in this one, its client's work would hold the interpreter lock the six normal pages' clients
need, and at the server's priority it would take the server's CPU, either of which slows the normal pages whatever
the server does.

Per attack: the normal pages' answers/s (all six together), their latency p50/p95 from the camera's tick, refused
and wrong answers, against the baseline (measured before and after the attacks, their mean); the server's and the
normal pages' CPU seconds per second; the server's peak resident memory and the peak size of its file and autosave
folders; and whether the victim's saved project still loads. Writes benchmarks/results/fairness.json (or ``--out``).

    python benchmarks/bench_fairness.py [--seconds 20] [--attacks reembed,command_flood] [--pages server]
        [--commands-per-second 10]

``--commands-per-second 100000`` turns the card-command rate off, for a before/after of the command flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_stream_load import VARIANTS, StreamClient, discover, make_frames  # noqa: E402
from room_clients import BrowserPage, Window, browser_wiring, make_payloads  # noqa: E402
from serving import app_process  # noqa: E402
from teachable.backbones import load_backbone  # noqa: E402

NORMAL_PAGES = 6
CAMERA_INTERVAL = 0.1  # the page's 10 frames a second (browser.js)
WARM_UP_SECONDS = 25
FROM_ELSEWHERE = {"X-Forwarded-For": "203.0.113.7"}
"""The upload flood comes as another computer would through a proxy on the server's machine (every client here is on
127.0.0.1, whose own uploads count against the folder's cap only)."""
ATTACKS = ["reembed", "big_images", "command_flood", "save_export", "upload_flood"]


# ---------------------------------------------------------------------------------------------- inputs
def write_big_png(path: Path, side: int = 7000) -> Path:
    Image.new("RGB", (side, side), (40, 90, 160)).save(path, "PNG")
    return path


def write_big_project(path: Path, examples: int) -> Path:
    """The demo project's examples repeated to ``examples`` (with a little noise in their embeddings)."""
    from teachable.assets import DEMO_PROJECT
    from teachable.project import Project

    demo = Project.load(DEMO_PROJECT.read_bytes())
    rng = np.random.default_rng(0)
    big = Project.load(DEMO_PROJECT.read_bytes())
    while len(big) < examples:
        for example, embedding in list(zip(demo.examples, demo.embeddings))[: examples - len(big)]:
            noisy = embedding + rng.normal(0, 0.01, embedding.shape).astype(np.float32)
            big.add_examples(example.label, noisy[None], [example.thumbnail])
    path.write_bytes(big.to_bytes())
    return path


def seed_victim(data_folder: Path) -> tuple[str, int]:
    """A saved project under a fresh key, as a person's autosave would have left it."""
    from teachable.assets import DEMO_PROJECT
    from teachable.autosave import ProjectStore, new_key

    key = new_key()
    ProjectStore(data_folder).save(key, DEMO_PROJECT.read_bytes(), {"k": 5})
    return key, len(DEMO_PROJECT.read_bytes())


def victim_still_loads(data_folder: Path, key: str) -> bool:
    from teachable.autosave import ProjectStore

    return ProjectStore(data_folder).load(key) is not None


# ---------------------------------------------------------------------------------------------- measuring
class Peaks:
    """The server's resident memory and the folders' size, sampled every 0.25 s."""

    def __init__(self, pid: int, folders: list[Path]) -> None:
        self.process = psutil.Process(pid)
        self.folders = folders
        self.rss = self.disk = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "Peaks":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.rss = max(self.rss, self.process.memory_info().rss)
            self.disk = max(self.disk, sum(folder_bytes(folder) for folder in self.folders))
            self._stop.wait(0.25)


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            pass
    return total


class NormalPages:
    """Six participants, ten camera frames a second each for the whole run, in an event loop of their own thread.

    ``browser`` (a workshop's default): the model runs in their browsers and each frame's embedding goes to the
    server (bench_room's ``BrowserPage``, speaking browser.js's protocol); the server does their kNN, cards and
    tray, little CPU per answer. ``server``: the webcam's stream (bench_stream_load's ``StreamClient``), every
    frame through the server's model, which then has little CPU to spare. Either way what an attack costs them is
    the server's doing, not their own clients': the six ``gradio_client`` loops used before spent three times the
    server's CPU per answer, on the same two cores as the attacks."""

    def __init__(self, url: str, backbone, mode: str) -> None:
        self.mode = mode
        self.endpoints = discover(url)
        self.frames = make_frames(VARIANTS)
        if mode == "browser":
            self.wiring = browser_wiring(httpx.get(f"{url}config", timeout=30).json(), url)
            self.payloads = make_payloads(self.frames, backbone, self.wiring.input_size)
        self.pages: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> "NormalPages":
        self._thread.start()
        if not self._ready.wait(180):
            raise RuntimeError("the normal pages did not start within 180 s")
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _page(self):
        if self.mode == "server":
            return StreamClient(self.endpoints, self.frames)
        return BrowserPage(
            self.endpoints, self.frames, window=Window(open=True), wiring=self.wiring, payloads=self.payloads
        )

    async def _run(self) -> None:
        self.pages = [self._page() for _ in range(NORMAL_PAGES)]
        for page in self.pages:
            await page.load_page()
        await asyncio.gather(*(page.load_demo() for page in self.pages))
        if self.mode == "server":
            await asyncio.gather(*(page.open() for page in self.pages))
        self._ready.set()

        async def camera(page) -> None:
            tick = time.monotonic() + random.uniform(0, CAMERA_INTERVAL)
            while not self._stop.is_set():
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
                page.send() if self.mode == "server" else page.tick(time.monotonic())
                tick = max(tick + CAMERA_INTERVAL, time.monotonic())  # like setInterval: late ticks are not made up

        try:
            await asyncio.gather(*(camera(page) for page in self.pages))
        finally:
            await asyncio.gather(*(page.close() for page in self.pages), return_exceptions=True)

    def summary(self, start: float, end: float) -> dict:
        """All six pages' answers that arrived in [start, end): per second, and those refused. Browser mode: their
        latency from the camera's tick, and wrong labels. Server mode (whose answers do not name their frame): the
        time between a page's answers, which is what a person sees, and the server's time per answer."""
        seconds, errors = end - start, sum(len(page.errors) for page in self.pages)
        if self.mode == "server":
            answers = [[o for o in page.outputs if start <= o.received < end and not o.final] for page in self.pages]
            labelled = [[o for o in page if o.label is not None] for page in answers]
            gaps = [gap for page in labelled for gap in np.diff([o.received for o in page])]
            durations = [o.duration for page in labelled for o in page if o.duration is not None]
            return {
                "answers_per_s": round(sum(map(len, labelled)) / seconds, 2),
                "gap_p50_ms": percentile_ms(gaps, 50), "gap_p95_ms": percentile_ms(gaps, 95),
                "server_p50_ms": percentile_ms(durations, 50), "server_p95_ms": percentile_ms(durations, 95),
                "refused": sum(map(len, answers)) - sum(map(len, labelled)), "errors": errors,
            }  # fmt: skip
        answers = [a for page in self.pages for a in list(page.answers) if start <= a.received < end]
        labelled = [a for a in answers if a.label is not None]
        latencies = [a.received - a.made for a in labelled]
        return {
            "answers_per_s": round(len(labelled) / seconds, 2),
            "p50_ms": percentile_ms(latencies, 50),
            "p95_ms": percentile_ms(latencies, 95),
            "refused": len(answers) - len(labelled),
            "wrong_labels": sum(a.label != a.expected for a in labelled),
            "errors": errors,
        }


def percentile_ms(values, q: float) -> int | None:
    return round(float(np.percentile(values, q)) * 1000) if len(values) else None


# ---------------------------------------------------------------------------------------------- attacks
def attack_reembed(url: str, inputs: dict, stop: threading.Event, notes: dict) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    began = time.monotonic()
    client.predict(None, handle_file(str(inputs["project"])), api_name="/open_project")
    notes["open_seconds"] = round(time.monotonic() - began, 1)
    name = endpoint_of(url, "embedding-tap", "input")
    job = client.submit("blocks.6", api_name=f"/{name}")
    began = time.monotonic()
    while not job.done() and not stop.is_set():
        time.sleep(0.2)
    notes["reembed_done_in_window"] = job.done()
    notes["reembed_seconds"] = round(time.monotonic() - began, 1)


def attack_big_images(url: str, inputs: dict, stop: threading.Event, notes: dict) -> None:
    from gradio_client import Client, handle_file

    def loop() -> None:
        client = Client(url, verbose=False)
        while not stop.is_set():
            try:
                client.predict(handle_file(str(inputs["big_png"])), api_name="/classify")
                notes["answered"] = notes.get("answered", 0) + 1
            except Exception as error:
                notes["refused"] = notes.get("refused", 0) + 1
                notes["message"] = str(error)[:160]

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def attack_command_flood(url: str, inputs: dict, stop: threading.Event, notes: dict) -> None:
    from gradio_client import Client

    def flood(client) -> None:
        jobs = [
            client.submit(json.dumps(["rename", "Class 1", f"x{index}", time.time() * 1000 + index]), None, None,
                          api_name="/run_command")
            for index in range(100)
        ]  # fmt: skip
        for job in jobs:
            try:
                job.result(timeout=120)
                counts["carried_out"] += 1
            except Exception:
                counts["refused"] += 1

    counts = {"carried_out": 0, "refused": 0}
    flooders = [Client(url, verbose=False) for _ in range(3)]
    threads = [threading.Thread(target=flood, args=(c,)) for c in flooders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    notes["flood_commands"] = counts


def victim_adds(url: str, stop: threading.Event, notes: dict) -> None:
    """Another person's page during the command flood: "add" once a second, from this process (the flood's own
    process is busy with its clients, which would slow this one's too)."""
    from gradio_client import Client

    page, latencies = Client(url, verbose=False), []
    while not stop.is_set():
        began = time.monotonic()
        page.predict(json.dumps(["add", time.time() * 1000]), None, None, api_name="/run_command")
        latencies.append(time.monotonic() - began)
        stop.wait(1.0)
    notes["victim_add_ms"] = [round(latency * 1000) for latency in latencies]
    notes["victim_add_max_ms"] = round(max(latencies) * 1000) if latencies else None


def attack_save_export(url: str, inputs: dict, stop: threading.Event, notes: dict) -> None:
    from gradio_client import Client

    pages = [Client(url, verbose=False) for _ in range(2)]
    for page in pages:
        page.predict(None, api_name="/load_demo")
    jobs = [pages[0].submit(api_name="/save_project") for _ in range(20)]
    exports = [page.submit(api_name="/export_model") for page in pages for _ in range(2)]
    outcomes = {"saved": 0, "exported": 0, "refused": 0, "save_replaced_before_download": 0}
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes["saved"] += 1
        except Exception:  # the page's next save removed this one before the client fetched it
            outcomes["save_replaced_before_download"] += 1
    for job in exports:
        try:
            job.result(timeout=300)
            outcomes["exported"] += 1
        except Exception as error:
            outcomes["refused"] += 1
            notes["export_message"] = str(error)[:160]
    notes.update(outcomes)


def attack_upload_flood(url: str, inputs: dict, stop: threading.Event, notes: dict) -> None:
    rng = np.random.default_rng(1)
    accepted = refused = 0
    with httpx.Client(timeout=120) as http:
        for index in range(30):
            if stop.is_set():
                break
            content = rng.integers(0, 256, 19 * 2**20, dtype=np.uint8).tobytes()
            files = {"files": (f"blob{index}.bin", content, "application/octet-stream")}
            response = http.post(f"{url}gradio_api/upload", files=files, headers=FROM_ELSEWHERE)
            if response.status_code == 200:
                accepted += 1
            else:
                refused += 1
                notes["message"] = f"{response.status_code}: {response.text[:160]}"
    notes.update(accepted=accepted, refused=refused, accepted_mb=accepted * 19)


def endpoint_of(url: str, elem_id: str, trigger: str) -> str:
    """The API name of the event ``trigger`` on the component with ``elem_id``."""
    config = httpx.get(f"{url}config", timeout=30).json()
    ids = {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id}
    for dependency in config["dependencies"]:
        if any(target[0] in ids and target[1] == trigger for target in dependency["targets"]):
            return dependency["api_name"]
    raise LookupError(f"no {trigger} event on #{elem_id}")


VICTIMS = {"command_flood": victim_adds}
"""Attacks with a victim of their own, run in this process beside the attack."""

ATTACK_FUNCTIONS = {
    "reembed": attack_reembed,
    "big_images": attack_big_images,
    "command_flood": attack_command_flood,
    "save_export": attack_save_export,
    "upload_flood": attack_upload_flood,
}


# ---------------------------------------------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per phase")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--examples", type=int, default=600, help="examples in the re-embedded project")
    parser.add_argument("--pages", choices=["browser", "server"], default="browser",
                        help="where the normal pages' model runs (TEACHABLE_LIVE_MODEL)")
    parser.add_argument("--commands-per-second", default="10", help="TEACHABLE_COMMANDS_PER_SECOND for the server")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fairness.json")
    parser.add_argument("--run-attack", help=argparse.SUPPRESS)  # the attacker's own process (run_phase starts it)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_attack:
        run_attack(args.run_attack, args.url, json.loads(args.inputs), args.seconds)
        return
    attacks = [name for name in args.attacks.split(",") if name]

    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as scratch:
        scratch = Path(scratch)
        served, data = scratch / "served", scratch / "data"
        inputs = {
            "big_png": write_big_png(scratch / "big.png"),
            "project": write_big_project(scratch / "big-project.zip", args.examples),
        }
        victim_key, _ = seed_victim(data)
        env = {
            **os.environ, "GRADIO_TEMP_DIR": str(served), "TEACHABLE_DATA_DIR": str(data),
            "TEACHABLE_COMMANDS_PER_SECOND": args.commands_per_second, "TEACHABLE_LIVE_MODEL": args.pages,
        }  # fmt: skip
        results = {"normal_pages": NORMAL_PAGES, "normal_page_mode": args.pages, "seconds_per_phase": args.seconds,
                   "phases": {}}  # fmt: skip
        backbone = load_backbone(device="cpu")  # the normal pages' embeddings, made up front as their browsers would
        with app_process(env, timeout=300) as (url, process), NormalPages(url, backbone, args.pages) as pages:
            time.sleep(WARM_UP_SECONDS)  # every page has its channel and the first answers' costs are paid
            for phase in ["baseline", *attacks, "baseline_end"]:
                results["phases"][phase] = run_phase(phase, url, inputs, process.pid, [served, data], pages,
                                                     args.seconds)  # fmt: skip
                print(phase, json.dumps(results["phases"][phase]), flush=True)
        # The machine is shared, so the baseline is measured before and after the attacks and their mean is used.
        phases = results["phases"]
        base = (phases["baseline"]["answers_per_s"] + phases["baseline_end"]["answers_per_s"]) / 2
        results["baseline_answers_per_s"] = round(base, 2)
        for figures in phases.values():
            figures["answers_ratio"] = round(figures["answers_per_s"] / base, 2)
        results["victim_saved_work_loads"] = victim_still_loads(data, victim_key)
        results["target"] = "normal pages keep >= 80 % of their answers/s under each attack; no saved work is lost"
        results["target_met"] = results["victim_saved_work_loads"] and all(
            figures["answers_ratio"] >= 0.8 for figures in results["phases"].values()
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def run_phase(phase, url, inputs, pid, folders, pages: NormalPages, seconds) -> dict:
    """One phase: the attack (if any) in a process of its own, so its client's work does not hold the normal
    pages' interpreter lock here; the server's CPU time over the window is measured too."""
    server = psutil.Process(pid)
    attacker = None
    with Peaks(pid, folders) as peaks:
        cpu_before, clients_before = sum(server.cpu_times()[:2]), time.process_time()
        start = time.monotonic()
        if phase in ATTACK_FUNCTIONS:
            attacker = subprocess.Popen(
                [sys.executable, __file__, "--run-attack", phase, "--url", url, "--seconds", str(seconds),
                 "--inputs", json.dumps({name: str(path) for name, path in inputs.items()})],
                stdout=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
        victim_stop, victim_notes = threading.Event(), {}
        victim = None
        if phase in VICTIMS:
            victim = threading.Thread(target=VICTIMS[phase], args=(url, victim_stop, victim_notes))
            victim.start()
        time.sleep(seconds)
        end = time.monotonic()
        if victim is not None:
            victim_stop.set()
            victim.join(timeout=60)
        server_cpu, clients_cpu = sum(server.cpu_times()[:2]) - cpu_before, time.process_time() - clients_before
        notes = {}
        if attacker is not None:
            try:
                out, _ = attacker.communicate(timeout=180)
                notes = json.loads(out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError) as error:
                attacker.kill()
                notes = {"attacker_failed": repr(error)[:160]}
        notes.update(victim_notes)
    figures = pages.summary(start, end)
    figures.update(
        server_cpu_per_s=round(server_cpu / (end - start), 2),
        normal_clients_cpu_per_s=round(clients_cpu / (end - start), 2), rss_peak_mb=round(peaks.rss / 2**20),
        disk_peak_mb=round(peaks.disk / 2**20, 1), attack=notes,
    )  # fmt: skip
    time.sleep(3)  # let the attack's last work drain before the next phase
    return figures


def lowest_priority() -> None:
    """This process at the lowest CPU priority against the server's, as another computer's client would be. The
    server runs in a session of its own, and Linux shares the CPU between sessions' groups (autogroup) before nice
    values count, so the attacker (started in a session of its own too) lowers its group's priority as well."""
    os.nice(19)
    try:
        Path("/proc/self/autogroup").write_text("19")
    except OSError:  # no autogroup scheduling here: nice alone orders the processes
        pass


def run_attack(name: str, url: str, inputs: dict, seconds: float) -> None:
    """The attacker's process: run one attack for ``seconds``, then print its notes (and its own CPU time) as JSON."""
    lowest_priority()
    stop, notes = threading.Event(), {}
    threading.Timer(seconds, stop.set).start()
    ATTACK_FUNCTIONS[name](url, {key: Path(value) for key, value in inputs.items()}, stop, notes)
    notes["attacker_cpu_s"] = round(time.process_time(), 1)
    print(json.dumps(notes), flush=True)
    os._exit(0)  # a call still in flight (a paced re-embedding) is left behind, as a closed browser leaves it


if __name__ == "__main__":
    main()
