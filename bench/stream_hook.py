"""A bytestream reader: the cheapest useful CONN_NEW_DATA subscriber that
reads the stream.

Used to measure the cost of reassembly buffers (`rmem_size`,
`no_ring_buffers`): implementing ``mosfw_conn_new_data`` turns the
buffers on; every event peeks all readable bytes and counts them. With
``no_ring_buffers = 1`` (``-f bench/no_ring_buffers.conf``) the same
events come from the unbuffered rule and peek returns nothing, so the
difference between the two runs is what buffering costs.

    mosfw run -r CAPTURE -p bench/stream_hook.py [-f bench/no_ring_buffers.conf]
"""

import mosfw

stats = {"events": 0, "bytes": 0}


@mosfw.hookimpl
def mosfw_conn_new_data(flow, side):
    stats["events"] += 1
    stats["bytes"] += len(flow.peek(side))


@mosfw.hookimpl
def mosfw_core_finish(core):
    import sys

    api = core.api_stats()
    print(
        f"stream_hook: {stats['events']} events, {stats['bytes']} bytes peeked, "
        f"{api['buffers_allocated']} buffers, peak {api['buffers_peak']}, "
        f"{api['bursts_cut']} batches cut",
        file=sys.stderr,
    )
