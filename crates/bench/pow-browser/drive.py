"""Runs solve.js in headless Chromium through chromedriver (WebDriver, standard library
only) on the challenges in argv[1], and writes the rounds back with the browser's solve
times and proofs to argv[2]. Serves this directory on a free loopback port for the page.
Called by scripts/bench-pow-browser."""
import functools
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, timeout=900):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")["value"]


def main():
    rounds = json.loads(Path(sys.argv[1]).read_text())
    handler = functools.partial(QuietHandler, directory=str(HERE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver_port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{driver_port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        options = {"binary": "/usr/bin/chromium",
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}
        session = call(base, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})["sessionId"]
        try:
            call(base, "POST", f"/session/{session}/timeouts", {"script": 900_000})
            call(base, "POST", f"/session/{session}/url", {"url": f"http://127.0.0.1:{server.server_port}/index.html"})
            for _ in range(100):
                if call(base, "POST", f"/session/{session}/execute/sync",
                        {"script": "return window.solverReady === true", "args": []}):
                    break
                time.sleep(0.1)
            else:
                sys.exit("the page's solver never loaded (is npm ci done in crates/bench/pow-browser?)")
            version = call(base, "POST", f"/session/{session}/execute/sync",
                           {"script": "return navigator.userAgent", "args": []})
            print(f"browser: {version}")
            solved = call(base, "POST", f"/session/{session}/execute/async", {
                "script": "const done = arguments[arguments.length - 1];"
                          "window.solveRounds(arguments[0]).then(done, e => done({error: String(e)}));",
                "args": [rounds]})
            if isinstance(solved, dict) and "error" in solved:
                sys.exit(f"the browser failed: {solved['error']}")
            Path(sys.argv[2]).write_text(json.dumps(solved))
        finally:
            call(base, "DELETE", f"/session/{session}")
    finally:
        driver.terminate()
        server.shutdown()


if __name__ == "__main__":
    main()
