"""Child ROS processes for the demo and the benchmark: start, watch the output, stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def ros_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a child on ``domain_id`` that discovers peers on this host only, unbuffered."""
    return dict(os.environ if base is None else base, ROS_DOMAIN_ID=str(domain_id),
                ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
                RCUTILS_LOGGING_BUFFERED_STREAM="0")


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; return it, or the last value after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def python_module(module: str, *args: str) -> list[str]:
    """The command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


class ChildProcess:
    """A subprocess in its own process group whose combined output is collected line by line."""

    def __init__(self, cmd: list[str], env: Mapping[str, str], cwd: Path | None = None, echo: bool = False) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._echo = echo
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._echo:
                print(line, end="", flush=True)

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """True once ``text`` appears in the output; False on timeout or if the process ended first."""
        wait_until(lambda: text in self.output or self.proc.poll() is not None, timeout)
        return text in self.output

    def wait(self, timeout: float) -> int:
        """Wait for the exit code; on timeout kills the process group and raises ``TimeoutError`` with
        everything the process printed."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._reader.join(5)
            raise TimeoutError(f"{' '.join(map(str, self.proc.args))} still ran after {timeout:g} s; "
                               f"its output:\n{self.output}") from None
        self._reader.join(5)
        return code

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send ``sig`` (Ctrl-C by default) and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ctrl-C, then kill the process group if it still runs after ``timeout`` s; the exit code.

        A ROS process killed outright leaves its Fast DDS shared-memory segment in /dev/shm (64 MB
        with the shipped profile) until the machine restarts; one that gets Ctrl-C removes it.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """Kill the whole process group if it still runs."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
