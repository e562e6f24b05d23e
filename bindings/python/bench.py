#!/usr/bin/env python3
"""bench.py — call cycles per second through the Python binding.

The same workload as the C benchmark (tests/bench/bench_cycle.c, sync=none):
one queue of 50 available agents routed by the longest-idle Lua policy, each
call a full cycle — offer (ring decision), answered, hangup — each event its
own transaction, the engine's clock injected and moved 7 ms per call
(--system-clock: the system's, as a gateway runs; no Python callback). Prints
one line in bench_cycle's format, so the two can be read side by side:

    python3 bindings/python/bench.py [--cycles N] [--policy-dir DIR] [--sync MODE]
    build/tests/bench_cycle --cycles N --only none --no-scale

Run from anywhere; the binding and the library are found relative to this
file (SWITCHBOARD_LIB overrides the library).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import switchboard  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=50000)
    ap.add_argument("--policy-dir", default=os.path.join(HERE, os.pardir, os.pardir, "policies"))
    ap.add_argument("--sync", default="none", choices=("none", "group", "sync", "defer"))
    ap.add_argument("--system-clock", action="store_true",
                    help="run on the system clock instead of an injected one (as gateways "
                         "do; saves a Python callback per event)")
    args = ap.parse_args()

    now = [1767603600000]
    tmp = tempfile.mkdtemp(prefix="sb-pybench-")
    try:
        eng = switchboard.Engine(os.path.join(tmp, "data"), policy_dir=args.policy_dir,
                                 sync=args.sync,
                                 clock=None if args.system_clock else (lambda: now[0]),
                                 log_level="warn",
                                 map_size=512 << 20)
        eng.account_put({"id": "bench"})
        for i in range(50):
            eng.agent_put("bench", {"id": "a%d" % i,
                                    "devices": {"softphone": "sip:a%d@pbx.example" % i},
                                    "status": "available"})
        eng.queue_put("bench", {"id": "q", "policy": "longest-idle",
                                "members": [{"agent": "a%d" % i} for i in range(50)]})

        submit = eng.submit
        clock = time.perf_counter

        def run(prefix, n, lat):
            errors = 0
            t0 = clock()
            for i in range(n):
                call = "%s%d" % (prefix, i)
                now[0] += 7
                a = clock()
                actions = submit("bench", {"type": "offer", "call": call, "queue": "q",
                                           "caller": "+442079460000"})
                lat.append(clock() - a)
                agent = None
                for act in actions:
                    if act["type"] == "ring":
                        agent = act["agent"]
                        break
                if agent is None:
                    errors += 1
                    continue
                submit("bench", {"type": "ring_result", "call": call, "agent": agent,
                                 "outcome": "answered"})
                submit("bench", {"type": "hangup", "call": call})
            return n / (clock() - t0), errors

        run("w", min(1000, max(1, args.cycles // 10)), [])  # warm up
        now[0] += 100000
        lat = []
        rate, errors = run("c", args.cycles, lat)
        lat.sort()
        print("%-34s %9.0f cycles/s   offer p50 %6.1f us   p99 %6.1f us   errors %d" % (
            "python sync=%s%s (%d cycles)" % (args.sync, ", system clock" if args.system_clock
                                              else "", args.cycles), rate,
            lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6, errors))
        eng.close()
        return 1 if errors else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
