# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The options shared by the collection's modules; their argument spec is
    # plugins/module_utils/_module.py's STATE_DIR_SPEC / PACKAGE_SPEC (one source for both).
    STATE_DIR = r'''
options:
  state_dir:
    description:
      - Where the collection keeps its per-node records (previous versions, manifests, drained state).
      - Files holding secrets under it are written with mode C(0600).
    type: path
    default: /var/lib/onprem_ai
'''

    PACKAGES = r'''
options:
  update_cache:
    description:
      - Refresh the package manager's metadata (C(apt-get update) / C(dnf makecache)) before reading versions.
    type: bool
    default: false
'''
