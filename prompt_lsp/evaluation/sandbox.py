"""Running model-written Python under bubblewrap (`bwrap`), the sandbox of `code_tests`.

Model output is hostile code. Inside the sandbox it sees only a read-only view of the Python
interpreter (its prefix and the system's `/usr`), a fresh size-limited tmpfs as its work dir,
its own `/proc` (a private PID namespace: the parent and its environment are invisible) and
`/dev`; no network, no environment but a minimal PATH, no home, no project, no `/etc`. The
namespace dies with the parent, and everything in it is killed at the wall-time limit, so a
`fork(); setsid(); fork()` child cannot outlive the run. Inside, CPU time, address space,
file size and process count are limited with `setrlimit` before the code starts (the process
limit does not bind root, whom the kernel exempts; the wall-time kill still holds).

Where bubblewrap is missing or cannot create namespaces (macOS, a locked-down container),
`sandbox_problem()` says why in one line and `code_tests` refuses, unless the *user* opts in to
running model code unsandboxed with `PROMPT_LSP_UNSANDBOXED_CODE=1` (or the CLI's
`--allow-unsandboxed-code`, which sets it). A prompt file cannot opt in.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

UNSANDBOXED_VARIABLE = "PROMPT_LSP_UNSANDBOXED_CODE"
UNSANDBOXED_FLAG = "--allow-unsandboxed-code"
WORK_DIR = "/work"
SCRIPT_NAME = "solution_test.py"
_POSIX = os.name == "posix"
_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Limits:
    """What one run of model code may use."""

    wall_s: float = 10.0
    memory_bytes: int = 512 * 1024 * 1024  # address space per process
    file_bytes: int = 4 * 1024 * 1024  # per written file, stderr included
    work_dir_bytes: int = 64 * 1024 * 1024  # the tmpfs work dir (it lives in RAM)
    processes: int = 16  # per user; not enforced for root

    @property
    def cpu_s(self) -> int:
        return int(self.wall_s) + 1


@dataclass(frozen=True)
class Outcome:
    """How the code ended: its exit status (negative: the signal) and the tail of stderr."""

    returncode: int
    stderr: str
    timed_out: bool = False
    stderr_overflow: bool = False


class SandboxUnavailable(Exception):
    """No sandbox here and the user did not opt in; the message is one line for the user."""


# ---------------------------------------------------------------------------- availability


def unsandboxed_allowed() -> bool:
    """Whether the user explicitly accepted running model code without a sandbox."""
    return os.environ.get(UNSANDBOXED_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def refusal_message(problem: str) -> str:
    return (
        f"code_tests needs a sandbox for model-written code, and {problem}; install bubblewrap "
        f"(apt install bubblewrap), or accept the risk of running model code with your "
        f"permissions: {UNSANDBOXED_VARIABLE}=1 or `prompt-lsp eval {UNSANDBOXED_FLAG}`"
    )


@functools.cache
def sandbox_problem() -> str | None:
    """None when bubblewrap can run Python here; else why not, in a few words. Probed once per
    process by running the interpreter in exactly the sandbox the code will get."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryFile() as script, tempfile.TemporaryFile() as stderr:
        script.write(b"import sys\nsys.exit(0)\n")
        script.flush()
        script.seek(0)
        try:
            returncode = subprocess.run(
                _bwrap_command(bwrap, Limits(), script.fileno()),
                env=_bare_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(script.fileno(),),
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            ).returncode
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not start ({err})"
        if returncode != 0:
            stderr.seek(0)
            said = stderr.read(400).decode("utf-8", "replace").strip().splitlines()
            reason = said[-1] if said else f"exit status {returncode}"
            return f"bubblewrap cannot create a sandbox here ({reason})"
    return None


def check_available() -> None:
    """Raise SandboxUnavailable unless code can run: sandboxed, or the user opted out."""
    problem = sandbox_problem()
    if problem is not None and not unsandboxed_allowed():
        raise SandboxUnavailable(refusal_message(problem))


# ---------------------------------------------------------------------------- running


def run_python(source: str, limits: Limits) -> Outcome:
    """Run `source` as a Python script: in the sandbox, or (only when the user opted in and no
    sandbox exists) in a plain limited subprocess. Raises SandboxUnavailable otherwise."""
    check_available()
    bwrap = shutil.which("bwrap") if sandbox_problem() is None else None
    with tempfile.TemporaryDirectory(prefix="prompt-lsp-code-") as folder:
        script_path = Path(folder, SCRIPT_NAME)
        script_path.write_text(source, encoding="utf-8")
        stderr_path = Path(folder, "stderr.txt")
        with script_path.open("rb") as script, stderr_path.open("wb") as stderr:
            if bwrap is not None:
                command = _bwrap_command(bwrap, limits, script.fileno())
                # bwrap's own reaper (PID 1 inside) keeps the environment it was started with
                launch = _popen(command, stderr, (script.fileno(),), None, _bare_environment())
            else:
                command = [sys.executable, "-I", "-S", "-B", "-c", _launcher(limits), SCRIPT_NAME]
                launch = _popen(command, stderr, (), folder, _minimal_environment(folder))
            returncode, timed_out = _wait(launch, limits.wall_s)
        overflow = stderr_path.stat().st_size >= limits.file_bytes
        return Outcome(returncode, _tail(stderr_path), timed_out, overflow)


@functools.cache
def _bwrap_options(bwrap: str) -> frozenset[str]:
    """The options this bubblewrap knows (`--disable-userns` needs 0.8, `--size` 0.6)."""
    try:
        shown = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(re.findall(r"--[a-z][a-z-]+", shown.stdout + shown.stderr))


def _bwrap_command(bwrap: str, limits: Limits, script_fd: int) -> list[str]:
    """The bubblewrap command line that runs the script read from `script_fd`."""
    python = os.path.realpath(sys.executable)
    known = _bwrap_options(bwrap)
    # no nested namespaces to climb out of the limits (bubblewrap 0.8+)
    nested = ["--disable-userns"] if "--disable-userns" in known else []
    size = ["--size", str(limits.work_dir_bytes)] if "--size" in known else []
    command = [
        bwrap,
        "--unshare-all",  # network, PID, IPC, UTS, cgroup and user namespaces
        "--unshare-user",
        *nested,
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *_setenv(_minimal_environment(WORK_DIR)),
        *_interpreter_mounts(python),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        *size,
        "--tmpfs",
        WORK_DIR,
        *size,
        "--tmpfs",
        "/tmp",
        "--file",
        str(script_fd),
        f"{WORK_DIR}/{SCRIPT_NAME}",
        "--remount-ro",
        "/",
        "--chdir",
        WORK_DIR,
        "--",
        python,
        "-I",
        "-S",  # the launcher needs no site-packages: a faster start
        "-B",
        "-c",
        _launcher(limits),
        SCRIPT_NAME,
    ]
    return command


def _interpreter_mounts(python: str) -> list[str]:
    """Read-only binds of what the interpreter needs: `/usr` (libc and friends), the base
    Python prefix and the folder of the executable; `/bin`, `/lib`… as the host has them."""
    args: list[str] = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # the base installation only: a virtual environment (often inside the project) is not
    # needed by `python -I` and is not shown
    folders = {"/usr", sys.base_prefix, sys.base_exec_prefix, os.path.dirname(python)}
    kept: list[str] = []
    for folder in sorted(os.path.realpath(f) for f in folders if f):
        if os.path.isdir(folder) and not any(_inside(folder, k) for k in kept):
            kept.append(folder)
    for folder in kept:
        args += ["--ro-bind", folder, folder]
    return args


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _setenv(environment: dict[str, str]) -> list[str]:
    args = []
    for name, value in environment.items():
        args += ["--setenv", name, value]
    return args


def _minimal_environment(home: str) -> dict[str, str]:
    """No API keys, tokens or anything else of the user's environment."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _bare_environment() -> dict[str, str]:
    """What bubblewrap itself is started with: its reaper, PID 1 in the sandbox, is readable
    from inside (`/proc/1/environ`), so it must not hold the user's keys either."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _launcher(limits: Limits) -> str:
    """Python that sets the resource limits, then replaces itself with the script's run (the
    limits hold across `exec` and for every child)."""
    settings = [
        ("RLIMIT_CPU", limits.cpu_s),
        ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_FSIZE", limits.file_bytes),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NPROC", limits.processes),
    ]
    return (
        "import os, resource, sys\n"
        f"for name, value in {settings!r}:\n"
        "    try:\n"
        "        resource.setrlimit(getattr(resource, name), (value, value))\n"
        "    except (AttributeError, ValueError, OSError):\n"
        "        pass\n"
        "os.execv(sys.executable, [sys.executable, '-I', '-B', sys.argv[1]])\n"
    )


def _popen(
    command: list[str],
    stderr: IO[bytes],
    pass_fds: tuple[int, ...],
    cwd: str | None,
    env: dict[str, str] | None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        pass_fds=pass_fds,
        start_new_session=_POSIX,  # one process group to kill at the limit
    )


def _wait(process: subprocess.Popen[bytes], wall_s: float) -> tuple[int, bool]:
    """(exit status, timed out). At the wall-time limit the whole group is killed; under
    bubblewrap that ends the PID namespace and with it every process the code started."""
    try:
        return process.wait(timeout=wall_s), False
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return process.returncode, True
    finally:
        if process.returncode is None:  # interrupted (KeyboardInterrupt, cancellation)
            _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    kill: Callable[[], None] = process.kill
    if _POSIX:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        kill()
    process.wait()


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
