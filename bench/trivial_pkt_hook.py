"""A trivial per-packet hook: the cheapest useful PKT_IN subscriber.

Used by bench/run_bench.py to measure the cost of delivering every packet
of every tracked flow to Python (`-p bench/trivial_pkt_hook.py`).
"""

import mosfw

count = 0


@mosfw.hookimpl
def mosfw_pkt_in(flow, event):
    global count
    count += 1
