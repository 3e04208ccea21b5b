# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests as data: run a module's main() once per case of a YAML file (after community.general's
tests/unit/plugins/modules/helper.py and test_xfconf.yaml).

A case of test_<module>.yaml:

    - id: healthy_node                     # the test's name
      input: {versions: ["12.8"]}          # module arguments (defaults are the module's, never copied here)
      flags: {check: false, diff: false}   # check mode, diff mode
      files: {sys/nvidia/version: "570.133.20\\n"}  # created under the test's tmp dir before the run
      links: {usr-local/cuda: "{tmp}/usr-local/cuda-12.4"}  # symbolic links made before the run
      patch: {_nvidia.SYSFS_MODULE_VERSION: "{tmp}/sys/nvidia/version"}  # constants of module_utils (or modules.X), "{tmp}" = tmp dir
      patch_return: {modules.nvidia_driver.get_distribution: Debian}  # functions that return this value
      bins_missing: [rpm]                  # binaries get_bin_path does not find (the others are /testbin/NAME)
      mocks:
        run_command:                       # the expected commands in order, each with its answer
          - command: [/testbin/dpkg-query, -W, -f, "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]
            environ: {LC_ALL: C}           # optional: must be part of the environment given
            environ_absent: [RESTIC_PASSWORD]  # optional: must not be in it
            rc: 0
            out: "..."                     # or out_file: nvidia_smi/X.xml (under tests/unit/fixtures); err / err_file alike
            err: ""
            effects: {files: {}, links: {}, remove: []}  # optional: what the command changes under the tmp dir
      output: {changed: false, processes.0.pid: 41234}  # keys (dotted: nested) of the result, compared whole
      output_re: {msg: "^Cannot read"}     # keys of the result, matched as regular expressions
      absent: [Tr0ub4dor&3]                # texts that must not appear anywhere in the result (but `invocation`)

Every expected command must be run, in order, and no other; "{tmp}" is replaced in commands and output too.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.common import warnings
from ansible.module_utils.testing import patch_module_args

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures')
PLUGINS = 'ansible_collections.onprem_ai.maintenance.plugins.'
UTILS = PLUGINS + 'module_utils.'


def _subst(value, tmp):
    if isinstance(value, str):
        return value.replace('{tmp}', tmp)
    if isinstance(value, list):
        return [_subst(v, tmp) for v in value]
    if isinstance(value, dict):
        return dict((k, _subst(v, tmp)) for k, v in value.items())
    return value


def load_cases(test_file):
    """The cases of the YAML file beside `test_file` (test_x.py -> test_x.yaml), as pytest params."""
    path = os.path.splitext(test_file)[0] + '.yaml'
    with open(path) as handle:
        cases = yaml.safe_load(handle)
    return [pytest.param(case, id=case['id']) for case in cases]


class _Commands(object):
    """run_command of the case: checks each command against the next expected one and answers for it."""

    def __init__(self, expected, tmp):
        self.expected = list(expected)
        self.tmp = tmp
        self.seen = []

    def __call__(self, module, args, *unused, **kwargs):
        try:
            return self._answer(args, kwargs)
        except AssertionError as exc:
            self.error = self.error or exc  # raised again after the run: the module would report it as its own failure
            raise

    error = None

    def _answer(self, args, kwargs):
        argv = [str(a) for a in args]
        self.seen.append(argv)
        assert self.expected, 'unexpected command %r (no more commands expected)' % (argv,)
        want = self.expected.pop(0)
        assert argv == _subst(want['command'], self.tmp), 'command %d differs' % len(self.seen)
        environ = kwargs.get('environ_update') or {}
        for key, value in (want.get('environ') or {}).items():
            assert environ.get(key) == value, 'environment %s of %r: %r' % (key, argv, environ.get(key))
        for key in want.get('environ_absent') or []:
            assert key not in environ, 'environment %s of %r is set' % (key, argv)
        make_files(self.tmp, want.get('effects') or {})  # what the command changes on the host
        out = want.get('out', '')
        if 'out_file' in want:
            with open(os.path.join(FIXTURES, want['out_file'])) as handle:
                out = handle.read()
        err = want.get('err', '')
        if 'err_file' in want:
            with open(os.path.join(FIXTURES, want['err_file'])) as handle:
                err = handle.read()
        return want.get('rc', 0), out, err


def _owner(target):
    """The Python module of a patch target: '_nvidia.X' (module_utils) or 'modules.nvidia_driver.X' (under plugins)."""
    module_name = target.rsplit('.', 1)[0]
    return importlib.import_module((UTILS if module_name.startswith('_') else PLUGINS) + module_name)


def make_files(tmp, spec):
    """`files` ({path: content}), `links` ({path: target}) and `remove` ([path]) under the tmp dir ("{tmp}" in targets)."""
    for name in spec.get('remove') or []:
        path = os.path.join(tmp, name)
        if os.path.lexists(path):
            os.remove(path)
    for name, content in (spec.get('files') or {}).items():
        path = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(content)
    for name, target in (spec.get('links') or {}).items():
        path = os.path.join(tmp, name)
        if os.path.lexists(path):
            os.remove(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(_subst(target, tmp), path)


def run_case(main, case, tmp_path, monkeypatch):
    """Run `main` for one case; assert the commands and the output; return the result."""
    tmp = str(tmp_path)
    make_files(tmp, case)
    for target, value in (case.get('patch') or {}).items():
        monkeypatch.setattr(_owner(target), target.rsplit('.', 1)[1], _subst(value, tmp))
    for target, value in (case.get('patch_return') or {}).items():
        monkeypatch.setattr(_owner(target), target.rsplit('.', 1)[1], lambda *args, _value=value, **kwargs: _value)
    commands = _Commands((case.get('mocks') or {}).get('run_command') or [], tmp)
    missing = set(case.get('bins_missing') or [])

    def run_command(self, args, *more, **kwargs):
        return commands(self, args, *more, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path',
                        lambda self, name, required=False, opt_dirs=None: None if name in missing else '/testbin/' + name)
    flags = case.get('flags') or {}
    args = dict(_subst(case.get('input') or {}, tmp), _ansible_check_mode=bool(flags.get('check')), _ansible_diff=bool(flags.get('diff')))
    # a module's warnings are process-wide in ansible-core: start each case without those of earlier tests
    monkeypatch.setattr(warnings, '_global_warnings', {})
    monkeypatch.setattr(warnings, '_global_deprecations', {})
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            main()
    if commands.error:
        raise commands.error
    printed = json.dumps(dict((k, v) for k, v in json.loads(out.getvalue()).items() if k != 'invocation'))
    for text in case.get('absent') or []:  # e.g. secrets: nowhere in the result (but the arguments given, `invocation`)
        assert text not in printed, '%r is in the result' % text
    result = json.loads(out.getvalue())
    if result.get('warnings'):  # ansible-core 2.19 sends warnings as WarningSummary objects: compare their texts
        result['warnings'] = [w.get('event', {}).get('msg', w) if isinstance(w, dict) else w for w in result['warnings']]
    assert 'Traceback' not in out.getvalue()
    assert not commands.expected, 'commands not run: %r' % ([c['command'] for c in commands.expected],)
    if 'failed' not in (case.get('output') or {}):
        assert not result.get('failed'), 'the module failed: %s' % result.get('msg')
    for key, value in _subst(case.get('output') or {}, tmp).items():
        assert lookup(result, key) == value, '%s: %r' % (key, lookup(result, key))
    for key, pattern in (case.get('output_re') or {}).items():
        assert re.search(pattern, str(lookup(result, key))), '%s: %r does not match %r' % (key, lookup(result, key), pattern)
    return result


def lookup(result, key):
    """result['a']['0']... for a dotted key ('processes.0.pid'); list items by number."""
    value = result
    for part in key.split('.'):
        if isinstance(value, list):
            value = value[int(part)] if -len(value) <= int(part) < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value
