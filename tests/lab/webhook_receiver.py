# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LAB ONLY: a webhook receiver that records what it is sent - the notices of the monitoring role (tasks_from: notify)
and Alertmanager's webhook notifications - one JSON line per POST: {"time", "path", "body"} (body parsed as JSON, or
{"unparsed": text} when it is not). GET /notices answers the recorded lines as a JSON list (what the tests read).

    python3 webhook_receiver.py --listen 127.0.0.1 --port 9095 --out /var/lib/lab-webhook/notices.jsonl

Loopback or the lab network only: no authentication, no TLS, bodies over 1 MiB refused. Standard library only.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import threading
import time

MAX_BODY = 1024 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'lab-webhook-receiver'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # quiet: the JSON lines are the record

    def _answer(self, status, obj):
        body = json.dumps(obj).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # pylint: disable=invalid-name
        try:
            length = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._answer(413, {'error': 'body missing or larger than %d bytes' % MAX_BODY})
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            body = {'unparsed': raw.decode('utf-8', 'replace')}
        line = json.dumps({'time': time.time(), 'path': self.path, 'body': body}, sort_keys=True) + '\n'
        with self.server.lock:
            with open(self.server.out, 'a', encoding='utf-8') as handle:
                handle.write(line)
        self._answer(200, {'recorded': True})

    def do_GET(self):  # pylint: disable=invalid-name
        if self.path.rstrip('/') != '/notices':
            self._answer(404, {'error': 'GET /notices only'})
            return
        with self.server.lock:
            try:
                with open(self.server.out, encoding='utf-8') as handle:
                    lines = [json.loads(text) for text in handle if text.strip()]
            except FileNotFoundError:
                lines = []
        self._answer(200, lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description='LAB ONLY webhook receiver: records POSTs as JSON lines')
    parser.add_argument('--listen', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=9095)
    parser.add_argument('--out', required=True, help='the JSON-lines file')
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    server = http.server.ThreadingHTTPServer((args.listen, args.port), Handler)
    server.daemon_threads = True
    server.out = args.out
    server.lock = threading.Lock()
    print('lab webhook receiver on %s:%d -> %s' % (args.listen, server.server_address[1], args.out), flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
