"""Child processes in their own process group, ended as a whole: the one copy for the e2e harness
and the benchmarks (bench/load.py imports it). Standard library only.

- `die_with_parent`: a `preexec_fn` that has the kernel SIGKILL the child when its parent dies.
- `kill_group(proc)`: SIGTERM the child's group, SIGKILL whatever lingers, reap the child.

A child started with `start_new_session=True` leads its own group, which holds only what we
started, so ending the group by the child's pid ends nothing else.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

_PR_SET_PDEATHSIG = 1
try:
    # Looked up here, not in the child: dlopen after fork can deadlock on a lock held by another thread.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux/glibc: the process group kill still applies
    _prctl = None


def die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the parent dies (even by SIGKILL)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def kill_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers; reaps the child."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # Kill whatever is left in the group (the child itself, or anything it spawned).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
