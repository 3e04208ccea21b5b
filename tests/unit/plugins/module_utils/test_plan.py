# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plan's risk rules, advisories, postponing and downtime: cases in test_plan.yaml; versions and venvs below."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _plan as plan

HERE = os.path.dirname(__file__)
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..', '..'))
ADVISORIES = os.path.join(ROOT, 'tests', 'lab', 'advisories')
with open(os.path.join(HERE, 'test_plan.yaml'), encoding='utf-8') as _handle:
    CASES = yaml.safe_load(_handle)


def assert_subset(actual, expected, path='plan'):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), '%s: expected a mapping, got %r' % (path, actual)
        for key, value in expected.items():
            assert key in actual, '%s.%s missing in %r' % (path, key, actual)
            assert_subset(actual[key], value, '%s.%s' % (path, key))
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) >= len(expected), '%s: %r vs %r' % (path, actual, expected)
        if not expected:
            assert actual == [], '%s: expected empty, got %r' % (path, actual)
        for i, value in enumerate(expected):
            assert_subset(actual[i], value, '%s[%d]' % (path, i))
    else:
        assert actual == expected, '%s: %r != %r' % (path, actual, expected)


def records(names):
    out = []
    for item in names or []:
        if isinstance(item, dict):
            out.append(item)
        else:
            with open(os.path.join(ADVISORIES, item + '.json'), encoding='utf-8') as handle:
                out.append(json.load(handle))
    return out


def run(case):
    return plan.plan(case['changes'], advisories=case.get('advisories'), known_bad=case.get('known_bad'),
                     packages=case.get('packages'), osv=records(case.get('osv')),
                     strategy=case.get('strategy', 'rolling_gateway'), postpone=case.get('postpone'))


@pytest.mark.parametrize('case', CASES['plan'], ids=[c['id'] for c in CASES['plan']])
def test_plan(case):
    answer = run(case)
    assert_subset(answer, case['expect'])
    assert answer['summary']
    json.dumps(answer)  # a module result


@pytest.mark.parametrize('case', CASES['errors'], ids=[c['id'] for c in CASES['errors']])
def test_errors(case):
    with pytest.raises(plan.PlanError) as info:
        run(case)
    assert case['error'] in info.value.msg


@pytest.mark.parametrize('older,newer', [
    ('1.0', '1.0.1'), ('1.0.dev1', '1.0a1'), ('1.0a1', '1.0b1'), ('1.0b2', '1.0rc1'), ('1.0rc1', '1.0'),
    ('1.0', '1.0.post1'), ('1.0.post1', '1.1'), ('1!0.1', '2!0.0'), ('3.1.4', '3.1.5'), ('2.9', '2.10'),
    ('1.0.post1.dev1', '1.0.post1'),
])
def test_pep440_order(older, newer):
    assert plan.pep440_key(older) < plan.pep440_key(newer)


def test_pep440_equal_and_invalid():
    assert plan.pep440_key('1.0') == plan.pep440_key('1.0.0') == plan.pep440_key('v1.0+local.1')
    assert plan.pep440_key('not-a-version') is None and plan.pep440_key(None) is None


def test_lab_advisory_directory_reads_and_names_its_sources():
    found = plan.load_osv_dir(ADVISORIES)
    assert sorted(r['id'] for r in found) == ['GHSA-9wx4-h78v-vm56', 'GHSA-q2x7-8rv6-6q7h']
    with open(os.path.join(ADVISORIES, 'README.md'), encoding='utf-8') as handle:
        readme = handle.read()
    assert all(r['id'] in readme and 'github.com/advisories' in r['details'] for r in found)


def test_missing_and_broken_advisory_db(tmp_path):
    with pytest.raises(plan.PlanError, match='not "no vulnerability"'):
        plan.load_osv_dir(str(tmp_path / 'nope'))
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(plan.PlanError, match='bad.json cannot be read'):
        plan.load_osv_dir(str(tmp_path))


def make_venv(root, dists):
    site = root / 'lib' / 'python3.11' / 'site-packages'
    site.mkdir(parents=True)
    for name, version in dists:
        info = site / ('%s-%s.dist-info' % (name, version))
        info.mkdir()
        (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: %s\nVersion: %s\n\nBody: Version: 0\n' % (name, version))
    (site / 'broken.dist-info').mkdir()  # no METADATA: not a distribution
    return str(root)


def test_read_venv(tmp_path):
    venv = make_venv(tmp_path / 'venv', [('Jinja2', '3.1.4'), ('litellm', '1.108.7')])
    assert plan.read_venv(venv) == [{'name': 'Jinja2', 'version': '3.1.4', 'venv': venv},
                                    {'name': 'litellm', 'version': '1.108.7', 'venv': venv}]


def test_read_venv_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(plan.PlanError, match='not a virtualenv'):
        plan.read_venv(str(tmp_path))
    (tmp_path / 'lib' / 'python3.11' / 'site-packages').mkdir(parents=True)
    with pytest.raises(plan.PlanError, match='no installed distribution'):
        plan.read_venv(str(tmp_path))


def test_pip_list():
    text = json.dumps([{'name': 'requests', 'version': '2.31.0'}])
    assert plan.pip_list('/v', text) == [{'name': 'requests', 'version': '2.31.0', 'venv': '/v'}]
    with pytest.raises(plan.PlanError, match='pip list'):
        plan.pip_list('/v', '[{"name": "x"}]')
    with pytest.raises(plan.PlanError, match='not pip list'):
        plan.pip_list('/v', 'DEPRECATION: ...')


GPU_INFO = {
    'driver': {'mismatch': False, 'reload_or_reboot_required': True, 'reload_or_reboot_reason': 'installed 570.133.20, loaded 570.124.06'},
    'gpus': [{'index': 0, 'pci_bus_id': '00000000:1A:00.0', 'persistence_mode': 'Disabled', 'ecc_mode': 'Enabled',
              'ecc_pending_mode': 'Enabled'},
             {'index': 1, 'pci_bus_id': '00000000:2A:00.0', 'persistence_mode': 'Enabled', 'ecc_mode': 'Disabled',
              'ecc_pending_mode': 'Enabled'},
             {'index': 2, 'pci_bus_id': '00000000:3A:00.0', 'persistence_mode': None, 'ecc_mode': None}],
    'cuda_toolkits': [{'version': '12.4.1', 'default': False}, {'version': '12.8.1', 'default': True}],
}


def test_recommendations_one_each():
    found = plan.recommendations({
        'gpu_info': GPU_INFO, 'engine_gpu_memory_utilization': 0.98,
        'disk': {'path': '/srv/models', 'free_bytes': 20 << 30, 'needed_bytes': 19 << 30},
        'model_versions': {'llama': 5, 'qwen': 2}, 'keep': 3,
        'journal_bytes': 6 << 30, 'journal_max_bytes': 4 << 30,
        'gateway': {'timeout_s': 10, 'num_retries': 0}, 'engine_p99_ms': 8000})
    by = [(f['check'], f['status']) for f in found]
    assert by == [('driver loaded', 'recommend'), ('persistence mode', 'recommend'), ('ECC mode', 'recommend'),
                  ('ECC mode', 'recommend'), ('persistence mode', 'unknown'), ('ECC mode', 'unknown'),
                  ('CUDA toolkits', 'recommend'), ('engine GPU memory share', 'recommend'), ('free disk', 'recommend'),
                  ('old model versions', 'recommend'), ('journal size', 'recommend'), ('gateway timeout', 'recommend'),
                  ('gateway retries', 'recommend')]
    assert all(f['recommendation'] for f in found if f['status'] == 'recommend')
    assert found[6]['finding'] == 'installed besides the default 12.8.1: 12.4.1'
    assert found[9]['finding'] == 'llama: 5 versions kept, keep is 3'


def test_recommendations_quiet_when_all_is_well_and_unknown_when_unreadable():
    healthy = {'driver': {}, 'gpus': [{'index': 0, 'persistence_mode': 'Enabled', 'ecc_mode': 'Enabled',
                                       'ecc_pending_mode': 'Enabled'}], 'cuda_toolkits': [{'version': '12.8.1', 'default': True}]}
    assert plan.recommendations({'gpu_info': healthy, 'engine_gpu_memory_utilization': 0.9,
                                 'gateway': {'timeout_s': 600, 'num_retries': 2}, 'engine_p99_ms': 8000}) == []
    found = plan.recommendations({'engine_gpu_memory_utilization': None, 'disk': {'path': '/srv', 'free_bytes': None}})
    assert [f['status'] for f in found] == ['unknown', 'unknown']
    assert plan.plan([], checks={'gateway': {'num_retries': 9}})['recommendations'][0]['check'] == 'gateway retries'
    with pytest.raises(plan.PlanError):
        plan.recommendations(['x'])
