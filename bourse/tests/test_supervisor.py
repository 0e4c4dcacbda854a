"""Parts as background processes: started with their environment, waited for, stopped.

A stand-in part (a tiny HTTP server written to a temporary folder) plays the role of a
service, so these tests do not depend on the real services.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from bourse import processes, supervisor
from bourse.home import Home
from bourse.parts import Part
from bourse.tests.helpers import free_port

_SERVER = """
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

if os.environ.get("STANDIN_MODE") == "crash":
    sys.exit("stand-in: refusing to start")
if os.environ.get("STANDIN_MODE") == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("STANDIN_GREETING", "").encode()
        self.send_response(200 if self.path in ("/ready", "/greeting") else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

print("stand-in listening", flush=True)
HTTPServer(("127.0.0.1", int(os.environ["STANDIN_PORT"])), Handler).serve_forever()
"""


def _standin(tmp_path: Path) -> tuple[Part, dict[str, str], int]:
    package = tmp_path / "src" / "standin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(textwrap.dedent(_SERVER))
    port = free_port()
    part = Part(
        name="standin",
        module="standin",
        env_prefix="STANDIN",
        schema="standin",
        db_role="bourse_standin",
        default_port=port,
        migrations_package="standin.migrations",
    )
    env = {"PYTHONPATH": str(tmp_path / "src"), "STANDIN_PORT": str(port)}
    return part, env, port


def test_a_part_starts_with_its_environment_and_stops(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = _standin(tmp_path)
    pid = supervisor.start_part(part, {**env, "STANDIN_GREETING": "hello"}, home)
    try:
        assert processes.read_pid(home.pid_file("standin")) == pid
        supervisor.wait_ready([part], {"standin": port}, home, timeout=20)
        assert httpx.get(f"http://127.0.0.1:{port}/greeting").text == "hello"
        [status] = supervisor.status([part], {"standin": port}, home)
        assert (status.pid, status.state) == (pid, "ready")
        assert "stand-in listening" in home.log("standin").read_text()
    finally:
        assert supervisor.stop_part(part, home) == pid
    assert not processes.alive(pid)
    assert not home.pid_file("standin").exists()
    [status] = supervisor.status([part], {"standin": port}, home)
    assert status.state == "stopped"
    assert supervisor.stop_part(part, home) is None


def test_a_part_that_dies_is_named_with_its_log(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = _standin(tmp_path)
    supervisor.start_part(part, {**env, "STANDIN_MODE": "crash"}, home)
    with pytest.raises(supervisor.PartFailed) as failure:
        supervisor.wait_ready([part], {"standin": port}, home, timeout=20)
    assert failure.value.part == part
    assert "refusing to start" in str(failure.value)


def test_a_part_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    part, env, port = _standin(tmp_path)
    pid = supervisor.start_part(part, {**env, "STANDIN_MODE": "stubborn"}, home)
    try:
        supervisor.wait_ready([part], {"standin": port}, home, timeout=20)
    finally:
        assert supervisor.stop_part(part, home, grace=0.5) == pid
    assert not processes.alive(pid)
