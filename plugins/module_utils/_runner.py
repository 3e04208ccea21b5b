# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's one way to run a command: each tool's command line is declared once, here.

A `Tool` names its binary, its arguments by name (each with a format that turns a value into argv words,
after community.general's CmdRunner), its environment, and which arguments change the host. A `Runner`
(one per module run) finds binaries once, builds argv lists (never a shell), runs them through the one
`module.run_command` call of the collection, refuses to run a changing command in check mode, and raises
`CommandError` (an OnpremError, error_kind `command`) naming the tool, the rc and a trimmed stderr.

    runner = Runner(module)
    rc, out, err = runner.run('apt-mark', 'hold names', names=['nvidia-driver-570'])
    runner.run('dpkg-query', 'list', parse=parse_dpkg)         # -> parse_dpkg(out)
    runner.which('nvidia-smi')                                 # optional tools: a path or None

_manifest.py (run standalone by the backup timer, standard library only) cannot import this file: its
`LocalHost` offers the same `which()` / `execute()` interface over subprocess, and a Runner serves as its
host inside a module.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

import collections
import re

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._manifest import DPKG_QUERY, RPM_QUERY
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._nvidia import COMPUTE_APP_FIELDS

Result = collections.namedtuple('Result', 'rc out err')


class CommandError(OnpremError):
    """A command failed, or could not be run. `tool`, `rc` and `stderr` (trimmed) are in the failure result."""

    error_kind = 'command'


def trim(text, limit=300):
    """The end of a command's output (where errors are), stripped and at most `limit` characters."""
    text = (text or '').strip()
    return text if len(text) <= limit else '...' + text[-limit:]


# -- argument formats: a value -> argv words (cf. community.general's cmd_runner_fmt) ---------------------------
def fixed(*words):
    """Always these words (the value is ignored)."""
    return lambda value: list(words)


def as_value(value):
    return [] if value is None else [str(value)]


def as_list(value):
    return [str(v) for v in (value or [])]


def opt_val(option, template='%s'):
    """`option VALUE` when the value is given, nothing otherwise."""
    return lambda value: [] if value is None else [option, template % (value,)]


def as_bool(option):
    return lambda value: [option] if value else []


def _specs(template, strip_epoch=False):
    """[(name, version or None)] -> ['name=version', 'name', ...] in the package manager's spelling."""
    def fmt(specs):
        return [template % (n, v.split(':', 1)[-1] if strip_epoch else v) if v else n for n, v in specs or []]
    return fmt


class Tool(object):
    """One command-line tool: its binary, its arguments by name, its environment, what of it changes the host."""

    def __init__(self, binary, formats, env=None, changes=()):
        self.binary = binary
        self.formats = formats
        self.env = dict({'LC_ALL': 'C'}, **(env or {}))
        self.changes = frozenset(changes)


_APT_INSTALL_OPTIONS = fixed('-y', '-q', '--allow-downgrades', '--allow-change-held-packages',
                             '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold')

TOOLS = {
    'apt-get': Tool('apt-get', dict(
        update=fixed('update', '-q'), install=fixed('install'), simulate_install=fixed('install'), options=_APT_INSTALL_OPTIONS,
        simulate=fixed('-s'), status_file=opt_val('-o', 'Dir::State::status=%s'), specs=_specs('%s=%s'),
        remove=fixed('remove', '-y', '-q'), purge=fixed('purge', '-y', '-q'), names=as_list,
        # os_update: updates never lift a hold (no --allow-change-held-packages) and never downgrade
        dist_upgrade=fixed('dist-upgrade'),
        upgrade_options=fixed('-y', '-q', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold')),
        env={'DEBIAN_FRONTEND': 'noninteractive'}, changes=('update', 'install', 'remove', 'purge')),
    'apt-cache': Tool('apt-cache', dict(madison=fixed('madison'), name=as_value)),
    'apt-mark': Tool('apt-mark', dict(showhold=fixed('showhold'), hold=fixed('hold'), unhold=fixed('unhold'), names=as_list),
                     changes=('hold', 'unhold')),
    # declared in _manifest.py, which the backup timer runs alone (standard library only)
    'dpkg-query': Tool('dpkg-query', dict(list=fixed(*DPKG_QUERY))),
    'rpm': Tool('rpm', dict(list=fixed(*RPM_QUERY))),
    'dnf': Tool('dnf', dict(
        makecache=fixed('makecache', '-q'), available=fixed('list', '--showduplicates', '--available', '-q'), name=as_value,
        module_reset=fixed('module', 'reset', '-y'), module_enable=fixed('module', 'enable', '-y'), stream=lambda v: ['%s:%s' % tuple(v)],
        install=fixed('install', '-y', '--allowerasing'), specs=_specs('%s-%s', strip_epoch=True), remove=fixed('remove', '-y'),
        versionlock_list=fixed('versionlock', 'list', '-q'), versionlock_add=fixed('versionlock', 'add'),
        versionlock_delete=fixed('versionlock', 'delete'), names=as_list,
        # os_update: check-update answers rc 100 when updates are pending
        check_update=fixed('check-update'), quiet=fixed('-q'), updateinfo_security=fixed('updateinfo', 'list', '--security'),
        upgrade=fixed('upgrade', '-y'), excludes=lambda values: ['--exclude=%s' % v for v in values or []]),
        changes=('makecache', 'module_reset', 'module_enable', 'install', 'remove', 'versionlock_add', 'versionlock_delete', 'upgrade')),
    'nvidia-smi': Tool('nvidia-smi', dict(
        xml=fixed('-q', '-x'), compute_apps=fixed('--query-compute-apps=%s' % ','.join(COMPUTE_APP_FIELDS), '--format=csv,noheader,nounits'),
        mig=fixed('mig'), lgi=fixed('-lgi'), lci=fixed('-lci'), gpu=opt_val('-i'), mig_mode=opt_val('-mig'), args=as_list),
        changes=('mig_mode', 'args')),
    'systemctl': Tool('systemctl', dict(is_active=fixed('is-active'), quiet=fixed('--quiet'), stop=fixed('stop'), start=fixed('start'),
                                        unit=as_value), changes=('stop', 'start')),
    'modprobe': Tool('modprobe', dict(remove=fixed('-r'), modules=as_list), changes=('modules',)),
    'update-alternatives': Tool('update-alternatives', dict(set=fixed('--set'), name=as_value, path=as_value), changes=('set',)),
    'alternatives': Tool('alternatives', dict(set=fixed('--set'), name=as_value, path=as_value), changes=('set',)),
    # os_update: what needs a restart or reboot after updates, and the NVIDIA modules of a new kernel
    'needrestart': Tool('needrestart', dict(batch=fixed('-b'))),
    'needs-restarting': Tool('needs-restarting', dict(reboothint=fixed('-r'), services=fixed('-s'))),
    'dkms': Tool('dkms', dict(status=fixed('status'), autoinstall=fixed('autoinstall'), kernel=opt_val('-k')), changes=('autoinstall',)),
    # update_plan's housekeeping: the container images and what the containers use (read only)
    'docker': Tool('docker', dict(image_ls=fixed('image', 'ls', '--no-trunc', '--format', '{{json .}}'),
                                  container_ids=fixed('container', 'ls', '--all', '--quiet', '--no-trunc'),
                                  container_images=fixed('container', 'inspect', '--format', '{{.Image}}'), ids=as_list)),
    # restic's subcommands are free-form (`args`); what it may do in check mode is decided by its caller (_restic.py)
    'restic': Tool('restic', dict(repo=opt_val('--repo'), password_file=opt_val('--password-file'), cache_dir=opt_val('--cache-dir'),
                                  args=as_list), env={'RESTIC_PROGRESS_FPS': '0.016'}),
}


class Runner(object):
    """Runs the declared tools for one module run (tests script `module.run_command` and `module.get_bin_path`)."""

    def __init__(self, module, paths=None):
        self.module = module
        self._paths = dict(paths or {})

    @property
    def check_mode(self):
        return bool(getattr(self.module, 'check_mode', False))

    def which(self, name):
        """Path of a binary, None when it is not installed (looked up once per runner)."""
        if name not in self._paths:
            self._paths[name] = self.module.get_bin_path(name)
        return self._paths[name]

    def execute(self, argv, env=None, data=None):
        """(rc, out, err) of one argv list: the collection's only call of run_command (same interface as _manifest.LocalHost).

        Declared tools go through run(); execute() alone is for argv that the user gives (e.g. litellm_config's validate_command).
        """
        kwargs = {'environ_update': dict(env or {})}
        if data is not None:
            kwargs['data'] = data
        rc, out, err = self.module.run_command(list(argv), **kwargs)
        return Result(rc, out or '', err or '')

    def argv(self, tool, order, **values):
        """The argv list of `tool` with the named arguments of `order` ('a b c' or a list) in that order."""
        spec = TOOLS[tool]
        names = order.split() if isinstance(order, str) else list(order)
        unknown = [n for n in list(names) + list(values) if n not in spec.formats]
        if unknown:
            raise CommandError('%s has no argument %s (declare it in _runner.TOOLS)' % (tool, ', '.join(unknown)), error_kind='internal')
        path = self.which(spec.binary)
        if not path:
            raise CommandError('%s is not installed on this host (not found in PATH)' % spec.binary, error_kind='missing_tool', tool=tool)
        argv = [path]
        for name in names:
            argv.extend(spec.formats[name](values.get(name)))
        return argv

    def run(self, tool, order, check=True, parse=None, env=None, data=None, error=CommandError, **values):
        """Result(rc, out, err), or `parse(result)`. Raises `error` (a CommandError by default) when check and rc != 0.

        A command with an argument the tool declares as changing is never run in check mode (a bug of the caller).
        """
        spec = TOOLS[tool]
        names = order.split() if isinstance(order, str) else list(order)
        if self.check_mode and spec.changes.intersection(names):
            raise CommandError('%s %s would change the host in check mode (a bug: please report it)' % (tool, ' '.join(names)),
                               error_kind='internal', tool=tool)
        argv = self.argv(tool, names, **values)
        result = self.execute(argv, env=dict(spec.env, **(env or {})), data=data)
        if check and result.rc != 0:
            raise failed(tool, argv, result, error)
        return parse(result) if parse else result


_WORD = re.compile(r'^[a-z][a-z-]*$')


def failed(tool, argv, result, error=CommandError):
    """The error of a failed command: names the tool and its first words, the rc and the end of stderr (or stdout)."""
    words = ' '.join([tool] + [w for w in argv[1:5] if _WORD.match(w)][:2])
    stderr = trim(result.err) or trim(result.out) or '-'
    return error('%s failed (rc=%s): %s' % (words, result.rc, stderr), tool=tool, rc=result.rc, stderr=stderr)
