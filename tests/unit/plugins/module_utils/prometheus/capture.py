# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Record answers of a real Prometheus' query_range API for test_prometheus.py (run by hand against the lab's
Prometheus of molecule/monitoring, published on 127.0.0.1:39090):

    python3 capture.py http://127.0.0.1:39090 .

Each file: {"query", "start", "end", "step", "http_status", "answer"} - the answer exactly as Prometheus sent it.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CASES = {
    'rate': 'sum(rate(vllm:request_success_total[1m]))',
    'up_sum': 'sum(up)',
    'up_series': 'up{job="node"}',
    'no_data': 'histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))',
    'nan': 'vector(0) / vector(0)',
    'bad_query': 'sum(rate(',
}


def main():
    base, out = sys.argv[1].rstrip('/'), sys.argv[2]
    end = time.time()
    start, step = end - 120, 5
    for name, query in CASES.items():
        url = '%s/api/v1/query_range?%s' % (base, urllib.parse.urlencode(
            dict(query=query, start='%.3f' % start, end='%.3f' % end, step=step)))
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        record = dict(query=query, start=start, end=end, step=step, http_status=status, answer=json.loads(body))
        with open(os.path.join(out, name + '.json'), 'w') as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.write('\n')


if __name__ == '__main__':
    main()
