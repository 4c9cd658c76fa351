"""``torch_threads`` under concurrent use: each thread's count is its own and comes back."""

from __future__ import annotations

import threading

import torch

from kgrec.coldstart.inference import torch_threads


def test_a_thread_inside_torch_threads_leaves_other_threads_alone() -> None:
    before = torch.get_num_threads()
    outer = 1 if before != 1 else 2
    torch.set_num_threads(outer)
    inside, done = threading.Event(), threading.Event()
    seen: list[int] = []

    def other() -> None:
        torch.get_num_threads()   # this thread has used torch before the other one's context
        with torch_threads(3):
            seen.append(torch.get_num_threads())
            inside.set()
            done.wait(10)
        seen.append(torch.get_num_threads())

    try:
        t = threading.Thread(target=other)
        t.start()
        inside.wait(10)
        assert torch.get_num_threads() == outer     # not changed under this thread
        with torch_threads(outer):                 # already the count: nothing is set
            assert torch.get_num_threads() == outer
        done.set()
        t.join(10)
        assert seen == [3, outer]
        assert torch.get_num_threads() == outer
        with torch_threads(None):
            assert torch.get_num_threads() == outer
    finally:
        torch.set_num_threads(before)
