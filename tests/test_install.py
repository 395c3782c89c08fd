"""The ways people get teachable: a wheel installed outside the repository, and a Space's build order.

Each route ends in the same places a person would go: the CLI on the bundled demo, `teachable atlas icons`, the web
export, and the app with a (fake) camera up to its first prediction in a real browser. See tests/routes.py for
what the fresh environments are.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .conftest import photo, write_jpeg
from .fakecam import chromium_args, demo_to_first_prediction, write_y4m
from .routes import ROOT, build_wheel, clean_env, copy_tracked_files, fresh_environment
from .serving import app_process

PACKAGE_DATA = [
    "teachable/assets/demo_project.zip",
    "teachable/assets/icons/efficientnet_lite0.blocks.4.npz",
    "teachable/assets/try/cat.jpg",
    "teachable/assets/samples/cat/0.jpg",
    "teachable/webexport/index.html",
    "teachable/webexport/ort/ort.wasm.min.js",
    "teachable/webexport/ort/ort-wasm-simd-threaded.wasm.xz",
    "teachable/webexport/ort/ort-wasm-simd-threaded.mjs",
    "teachable/webexport/ort/package.json",
    *(f"teachable/webapp/static/{path.name}" for path in sorted((ROOT / "teachable/webapp/static").iterdir())),
]
needs_chromium = pytest.mark.skipif(
    not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)"
)


def requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# ---------------------------------------------------------------------------------------------- requirements.txt
def test_requirements_file_is_pyprojects_dependency_list():
    """One source of truth: the Space's file lists exactly what the package depends on."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = requirement_lines((ROOT / "requirements.txt").read_text())
    assert [str(Requirement(line)) for line in listed] == [str(Requirement(line)) for line in declared]


def test_requirements_file_names_packages_only():
    """A Space installs it in an empty folder, where "." or a path cannot be installed."""
    for line in requirement_lines((ROOT / "requirements.txt").read_text()):
        assert not line.startswith(("-", ".", "/")) and "/" not in line, line
        Requirement(line)  # a plain requirement, or this raises


def test_space_header_names_a_python_zerogpu_runs():
    header = (ROOT / "README.md").read_text().split("---", 2)[1]
    assert re.search(r'python_version: "3\.(10|12)"', header)
    assert re.search(r"app_file: app.py", header)


# ---------------------------------------------------------------------------------------------- the wheel
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_what_the_product_needs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert not missing
    assert not any(name.startswith(("assets/", "tests/", "benchmarks/")) for name in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed into a fresh environment; the python, and a working folder outside the repository."""
    folder = tmp_path_factory.mktemp("from-wheel")
    python = fresh_environment(folder / "venv")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", str(wheel)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    work = folder / "work"
    work.mkdir()
    return python, work, clean_env(folder / "home")


def run_installed(installed, *arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
    python, work, env = installed
    command = [str(python.parent / "teachable"), *arguments]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    python, work, env = installed
    where = subprocess.run(
        [str(python), "-c", "import teachable.assets as a; print(a.__file__); print(a.DEMO_PROJECT.is_file())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "site-packages" in where[0] and not where[0].startswith(str(ROOT)), where
    assert where[1] == "True"


def test_installed_cli_fits_predicts_and_reads_the_demo(installed):
    _, work, _ = installed
    done = run_installed(installed, "info", "--json", *demo_path(installed))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["classes"] == {"cat": 4, "coffee": 4, "rocket": 4}
    for label, name in [("cat", "chelsea"), ("coffee", "coffee")]:
        for index in range(3):
            write_jpeg(work / "photos" / label / f"{index}.jpg", photo(name)[index * 10 :, index * 10 :])
    fitted = run_installed(installed, "fit", str(work / "photos"), "-o", str(work / "mine.zip"))
    assert fitted.returncode == 0, fitted.stderr
    write_jpeg(work / "query.jpg", photo("chelsea")[40:, 20:])
    predicted = run_installed(installed, "predict", str(work / "mine.zip"), str(work / "query.jpg"), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["label"] == "cat"
    assert "Traceback" not in fitted.stderr + predicted.stderr


def demo_path(installed) -> list[str]:
    python, work, env = installed
    path = subprocess.run(
        [str(python), "-c", "from teachable.assets import DEMO_PROJECT; print(DEMO_PROJECT)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return [path]


def test_installed_atlas_icons_and_web_export_need_nothing_from_outside(installed):
    _, work, _ = installed
    icons = run_installed(installed, "atlas", "icons", "--steps", "2", "--typical", "0", "-o", str(work / "i.npz"))
    assert icons.returncode == 0, icons.stderr
    assert (work / "i.npz").is_file()
    page = run_installed(installed, "export", *demo_path(installed), "--format", "web", "-o", str(work / "page"))
    assert page.returncode == 0, page.stderr
    assert (work / "page" / "ort" / "ort-wasm-simd-threaded.wasm").stat().st_size > 10_000_000


def first_prediction_in_a_browser(url: str, video: Path) -> tuple[str, str]:
    """Open the page, load the demo project, start the fake camera showing a cat; the label it shows first, and
    what the Project panel says about keeping work."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            demo_to_first_prediction(page, "cat")
            return page.get_attribute("#prediction .tm-label", "data-label"), page.inner_text("#where-work-is-kept")
        finally:
            browser.close()


@pytest.fixture(scope="module")
def cat_video(tmp_path_factory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("camera") / "cat.y4m", [(photo("chelsea"), (255, 0, 0))], seconds=2)


@pytest.mark.browser
@needs_chromium
def test_installed_app_reaches_a_first_prediction(installed, cat_video, tmp_path):
    python, work, env = installed
    log = tmp_path / "app.log"
    with app_process(env, command=[str(python.parent / "teachable"), "app"], cwd=work, log=log) as (url, _):
        label, kept = first_prediction_in_a_browser(url, cat_video)
    assert label == "cat"
    assert "saved on this server as you go" in kept
    assert "Traceback" not in log.read_text(errors="replace")


# ---------------------------------------------------------------------------------------------- a Space
@pytest.mark.browser
@needs_chromium
def test_space_build_order_reaches_a_first_prediction(tmp_path, cat_video):
    """As a Space builds: the requirements installed in an empty folder, then the repository copied in, then
    `python app.py` run from the copy, which is where teachable is imported from."""
    python = fresh_environment(tmp_path / "venv")
    empty = tmp_path / "build"
    empty.mkdir()
    shutil.copy(ROOT / "requirements.txt", empty)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "-r", "requirements.txt"],
        cwd=empty, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    space = copy_tracked_files(tmp_path / "space")
    env = clean_env(tmp_path / "home", SPACE_ID="someone/teachable")
    where = subprocess.run(
        [str(python), "-c", "import teachable; print(teachable.__file__)"], cwd=space, env=env,
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where == str(space / "teachable" / "__init__.py")
    log = tmp_path / "app.log"
    with app_process(env, command=[str(python), "app.py"], cwd=space, log=log) as (url, _):
        label, kept = first_prediction_in_a_browser(url, cat_video)
    assert label == "cat"
    assert "a restart of the Space" in kept and "does not" in kept  # honest: a Space's disk starts empty
    assert "Traceback" not in log.read_text(errors="replace")


def test_app_py_keeps_its_page_in_demo_for_gradios_reload_mode(tmp_path):
    """`gradio app.py` re-runs the file in its module and serves what `demo` holds."""
    probe = "import runpy, sys; sys.argv = ['app.py', '--device', 'cpu']; print(type(runpy.run_path('app.py', run_name='app')['demo']).__name__)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=clean_env(tmp_path / "home"), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "Blocks", done.stderr[-2000:]


def test_space_without_a_mounted_folder_is_told_a_restart_loses_work(tmp_path):
    from teachable.autosave import AutosaveSettings

    assert AutosaveSettings.from_env({"SPACE_ID": "someone/teachable"}).lasts_restarts is False
    mounted = {"SPACE_ID": "someone/teachable", "TEACHABLE_DATA_DIR": str(tmp_path)}
    assert AutosaveSettings.from_env(mounted).lasts_restarts is True
    assert AutosaveSettings.from_env({}).lasts_restarts is True


# ---------------------------------------------------------------------------------------------- onnxruntime-web
def test_bundled_onnxruntime_web_is_the_pinned_npm_package():
    """The package's own copy equals the files in the registry's tarball, whose sha512 is pinned."""
    import platformdirs

    from teachable.webexport import ORT_WEB_VERSION, bundled_ort_files, tarball_ort_files

    # where `make` fetched it (the tests' own TEACHABLE_CACHE_DIR is a fresh folder of the test run)
    tarball = Path(platformdirs.user_cache_dir("teachable")) / "npm" / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
    if not tarball.is_file():
        pytest.skip("the pinned tarball is not in the cache (make fetches it with npm)")
    assert bundled_ort_files() == tarball_ort_files(tarball)


def test_damaged_onnxruntime_web_is_one_line_naming_the_fix(tmp_path):
    from teachable.webexport import BUNDLED_ORT, WebExportError, bundled_ort_files

    shutil.copytree(BUNDLED_ORT, tmp_path / "ort")
    loader = tmp_path / "ort" / "ort-wasm-simd-threaded.mjs"
    loader.write_bytes(loader.read_bytes()[:-1] + b" ")
    with pytest.raises(WebExportError, match="sha256 differs.*reinstall teachable"):
        bundled_ort_files(tmp_path / "ort")
    (tmp_path / "ort" / "ort-wasm-simd-threaded.wasm.xz").unlink()
    with pytest.raises(WebExportError, match="missing or damaged.*reinstall teachable") as raised:
        bundled_ort_files(tmp_path / "ort")
    assert "\n" not in str(raised.value)
