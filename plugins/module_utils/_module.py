# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The AnsibleModule every module of the collection uses, and the argument specs of shared options.

The shared options are documented once in plugins/doc_fragments/common.py (STATE_DIR, PACKAGES).

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem_ai.maintenance.plugins.module_utils._state import DEFAULT_STATE_DIR
STATE_DIR_SPEC = dict(state_dir=dict(type='path', default=DEFAULT_STATE_DIR))
PACKAGE_SPEC = dict(update_cache=dict(type='bool', default=False))


def leaf_strings(value):
    """Every string in a value (nested dicts and lists), as given and stripped: what no_log must mask."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in leaf_strings(v)]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in leaf_strings(v)]
    if value is None or isinstance(value, bool) or not str(value).strip():
        return []
    return [str(value), str(value).strip()]


def _secret_options(spec):
    """Names of the no_log options of an argument spec, sub-options included."""
    names = []
    for name, option in (spec or {}).items():
        if option.get('no_log'):
            names.append(name)
        names.extend(_secret_options(option.get('options')))
    return names


class OnpremModule(AnsibleModule):
    """AnsibleModule with two gaps of ansible-core (2.19) closed for every module of the collection:

    - a malformed sub-option value (e.g. a list of dicts given as `false`) makes ansible-core drop every
      no_log value, and the failure would show the secret options in `invocation`: here the values of
      every no_log option (and of `extra_secrets(params)`) are masked whatever the failure;
    - an int option given as an infinite float (`timeout: .inf`) raises OverflowError out of the
      validation (a traceback), and a dict option with sub-options given a number, a boolean or a list
      raises TypeError: here both are clear failures.
    """

    def __init__(self, *args, **kwargs):
        spec = kwargs.get('argument_spec') or (args[0] if args else {})
        self._onprem_secret_options = _secret_options(spec)
        try:
            super().__init__(*args, **kwargs)
        except OverflowError:
            ints = sorted(name for name, option in spec.items() if option.get('type') == 'int')
            self.fail_json(msg='an integer option (%s) holds an infinite number: give a whole number' % ', '.join(ints),
                           error_kind='options')
        except TypeError as exc:
            dicts = sorted(name for name, option in spec.items() if option.get('options') and option.get('type') == 'dict')
            self.fail_json(msg='an option with sub-options (%s) is not a dictionary: %s' % (', '.join(dicts), exc),
                           error_kind='options')

    def extra_secrets(self, params):
        """Strings to mask besides the no_log options' values (e.g. credentials inside URLs); override."""
        return []

    def fail_json(self, msg, **kwargs):
        params = self.params if isinstance(getattr(self, 'params', None), dict) else {}
        for key in self._onprem_secret_options:
            self.no_log_values.update(leaf_strings(params.get(key)))
        self.no_log_values.update(s for s in self.extra_secrets(params) if isinstance(s, str) and s.strip())
        super().fail_json(msg, **kwargs)
