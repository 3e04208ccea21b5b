# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write a maintenance calendar whose weekly window opened an hour ago (UTC, today's weekday) and lasts four hours.

For `make demo` only: the lab's monthly run (playbooks/site.yml) refuses to start outside a maintenance window, and
the demo runs whenever someone types it. A site's calendar is its own (docs/windows.md).

    python3 tools/lab-window-now.py OUT.json      (OUT.json: {"maintenance_calendar": {...}}, for -e @OUT.json)
"""

from __future__ import annotations

import datetime
import json
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: lab-window-now.py OUT.json')
    opened = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    calendar = {'timezone': 'UTC', 'windows': [{
        'name': 'lab-demo', 'frequency': 'weekly', 'weekday': opened.strftime('%A').lower(),
        'start': opened.strftime('%H:%M'), 'duration': '4h'}]}
    os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
    with open(sys.argv[1], 'w', encoding='utf-8') as out:
        json.dump({'maintenance_calendar': calendar}, out, indent=2)


if __name__ == '__main__':
    main()
