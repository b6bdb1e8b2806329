"""A tenant that looks at its own surroundings, for ten's isolation tests.

Listens on 127.0.0.1:$PORT with a thread per request (ThreadingHTTPServer), standard
library only.

  GET /health          200 "ok"
  GET /ps              the processes it can see in /proc: "PID NAME" per line
  GET /kill?pid=N      sends SIGTERM to N: "sent", or the error
  GET /alloc?mb=N      allocates and touches N MiB, keeps it: "allocated N"
  GET /forkbomb        starts a process that forks without end, answers at once
  GET /setsid          starts `setsid sleep 1000` in the background: its pid
  GET /write?mb=N      writes N MiB to $DATA_DIR/blob-K: "wrote N"
  GET /block           waits until /release is called (proves requests run concurrently)
  GET /waiting         how many /block requests wait
  GET /release         releases every /block
  GET /whoami          "uid gid"
"""

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEPT = []
RELEASE = threading.Event()
WAITING = [0]
WAITING_LOCK = threading.Lock()
WRITES = [0]


def processes():
    lines = []
    for entry in sorted(os.listdir("/proc")):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    lines.append(f"{entry} {comm.read().strip()}")
            except OSError:
                pass
    return "\n".join(lines) + "\n"


def forkbomb():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        path = url.path
        if path == "/health":
            self.answer(200, "ok")
        elif path == "/ps":
            self.answer(200, processes())
        elif path == "/kill":
            try:
                os.kill(int(query["pid"]), signal.SIGTERM)
                self.answer(200, "sent")
            except OSError as error:
                self.answer(200, f"error: {error.__class__.__name__}: {error}")
        elif path == "/alloc":
            size = int(query["mb"]) * 1024 * 1024
            block = bytearray(size)
            for offset in range(0, size, 4096):
                block[offset] = 1
            KEPT.append(block)
            self.answer(200, f"allocated {query['mb']}")
        elif path == "/forkbomb":
            forkbomb()
            self.answer(200, "started")
        elif path == "/setsid":
            child = subprocess.Popen(["setsid", "sleep", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.answer(200, str(child.pid))
        elif path == "/write":
            WRITES[0] += 1
            target = os.path.join(os.environ["DATA_DIR"], f"blob-{WRITES[0]}")
            with open(target, "wb") as blob:
                for _ in range(int(query["mb"])):
                    blob.write(os.urandom(1024 * 1024))
                blob.flush()
                os.fsync(blob.fileno())
            self.answer(200, f"wrote {query['mb']}")
        elif path == "/block":
            with WAITING_LOCK:
                WAITING[0] += 1
            RELEASE.wait(60)
            with WAITING_LOCK:
                WAITING[0] -= 1
            self.answer(200, "released" if RELEASE.is_set() else "timed out")
        elif path == "/waiting":
            with WAITING_LOCK:
                waiting = WAITING[0]
            self.answer(200, str(waiting))
        elif path == "/release":
            RELEASE.set()
            self.answer(200, "ok")
        elif path == "/whoami":
            self.answer(200, f"{os.getuid()} {os.getgid()}")
        else:
            self.answer(404, "no such path")


if __name__ == "__main__":
    print(f"probe {os.getpid()} listening on 127.0.0.1:{os.environ['PORT']}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
