"""`arc-trm submit` against a fake Kaggle API, driven by the real kaggle client.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the kaggle client (kagglesdk) POSTs JSON to
http://localhost/api/v1/<service>/<method> and PUTs file bodies to the upload URL that StartBlobUpload
returns. Port 80 needs root to bind, so the fake server listens on a free port and the client reaches it as
its HTTP proxy (http_proxy; requests sends every http:// request there, localhost included, when no_proxy
is empty): the server answers those methods, hands out upload URLs pointing back at itself, and records
everything. Nothing leaves the machine.
"""

import base64
import hashlib
import io
import json
import os
import subprocess
import threading
import venv
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from conftest import ARC_TRM

from arc_trm.checkpoint import INFERENCE_FILES
from arc_trm.cli import main
from arc_trm.kaggle_submit import DEPENDENCY_WHEELS

KERNEL, DATASET, COMPETITION = "alice/arc-trm-test", "alice/arc-trm-test-assets", "arc-prize-2025"
KERNEL_VERSION = 7
API = "/api/v1/"


class FakeKaggle(BaseHTTPRequestHandler):
    """Answers the kaggle client's calls; `server.calls` gets (method name, JSON body, headers)."""

    def log_message(self, *args) -> None:  # keep pytest output quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(self.rfile.readline().strip(), 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # a blob upload to the URL StartBlobUpload handed out
        self.server.uploads[self.path.rsplit("/", 1)[1]] = self._body()
        self._reply(200, {})

    def do_POST(self) -> None:
        body = self._body()
        path = urlsplit(self.path).path  # as a proxy, the server is sent the whole URL
        if not path.startswith(API):
            return self._reply(404, {"code": 404, "message": f"no route {self.path}"})
        method = path[len(API):].split("/", 1)[1]
        request = json.loads(body or b"{}")
        server = self.server
        server.calls.append((method, request, dict(self.headers)))
        if method == "GetDatasetStatus":
            if not server.datasets:
                return self._reply(404, {"code": 404, "message": "Not found"})
            return self._reply(200, {"status": "READY"})
        if method == "StartBlobUpload":
            token = f"blob{len(server.uploads_started)}"
            server.uploads_started[token] = request
            return self._reply(200, {"token": token, "createUrl": f"http://localhost/upload/{token}"})
        if method == "CreateDataset":
            server.datasets.append(request)
            return self._reply(200, {"ref": DATASET, "url": f"http://localhost/datasets/{DATASET}",
                                     "status": "Ok", "error": ""})
        if method == "SaveKernel":
            return self._reply(200, {"ref": f"/code/{KERNEL}", "url": f"http://localhost/code/{KERNEL}",
                                     "versionNumber": KERNEL_VERSION, "error": ""})
        if method == "GetKernelSessionStatus":
            return self._reply(200, {"status": "COMPLETE"})
        if method == "CreateCodeSubmission":
            return self._reply(200, {"message": "Successfully submitted", "ref": 4242})
        return self._reply(404, {"code": 404, "message": f"fake Kaggle has no {method}"})


@pytest.fixture
def fake_kaggle():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKaggle)  # a free port: no root needed, no waiting
    server.calls, server.uploads, server.uploads_started, server.datasets = [], {}, {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def inputs(tmp_path, placeholder_run):
    """(a run directory with placeholder files, a tiny notebook) in tmp_path; nothing is written to the repo."""
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["print(1)"], "metadata": {},
                                               "outputs": [], "execution_count": None}],
                                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return placeholder_run, notebook


def _environment(tmp_path, server: ThreadingHTTPServer | None, credentials: bool) -> dict:
    """What `arc-trm submit` runs with: a clean HOME and TMPDIR, no KAGGLE_* or proxy settings of the caller,
    the client pointed at localhost, through `server` as its proxy when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and not k.lower().endswith("_proxy")}
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir(exist_ok=True)
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), KAGGLE_API_ENVIRONMENT="LOCALHOST")
    if server is not None:
        env.update(http_proxy=f"http://127.0.0.1:{server.server_address[1]}", no_proxy="")
    if credentials:
        env.update(KAGGLE_USERNAME="alice", KAGGLE_KEY="fake-key")
    return env


def _submit(tmp_path, server, *args) -> subprocess.CompletedProcess:
    """`arc-trm submit --kernel KERNEL ARGS` as a subprocess, against `server`, with credentials."""
    return subprocess.run([ARC_TRM, "submit", "--kernel", KERNEL, "--staging", str(tmp_path / "stage"),
                           *map(str, args)], capture_output=True, text=True, env=_environment(tmp_path, server, True),
                          timeout=120)


def _submit_here(tmp_path, monkeypatch, *args, credentials: bool = True) -> int:
    """The same in-process (arc_trm.cli.main), with no server: its exit code."""
    env = _environment(tmp_path, None, credentials)
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return main(["submit", "--kernel", KERNEL, "--staging", str(tmp_path / "stage"), *map(str, args)])


@pytest.mark.slow
def test_submit_uploads_dataset_pushes_kernel_and_submits(tmp_path, fake_kaggle, inputs, wheel_cache):
    checkpoint, notebook = inputs
    result = _submit(tmp_path, fake_kaggle, "--checkpoint", checkpoint, "--notebook", notebook, "--message",
                     "first try", "--wheels-from", wheel_cache)  # no index needed for the dependency wheels
    assert result.returncode == 0, result.stdout + result.stderr
    methods = [m for m, _, _ in fake_kaggle.calls]
    # the dataset did not exist: created, then polled until ready, then the kernel, then the submission
    assert methods.index("CreateDataset") < methods.index("SaveKernel") < methods.index("CreateCodeSubmission")
    assert methods.index("GetKernelSessionStatus") < methods.index("CreateCodeSubmission")
    assert all(h.get("Authorization", "").startswith("Basic ") for _, _, h in fake_kaggle.calls)

    # the dataset: wheels/ and checkpoint/ uploaded as zips whose tokens the CreateDataset call names
    (dataset,) = fake_kaggle.datasets
    assert (dataset["ownerSlug"], dataset["slug"]) == tuple(DATASET.split("/"))
    assert dataset["isPrivate"] is True
    assert {f["token"] for f in dataset["files"]} == set(fake_kaggle.uploads) == set(fake_kaggle.uploads_started)
    by_name = {fake_kaggle.uploads_started[t]["name"]: data for t, data in fake_kaggle.uploads.items()}
    assert set(by_name) == {"wheels.zip", "checkpoint.zip"}
    wheels = zipfile.ZipFile(io.BytesIO(by_name["wheels.zip"])).namelist()
    for name in ("arc_trm", *DEPENDENCY_WHEELS):
        assert any(w.startswith(f"{name}-") and w.endswith(".whl") for w in wheels), (name, wheels)
    ckpt = zipfile.ZipFile(io.BytesIO(by_name["checkpoint.zip"]))
    assert sorted(ckpt.namelist()) == sorted(INFERENCE_FILES)  # no optimizer.pt, carries, older steps
    assert ckpt.read("model.safetensors") == b"\0" * 1000

    # the kernel: internet off, GPU on, our dataset and the competition attached, the notebook as text
    (push,) = [r for m, r, _ in fake_kaggle.calls if m == "SaveKernel"]
    assert push["slug"] == KERNEL and push["kernelType"] == "notebook" and push["language"] == "python"
    assert push["enableInternet"] is False and push["enableGpu"] is True
    assert push["datasetDataSources"] == [DATASET] and push["competitionDataSources"] == [COMPETITION]
    assert json.loads(push["text"])["cells"][0]["source"] == "print(1)"

    # the submission: that kernel version's submission.json, with the message
    (sub,) = [r for m, r, _ in fake_kaggle.calls if m == "CreateCodeSubmission"]
    assert sub == {"competitionName": COMPETITION, "kernelOwner": "alice", "kernelSlug": "arc-trm-test",
                   "kernelVersion": KERNEL_VERSION, "fileName": "submission.json",
                   "submissionDescription": "first try"}
    assert f"submitted {KERNEL} version {KERNEL_VERSION} to {COMPETITION}" in result.stdout


def test_dry_run_stages_and_prints_commands_without_network(tmp_path, monkeypatch, capsys, inputs, wheel_cache):
    checkpoint, notebook = inputs
    assert _submit_here(tmp_path, monkeypatch, "--checkpoint", checkpoint, "--notebook", notebook, "--wheels-from",
                        wheel_cache, "--dry-run", credentials=False) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    stage = tmp_path / "stage"
    for line in (f"kaggle datasets create -p {stage / 'dataset'} --dir-mode zip",
                 f"kaggle kernels push -p {stage / 'kernel'}",
                 f"kaggle competitions submit {COMPETITION} -k {KERNEL} -v N -f submission.json"):
        assert line in out, line
    meta = json.loads((stage / "kernel" / "kernel-metadata.json").read_text())
    assert meta["id"] == KERNEL and meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["dataset_sources"] == [DATASET] and meta["competition_sources"] == [COMPETITION]
    assert (stage / "kernel" / meta["code_file"]).read_text() == notebook.read_text()
    assert json.loads((stage / "dataset" / "dataset-metadata.json").read_text())["id"] == DATASET
    staged = stage / "dataset" / "checkpoint"
    assert sorted(p.name for p in staged.iterdir()) == sorted(INFERENCE_FILES)
    assert (staged / "config.json").read_text() == "config.json of step 200"
    wheels = [p.name for p in (stage / "dataset" / "wheels").iterdir()]
    assert len(wheels) == 1 + len(DEPENDENCY_WHEELS) and any(w.startswith("arc_trm-") for w in wheels)


def test_missing_credentials_exit_2_before_anything(tmp_path, monkeypatch, capsys, inputs):
    checkpoint, notebook = inputs
    assert _submit_here(tmp_path, monkeypatch, "--checkpoint", checkpoint, "--notebook", notebook,
                        credentials=False) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("arc-trm submit: error: no Kaggle credentials") and "KAGGLE_API_TOKEN" in line
    assert not (tmp_path / "stage").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--notebook", "missing.ipynb"], "missing.ipynb"),
    (["--kernel", "no-slash"], "'no-slash'"),
    (["--checkpoint", "nowhere"], "nowhere"),
    (["--checkpoint", "."], "no trainer_state.json"),
])
def test_bad_arguments_exit_2_naming_them(tmp_path, monkeypatch, capsys, inputs, args, fragment):
    checkpoint, notebook = inputs
    defaults = {"--notebook": notebook, "--checkpoint": checkpoint}
    defaults.update(dict(zip(args[::2], args[1::2], strict=True)))
    assert _submit_here(tmp_path, monkeypatch, *(x for kv in defaults.items() for x in kv), "--dry-run") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert fragment in line, line


def _install(wheel, folder) -> str:
    """A new venv in `folder` that sees this environment's packages, with `wheel` installed from the file
    alone (no index, no dependencies); returns its python."""
    venv.create(folder, system_site_packages=True, with_pip=False)  # pip comes from the shared packages
    python = str(folder / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   timeout=300)
    return python


def _record_problems(wheel) -> list[str]:
    """Files of `wheel` whose RECORD line is missing or has the wrong sha256 or size."""
    with zipfile.ZipFile(wheel) as zf:
        (record,) = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        rows = {line.split(",")[0]: line.split(",")[1:] for line in zf.read(record).decode().splitlines()}
        problems = []
        for name in zf.namelist():
            data = zf.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if name != record and rows.get(name) != [f"sha256={digest}", str(len(data))]:
                problems.append(name)
        return problems


@pytest.mark.slow
def test_submit_from_a_pip_install(tmp_path, placeholder_run, wheel_cache):
    """`pip install arc-trm` from its wheel (no source tree): submit, run outside any checkout, stages in
    ./submission-staging an arc_trm wheel rebuilt from the installed files, which installs and carries the
    package's notebook."""
    from arc_trm.kaggle_submit import NOTEBOOK, checkout_root, checkout_wheel

    python = _install(checkout_wheel(checkout_root(), tmp_path / "built"), tmp_path / "venv")
    # run from tmp_path: `python -c` puts the working directory first on sys.path, and this checkout's is arc_trm
    where = subprocess.run([python, "-c", "from arc_trm import kaggle_submit as k; print(k.checkout_root())"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.strip() == "None", where  # the venv's arc_trm is the wheel's, not this checkout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([str(tmp_path / "venv" / "bin" / "arc-trm"), "submit", "--dry-run", "--kernel", KERNEL,
                             "--checkpoint", str(placeholder_run), "--wheels-from", wheel_cache],
                            cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    stage = elsewhere / "submission-staging"
    assert (stage / "kernel" / "kaggle_notebook.ipynb").read_bytes() == NOTEBOOK.read_bytes()
    (staged,) = (stage / "dataset" / "wheels").glob("arc_trm-*.whl")
    assert _record_problems(staged) == []

    python = _install(staged, tmp_path / "again")
    check = ("from arc_trm.kaggle_submit import NOTEBOOK; import sys; "
             "assert NOTEBOOK.is_relative_to(sys.prefix), NOTEBOOK; print(NOTEBOOK.read_text())")
    shipped = subprocess.run([python, "-c", check], cwd=tmp_path, capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout == NOTEBOOK.read_text() + "\n"
    version = subprocess.run([str(tmp_path / "again" / "bin" / "arc-trm"), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("arc-trm "), version.stdout + version.stderr  # the console script came too
