# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proactive maintenance (issue 17): drift, housekeeping, tuning; cases in test_housekeeping.yaml."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _housekeeping as hk
from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _plan as plan

HERE = os.path.dirname(__file__)
with open(os.path.join(HERE, 'test_housekeeping.yaml'), encoding='utf-8') as _handle:
    CASES = yaml.safe_load(_handle)


def _pairs(found):
    return [[f['check'], f['status']] for f in found]


@pytest.mark.parametrize('case', CASES['versioned'], ids=lambda c: c['id'])
def test_versioned(case):
    found, cleanup = hk.versioned(case['kind'], '/srv/x', case['entries'], case['current'], case['keep'],
                                  previous=case.get('previous'))
    assert _pairs(found) == case['findings']
    assert [os.path.basename(c['path']) for c in cleanup] == case['cleanup']
    assert case['current'] not in [os.path.basename(c['path']) for c in cleanup]
    assert all(f['recommendation'] for f in found if f['status'] == 'recommend')


@pytest.mark.parametrize('case', CASES['versioned_errors'], ids=lambda c: c['id'])
def test_versioned_errors(case):
    with pytest.raises(hk.HousekeepingError, match=case['match']):
        hk.versioned(case['kind'], '/srv/x', [{'name': 'a', 'mtime': 1}], 'a', case['keep'])


@pytest.mark.parametrize('case', CASES['images'], ids=lambda c: c['id'])
def test_images(case):
    found, cleanup = hk.images(case['images'], case['used'])
    assert _pairs(found) == case['findings']
    assert [c['image'] for c in cleanup] == case['cleanup']


@pytest.mark.parametrize('case', CASES['gpu_tuning'], ids=lambda c: c['id'])
def test_gpu_tuning(case):
    found = hk.gpu_tuning(case['gpus'])
    assert _pairs(found) == case['findings']
    assert all(f['category'] == 'tuning' and (f['recommendation'] or f['status'] == 'unknown') for f in found)


@pytest.mark.parametrize('case', CASES['drift'], ids=lambda c: c['id'])
def test_drift(case):
    found = hk.drift(case['results'])
    assert _pairs(found) == case['findings']


def test_drift_names_the_file_and_the_role():
    found = hk.drift(CASES['drift'][1]['results'])
    assert found[0]['finding'] == 'litellm_gateway: config differs from the declared state (/etc/litellm/config.yaml)'
    assert found[0]['recommendation'] == 'corrected in the window by the normal run (litellm_gateway)'
    with pytest.raises(hk.HousekeepingError):
        hk.drift({'role': 'x'})
    with pytest.raises(hk.HousekeepingError):
        hk.drift([{'changed': True}])


def test_read_versions_and_gather(tmp_path):
    root = tmp_path / 'models' / 'llama'
    for index, name in enumerate(['r1', 'r2', 'r3', 'r4']):
        (root / name).mkdir(parents=True)
        os.utime(root / name, (index, index))
    os.symlink('r4', root / 'current')
    (root / 'README').write_text('not a version')
    entries, current = hk.read_versions(str(root))
    assert current == 'r4' and sorted(e['name'] for e in entries) == ['r1', 'r2', 'r3', 'r4']
    assert hk.read_versions(str(tmp_path / 'missing')) == ([], None)
    journal = tmp_path / 'journal' / 'abc'
    journal.mkdir(parents=True)
    (journal / 'system.journal').write_bytes(b'x' * 4096)
    checks, found, cleanup = hk.gather({
        'versions': [{'kind': 'model', 'path': str(root), 'keep': 2}],
        'journal_path': str(tmp_path / 'journal'), 'journal_max_bytes': 1024,
        'disk': {'path': str(root / 'not-yet'), 'needed_bytes': 1 << 60}})
    assert [os.path.basename(c['path']) for c in cleanup] == ['r1', 'r2']
    assert _pairs(found) == [['old model versions', 'recommend']]
    assert checks['journal_bytes'] == 4096 and checks['disk']['free_bytes'] > 0
    # the plan turns the gathered values into the journal and free-disk findings
    assert [f['check'] for f in plan.recommendations(checks)] == ['free disk', 'journal size']
    with pytest.raises(hk.HousekeepingError):
        hk.gather({'versions': [{'path': str(root)}]})
    with pytest.raises(hk.HousekeepingError):
        hk.gather([])


def test_plan_carries_drift_images_tuning_and_cleanup():
    checks = {'drift': CASES['drift'][1]['results'], 'images': {'images': CASES['images'][1]['images'],
                                                                'used': CASES['images'][1]['used']},
              'gpu_power': CASES['gpu_tuning'][1]['gpus'], 'journal_bytes': None, 'journal_max_bytes': 1}
    result = plan.plan([], checks=checks)
    assert [f['check'] for f in result['recommendations']] == [
        'journal size', 'configuration drift', 'configuration drift', 'unused container images', 'power limit', 'clocks']
    assert result['recommendations'][0]['status'] == 'unknown'
    assert [c['image'] for c in result['cleanup']] == ['lab/engine:1.0']
    assert plan.plan([])['cleanup'] == []


def test_os_update_advisory_ids_are_kept_with_their_severity():
    result = plan.plan([{'component': 'os_update', 'name': 'openssl', 'from': '3.0.7', 'to': '3.0.8', 'security': True,
                         'advisories': ['RHSA-2026:0001'], 'severity': 'Critical'}])
    assert result['changes'][0]['advisories'] == [{'id': 'RHSA-2026:0001', 'severity': 'critical'}]
    assert result['path'] == 'emergency'


def test_current_and_previous_given_as_links(tmp_path):
    venvs = tmp_path / 'litellm' / 'venvs'
    for index, name in enumerate(['1.60', '1.70', '1.80', '1.90']):
        (venvs / name).mkdir(parents=True)
        os.utime(venvs / name, (index, index))
    os.symlink(str(venvs / '1.70'), tmp_path / 'litellm' / 'current')
    os.symlink(str(venvs / '1.60'), tmp_path / 'litellm' / 'previous')
    _checks, found, cleanup = hk.gather({'versions': [{
        'kind': 'litellm_venv', 'path': str(venvs), 'current': str(tmp_path / 'litellm' / 'current'),
        'previous': str(tmp_path / 'litellm' / 'previous'), 'keep': 2}]})
    assert [os.path.basename(c['path']) for c in cleanup] == ['1.80', '1.90']
    assert 'current 1.70, previous 1.60' in found[0]['finding']
    _checks, found, cleanup = hk.gather({'versions': [{
        'kind': 'litellm_venv', 'path': str(venvs), 'current': str(tmp_path / 'no-link'), 'keep': 2}]})
    assert cleanup == [] and found[0]['status'] == 'unknown'
