# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rolling filters: LiteLLM deployments through HAProxy backends, HAProxy stats, the rollout summary."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem_ai.maintenance.plugins.filter.rolling import (
    haproxy_out_of_routing, haproxy_response_delta, haproxy_servers, litellm_haproxy_layout, litellm_haproxy_targets, rollout_record,
    rollout_summary)


def deployment(node, model='llama', key='os.environ/VLLM_KEY', base=None):
    return {'model_name': model,
            'litellm_params': {'model': 'openai/' + model, 'api_base': base or 'http://%s:8000/v1' % node, 'api_key': key},
            'model_info': {'id': node}}


def test_one_backend_per_model_group_and_litellm_points_at_it():
    layout = litellm_haproxy_layout([deployment('gpu-1'), deployment('gpu-2'), deployment('gpu-3', model='qwen')])
    assert [(b['name'], b['port'], [s['name'] for s in b['servers']]) for b in layout['backends']] == [
        ('model_llama', 4100, ['gpu-1', 'gpu-2']), ('model_qwen', 4101, ['gpu-3'])]
    assert layout['backends'][0]['servers'][0]['address'] == 'gpu-1' and layout['backends'][0]['servers'][0]['port'] == 8000
    assert layout['deployments'] == [
        {'model_name': 'llama', 'model_info': {'id': 'model_llama'},
         'litellm_params': {'model': 'openai/llama', 'api_base': 'http://127.0.0.1:4100/v1', 'api_key': 'os.environ/VLLM_KEY'}},
        {'model_name': 'qwen', 'model_info': {'id': 'model_qwen'},
         'litellm_params': {'model': 'openai/qwen', 'api_base': 'http://127.0.0.1:4101/v1', 'api_key': 'os.environ/VLLM_KEY'}}]


def test_ports_follow_sorted_groups_not_inventory_order():
    first = litellm_haproxy_layout([deployment('a', model='zeta'), deployment('b', model='alpha')])
    assert [(b['name'], b['port']) for b in first['backends']] == [('model_zeta', 4101), ('model_alpha', 4100)]


def test_different_params_make_separate_backends_and_https_is_left_alone():
    cloud = deployment('cloud', base='https://api.example.com/v1')
    layout = litellm_haproxy_layout([deployment('gpu-1'), deployment('gpu-2', key='os.environ/OTHER'), cloud], port_base=5000)
    assert sorted(b['name'] for b in layout['backends']) == ['model_llama', 'model_llama_2']
    assert cloud in layout['deployments'] and len(layout['deployments']) == 3


def test_weights_per_server_and_bad_weight_refused():
    layout = litellm_haproxy_layout([deployment('gpu-1'), deployment('gpu-2')], weights={'gpu-2': 10})
    assert [s['weight'] for s in layout['backends'][0]['servers']] == [100, 10]
    with pytest.raises(AnsibleFilterError, match='0 to 256'):
        litellm_haproxy_layout([deployment('gpu-1')], weights={'gpu-1': 300})


def test_duplicate_server_names_refused():
    with pytest.raises(AnsibleFilterError, match='distinct'):
        litellm_haproxy_layout([deployment('gpu-1'), deployment('gpu-1', base='http://other:8000/v1')])


@pytest.mark.parametrize('selector', ['gpu-2', 'http://gpu-2:8000/v1', 'llama@http://gpu-2:8000/v1'])
def test_targets_by_id_api_base_or_label(selector):
    layout = litellm_haproxy_layout([deployment('gpu-1'), deployment('gpu-2'), deployment('gpu-2', model='qwen')])
    assert litellm_haproxy_targets(layout, [selector]) in (
        [{'backend': 'model_llama', 'server': 'gpu-2'}, {'backend': 'model_qwen', 'server': 'gpu-2'}],
        [{'backend': 'model_llama', 'server': 'gpu-2'}])
    assert litellm_haproxy_targets(layout, ['gpu-9']) == []


# Shape of HAProxy 2.6 `show stat` (first columns; the stats page's ;csv is the same), trimmed by hand.
STATS = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight
litellm,FRONTEND,,,2,5,,,,,,,,,,,,OPEN,
model_llama,gpu-1,0,0,1,3,,9,,,,,,,,0,0,UP,100
model_llama,gpu-2,0,0,0,2,,7,,,,,,,,0,0,MAINT,100
model_llama,BACKEND,0,0,1,3,,16,,,,,,,,0,0,UP,100
"""


def test_stats_read_by_column_name():
    assert haproxy_servers(STATS) == [
        {'backend': 'model_llama', 'server': 'gpu-1', 'status': 'UP', 'sessions': 1, 'weight': 100},
        {'backend': 'model_llama', 'server': 'gpu-2', 'status': 'MAINT', 'sessions': 0, 'weight': 100}]
    with pytest.raises(AnsibleFilterError):
        haproxy_servers('<html>not csv</html>')


def test_out_of_routing_fails_safe():
    assert haproxy_out_of_routing(STATS, [{'backend': 'model_llama', 'server': 'gpu-1'}]) is False
    assert haproxy_out_of_routing(STATS, [{'backend': 'model_llama', 'server': 'gpu-2'}]) is True
    assert haproxy_out_of_routing(STATS, [{'backend': 'model_llama', 'server': 'gpu-9'}]) is True  # not found: cannot tell
    assert haproxy_out_of_routing('', [{'backend': 'model_llama', 'server': 'gpu-1'}]) is True


COUNTERS = '# pxname,svname,status,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,\n'


def test_response_delta_of_the_servers_named():
    before = COUNTERS + 'm,FRONTEND,OPEN,0,50,0,1,0,0,\nm,gpu-1,UP,0,10,0,1,2,0,\nm,gpu-2,UP,0,20,0,0,0,0,\n'
    now = (COUNTERS + 'm,FRONTEND,OPEN,0,80,0,1,0,0,\nm,gpu-1,UP,0,17,1,3,7,1,\nm,gpu-2,UP,0,29,0,,x,0,\n'
           'm,gpu-3,UP,0,4,0,1,1,0,\nm,gpu-4,UP,0,9,0,9,9,0,\n')
    servers = ['m/gpu-1', 'm/gpu-2', 'm/gpu-3', 'm/gpu-9']
    # gpu-1 +7 errors of +16 responses; gpu-2: empty and non-numeric counters count 0; gpu-3 new: from 0
    assert haproxy_response_delta(now, before, servers, ['hrsp_5xx', 'hrsp_4xx']) == {'errors': 9, 'responses': 31}
    assert haproxy_response_delta(now, before, servers, ['hrsp_5xx']) == {'errors': 6, 'responses': 31}
    assert haproxy_response_delta('', before, servers, ['hrsp_5xx']) == {'errors': 0, 'responses': 0}
    with pytest.raises(AnsibleFilterError):
        haproxy_response_delta('<html>not csv</html>\n<p></p>\n', before, servers, ['hrsp_5xx'])


def driver(before, after, changed=True, reboot=False):
    return {'changed': changed, 'version': {'before': before, 'after': after}, 'reboot_required': reboot,
            'previous_version': before}


def test_summary_one_line_per_node():
    hostvars = {
        'n1': {'gpu_stack_driver': driver('550', '570'),
               'rollout_times': {'drain': 100.0, 'work': 102.0, 'upgraded': 106.0, 'warm': 110.0, 'undrained': 112.0}},
        'n2': {'gpu_stack_driver': driver('570', '570', changed=False)},
        'n3': {'gpu_stack_driver': driver('570', '570', changed=False), 'rollout_undrained_only': True},
        'n4': {'rollout_unreachable': True, 'rollout_phase': 'the drain and upgrade',
               'rollout_drained_on': ['gw1']},
        'n5': {'gpu_stack_driver': driver('550', '570'), 'gpu_stack_rolled_back': {}, 'rollout_drained_on': []},
        'n6': {'rollout_failed': True, 'rollout_error': 'x' * 300},
    }
    lines = rollout_summary(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'], hostvars)
    assert lines[0] == 'n1: 550 -> 570 (module reload), verified, drained 12.0 s for 8.0 s of its own work (x1.50)'
    assert lines[1] == 'n2: already on 570, not drained'
    assert lines[2] == 'n3: already on 570, put back into routing'
    assert lines[3] == 'n4: UNREACHABLE during the drain and upgrade (left drained on gw1)'
    assert lines[4] == 'n5: FAILED - 570 did not verify, rolled back to 550'
    assert lines[5].startswith('n6: FAILED - xxx') and len(lines[5]) == len('n6: FAILED - ') + 200
    assert lines[6] == 'n7: not reached, the rollout stopped'


def test_summary_in_check_mode():
    assert rollout_summary(['n1'], {'n1': {'gpu_stack_driver': driver('550', '570', reboot=True)}}, True) == [
        'n1: 550 -> 570 (reboot), check mode: nothing changed']


def test_summary_of_other_components_and_gates():
    change = {'component': 'os_update', 'name': 'openssl', 'from': '3.0.1', 'to': '3.0.2', 'security': True}
    hostvars = {
        'n1': {'rollout_todo': True, 'rollout_updated': ['onprem_ai.maintenance.os_update'],
               'rollout_changes': [change, dict(change, name='curl', security=False)],
               'rollout_times': {'drain': 0, 'work': 1, 'upgraded': 5, 'warm': 7, 'undrained': 9}},
        'n2': {'rollout_todo': False, 'rollout_changes': []},
        'n3': {'rollout_postponed': True, 'rollout_postponed_reason': 'the window closes in 10m'},
        'n4': {'rollout_todo': True, 'rollout_failed': True, 'rollout_error': 'validation: p99 too high',
               'rollout_updated': ['onprem_ai.maintenance.model_server'],
               'rollout_rolled_back': ['onprem_ai.maintenance.model_server']},
        'n5': {'gpu_stack_driver': driver('550', '570'), 'rollout_todo': True,
               'rollout_updated': ['onprem_ai.maintenance.os_update', 'onprem_ai.maintenance.gpu_stack']},
    }
    lines = rollout_summary(['n1', 'n2', 'n3', 'n4', 'n5'], hostvars)
    assert lines[0] == ('n1: os_update (2 changes (1 security): openssl 3.0.1 -> 3.0.2, curl 3.0.1 -> 3.0.2), '
                        'verified, drained 9.0 s for 6.0 s of its own work (x1.50)')
    assert lines[1] == 'n2: nothing to do, not drained'
    assert lines[2] == 'n3: POSTPONED - the window closes in 10m'
    assert lines[3] == 'n4: FAILED - validation: p99 too high (rolled back: model_server)'
    assert lines[4] == 'n5: 550 -> 570 (module reload), verified; also updated os_update'
    assert rollout_summary(['n1'], {'n1': {'rollout_todo': True, 'rollout_changes': [change]}}, True) == [
        'n1: would update (1 change (1 security): openssl 3.0.1 -> 3.0.2), check mode: nothing changed']


def test_record():
    hostvars = {
        'n1': {'rollout_todo': True, 'rollout_updated': ['onprem_ai.maintenance.gpu_stack'],
               'rollout_times': {'drain': '1.5', 'bad': 'x'}},
        'n2': {'rollout_unreachable': True, 'rollout_phase': 'the drain and update', 'rollout_drained_on': ['gw']},
        'n3': {'rollout_todo': True, 'rollout_failed': True, 'rollout_error': 'boom',
               'rollout_rolled_back': ['onprem_ai.maintenance.gpu_stack']},
        'n4': {'rollout_postponed': True, 'rollout_postponed_reason': 'window'},
        'n5': {'rollout_todo': False},
    }
    record = rollout_record(['n1', 'n2', 'n3', 'n4', 'n5', 'n6'], hostvars)
    assert [entry['status'] for entry in record] == [
        'updated', 'unreachable', 'rolled_back', 'postponed', 'unchanged', 'not_reached']
    assert record[0]['updated'] == ['gpu_stack'] and record[0]['times'] == {'drain': 1.5}
    assert record[1]['phase'] == 'the drain and update' and record[1]['drained_on'] == ['gw']
    assert record[2]['error'] == 'boom' and record[2]['rolled_back'] == ['gpu_stack']
    assert record[3]['postponed_reason'] == 'window'
    with pytest.raises(AnsibleFilterError):
        rollout_record('n1', hostvars)
