# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LAB SIMULATION of model sources, for the onprem_ai.maintenance test lab. Python 3.11 standard library only.

Serves, from one directory (--root):
  * plain files:       GET/HEAD /files/<path>      Range, If-Range, ETag, Content-Length
  * Hugging Face Hub:  GET /api/models/<repo>/revision/<rev>   {"id", "sha", "siblings": [{"rfilename", "size", ...}]}
                       GET /api/models/<repo>/tree/<rev>[/<path>]
                       HEAD/GET /<repo>/resolve/<rev>/<path>   X-Repo-Commit, ETag/X-Linked-Etag, X-Linked-Size, Range
                       from <root>/hf/<org>/<repo>/<commit>/<files>; <root>/hf/<org>/<repo>/refs.json maps
                       branch names to commits (default: "main" is the last commit directory in sorted order)
  * Ollama API:        POST /api/pull (NDJSON stream, {"error": ...} line for unknown models), GET /api/tags,
                       POST /api/show, POST /api/copy, DELETE /api/delete, GET /api/version, GET /
                       models offered are listed in <root>/ollama/catalog.json: {"name:tag": {"size": bytes}}
It loads no model and computes nothing beyond sha256 of the files it serves.

--token T       requests to /files and the Hub endpoints need "Authorization: Bearer T" (401 otherwise)
--cut-once N    the first GET of a file body (or the first /api/pull stream) is cut after N bytes (N lines)
--slow S        sleep S seconds after each MiB of a file body (slow link: makes concurrent pulls overlap in tests)
"""

# pylint: disable=inconsistent-return-statements

import argparse
import hashlib
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

VERSION = '0.9.0-lab'


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class SourceServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root, token=None, cut_once=None, slow=None):
        super().__init__(address, Handler)
        self.root = os.path.abspath(root)
        self.token = token
        self.cut_once = cut_once
        self.slow = slow
        self.lock = threading.Lock()
        self.hashes = {}
        self.ollama_installed = {}  # name:tag -> {"digest", "size", "modified_at"}
        self.log = []

    def take_cut(self):
        with self.lock:
            cut, self.cut_once = self.cut_once, None
            return cut

    def etag(self, path):
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self.lock:
            if key not in self.hashes:
                self.hashes[key] = file_sha256(path)
            return self.hashes[key]

    def catalog(self):
        try:
            with open(os.path.join(self.root, 'ollama', 'catalog.json')) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}


def ollama_name(name):
    return name if ':' in name else name + ':latest'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'LabModelSource/' + VERSION

    def log_message(self, fmt, *args):  # pylint: disable=arguments-differ,arguments-renamed
        sys.stdout.write('%s %s\n' % (self.address_string(), fmt % args))
        sys.stdout.flush()

    # -- helpers -----------------------------------------------------------------------------------------

    def send_json(self, status, data, headers=None):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def error(self, status, message, headers=None):
        self.send_json(status, {'error': message}, headers)

    def authorised(self):
        if not self.server.token:
            return True
        if self.headers.get('Authorization') == 'Bearer ' + self.server.token:
            return True
        self.error(401, 'Invalid credentials in Authorization header', {'X-Error-Code': 'RepoNotFound'})
        return False

    def read_json(self):
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b'{}'
        try:
            return json.loads(raw or b'{}')
        except ValueError:
            return None

    def _sendfile(self, handle, offset, count):
        """os.sendfile where the platform has it, else a plain copy; stops early only when the client goes."""
        while count > 0:
            try:
                sent = os.sendfile(self.connection.fileno(), handle.fileno(), offset, min(count, 1 << 30))
            except (AttributeError, OSError):
                handle.seek(offset)
                while count > 0:
                    block = handle.read(min(1 << 20, count))
                    if not block:
                        return
                    self.wfile.write(block)
                    count -= len(block)
                return
            if sent == 0:
                return
            offset += sent
            count -= sent

    def send_file(self, path, extra=None):
        """A file with ETag, Range and If-Range; HEAD sends the headers only."""
        size = os.path.getsize(path)
        etag = '"%s"' % self.server.etag(path)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get('Range')
        if_range = self.headers.get('If-Range')
        match = re.match(r'bytes=(\d*)-(\d*)$', rng or '')
        if match and (not if_range or if_range == etag):
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else size - 1
            else:
                start = max(size - int(match.group(2)), 0)
            if start >= size:
                self.send_response(416)
                self.send_header('Content-Range', 'bytes */%d' % size)
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            end = min(end, size - 1)
            status = 206
        self.send_response(status)
        self.send_header('Content-Length', str(end - start + 1))
        self.send_header('ETag', etag)
        self.send_header('Accept-Ranges', 'bytes')
        self.send_header('Content-Type', 'application/octet-stream')
        if status == 206:
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, end, size))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == 'HEAD':
            return
        cut = self.server.take_cut()
        remaining = end - start + 1
        with open(path, 'rb') as handle:
            if cut is None and not self.server.slow:
                # as real file servers do (nginx, object stores): the kernel copies the file to the socket
                self.wfile.flush()
                self._sendfile(handle, start, remaining)
                return
            handle.seek(start)
            while remaining > 0:
                block = handle.read(min(1 << 20, remaining if cut is None else min(remaining, cut)))
                if not block:
                    break
                if self.server.slow:
                    time.sleep(self.server.slow * len(block) / (1 << 20))
                self.wfile.write(block)
                remaining -= len(block)
                if cut is not None:
                    cut -= len(block)
                    if cut <= 0:
                        self.wfile.flush()
                        self.close_connection = True
                        return

    def safe_join(self, base, rel):
        path = os.path.normpath(os.path.join(base, urllib.parse.unquote(rel)))
        if not path.startswith(base + os.sep):
            return None
        return path

    # -- Hugging Face ------------------------------------------------------------------------------------

    def hf_repo_dir(self, repo):
        return self.safe_join(os.path.join(self.server.root, 'hf'), repo)

    def hf_commit(self, repo_dir, rev):
        if not repo_dir or not os.path.isdir(repo_dir):
            return None
        commits = sorted(d for d in os.listdir(repo_dir) if os.path.isdir(os.path.join(repo_dir, d)))
        refs = {}
        if os.path.exists(os.path.join(repo_dir, 'refs.json')):
            with open(os.path.join(repo_dir, 'refs.json')) as handle:
                refs = json.load(handle)
        if not refs and commits:
            refs = {'main': commits[-1]}
        rev = urllib.parse.unquote(rev)
        commit = refs.get(rev, rev)
        return commit if commit in commits else None

    def hf_files(self, commit_dir):
        out = []
        for base, dummy, names in os.walk(commit_dir):
            for name in sorted(names):
                full = os.path.join(base, name)
                rel = os.path.relpath(full, commit_dir)
                sha = self.server.etag(full)
                size = os.path.getsize(full)
                out.append({'rfilename': rel, 'size': size, 'blobId': hashlib.sha1(rel.encode()).hexdigest(),
                            'lfs': {'sha256': sha, 'size': size, 'pointerSize': 134}})
        return sorted(out, key=lambda f: f['rfilename'])

    def hf_api(self, path):
        match = re.match(r'/api/models/(.+?)/(revision|tree)/([^/]+)(?:/(.*))?$', path)
        if not match:
            return self.error(404, 'not found')
        repo, kind, rev, sub = match.groups()
        repo_dir = self.hf_repo_dir(repo)
        commit = self.hf_commit(repo_dir, rev)
        if not repo_dir or not os.path.isdir(repo_dir):
            return self.error(404, 'Repository not found', {'X-Error-Code': 'RepoNotFound'})
        if commit is None:
            return self.error(404, 'Invalid rev id: %s' % rev, {'X-Error-Code': 'RevisionNotFound'})
        files = self.hf_files(os.path.join(repo_dir, commit))
        if kind == 'revision':
            return self.send_json(200, {'id': repo, 'modelId': repo, 'sha': commit, 'private': False, 'disabled': False,
                                        'gated': False, 'tags': [], 'siblings': files,
                                        'lastModified': '2026-11-01T00:00:00.000Z'})
        prefix = (sub or '').strip('/')
        tree = [{'type': 'file', 'oid': f['blobId'], 'size': f['size'], 'path': f['rfilename'],
                 'lfs': {'oid': f['lfs']['sha256'], 'size': f['size'], 'pointerSize': 134}}
                for f in files if not prefix or f['rfilename'].startswith(prefix + '/')]
        return self.send_json(200, tree)

    def hf_resolve(self, path):
        match = re.match(r'/(.+?)/resolve/([^/]+)/(.+)$', path)
        if not match:
            return self.error(404, 'not found')
        repo, rev, rel = match.groups()
        repo_dir = self.hf_repo_dir(repo)
        commit = self.hf_commit(repo_dir, rev)
        if commit is None:
            return self.error(404, 'Repository or revision not found',
                              {'X-Error-Code': 'RevisionNotFound' if repo_dir and os.path.isdir(repo_dir) else 'RepoNotFound'})
        full = self.safe_join(os.path.join(repo_dir, commit), rel)
        if not full or not os.path.isfile(full):
            return self.error(404, 'Entry not found', {'X-Error-Code': 'EntryNotFound', 'X-Repo-Commit': commit})
        sha = self.server.etag(full)
        return self.send_file(full, {'X-Repo-Commit': commit, 'X-Linked-Etag': '"%s"' % sha,
                                     'X-Linked-Size': str(os.path.getsize(full))})

    # -- Ollama ------------------------------------------------------------------------------------------

    def ollama_manifest_digest(self, name, entry):
        return hashlib.sha256(json.dumps({'name': name, 'entry': entry}, sort_keys=True).encode()).hexdigest()

    def ollama_pull(self):
        body = self.read_json() or {}
        name = ollama_name(body.get('model') or body.get('name') or '')
        stream = body.get('stream', True)
        entry = self.server.catalog().get(name)
        lines = [{'status': 'pulling manifest'}]
        if entry is None:
            lines.append({'error': 'pull model manifest: file does not exist'})
        else:
            size = int(entry.get('size', 1 << 20))
            layer = 'sha256:' + hashlib.sha256(name.encode()).hexdigest()
            for completed in (0, size // 4, size // 2, (3 * size) // 4, size):
                lines.append({'status': 'pulling %s' % layer[7:19], 'digest': layer, 'total': size, 'completed': completed})
            lines += [{'status': 'verifying sha256 digest'}, {'status': 'writing manifest'}, {'status': 'success'}]
        if not stream:
            last = lines[-1]
            if 'error' in last:
                return self.error(500, last['error'])
            self.install(name, entry)
            return self.send_json(200, last)
        cut = self.server.take_cut()
        self.send_response(200)
        self.send_header('Content-Type', 'application/x-ndjson')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        for index, line in enumerate(lines):
            if cut is not None and index >= cut:
                self.close_connection = True
                return None
            if line.get('status') == 'success' and entry is not None:
                self.install(name, entry)  # as Ollama: the manifest is written before `success` is sent
            data = (json.dumps(line) + '\n').encode()
            self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
            self.wfile.flush()
            time.sleep(0.01)
        self.wfile.write(b'0\r\n\r\n')
        return None

    def install(self, name, entry):
        with self.server.lock:
            self.server.ollama_installed[name] = {'digest': self.ollama_manifest_digest(name, entry),
                                                  'size': int(entry.get('size', 1 << 20)),
                                                  'modified_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}

    def ollama_tags(self):
        with self.server.lock:
            models = [{'name': n, 'model': n, 'digest': m['digest'], 'size': m['size'], 'modified_at': m['modified_at'],
                       'details': {'format': 'gguf', 'family': 'lab'}} for n, m in sorted(self.server.ollama_installed.items())]
        return self.send_json(200, {'models': models})

    def ollama_named(self, handler):
        body = self.read_json() or {}
        name = ollama_name(body.get('model') or body.get('name') or '')
        with self.server.lock:
            installed = self.server.ollama_installed.get(name)
        if installed is None:
            return self.error(404, "model '%s' not found" % name)
        return handler(name, installed, body)

    def ollama_show(self, name, installed, body):  # pylint: disable=unused-argument
        return self.send_json(200, {'modelfile': '# lab simulation of %s\nFROM %s\n' % (name, name),
                                    'details': {'format': 'gguf', 'family': 'lab', 'parameter_size': '8B'},
                                    'model_info': {'general.digest': installed['digest']}, 'modified_at': installed['modified_at']})

    def ollama_copy(self):
        body = self.read_json() or {}
        source, dest = ollama_name(body.get('source', '')), ollama_name(body.get('destination', ''))
        with self.server.lock:
            if source not in self.server.ollama_installed:
                missing = True
            else:
                missing = False
                self.server.ollama_installed[dest] = dict(self.server.ollama_installed[source])
        if missing:
            return self.error(404, "model '%s' not found" % source)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
        return None

    def ollama_delete(self, name, installed, body):  # pylint: disable=unused-argument
        with self.server.lock:
            self.server.ollama_installed.pop(name, None)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    # -- dispatch ----------------------------------------------------------------------------------------

    def route(self):
        path = urllib.parse.urlsplit(self.path).path
        method = self.command
        if path == '/' and method in ('GET', 'HEAD'):
            body = b'Ollama is running'
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            if method == 'GET':
                self.wfile.write(body)
            return
        if path == '/api/version':
            return self.send_json(200, {'version': VERSION})
        if path == '/api/pull' and method == 'POST':
            return self.ollama_pull()
        if path == '/api/tags':
            return self.ollama_tags()
        if path == '/api/show' and method == 'POST':
            return self.ollama_named(self.ollama_show)
        if path == '/api/copy' and method == 'POST':
            return self.ollama_copy()
        if path == '/api/delete' and method == 'DELETE':
            return self.ollama_named(self.ollama_delete)
        if not self.authorised():
            return None
        if path.startswith('/files/') and method in ('GET', 'HEAD'):
            full = self.safe_join(os.path.join(self.server.root, 'files'), path[len('/files/'):])
            if not full or not os.path.isfile(full):
                return self.error(404, 'not found')
            return self.send_file(full)
        if path.startswith('/api/models/') and method == 'GET':
            return self.hf_api(path)
        if '/resolve/' in path and method in ('GET', 'HEAD'):
            return self.hf_resolve(path)
        return self.error(404, 'not found')

    do_GET = do_HEAD = do_POST = do_DELETE = route


def start_in_background(root, host="127.0.0.1", port=0, **kwargs):
    """A server on a free loopback port, serving from a daemon thread (tests and benchmarks); call shutdown() and server_close()."""
    server = SourceServer((host, port), str(root), **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description='LAB SIMULATION of model sources (plain files, Hugging Face Hub, Ollama API)')
    parser.add_argument('--root', required=True, help='directory with files/, hf/ and ollama/catalog.json')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8090, help='0: any free port, printed in the start-up line')
    parser.add_argument('--token', default=os.environ.get('LAB_MODEL_SOURCE_TOKEN'))
    parser.add_argument('--cut-once', type=int, default=None)
    parser.add_argument('--slow', type=float, default=None, help='seconds of sleep per MiB of a file body')
    args = parser.parse_args(argv)
    server = SourceServer((args.host, args.port), args.root, token=args.token, cut_once=args.cut_once, slow=args.slow)
    print('lab model source (simulation) listening on http://%s:%d' % server.server_address[:2], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
