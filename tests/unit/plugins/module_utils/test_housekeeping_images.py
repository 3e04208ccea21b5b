# -*- coding: utf-8 -*-
# Copyright (c) onprem_ai.maintenance contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""update_plan's housekeeping of container images, read with the docker CLI (real captures of Docker 20.10.24 in
tests/unit/fixtures/docker/README.md): unused images listed, the newest unused one per repository kept as the
previous version, a docker that cannot be read is unknown, no docker is no check."""

from __future__ import annotations

import os

import pytest

from ansible_collections.onprem_ai.maintenance.plugins.module_utils import _housekeeping as housekeeping
from ansible_collections.onprem_ai.maintenance.plugins.module_utils._runner import Runner

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'docker')


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


class FakeModule(object):
    """docker as the captures show it; `fail` names a subcommand that fails, `missing` removes docker."""

    check_mode = True

    def __init__(self, images=None, containers=None, inspect=None, fail=None, missing=False):
        self.images = fixture('image-ls-20.10.24.jsonl') if images is None else images
        self.containers = fixture('container-ls-20.10.24.txt') if containers is None else containers
        self.inspect = fixture('container-inspect-image-20.10.24.txt') if inspect is None else inspect
        self.fail, self.missing, self.calls = fail, missing, []

    def get_bin_path(self, name, required=False):
        return None if self.missing or name != 'docker' else '/usr/bin/docker'

    def run_command(self, args, **kwargs):
        self.calls.append(args[1:])
        if args[1] == self.fail or (self.fail == 'inspect' and args[2] == 'inspect'):
            return 1, '', 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n'
        if args[1:3] == ['image', 'ls']:
            return 0, self.images, ''
        if args[2] == 'ls':
            return 0, self.containers, ''
        return 0, self.inspect, ''


def test_real_capture_parses():
    images = housekeeping.parse_image_ls(fixture('image-ls-20.10.24.jsonl'))
    assert len(images) == 3
    assert {(i['repository'], i['tag']) for i in images} == {
        ('onprem-ai-lab/node-prepared', '5e5ac0710a90'), ('onprem-ai-lab/node', 'bc74f9f35036'), ('onprem-ai-lab/node', 'latest')}
    assert all(i['id'].startswith('sha256:') and i['created'].endswith('UTC') for i in images)


def test_read_images_from_the_capture_and_the_finding():
    module = FakeModule()
    images, used = housekeeping.read_images(Runner(module))
    assert set(used) == {'sha256:44b88fd22084b12255d5417a7b01f114552883f3d4c3b6d3fadee75297fed15a'}
    # read only: image ls, container ls, container inspect of the three containers
    assert [c[:2] for c in module.calls] == [['image', 'ls'], ['container', 'ls'], ['container', 'inspect']]
    assert len(module.calls[2]) == 2 + 2 + 3
    found, cleanup = housekeeping.images(images, used)
    # node-prepared is unused, but the only one of its repository: the previous version, kept
    assert [f['status'] for f in found] == ['recommend'] and 'onprem-ai-lab/node-prepared:5e5ac0710a90' in found[0]['finding']
    assert cleanup == []


def test_no_container_uses_nothing_inspects_nothing():
    module = FakeModule(containers='')
    images, used = housekeeping.read_images(Runner(module))
    assert used == [] and len(images) == 3 and len(module.calls) == 2
    found, cleanup = housekeeping.images(images, used)
    # every image unused; node's two tags are one image id, the newest tag of the repository is kept, so the other
    # tag's image is the kept one's too: nothing to remove
    assert len(found) == 1 and '3 unused' in found[0]['finding'] and cleanup == []


def test_older_unused_image_of_a_repository_goes_to_cleanup():
    images = housekeeping.parse_image_ls(fixture('image-ls-20.10.24.jsonl'))
    # the capture's node image under an older id (a changed copy of its record: an earlier build)
    images.append(dict(images[1], id='sha256:' + '0' * 64, tag='older', created='2026-11-01 10:00:00 +0000 UTC'))
    found, cleanup = housekeeping.images(images, [])
    assert [c['image'] for c in cleanup] == ['onprem-ai-lab/node:older']


@pytest.mark.parametrize('fail', ['image', 'container', 'inspect'])
def test_docker_that_cannot_be_read_is_unknown(fail):
    assert housekeeping.read_images(Runner(FakeModule(fail=fail))) == (None, None)
    checks, found, cleanup = housekeeping.gather({'images': True}, Runner(FakeModule(fail=fail)))
    assert checks['images'] == {'images': None, 'used': None}
    found, cleanup = housekeeping.images(checks['images']['images'], checks['images']['used'])
    assert [f['status'] for f in found] == ['unknown'] and cleanup == []


def test_no_docker_no_image_check():
    checks, found, cleanup = housekeeping.gather({'images': True}, Runner(FakeModule(missing=True)))
    assert 'images' not in checks and found == [] and cleanup == []


@pytest.mark.parametrize('text', ['not json\n', '{"ID": "sha256:1"}\n', '[1, 2]\n'])
def test_unreadable_image_list_is_unknown(text):
    assert housekeeping.read_images(Runner(FakeModule(images=text))) == (None, None)
    with pytest.raises(housekeeping.HousekeepingError):
        housekeeping.parse_image_ls(text)


def test_images_without_a_runner_is_a_usage_error():
    with pytest.raises(housekeeping.HousekeepingError):
        housekeeping.gather({'images': True})
