# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The monitoring role's alert rules, rendered with the role's defaults, checked and unit-tested by the real promtool
(Debian's `prometheus` package, installed on the test host by tools/ensure-host.sh): each alert fires when it should
and not before (test_monitoring_rules.yaml); the Prometheus and Alertmanager configurations render and pass
`promtool check config` and `amtool check-config`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / 'roles' / 'monitoring'
PROMTOOL = shutil.which('promtool')
AMTOOL = shutil.which('amtool')
pytestmark = pytest.mark.skipif(not PROMTOOL, reason='promtool missing: tools/ensure-host.sh installs prometheus')


def render(name, **extra):
    variables = yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())
    variables.update(yaml.safe_load((ROLE / 'vars' / 'main.yml').read_text()))
    variables.update(ansible_managed='managed by the test', **extra)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / 'templates')), undefined=jinja2.StrictUndefined)
    env.filters['bool'] = bool
    env.filters['to_nice_yaml'] = lambda value, indent=2: yaml.safe_dump(value, indent=indent, sort_keys=False)
    return env.get_template(name).render(**variables)


def promtool(*args, cwd):
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_rules_fire_as_tested(tmp_path):
    (tmp_path / 'onprem_ai.rules.yml').write_text(render('onprem_ai.rules.yml.j2'))
    shutil.copy(Path(__file__).with_suffix('.yaml'), tmp_path / 'tests.yml')
    checked = promtool('check', 'rules', 'onprem_ai.rules.yml', cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool('test', 'rules', 'tests.yml', cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_promised_alert_is_tested():
    rules = yaml.safe_load(render('onprem_ai.rules.yml.j2'))
    alerts = {r['alert'] for g in rules['groups'] for r in g['rules']}
    tested = {t['alertname'] for case in yaml.safe_load(Path(__file__).with_suffix('.yaml').read_text())['tests']
              for t in case['alert_rule_test']}
    assert {'NodeDown', 'InferenceErrorRateHigh', 'InferenceLatencyHigh', 'NvidiaDriverMismatch',
            'GpuUncorrectableEccErrors', 'GpuLost', 'BackupFailed', 'BackupStale', 'DrDrillOverdue'} <= tested <= alerts


def test_configurations_pass_their_checkers(tmp_path):
    hostvars = {h: {} for h in ('mon-1', 'gpu-1', 'gpu-2', 'gw-1')}
    groups = {'all': list(hostvars), 'monitoring': ['mon-1'], 'gpu_nodes': ['gpu-1', 'gpu-2'], 'gateways': ['gw-1']}
    extra = [{'job_name': 'extra', 'static_configs': [{'targets': ['x:1']}]}]
    text = render('prometheus.yml.j2', groups=groups, hostvars=hostvars, inventory_hostname='mon-1',
                  monitoring_node_exporter_hosts=groups['all'], monitoring_litellm_metrics=True,
                  monitoring_dcgm_exporter=True, monitoring_extra_scrape_configs=extra)
    config = yaml.safe_load(text)
    jobs = {job['job_name']: job for job in config['scrape_configs']}
    assert set(jobs) == {'prometheus', 'node', 'inference', 'litellm', 'dcgm', 'extra'}
    assert [c['targets'] for c in jobs['node']['static_configs']] == [['mon-1:9100'], ['gpu-1:9100'], ['gpu-2:9100'], ['gw-1:9100']]
    (tmp_path / 'prometheus.yml').write_text(text)
    checked = promtool('check', 'config', '--syntax-only', 'prometheus.yml', cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if AMTOOL:
        for url in ('', 'http://127.0.0.1:9/hook'):
            (tmp_path / 'alertmanager.yml').write_text(render('alertmanager.yml.j2', monitoring_alertmanager_webhook_url=url))
            am = subprocess.run([AMTOOL, 'check-config', 'alertmanager.yml'], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60, check=False)
            assert am.returncode == 0, am.stdout + am.stderr
