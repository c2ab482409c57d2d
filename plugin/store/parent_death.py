"""End a process the moment the process that started it dies.

``cardfile serve`` starts its workers and its index check as child
processes. After a ``kill -9`` of ``cardfile serve`` nothing else would
stop them: they would go on serving the data folder, or holding its storage
lock, beside the server started next. The kernel can signal a child when its
parent dies (``prctl(PR_SET_PDEATHSIG)``); this asks it to.

The signal is SIGKILL, not SIGTERM. A worker treats SIGTERM as "stop
gracefully": it finishes its running requests first, and one whose request
waited for the storage lock (held by a long ``cardfile import``) waited on,
holding the lock's turnstile, so the next server on the folder could not
start. A master killed outright is a crash; its children end as in one,
and every write is crash-safe on its own (``bench/crash_test.py``). A normal
stop never reaches this: the master stops its workers gracefully before it
exits.
"""

from __future__ import annotations

import ctypes
import os
import signal

#: prctl(2): the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def end_with(parent: int) -> None:
    """Be killed when ``parent`` dies; at once if it already has (it died while we started).

    Call it in the child, from the thread that will run it: Linux sends the
    signal when the *thread* that forked the child ends, and the check
    against ``parent`` covers a parent gone before the call.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
