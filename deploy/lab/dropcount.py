#!/usr/bin/env python3
"""Print how many drops `svrd show stats --json` (on stdin) counts under REASON.

  svrd show stats --json | dropcount.py not-allowed

Accepts the shapes a stats document may take: {"drops": {"not-allowed": N}},
{"drops": [{"reason": "not-allowed", "packets": N}]}, or a flat key such as
"drops_not_allowed" / "notAllowed". Prints the sum of every match (0 if the reason is
absent); exits 1 when stdin is not JSON.
"""
import json
import re
import sys


def norm(s):
    return re.sub(r"[^a-z0-9]", "", str(s).lower())


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    want = norm(sys.argv[1])
    try:
        doc = json.load(sys.stdin)
    except ValueError as e:
        sys.stderr.write("dropcount: not JSON: %s\n" % e)
        return 1
    found = []

    def walk(o, key=""):
        if isinstance(o, dict):
            if norm(o.get("reason", "")) == want:
                for k in ("packets", "count", "value", "drops"):
                    if isinstance(o.get(k), int):
                        found.append(o[k])
                        return
            for k, v in o.items():
                walk(v, k)
        elif isinstance(o, list):
            for v in o:
                walk(v, key)
        elif isinstance(o, int) and not isinstance(o, bool):
            k = norm(key)
            if k in (want, "drops" + want, "drop" + want, want + "drops"):
                found.append(o)

    walk(doc)
    print(sum(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
