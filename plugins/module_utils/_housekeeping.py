# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proactive maintenance of the monthly run (issue 17): configuration drift, resource housekeeping, tuning.

Private to the collection. Each check returns findings ``{check, category, status, finding, recommendation}``
(status ``recommend``, ``unknown`` or ``drift``) and, where removing something is safe, cleanup items
``{kind, path | image, reason}`` that the window's run may remove - never the current or the previous version.

- ``drift(results)``: registered results of the roles' tasks run in check mode with diff -> what differs from the
  declared state (corrected in the window by the normal run).
- ``versioned(kind, root, entries, current, keep)``: old model versions / LiteLLM or engine virtualenvs beyond
  keep-N; ``read_versions(root, current)`` reads a directory of versions on the host.
- ``images(images, used)``: container images no container uses (the newest unused one per repository is kept as
  the previous version).
- ``gpu_tuning(gpus)``: power limit and application clocks against the GPU's defaults.
- ``journal_bytes(path)`` / ``disk_free(path)``: what the host holds, read without external commands.
- ``read_images(runner)``: the container images and the images the containers use, from the docker CLI (read only).

Raises HousekeepingError (an OnpremError) naming what cannot be used; what cannot be read is ``unknown``, never
"nothing to clean".
"""

from __future__ import annotations

import json
import os

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._errors import OnpremError

KINDS = ('model', 'litellm_venv', 'engine_venv')
CATEGORIES = ('drift', 'housekeeping', 'tuning')


class HousekeepingError(OnpremError):
    """A proactive check's input cannot be used."""

    error_kind = 'usage'


def finding(check, category, status, text, recommendation=None):
    """One finding, the shape update_plan's recommendations share."""
    return {'check': check, 'category': category, 'status': status, 'finding': text, 'recommendation': recommendation}


# ----- configuration drift ----------------------------------------------------------------------------------------

def _diff_paths(diff):
    """The paths (or a short description) a task's diff names."""
    items = diff if isinstance(diff, list) else [diff]
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        for key in ('after_header', 'before_header'):
            if item.get(key):
                out.append(str(item[key]))
                break
        else:
            if item.get('prepared'):
                out.append(str(item['prepared']).strip().splitlines()[0][:120])
    return sorted(set(out))


def drift(results):
    """What differs from the declared state, from the roles' check-mode results.

    results: [{role, task, changed, failed, skipped, unreachable, diff, msg}] (a registered result with the role and
    task it came from). A changed task is drift; a failed or unreachable one is unknown (its state cannot be told).
    """
    if not isinstance(results, list):
        raise HousekeepingError('drift: a list of check-mode results is needed, got %s' % type(results).__name__)
    out = []
    for index, result in enumerate(results):
        if not isinstance(result, dict) or not result.get('role'):
            raise HousekeepingError('drift[%d]: {role, task, changed, diff} is needed' % index)
        where = '%s: %s' % (result['role'], result.get('task') or 'a task')
        if result.get('unreachable') or result.get('failed'):
            out.append(finding('configuration drift', 'drift', 'unknown', '%s cannot be checked: %s' % (
                where, result.get('msg') or ('unreachable' if result.get('unreachable') else 'failed in check mode'))))
        elif result.get('changed') and not result.get('skipped'):
            paths = _diff_paths(result.get('diff'))
            out.append(finding('configuration drift', 'drift', 'drift', '%s differs from the declared state%s' % (
                where, (' (%s)' % ', '.join(paths)) if paths else ''),
                'corrected in the window by the normal run (%s)' % result['role']))
    return out


# ----- resource housekeeping --------------------------------------------------------------------------------------

def resolve(value):
    """A version's name: a name as it is, an absolute path (a link such as .../current) as the name it points to."""
    if value is None or not os.path.isabs(str(value)):
        return value
    if not os.path.lexists(value):
        return None
    return os.path.basename(os.path.realpath(value))


def read_versions(root, current=None):
    """The version entries of a directory ([{name, mtime}]) and the current one's name (a 'current' link resolved).

    Raises HousekeepingError when the directory cannot be read; a missing one has no versions.
    """
    if not os.path.isdir(root):
        if os.path.exists(root):
            raise HousekeepingError('%s: not a directory' % root)
        return [], current
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise HousekeepingError('%s: cannot be read (%s)' % (root, exc.strerror or exc))
    current = resolve(current if current is not None else os.path.join(root, 'current'))
    entries = []
    for name in names:
        path = os.path.join(root, name)
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            entries.append({'name': name, 'mtime': os.stat(path).st_mtime})
        except OSError as exc:
            raise HousekeepingError('%s: cannot be read (%s)' % (path, exc.strerror or exc))
    return entries, current


def versioned(kind, root, entries, current, keep, previous=None):
    """(findings, cleanup) of a directory of versions: those beyond keep-N, never the current or previous one.

    entries: [{name, mtime}] (newest by mtime is the most recent); current: the name in use (None: unknown ->
    nothing is cleaned and the finding says why); keep: how many versions to keep (>= 2: current and previous).
    """
    if kind not in KINDS:
        raise HousekeepingError('housekeeping.versions: kind %r is not one of %s' % (kind, ', '.join(KINDS)))
    try:
        keep = int(keep)
    except (TypeError, ValueError):
        raise HousekeepingError('housekeeping.versions[%s].keep: %r is not a number' % (root, keep))
    if keep < 2:
        raise HousekeepingError('housekeeping.versions[%s].keep: %d would remove the previous version (rollback) - '
                                'at least 2' % (root, keep))
    label = {'model': 'model versions', 'litellm_venv': 'LiteLLM virtualenvs', 'engine_venv': 'engine virtualenvs'}[kind]
    names = [e['name'] for e in sorted(entries, key=lambda e: (-float(e['mtime']), e['name']))]
    if len(names) <= keep:
        return [], []
    if current is None or current not in names:
        return [finding('old ' + label, 'housekeeping', 'unknown', '%s: %d versions, the current one cannot be told'
                        % (root, len(names)))], []
    if previous is None:
        older = [n for n in names if n != current]
        previous = older[0] if older else None
    kept = [current] + ([previous] if previous else [])
    kept += [n for n in names if n not in kept][:max(keep - len(kept), 0)]
    remove = [n for n in reversed(names) if n not in kept]  # oldest first
    found = [finding('old ' + label, 'housekeeping', 'recommend', '%s: %d versions, keep is %d (current %s, previous %s)'
                     % (root, len(names), keep, current, previous), 'remove %s (cleaned in the window)' % ', '.join(remove))]
    cleanup = [{'kind': kind, 'path': os.path.join(root, n), 'reason': 'beyond keep=%d in %s' % (keep, root)} for n in remove]
    return found, cleanup


def images(images_list, used):
    """(findings, cleanup) of container images: unused ones are listed; per repository the newest unused one is kept.

    images_list: [{id, repository, tag, created}]; used: image ids or repository:tag references of containers.
    """
    if images_list is None or used is None:
        return [finding('unused container images', 'housekeeping', 'unknown',
                        'the container images or the containers using them cannot be read')], []
    used = set(str(u) for u in used)
    unused = [i for i in images_list if str(i.get('id')) not in used
              and '%s:%s' % (i.get('repository'), i.get('tag')) not in used]
    if not unused:
        return [], []
    by_repo = {}
    for image in sorted(unused, key=lambda i: str(i.get('created') or ''), reverse=True):
        by_repo.setdefault(image.get('repository'), []).append(image)
    remove = []
    for repo in sorted(by_repo, key=str):
        remove.extend(by_repo[repo][1:])  # the newest unused one is the previous version: kept for a rollback
    # one image under several tags: removing an older tag would remove the kept one's image too
    kept = set(str(by_repo[repo][0].get('id')) for repo in by_repo)
    remove = [i for i in remove if str(i.get('id')) not in kept]
    names = ['%s:%s' % (i.get('repository'), i.get('tag')) for i in unused]
    found = [finding('unused container images', 'housekeeping', 'recommend', '%d unused: %s' % (len(unused), ', '.join(names)),
                     'remove those older than the previous one per repository' if remove else
                     'keep them for now: each is the previous version of its repository')]
    cleanup = [{'kind': 'image', 'image': '%s:%s' % (i.get('repository'), i.get('tag')), 'id': i.get('id'),
                'reason': 'unused, older than the previous version'} for i in remove]
    return found, cleanup


def parse_image_ls(text):
    """`docker image ls --no-trunc --format '{{json .}}'` -> [{id, repository, tag, created}]; a line that is not such a
    record raises HousekeepingError (the list would be incomplete)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append({'id': row['ID'], 'repository': row['Repository'], 'tag': row['Tag'], 'created': row['CreatedAt']})
        except (ValueError, KeyError, TypeError) as exc:
            raise HousekeepingError('docker image ls, line %d is not an image record: %s' % (number, exc)) from exc
    return out


def read_images(runner):
    """(images, used) from the docker CLI: the images, and the image ids the containers (running or not) use.

    None when docker is not installed (no container images to look after); (None, None) when it is but cannot be
    read (the daemon down, no permission): unknown, never "nothing unused".
    """
    if not runner.which('docker'):
        return None
    try:
        images = runner.run('docker', 'image_ls', parse=lambda r: parse_image_ls(r.out))
        ids = runner.run('docker', 'container_ids', parse=lambda r: r.out.split())
        used = runner.run('docker', 'container_images ids', ids=ids, parse=lambda r: r.out.split()) if ids else []
    except OnpremError:
        return None, None
    return images, used


def journal_bytes(path='/var/log/journal'):
    """Bytes the journal holds under path (None when it cannot be read; 0 when there is no persistent journal)."""
    if not os.path.isdir(path):
        return 0
    total = 0
    for base, _dirs, files in os.walk(path, onerror=_raise):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                return None
    return total


def _raise(exc):
    raise exc


def disk_free(path):
    """Free bytes for unprivileged use on the filesystem of path (its nearest existing parent); None if unreadable."""
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe.rstrip('/'))
        if parent == probe:
            break
        probe = parent
    try:
        stat = os.statvfs(probe or '/')
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


# ----- tuning -----------------------------------------------------------------------------------------------------

def gpu_tuning(gpus):
    """Power limit and clocks against the GPU's defaults, one finding each that differs.

    gpus: [{index, power_limit_w, default_power_limit_w, max_power_limit_w, clocks_applications_graphics_mhz,
    clocks_default_applications_graphics_mhz, clocks_locked}] (keys missing: not checked; null: unknown).
    """
    out = []
    for gpu in gpus or []:
        if not isinstance(gpu, dict):
            raise HousekeepingError('gpus: each GPU is a mapping, got %s' % type(gpu).__name__)
        name = 'GPU %s' % gpu.get('index')
        if 'power_limit_w' in gpu or 'default_power_limit_w' in gpu:
            limit, default = gpu.get('power_limit_w'), gpu.get('default_power_limit_w')
            if limit is None or default is None:
                out.append(finding('power limit', 'tuning', 'unknown', '%s: the power limit cannot be read' % name))
            elif float(limit) < float(default) * 0.98:
                out.append(finding('power limit', 'tuning', 'recommend', '%s: power limit %.0f W below the default %.0f W'
                                   % (name, float(limit), float(default)),
                                   'restore the default (nvidia-smi -pl %.0f) unless the limit is a deliberate power budget'
                                   % float(default)))
            elif float(limit) > float(default) * 1.02:
                out.append(finding('power limit', 'tuning', 'recommend', '%s: power limit %.0f W above the default %.0f W'
                                   % (name, float(limit), float(default)),
                                   'check cooling and the rack power budget, or restore the default'))
        if 'clocks_applications_graphics_mhz' in gpu or 'clocks_locked' in gpu:
            app, default = gpu.get('clocks_applications_graphics_mhz'), gpu.get('clocks_default_applications_graphics_mhz')
            if gpu.get('clocks_locked'):
                out.append(finding('clocks', 'tuning', 'recommend', '%s: GPU clocks are locked' % name,
                                   'reset them (nvidia-smi -rgc) unless a benchmark needs them'))
            elif app is None or default is None:
                out.append(finding('clocks', 'tuning', 'unknown', '%s: the application clocks cannot be read' % name))
            elif int(app) != int(default):
                out.append(finding('clocks', 'tuning', 'recommend', '%s: application clocks %d MHz, default %d MHz'
                                   % (name, int(app), int(default)), 'reset them (nvidia-smi -rac)'))
    return out


# ----- what the host holds, for update_plan's housekeeping option -------------------------------------------------

def gather(spec, runner=None):
    """(checks, findings, cleanup) from the host: the versions directories, the journal, free disk, container images.

    spec: {versions: [{kind, path, current, previous, keep}] (current / previous: a name, or the path of a link
    to the version, as the roles keep them), journal_path, journal_max_bytes, disk: {path, needed_bytes},
    images: true (read with the docker CLI through runner where docker is installed)}.
    """
    if not isinstance(spec, dict):
        raise HousekeepingError('housekeeping: a mapping is needed, got %s' % type(spec).__name__)
    checks, found, cleanup = {}, [], []
    for index, item in enumerate(spec.get('versions') or []):
        if not isinstance(item, dict) or not item.get('path') or not item.get('kind'):
            raise HousekeepingError('housekeeping.versions[%d]: {kind, path, keep} is needed' % index)
        entries, current = read_versions(item['path'], item.get('current'))
        more, clean = versioned(item['kind'], item['path'], entries, current, item.get('keep', 3),
                                previous=resolve(item.get('previous')))
        found.extend(more)
        cleanup.extend(clean)
    if spec.get('journal_max_bytes') is not None:
        checks['journal_bytes'] = journal_bytes(spec.get('journal_path') or '/var/log/journal')
        checks['journal_max_bytes'] = spec['journal_max_bytes']
    disk = spec.get('disk')
    if isinstance(disk, dict) and disk.get('path'):
        checks['disk'] = {'path': disk['path'], 'free_bytes': disk_free(disk['path']),
                          'needed_bytes': disk.get('needed_bytes')}
    if spec.get('images'):
        if runner is None:
            raise HousekeepingError('housekeeping.images: no command runner to read the images with')
        read = read_images(runner)
        if read is not None:
            checks['images'] = {'images': read[0], 'used': read[1]}
    return checks, found, cleanup
