#!/usr/bin/env python3
"""Which calls an op's self time comes from, read from a `bertfit train --profile-ops` trace.

ops.txt says how long `aten::copy_` took in all; this says under which ops: each event's self time
(its duration minus that of the events nested directly inside it on the same thread, as ops.txt
counts it) summed by its innermost DEPTH enclosing ops, e.g. for a bf16 run
    aten::_to_copy < aten::to < ToCopyBackward0          (gradients cast back to fp32)
    aten::_to_copy < aten::to < aten::linear             (autocast's casts of weights and inputs)

    python scripts/profile_parents.py DIR/trace.json aten::copy_ aten::fill_ [--depth 3] [--rows 8]
"""
import argparse
import collections
import json


def events(path):
    """The trace's complete CPU events, each with its enclosing op names and its self time (us)."""
    trace = json.load(open(path))
    evs = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") in ("cpu_op", "user_annotation")]
    # Per thread by start; of two events starting together the longer one encloses the other.
    evs.sort(key=lambda e: (e["tid"], e["ts"], -e["dur"]))
    stack, lane = [], None
    for e in evs:
        if e["tid"] != lane:
            stack, lane = [], e["tid"]
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
            stack.pop()
        e["parents"] = [s["name"] for s in stack]
        e["children_us"] = 0.0
        if stack:
            stack[-1]["children_us"] += e["dur"]
        stack.append(e)
    for e in evs:
        e["self_us"] = max(e["dur"] - e["children_us"], 0.0)
    return evs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace")
    p.add_argument("ops", nargs="+", help="op names, e.g. aten::copy_")
    p.add_argument("--depth", type=int, default=3, help="enclosing ops named per row")
    p.add_argument("--rows", type=int, default=8)
    args = p.parse_args()
    evs = events(args.trace)
    for op in args.ops:
        by_parents = collections.defaultdict(lambda: [0, 0.0])
        for e in evs:
            if e["name"] == op:
                key = " < ".join(reversed(e["parents"][-args.depth:])) or "(top level)"
                by_parents[key][0] += 1
                by_parents[key][1] += e["self_us"]
        total = sum(us for _, us in by_parents.values())
        print(f"## {op}: {total / 1e3:.1f} ms self")
        for key, (calls, us) in sorted(by_parents.items(), key=lambda kv: -kv[1][1])[: args.rows]:
            print(f"  {us / 1e3:10.1f} ms  {calls:6d} calls  {key}")


if __name__ == "__main__":
    main()
