#!/usr/bin/env python3
"""gateway.py — a small gateway embedding Switchboard through the Python binding.

The Python twin of examples/c-gateway/gateway.c: reads call events as JSON
lines on stdin (sb_submit_json's shape), hands each to the engine and prints
the actions it caused, one JSON object per line:

    {"type":"ring","account":"acme","call":"c1","agent":"alice",...,"timeout":20,"attempt":1}

A refused event prints {"error":{"code":...,"message":...,"field":...}} and
the gateway carries on; an event whose sync failed after it committed prints
its error ("sync: ...") and then its actions, as the event stands. Between
events it sleeps until the engine's next timer and fires it with tick(),
printing those actions too; a tick that fails is reported on stderr
("gateway: tick: ...") and tried again a second later. It exits at the end
of its input or on SIGINT/SIGTERM.

    usage: gateway.py --data-dir DIR [--policy-dir DIR] [--account ID]
                      [--sync group|sync|none]

    build/switchboard replay examples/c-gateway/setup.jsonl --data-dir /tmp/sb-gw
    python3 examples/python/gateway.py --data-dir /tmp/sb-gw --policy-dir policies \\
        < examples/c-gateway/calls.jsonl

The binding is found beside this file in the source tree (bindings/python)
or on PYTHONPATH; the library through SWITCHBOARD_LIB, the tree's build/ or
the system's library path.
"""

import argparse
import json
import os
import select
import signal
import sys
import time

# A tick that fails (a full or failing disk) leaves its timers due, and
# next_deadline() in the past: it is tried again this much later, not at once,
# or the loop would spin and print an error line after another.
TICK_RETRY_S = 1.0

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, os.pardir, "bindings", "python"))
import switchboard  # noqa: E402


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")


def handle_line(eng, account, line):
    line = line.strip()
    if not line or line.startswith(b"#"):
        return
    try:
        actions = eng.submit(account, line)
    except switchboard.SwitchboardError as e:
        emit({"error": {"code": e.name, "message": e.message, "field": e.field}})
        actions = e.actions  # an event whose sync failed after its commit stands
    for a in actions:
        emit(a)


def main():
    ap = argparse.ArgumentParser(description="Switchboard gateway example (Python)")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--policy-dir")
    ap.add_argument("--account", default="acme")
    ap.add_argument("--sync", default="group", choices=("group", "sync", "none"))
    args = ap.parse_args()

    # A signal sets stop and, through the wake-up pipe, ends the select below:
    # Python retries a select its signal handler interrupted, so the flag
    # alone would not be seen until input came or a timer was due.
    stop = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))

    try:
        eng = switchboard.Engine(args.data_dir, policy_dir=args.policy_dir, sync=args.sync,
                                 log_level="warn")
    except switchboard.SwitchboardError as e:
        # The engine's message alone, as the C and Go gateways print it.
        print("gateway: %s" % e.message, file=sys.stderr)
        return 1
    with eng:
        fd = sys.stdin.fileno()
        pending = b""
        retry_at = 0.0  # after a failed tick, the next not before this (ms)
        while not stop:
            # Sleep until input arrives or the next timer is due.
            due = eng.next_deadline()
            if due is not None:
                due = max(due, retry_at)
            timeout = None if due is None else max(0.0, due / 1000.0 - time.time())
            readable, _, _ = select.select([fd, wake_r], [], [], timeout)
            if stop:
                break
            if wake_r in readable:  # another signal: empty the pipe, carry on
                os.read(wake_r, 512)
            readable = [r for r in readable if r == fd]
            if due is not None and time.time() * 1000 >= due:
                try:
                    for a in eng.tick():
                        emit(a)
                except switchboard.SwitchboardError as e:
                    print("gateway: tick: %s" % e.message, file=sys.stderr, flush=True)
                    retry_at = (time.time() + TICK_RETRY_S) * 1000
                    for a in e.actions:  # the timers that did fire
                        emit(a)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:  # end of input; a last line without a newline counts
                    handle_line(eng, args.account, pending)
                    sys.stdout.flush()
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    handle_line(eng, args.account, line)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
