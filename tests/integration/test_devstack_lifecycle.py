"""`eval "$(flowbus dev up)"; flowbus dev status; flowbus dev down` in a real shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from flowbus import devstack
from flowbus.settings import get_settings


def test_up_status_down_leaves_no_process(tmp_path):
    state_dir = tmp_path / "state"
    flowbus = shutil.which("flowbus") or str(Path(sys.executable).parent / "flowbus")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL")
    }
    env |= {"FLOWBUS_STATE_DIR": str(state_dir), "FLOWBUS_CACHE_DIR": str(get_settings().cache_dir)}
    script = f"""
set -e
eval "$({flowbus} dev up)"
echo "bootstrap=$KAFKA_BOOTSTRAP_SERVERS"
echo "registry=$SCHEMA_REGISTRY_URL"
{flowbus} dev status
eval "$({flowbus} dev up)"   # a second `up` reuses the running stack
{flowbus} dev status
"""
    stack = devstack.LocalStack(state_dir, get_settings().cache_dir)
    try:
        run = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        info = stack.info()
        assert info is not None
        assert f"bootstrap={info.bootstrap_servers}" in run.stdout
        assert f"registry={info.schema_registry_url}" in run.stdout
        assert run.stdout.count("up\n") == 4  # two status calls, two components each
        pids = sorted(stack.running_pids())
        assert pids == sorted([info.kafka.pid, info.registry.pid])
    finally:
        down = subprocess.run(
            [flowbus, "dev", "down"], env=env, capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0, down.stderr
    assert "stopped: registry" in down.stderr
    assert stack.running_pids() == []
    after = subprocess.run([flowbus, "dev", "status"], env=env, capture_output=True, timeout=60)
    assert after.returncode == 1
