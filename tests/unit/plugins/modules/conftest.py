# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Modules run here as they run on a node, whatever controller code other tests imported."""

from __future__ import annotations

import pytest

from ansible.module_utils import _internal
from ansible.module_utils.common import warnings


@pytest.fixture(autouse=True)
def module_side(monkeypatch):
    # Importing controller code (a filter plugin's test imports ansible.errors) marks the process as
    # the controller, and from then on AnsibleModule.warn() goes to the controller's display instead
    # of the module's result: tests that check a module's warnings would depend on the test order.
    monkeypatch.setattr(_internal, 'is_controller', False)
    # A module process starts with no warnings; in one test process ansible-core's global warning list
    # would carry one test's warnings into the next module run's result.
    monkeypatch.setattr(warnings, '_global_warnings', {})
    monkeypatch.setattr(warnings, '_global_deprecations', {})
