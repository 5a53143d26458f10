#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Checks that the README's code samples marked as excerpts match the files they come from.

A sample is marked by a line `<!-- excerpt: PATH -->` right before its ``` fence (PATH from
the repository's root). Every line of the sample must appear in PATH, in the same order,
ignoring indentation; a line `...` (or `// ...`) stands for lines left out. So the samples
users read compile, because the file is built and run with the tests.

Usage: check-readme-samples.py [README] (default: the README.md beside scripts/)
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "README.md"
lines = readme.read_text().splitlines()
failures = []
samples = 0
i = 0
while i < len(lines):
    m = re.match(r"\s*<!-- excerpt: (\S+) -->\s*$", lines[i])
    if not m:
        i += 1
        continue
    path = root / m.group(1)
    if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
        failures.append(f"{readme.name}:{i + 1}: an excerpt marker not followed by a code fence")
        i += 1
        continue
    start = i + 2
    end = start
    while end < len(lines) and not lines[end].startswith("```"):
        end += 1
    samples += 1
    if not path.is_file():
        failures.append(f"{readme.name}:{i + 1}: {m.group(1)} does not exist")
        i = end + 1
        continue
    source = [l.strip() for l in path.read_text().splitlines()]
    at = 0
    for n in range(start, end):
        want = lines[n].strip()
        if want in ("", "...", "// ..."):
            continue
        try:
            at = source.index(want, at) + 1
        except ValueError:
            failures.append(f"{readme.name}:{n + 1}: not in {m.group(1)} (after its line {at}): {want}")
            break
    i = end + 1

for f in failures:
    print(f)
print(f"check-readme-samples: {samples} excerpts, {len(failures)} mismatches")
sys.exit(1 if failures or samples == 0 else 0)
