"""A notes API for one tenant: ten runs one copy of it per tenant.

It knows nothing about tenants. It reads PORT (given by ten) and DATA_DIR (set in
tenement.toml), keeps notes in SQLite and answers /health with 200. Standard library only.

  GET  /health   -> {"status": "ok"}
  GET  /notes    -> [{"id": 1, "text": "..."}]
  POST /notes    {"text": "..."} -> 201
"""

import json
import os
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ["PORT"])
DATA_DIR = os.environ.get("DATA_DIR", ".")
DB = os.path.join(DATA_DIR, "notes.db")


def get_db():
    os.makedirs(DATA_DIR, exist_ok=True)
    db = sqlite3.connect(DB)
    db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)")
    return db


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            self.respond(200, {"status": "ok"})
            return
        db = get_db()
        rows = db.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
        db.close()
        self.respond(200, [{"id": row[0], "text": row[1]} for row in rows])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            text = str(body["text"])
        except (ValueError, KeyError, TypeError):
            self.respond(400, {"error": 'send JSON like {"text": "hello"}'})
            return
        db = get_db()
        db.execute("INSERT INTO notes (text) VALUES (?)", (text,))
        db.commit()
        db.close()
        self.respond(201, {"ok": True})

    def respond(self, code, data):
        payload = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)


if __name__ == "__main__":
    print(f"notes listening on 127.0.0.1:{PORT}, data in {DATA_DIR}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
