"""headless_chromium end to end: Debian's Chromium opens a page served on loopback, and nothing else."""

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.webdriver.common.by import By

from tests.browser import headless_chromium

pytestmark = pytest.mark.database_independent

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Browser smoke</title></head>
<body><svg width="40" height="40"><rect class="bar" width="10" height="30"/></svg></body></html>
"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_headless_chromium_renders_a_loopback_page():
    requests = Counter()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            requests[self.path] += 1
            if self.path != "/smoke.html":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address
        with headless_chromium() as driver:
            driver.get(f"http://{host}:{port}/smoke.html")
            assert driver.title == "Browser smoke"
            assert len(driver.find_elements(By.CSS_SELECTOR, "svg rect.bar")) == 1
            assert driver.get_screenshot_as_png().startswith(PNG_SIGNATURE)
        # The page came from this server, once; Chromium may also have asked it for /favicon.ico.
        assert requests["/smoke.html"] == 1
        assert set(requests) <= {"/smoke.html", "/favicon.ico"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
