"""The reports directory over HTTP on loopback, beside the Dagster UI.

The UI is an http page, and browsers do not follow a file:// link from one: a report asset's link is therefore an
http URL on this server (`report_url`), which `leo-fleet ui` starts (`start`) and which stops with the UI. It
serves the reports directory only, read-only, on 127.0.0.1 (the reports are as private as the UI, which has no
authentication either).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ingest.settings import Settings

HOST = "127.0.0.1"
PARENT_POLL_S = 1.0  # how often the server looks whether the UI that started it is still there


def report_url(settings: Settings, path: Path) -> str:
    """The http URL of `path` (a file under the reports directory) on the reports server."""
    return f"http://{HOST}:{settings.reports_port}/{path.relative_to(settings.reports_dir).as_posix()}"


def start(settings: Settings) -> subprocess.Popen:
    """The reports server as a child process that exits when its parent does (the UI, which execs `dagster dev`
    in place). The port is bound here, so a port in use raises OSError in the caller, not in the child."""
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server((HOST, settings.reports_port))
    try:
        command = [sys.executable, "-m", __name__, str(listener.fileno()), str(settings.reports_dir)]
        return subprocess.Popen(command, pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL)
    finally:
        listener.close()  # the child holds its own copy


class _Quiet(SimpleHTTPRequestHandler):
    """Static files without a log line per request (the UI's own output shares the terminal)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(fd: int, directory: Path) -> None:
    """Serve `directory` on the listening socket `fd` until the parent process goes away."""
    server = ThreadingHTTPServer((HOST, 0), partial(_Quiet, directory=str(directory)), bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=fd)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C in the UI's terminal reaches the whole foreground group
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), Path(sys.argv[2]))
