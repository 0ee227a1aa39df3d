#!/usr/bin/env python3
"""Rewrite proto3 `optional` fields as one-field oneofs, for protoc-c.

protoc-c 1.4 (Debian 12) refuses proto3 `optional`. On the wire and in
meaning, `optional T name = N;` is exactly `oneof has_name { T name = N; }`
(protoc itself implements `optional` as such a synthetic oneof), and
protobuf-c supports oneofs with presence. So the build generates C from
this rewritten copy of proto/nebula.proto, which stays the one contract.

Usage: optional_as_oneof.py IN.proto OUT.proto
"""
import re
import sys

FIELD = re.compile(r"^(\s*)optional\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;(.*)$")


def main(src, dst):
    out = []
    with open(src, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            code = line.split("//", 1)[0]
            if re.search(r"\boptional\b", code):
                m = FIELD.match(line.rstrip("\n"))
                if not m:
                    sys.exit(f"{src}:{lineno}: an optional field this script cannot rewrite")
                indent, typ, name, num, rest = m.groups()
                line = f"{indent}oneof has_{name} {{ {typ} {name} = {num}; }}{rest}\n"
            out.append(line)
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
