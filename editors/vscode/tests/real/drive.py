"""Drive a real VS Code (code-server + Debian's chromium through Playwright) with the packaged
extension, as a user would, and write what was seen to a JSON file.

Run by tests/test_vscode_real.py with the Playwright venv's Python, inside a network namespace
that has only loopback (`unshare --net`). The test asserts on the observations; this script only
watches (DOM waits, never fixed sleeps) and records, taking a screenshot at the step that fails.

    drive.py --tools DIR --vsix FILE --workspace DIR --prompt NAME --examples NAME
             --artifacts DIR --out FILE
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Page, sync_playwright

CODE_SERVER_VERSION = "4.139.1"
NODE_VERSION = "24.22.3"
CHROMIUM = "/usr/bin/chromium"
SETTINGS = {
    "files.autoSave": "off",
    "workbench.startupEditor": "none",
    "chat.disableAIFeatures": True,
    "telemetry.telemetryLevel": "off",
    "extensions.autoUpdate": "off",
    "update.mode": "none",
    "promptLsp.trace.server": "messages",
    "workbench.tips.enabled": False,
    "security.workspace.trust.enabled": False,
}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EDITOR = ".editor-group-container.active .monaco-editor"
SECOND = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interfaces() -> list[str]:
    """The network interfaces of this network namespace (/proc/net/dev is per namespace;
    /sys/class/net shows the namespace /sys was mounted in)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def server_processes(workspace: str) -> list[tuple[int, str, str]]:
    """(pid, command line, parent's command line) of the prompt-lsp servers started from
    `workspace` (its .venv); other processes on the machine are not this test's."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            if not re.search(r"prompt[-_]lsp serve", cmdline) or workspace not in cmdline:
                continue
            ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            parent = (Path("/proc") / ppid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found.append((int(proc.name), cmdline, parent.strip()))
    return found


def settled_last_line(page: Page) -> str:
    """The active editor's last line once the view stops changing (it renders a frame later)."""
    previous, deadline = None, time.monotonic() + 5
    while time.monotonic() < deadline:
        line = editor_lines(page)[-1]
        if line == previous:
            return line
        previous = line
        page.wait_for_timeout(250)
    return previous or ""


def request_host(url: str) -> str:
    """Where a request goes: the host, also of a `blob:` URL's origin; `data:` goes nowhere."""
    if url.startswith("data:"):
        return "127.0.0.1"  # in the page itself
    parsed = urlparse(url.removeprefix("blob:"))
    return parsed.hostname or url[:60]


def editor_lines(page: Page) -> list[str]:
    """The visible lines of the active editor, top to bottom, as text."""
    return page.evaluate(
        """(selector) => {
            const lines = [...document.querySelectorAll(selector + ' .view-lines .view-line')];
            lines.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
            return lines.map((l) => l.textContent.replace(/\\u00a0/g, ' '));
        }""",
        EDITOR,
    )


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seen: dict[str, object] = {"steps": []}
        self.artifacts = Path(args.artifacts)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.home = self.artifacts / "vscode"
        self.user_data = self.home / "user-data"
        self.extensions = self.home / "extensions"
        self.page: Page | None = None

    # ------------------------------------------------------------------ code-server

    def env(self) -> dict[str, str]:
        tools = Path(self.args.tools)
        env = {
            **os.environ,
            "PATH": f"{tools / f'node-{NODE_VERSION}' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "XDG_CONFIG_HOME": str(self.home / "xdg-config"),
            "XDG_DATA_HOME": str(self.home / "xdg-data"),
            "EXTENSIONS_GALLERY": json.dumps({"serviceUrl": ""}),
        }
        # The extension must find the server the way a user's does (the workspace's .venv):
        # nothing here points it at one.
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "VSCODE_CLI"):
            env.pop(name, None)
        return env

    def code_server(self) -> list[str]:
        return [str(Path(self.args.tools) / "cs" / "bin" / "code-server")]

    def install_extension(self) -> None:
        settings = self.user_data / "User" / "settings.json"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(SETTINGS, indent=2))
        result = subprocess.run(
            [
                *self.code_server(),
                "--user-data-dir",
                str(self.user_data),
                "--extensions-dir",
                str(self.extensions),
                "--install-extension",
                self.args.vsix,
            ],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        self.seen["install_output"] = (result.stdout + result.stderr)[-2000:]
        if result.returncode != 0:
            raise RuntimeError(f"--install-extension failed: {result.stderr[-2000:]}")

    def start(self, port: int) -> subprocess.Popen:
        log = open(self.artifacts / "code-server.log", "w")  # noqa: SIM115 (kept open while it runs)
        return subprocess.Popen(
            [
                *self.code_server(),
                "--bind-addr",
                f"127.0.0.1:{port}",
                "--auth",
                "none",
                "--user-data-dir",
                str(self.user_data),
                "--extensions-dir",
                str(self.extensions),
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-proxy",
                "--ignore-last-opened",
                self.args.workspace,
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    # ------------------------------------------------------------------ steps

    def step(self, name: str, action) -> object:
        started = time.monotonic()
        try:
            value = action()
        except Exception:
            self.seen["failed_step"] = name
            self.seen["error"] = traceback.format_exc()[-3000:]
            if self.page is not None:
                with contextlib.suppress(Exception):
                    self.page.screenshot(path=str(self.artifacts / f"failed-{name}.png"))
            raise
        self.seen["steps"].append({"step": name, "seconds": round(time.monotonic() - started, 1)})
        if value is not None:
            self.seen[name] = value
        return value

    def open_file(self, page: Page, name: str) -> None:
        row = page.locator(f'.explorer-folders-view .monaco-list-row[aria-label*="{name}"]')
        try:
            row.first.wait_for(timeout=15 * SECOND)
            row.first.dblclick()
        except Exception:  # the Explorer is not showing: Quick Open
            page.keyboard.press("Control+P")
            page.keyboard.type(name)
            page.locator(".quick-input-widget .monaco-list-row").first.wait_for(timeout=10 * SECOND)
            page.keyboard.press("Enter")
        page.locator(f".tabs-container .tab[aria-label*='{name}']").first.wait_for(
            timeout=20 * SECOND
        )
        page.locator(f"{EDITOR} .view-lines").first.wait_for(timeout=20 * SECOND)

    def run_command(self, page: Page, title: str) -> None:
        page.keyboard.press("F1")
        page.keyboard.type(title)
        page.locator(".quick-input-widget .monaco-list-row").first.wait_for(timeout=10 * SECOND)
        page.keyboard.press("Enter")

    def goto_end(self, page: Page) -> None:
        page.locator(f"{EDITOR} .view-lines").first.click()
        page.keyboard.press("Control+End")

    def drive(self, page: Page) -> None:
        args = self.args
        page.locator(".monaco-workbench .part.statusbar").wait_for(timeout=90 * SECOND)
        self.step("open_prompt", lambda: self.open_file(page, args.prompt))

        def language_mode() -> str:
            mode = page.locator('[id="status.editor.mode"]')
            mode.filter(has_text="Prompt").wait_for(timeout=30 * SECOND)
            return mode.inner_text().strip()

        self.step("language_mode", language_mode)

        def server_started() -> list[list[object]]:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                found = server_processes(self.args.workspace)
                if found:
                    return [list(p) for p in found]
                time.sleep(0.5)
            raise TimeoutError("no prompt-lsp server process within 90 s")

        self.step("server_processes", server_started)
        lens = page.locator(f"{EDITOR} .codelens-decoration a")
        self.step(
            "first_lenses",
            lambda: (
                lens.filter(has_text="Evaluate").first.wait_for(timeout=90 * SECOND),
                [t.strip() for t in lens.all_inner_texts()],
            )[1],
        )

        def diagnostic() -> dict[str, object]:
            self.goto_end(page)
            # insert_text: no key events, so no auto-closing: the line reads exactly this
            page.keyboard.insert_text("\nReview again: {{ review | upperr }}")
            page.locator(f"{EDITOR} .squiggly-error").first.wait_for(timeout=30 * SECOND)
            page.keyboard.press("Control+Shift+M")  # the Problems panel
            row = page.locator(".markers-panel .monaco-list-row", has_text="upperr")
            row.first.wait_for(timeout=20 * SECOND)
            text = row.first.inner_text()
            page.keyboard.press("Control+Shift+M")
            return {"squiggles": page.locator(f"{EDITOR} .squiggly-error").count(), "problem": text}

        self.step("diagnostic", diagnostic)

        def completion() -> dict[str, object]:
            self.goto_end(page)
            page.keyboard.press("End")
            page.keyboard.press("Enter")
            # typed at a person's pace: `{` opens the suggestions, then `%` is auto-closed
            page.keyboard.type("{%", delay=120)
            statement = settled_last_line(page)
            page.keyboard.press("End")
            page.keyboard.press("Shift+Home")
            page.keyboard.press("Delete")
            page.keyboard.type("Again: {{", delay=60)
            auto_closed = settled_last_line(page)
            page.keyboard.type(" ")
            suggest = page.locator(".suggest-widget.visible .monaco-list-row .label-name")
            try:
                suggest.filter(has_text="review").first.wait_for(timeout=10 * SECOND)
                trigger = "typing a space"
            except Exception:
                page.keyboard.press("Control+Space")
                suggest.filter(has_text="review").first.wait_for(timeout=20 * SECOND)
                trigger = "Ctrl+Space"
            labels = [t.strip() for t in suggest.all_inner_texts()]
            page.keyboard.press("Enter")
            page.wait_for_function(
                """(selector) => ![...document.querySelectorAll('.suggest-widget.visible')].length""",
                arg=EDITOR,
                timeout=10 * SECOND,
            )
            accepted = settled_last_line(page)
            return {
                "after_typing_braces": auto_closed,
                "after_typing_statement": statement,
                "trigger": trigger,
                "labels": labels,
                "accepted_line": accepted,
            }

        self.step("completion", completion)

        def revert() -> bool:
            self.run_command(page, "File: Revert File")
            page.locator(".tabs-container .tab.dirty").wait_for(
                state="detached", timeout=20 * SECOND
            )
            page.locator(f"{EDITOR} .squiggly-error").first.wait_for(
                state="detached", timeout=30 * SECOND
            )
            return True

        self.step("reverted", revert)

        def evaluate() -> dict[str, object]:
            lens.filter(has_text="Evaluate").first.click()
            running = lens.filter(has_text=re.compile(r"Evaluating \d+/\d+"))
            running.first.wait_for(timeout=60 * SECOND)
            progress = running.first.inner_text().strip()
            score = lens.filter(has_text=re.compile(r"exact_match \d\.\d{3}"))
            score.first.wait_for(timeout=args.evaluate_timeout * SECOND)
            status = page.locator(".part.statusbar .statusbar-item", has_text="exact_match")
            status.first.wait_for(timeout=30 * SECOND)
            return {
                "progress_lens": progress,
                "score_lens": score.first.inner_text().strip(),
                "status_bar": status.first.inner_text().strip(),
            }

        self.step("evaluate", evaluate)

        def example_lenses() -> list[str]:
            self.open_file(page, args.examples)
            lenses = page.locator(f"{EDITOR} .codelens-decoration a")
            lenses.filter(has_text=re.compile(r"exact_match|✗")).first.wait_for(timeout=60 * SECOND)
            return [t.strip() for t in lenses.all_inner_texts()]

        self.step("example_lenses", example_lenses)

    def run(self) -> int:
        self.seen["interfaces"] = interfaces()
        self.step("install_extension", self.install_extension)
        port = free_port()
        proc = self.start(port)
        hosts: set[str] = set()
        status = 0
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
                )
                context = browser.new_context(viewport={"width": 1500, "height": 1000})
                context.on("request", lambda r: hosts.add(request_host(r.url)))
                page = self.page = context.new_page()
                deadline = time.monotonic() + 60
                while True:  # code-server listening
                    try:
                        socket.create_connection(("127.0.0.1", port), 1).close()
                        break
                    except OSError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise RuntimeError("code-server did not start") from None
                        time.sleep(0.3)
                page.goto(f"http://127.0.0.1:{port}/?folder={self.args.workspace}")
                try:
                    self.drive(page)
                except Exception:
                    status = 1
                page.screenshot(path=str(self.artifacts / "last.png"))
                browser.close()
        finally:
            self.seen["request_hosts"] = sorted(hosts)
            servers = server_processes(self.args.workspace)
            self.stop(proc)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(
                Path(f"/proc/{pid}").exists() for pid, _, _ in servers
            ):
                time.sleep(0.3)
            self.seen["servers_before_stop"] = [list(p) for p in servers]
            self.seen["servers_after_stop"] = [
                list(p) for p in server_processes(self.args.workspace)
            ]
            self.seen["extension_log"] = self.extension_log()
        return status

    def extension_log(self) -> str:
        """The extension's output channel (the lines before the LSP trace)."""
        logs = sorted((self.user_data / "logs").rglob("*Prompt LSP*.log"))
        if not logs:
            return ""
        for log in logs:
            shutil.copy(log, self.artifacts / log.name)
        text = logs[-1].read_text(errors="replace")
        return "\n".join(
            line for line in text.splitlines() if "Starting" in line or "not found" in line
        )[:4000]


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("tools", "vsix", "workspace", "prompt", "examples", "artifacts", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--evaluate-timeout", type=float, default=240)
    args = parser.parse_args()
    run = Run(args)
    status = 1
    try:
        status = run.run()
    except Exception:
        run.seen.setdefault("error", traceback.format_exc()[-3000:])
    Path(args.out).write_text(json.dumps(run.seen, indent=2, ensure_ascii=False))
    return status


if __name__ == "__main__":
    sys.exit(main())
