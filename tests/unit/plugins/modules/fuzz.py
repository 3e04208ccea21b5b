# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared harness for property tests (hypothesis) of the modules' argument handling.

Each module's test draws bad arguments with `mutated_args(valid, keys)` and runs the module with
`run_module(main, args, allowed_root=..., secrets=...)`, which checks the contract every module
keeps whatever it is given:
- it ends with exit_json or fail_json (a SystemExit), never with an exception (a traceback);
- a failure carries a message;
- no planted secret appears in what it prints;
- it writes nothing outside `allowed_root` (an audit hook sees every open-for-write, mkdir,
  rename, remove, symlink and chmod; writes elsewhere are refused and reported).
Commands are not run: `run_command` answers from `commands` (default: every command fails).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

# Settings for every property test of a module: bounded, no deadline (a module start is ~ms but
# the first one imports a lot), fixtures are reused across examples on purpose.
FUZZ_SETTINGS = settings(max_examples=60, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# Values that a user, a survey or a bad template can put in any option. `junk(infinity=True)` adds
# +-Infinity (YAML `.inf`): for an option of type int, ansible-core's own conversion (check_type_int,
# 2.19) raises OverflowError on it before any module code runs, which OnpremModule turns into a failure
# with a message. A module opts in once it is built on OnpremModule; JUNK is the default without them.
def junk(infinity=False):
    """Strategy of bad option values; with `infinity`, +-inf floats are among them."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-2 ** 40, max_value=2 ** 40),
        st.floats(allow_nan=True, allow_infinity=infinity),
        st.sampled_from([float('inf'), float('-inf')]) if infinity else st.nothing(),
        st.text(max_size=40),
        st.sampled_from(['', ' ', '-1', '0', 'not a url', 'file:///etc/passwd', 'ftp://host/x', 'http://',
                         'https://user:pa@ss@host/x', '../../etc', '/', 'state.json', '{"a": 1}', '[1, 2]',
                         'a=b, c=d', 'x\ny', '\x00', 'ü' * 3, '9' * 30]),
        st.lists(st.text(max_size=10), max_size=3),
        st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()), max_size=3),
    )


JUNK = junk()
JUNK_WITH_INFINITY = junk(infinity=True)

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {'os.mkdir': 0, 'os.rename': (0, 1), 'os.replace': (0, 1), 'os.remove': 0, 'os.rmdir': 0,
                'os.symlink': (0, 1), 'os.link': (0, 1), 'os.chmod': 0, 'os.chown': 0, 'os.truncate': 0,
                'shutil.rmtree': 0, 'shutil.copyfile': 1, 'shutil.move': 1}


class _WriteGuard(object):
    """One process-wide audit hook (they cannot be removed); active only inside `watch()`."""

    installed = False
    root = None
    violations = []

    @classmethod
    def _hook(cls, event, args):
        if cls.root is None:
            return
        paths = []
        if event == 'open' and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writing = (mode and any(c in str(mode) for c in 'wax+')) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing:
                paths.append(path)
        elif event in _PATH_EVENTS:
            where = _PATH_EVENTS[event]
            for i in (where if isinstance(where, tuple) else (where,)):
                if i < len(args):
                    paths.append(args[i])
        for path in paths:
            if isinstance(path, int) or path is None:
                continue
            real = os.path.realpath(os.fsdecode(path))
            if real == os.devnull:  # e.g. distro's lsb_release call sends its stderr there
                continue
            if not (real == cls.root or real.startswith(cls.root + os.sep)):
                cls.violations.append('%s %s' % (event, real))
                raise PermissionError('fuzz harness: write outside %s refused: %s' % (cls.root, real))

    @classmethod
    @contextlib.contextmanager
    def watch(cls, root):
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True
        cls.root, cls.violations = os.path.realpath(str(root)), []
        try:
            yield cls.violations
        finally:
            cls.root = None


def mutated_args(valid, keys, infinity=False):
    """Strategy: `valid` with one or more of `keys` replaced by junk (or removed); `infinity` adds +-inf."""
    missing = object()

    def build(changes):
        args = dict(valid)
        for key, value in changes.items():
            if value is missing:
                args.pop(key, None)
            else:
                args[key] = value
        return args

    return st.dictionaries(st.sampled_from(sorted(keys)), st.one_of(junk(infinity), st.just(missing)),
                           min_size=1, max_size=3).map(build)


def run_module(main, args, allowed_root, secrets=(), commands=None, check_mode=None):
    """Run a module's main() with `args`; assert the contract above; return its result dict."""
    def fake_run_command(self, argv, *unused, **kwargs):
        if commands is None:
            return 1, '', 'fuzz harness: command not run'
        return commands(argv, **kwargs)

    args = dict(args)
    # ansible-core imports its serialization profiles on first use, and in a process that has imported controller
    # code that import creates ansible's local tmp dir: done here, outside the write guard, not by the module
    with patch_module_args({}):
        pass
    if check_mode is not None:
        args['_ansible_check_mode'] = check_mode
    out = io.StringIO()
    saved = basic.AnsibleModule.run_command, basic.AnsibleModule.get_bin_path
    basic.AnsibleModule.run_command = fake_run_command
    basic.AnsibleModule.get_bin_path = lambda self, name, required=False, opt_dirs=None: '/usr/bin/%s' % name
    try:
        with _WriteGuard.watch(allowed_root) as violations, patch_module_args(args), contextlib.redirect_stdout(out):
            try:
                main()
            except SystemExit:
                pass
            else:
                raise AssertionError('main() returned without exit_json/fail_json for %r' % (args,))
    finally:
        basic.AnsibleModule.run_command, basic.AnsibleModule.get_bin_path = saved
    text = out.getvalue()
    assert not violations, 'wrote outside %s: %s (args %r)' % (allowed_root, violations, args)
    result = json.loads(text)
    if result.get('failed'):
        assert result.get('msg'), 'failure without a message: %r' % (result,)
        assert 'Traceback' not in json.dumps(result), 'traceback in the result: %r' % (result,)
    for secret in secrets:
        assert secret not in text, 'secret printed for args %r' % (args,)
    return result
