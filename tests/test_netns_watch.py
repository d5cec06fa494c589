"""dataplane.netns.NamespaceWatch: a named namespace added or deleted is noticed (the agent
then looks at its routers' namespace identities), and nothing is reported without one."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from floatip.dataplane.netns import NamespaceWatch

pytestmark = pytest.mark.kernel


def test_a_namespace_added_or_deleted_is_noticed():
    ns = f"fnw-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", f"{ns}-0"], check=True)  # /run/netns exists
    w = NamespaceWatch()
    try:
        assert w.changed()          # the first look: nothing known yet
        assert not w.changed()
        subprocess.run(["ip", "netns", "add", ns], check=True)
        assert w.changed()
        assert not w.changed()
        subprocess.run(["ip", "netns", "del", ns], check=True)
        assert w.changed()
        assert not w.changed()
    finally:
        w.close()
        for name in (ns, f"{ns}-0"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
