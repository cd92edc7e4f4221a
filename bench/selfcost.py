#!/usr/bin/env python3
"""The functions with the most instructions of their own (not their callees') in a callgrind
output file, per request.

Reads the file directly: callgrind_annotate 3.19 reports inclusive costs for some files even
with --inclusive=no. In the format, a cost line after `calls=` is the call's inclusive cost and
belongs to the callee; every other cost line is the current function's own.

Usage: bench/selfcost.py <callgrind.out> <requests> [how many, default 15] [function]
With a function (a part of its name), lists who calls it instead, by the instructions the calls
cost (callees included).
"""

import collections
import re
import sys


def main():
    path, requests = sys.argv[1], int(sys.argv[2])
    shown = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    callee_wanted = sys.argv[4] if len(sys.argv) > 4 else None
    names, own, callers = {}, collections.Counter(), collections.Counter()
    function, callee, after_calls, total = None, None, False, 0
    with open(path, errors="replace") as lines:
        for line in lines:
            if line.startswith("fn="):
                match = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if match:
                    if match.group(2) is not None:
                        names[match.group(1)] = match.group(2)
                    function = names.get(match.group(1), match.group(1))
                else:
                    function = line[3:].strip()
            elif line.startswith("cfn="):
                # Names are compressed: the first mention, here or in `fn=`, defines the id.
                match = re.match(r"cfn=\((\d+)\) (.*)", line.rstrip("\n"))
                if match:
                    names[match.group(1)] = match.group(2)
                callee = names.get(re.match(r"cfn=\((\d+)\)", line).group(1)) if line.startswith("cfn=(") else None
            elif line.startswith("calls="):
                after_calls = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if after_calls:
                    after_calls = False
                    if callee_wanted and callee and callee_wanted in callee and len(fields) > 1:
                        callers[f"{function}  ->  {callee}"] += int(fields[1])
                elif len(fields) > 1 and function is not None:
                    cost = int(fields[1])
                    own[function] += cost
                    total += cost
    print(f"{total / requests:,.0f} instructions per request")
    if callee_wanted:
        print(f"callers of {callee_wanted}, per request:")
        for pair, cost in callers.most_common(shown):
            print(f"{cost / requests:10,.0f}  {pair[:220]}")
        return
    print("most instructions of their own, per request:")
    for function, cost in own.most_common(shown):
        print(f"{cost / requests:10,.0f}  {function[:120]}")


if __name__ == "__main__":
    main()
