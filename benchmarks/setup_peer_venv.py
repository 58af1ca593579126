"""Create the separate virtualenv of a peer benchmark (``peer_openedx/``, ``peer_faststream/``)
or of a test project (``tests/django_project/``).

Usage: python benchmarks/setup_peer_venv.py <peer-dir> <venv-dir> [--editable DIR]... [--force]

The venv is built with the interpreter running this script (Python >= 3.11) and gets the
pinned packages of ``<peer-dir>/requirements.txt``, then each ``--editable`` project
(``pip install -e``: a test project gets the flowbus of this checkout). It is kept apart
from flowbus's own venv so a peer's dependencies never leak into flowbus.
``<peer-dir>/smoke.py`` then runs in the new venv, to prove the environment is usable, not
just installed. Re-running is cheap: when the venv already holds exactly this
requirements.txt and these editable projects' ``pyproject.toml`` (a hash stamp inside the
venv says so) nothing is reinstalled. On success the last line printed is the path of the venv's
python, for the caller to run the peer's benchmark with.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import venv
from pathlib import Path

MIN_PYTHON = (3, 11)


def venv_python(venv_dir: Path) -> Path:
    """Path of the interpreter inside ``venv_dir``."""
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def stamp_path(peer_dir: Path, venv_dir: Path) -> Path:
    return venv_dir / f".{peer_dir.name}_requirements.sha256"


def requirements_hash(peer_dir: Path, editable: tuple[Path, ...] = ()) -> str:
    digest = hashlib.sha256((peer_dir / "requirements.txt").read_bytes())
    for project in editable:
        digest.update(str(project).encode() + b"\0" + (project / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def is_up_to_date(peer_dir: Path, venv_dir: Path, editable: tuple[Path, ...] = ()) -> bool:
    stamp = stamp_path(peer_dir, venv_dir)
    return (
        venv_python(venv_dir).exists()
        and stamp.exists()
        and stamp.read_text().strip() == requirements_hash(peer_dir, editable)
    )


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    # Child output goes to stderr: stdout carries only the venv python path.
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def build(peer_dir: Path, venv_dir: Path, editable: tuple[Path, ...] = ()) -> None:
    # EnvBuilder(clear=True) empties the directory: refuse anything that is not a venv.
    if venv_dir.exists() and any(venv_dir.iterdir()) and not (venv_dir / "pyvenv.cfg").exists():
        raise SystemExit(f"{venv_dir} exists, is not empty and is not a venv; not touching it")
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    python = str(venv_python(venv_dir))
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", "-r", str(peer_dir / "requirements.txt")])
    for project in editable:
        run([*pip, "install", "--quiet", "-e", str(project)])
    run([*pip, "check"])
    run([python, str(peer_dir / "smoke.py")])
    stamp_path(peer_dir, venv_dir).write_text(requirements_hash(peer_dir, editable) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "peer_dir", type=Path, help="the peer's directory (requirements.txt, smoke.py)"
    )
    parser.add_argument("venv_dir", type=Path, help="where to create the peer virtualenv")
    parser.add_argument(
        "--editable",
        type=Path,
        action="append",
        default=[],
        help="a project directory to install editable after the requirements (repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)

    if sys.version_info < MIN_PYTHON:
        parser.error(
            f"needs Python >= {'.'.join(map(str, MIN_PYTHON))}, "
            f"running {sys.version.split()[0]} ({sys.executable})"
        )
    peer_dir: Path = args.peer_dir.resolve()
    if not (peer_dir / "requirements.txt").is_file() or not (peer_dir / "smoke.py").is_file():
        parser.error(f"{peer_dir} has no requirements.txt and smoke.py")
    venv_dir: Path = args.venv_dir.resolve()
    editable = tuple(project.resolve() for project in args.editable)
    if args.force or not is_up_to_date(peer_dir, venv_dir, editable):
        build(peer_dir, venv_dir, editable)
    else:
        print(f"{venv_dir} is up to date with {peer_dir.name}/requirements.txt", file=sys.stderr)
    print(venv_python(venv_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
