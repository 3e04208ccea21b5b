# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's model source server (tests/lab/model_sources), loaded once for the module tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
_SPEC = importlib.util.spec_from_file_location('model_source_server', str(ROOT / 'tests' / 'lab' / 'model_sources' / 'model_source_server.py'))
mss = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mss)
