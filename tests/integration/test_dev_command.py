"""`make dev` (`python -m sandbox.dev`): PORT is honoured, a busy port is one clear line, the allowed
redirect hosts are printed."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_dev(port: str, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "PORT": port, "PYTHONPATH": f"{ROOT / 'layers/idv'}:{ROOT}", "PYTHONUNBUFFERED": "1"}
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.dev"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_busy_port_is_one_clear_line_and_a_non_zero_exit():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = run_dev(str(port))
        _, stderr = finish(process)
    assert process.returncode == 1
    assert "Traceback" not in stderr and "OSError" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0] and "PORT=" in lines[0]


@pytest.mark.parametrize("port", ["abc", "70000", "-1"])
def test_invalid_port_is_one_clear_line(port):
    process = run_dev(port)
    _, stderr = finish(process)
    assert process.returncode == 2
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert "PORT" in stderr and port in stderr


def test_port_taken_while_the_stack_starts_is_the_same_clear_line(monkeypatch, capsys):
    """The port may be taken between the check and the bind: still one line, and the half-started stack
    is stopped."""
    from sandbox import dev
    from sandbox.stack import local

    stopped = []

    class Stack:
        def __init__(self, options):
            self.options = options

        def start(self):
            raise OSError(errno.EADDRINUSE, "Address already in use")

        def stop(self):
            stopped.append(True)

    monkeypatch.setattr(local, "LocalStack", Stack)
    monkeypatch.setattr(dev, "port_is_free", lambda host, port: True)
    monkeypatch.setenv("PORT", "3999")
    with pytest.raises(SystemExit) as exit_info:
        dev.main()
    assert exit_info.value.code == 1
    assert stopped == [True]
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "port 3999" in err


def test_dev_serves_on_port_and_prints_the_allowed_redirect_hosts():
    port = free_port()
    process = run_dev(str(port), ALLOWED_REDIRECT_HOSTS="127.0.0.1,app.example")
    out: list[str] = []
    err: list[str] = []
    ready = threading.Event()

    def read(stream, lines, marker=None):
        for line in stream:
            lines.append(line)
            if marker and marker in line:
                ready.set()

    # Both pipes are read all along, so the child never blocks on a full pipe.
    readers = [
        threading.Thread(target=read, args=(process.stdout, out, "Ctrl-C"), daemon=True),
        threading.Thread(target=read, args=(process.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        assert ready.wait(90), "".join(out) + "".join(err[-20:])
        output = "".join(out)
        assert f"API            http://127.0.0.1:{port}" in output, output
        redirect = next(line for line in out if line.startswith("redirect hosts"))
        assert "127.0.0.1,app.example" in redirect
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=5)
    assert process.returncode == 0, "".join(err[-20:])
    assert out[-1].strip() == "stopped"
