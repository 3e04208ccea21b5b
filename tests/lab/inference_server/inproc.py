# -*- coding: utf-8 -*-
# onprem_ai.maintenance test lab: run the LAB SIMULATION inference server inside a test process.
"""The lab inference server (lab_inference_server.py beside this file) in a thread of the calling process, on
127.0.0.1 and a free port, for unit tests that need a real HTTP peer without a subprocess start:

    with lab_server('--model', 'm', '--error-percent', '10') as (url, lab):
        ...   # url is http://127.0.0.1:<port>; lab is its LabState (lab.config, counters)

No signal handlers, no GPU check (it never calls main()), log lines in `LOG`; on exit the server stops and open streams are cut.
"""

import collections
import contextlib
import importlib.util
import threading
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location('lab_inference_server', str(Path(__file__).with_name('lab_inference_server.py')))
lis = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(lis)
LOG = collections.deque(maxlen=1000)


def _log(message, stream=None):  # pylint: disable=unused-argument
    """The server's log lines go here, not to the test's stdout (where a module's JSON result is read)."""
    LOG.append(message)


lis.log = _log


@contextlib.contextmanager
def lab_server(*argv):
    """Start the simulation with these command-line options (host and port are fixed); yield (url, LabState)."""
    config = lis.load_config(lis.parse_args(['--host', '127.0.0.1', '--port', '0', *argv]))
    lab = lis.LabState(config)
    server = lis.LabHTTPServer((config['host'], 0), lab)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05}, name='lab-inference', daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_address[1], lab
    finally:
        lab.stopping.set()
        server.shutdown()
        server.server_close()
        lab.cut_connections()
        thread.join(5)
