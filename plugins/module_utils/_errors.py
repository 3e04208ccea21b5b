# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's one error hierarchy, and the one place where an error becomes fail_json.

module_utils raise a subclass of OnpremError (one per domain, each with an `error_kind` that tells
the operator what to do about it); a module's main() catches them and calls
`module.fail_json(**failure(exc, redact, name))` exactly once.

PRIVATE to the onprem_ai.maintenance collection: no compatibility promise for other users.
"""

from __future__ import annotations


class OnpremError(Exception):
    """Base of every error raised by this collection's module_utils.

    `error_kind` is a short machine-readable class of failure (e.g. `unreadable`, `busy`, `refused`,
    `corrupt`, `command`); `details` are extra keys for the failure result (they must hold no secret).
    """

    error_kind = 'error'

    def __init__(self, msg, error_kind=None, changed=None, **details):
        super().__init__(msg)
        self.msg = str(msg)
        if error_kind:
            self.error_kind = error_kind
        self.changed = changed
        self.details = details


def failure(exc, redact=None, name='this module'):
    """The keyword arguments of the one `module.fail_json(**failure(exc, ...))` in a module's main().

    An OnpremError gives its message, `error_kind` and details; any other exception gives its type and
    message as an unexpected error - never a traceback, which could quote a header, a URL or a key.
    `redact(text)` masks secrets in the message before it leaves the module.
    """
    def clean(text):
        return redact(text) if redact else str(text)

    if isinstance(exc, OnpremError):
        result = dict(exc.details)
        result['error_kind'] = exc.error_kind
        if exc.changed is not None:
            result['changed'] = exc.changed
        result['msg'] = clean(exc.msg)
        return result
    return dict(msg=clean('%s failed unexpectedly: %s: %s (please report it)' % (name, type(exc).__name__, exc)),
                error_kind='internal')
