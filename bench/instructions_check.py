"""Compares instructions per request counted by `bench/instructions.sh` with a committed baseline.

    python3 bench/instructions_check.py BASELINE COUNTS

BASELINE holds `target instructions` lines (`#` starts a comment); COUNTS is the script's table
(`target requests instr/request`). Prints each target's count beside its baseline and fails
(exit 1) if one is more than 5 % above it, or was not counted.
"""

import sys

TOLERANCE = 0.05


def read_baseline(path):
    baseline = {}
    for line in open(path):
        line = line.split("#", 1)[0].split()
        if line:
            baseline[line[0]] = int(line[1])
    return baseline


def read_counts(path):
    counts = {}
    for line in open(path):
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            counts[fields[0]] = int(fields[2])
    return counts


def main():
    baseline = read_baseline(sys.argv[1])
    counts = read_counts(sys.argv[2])
    failed = []
    print(f"\n{'target':<16} {'baseline':>10} {'counted':>10} {'ratio':>7}")
    for target, expected in baseline.items():
        counted = counts.get(target)
        if counted is None:
            print(f"{target:<16} {expected:>10} {'-':>10}")
            failed.append(f"{target} was not counted")
            continue
        ratio = counted / expected
        print(f"{target:<16} {expected:>10} {counted:>10} {ratio:>7.3f}")
        if ratio > 1 + TOLERANCE:
            failed.append(
                f"{target}: {counted} instructions per request, {ratio - 1:.1%} above the "
                f"baseline of {expected} (at most {TOLERANCE:.0%} allowed)"
            )
        elif ratio < 1 - TOLERANCE:
            print(
                f"  {target} is {1 - ratio:.1%} below its baseline: lower it in {sys.argv[1]} "
                "to keep the gain"
            )
    if failed:
        print("\nthe request path got more expensive:", file=sys.stderr)
        for reason in failed:
            print(f"  {reason}", file=sys.stderr)
        print(
            f"If the cost is wanted, raise the baseline in {sys.argv[1]} in the same change and "
            "say why in BENCHMARKS.md.",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"every target within {TOLERANCE:.0%} of its baseline")


if __name__ == "__main__":
    main()
