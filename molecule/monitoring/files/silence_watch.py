# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LAB: watch Alertmanager's silences while a maintenance run goes on. Every 0.5 s GET /api/v2/silences and keep each
silence's id, matchers, comment and every state it was seen in; write them as JSON to OUT on every change. Ends when
the file STOP exists or after SECONDS (bounded).

    silence_watch.py URL OUT STOP SECONDS
"""

import json
import os
import sys
import time
import urllib.request


def main():
    url, out, stop, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    seen = {}
    deadline = time.time() + seconds
    while time.time() < deadline and not os.path.exists(stop):
        try:
            with urllib.request.urlopen(url.rstrip('/') + '/api/v2/silences', timeout=5) as response:
                silences = json.loads(response.read())
        except (OSError, ValueError):
            silences = []
        changed = False
        for s in silences:
            entry = seen.setdefault(s['id'], {'id': s['id'], 'comment': s.get('comment'), 'states': [],
                                              'matchers': s.get('matchers')})
            if s['status']['state'] not in entry['states']:
                entry['states'].append(s['status']['state'])
                changed = True
        if changed or not os.path.exists(out):
            with open(out + '.tmp', 'w') as handle:
                json.dump(sorted(seen.values(), key=lambda e: e['id']), handle, indent=2)
            os.replace(out + '.tmp', out)
        time.sleep(0.5)


if __name__ == '__main__':
    main()
