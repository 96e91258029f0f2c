#!/usr/bin/env python3
"""Markdown tables of scripts/bench-peers' results.

  peers_report.py RESULTS --size-mib N --files F

RESULTS has one tab-separated line per measurement: server, client, workload, outcome ("ok" or
why not), seconds, bytes, daemon CPU s, server CPU s, daemon peak RSS MiB, requests, bytes
received, bytes sent (by the server), requests by operation ("-" where not known), detail (what the workload printed:
the count of reads for "random"; "MAX_MS MEDIAN_MS PROBES" for "busy"). A workload measured in several rounds
(read) is shown by its median round. Prints, per server, the throughput table
(write-1M, write-4k, read), the small-file table (creates, ls, ls-warm, ls-remount), the read extras of issue 9
(random 4 KiB reads per second, 1 MiB append) and the stat/ls latency while writing, then one table of the goals of issues 8, 9 and 10
as ratios measured in this run, each marked met or missed.
"""
import argparse
import csv
import re

GIB = 1 << 30
CLIENTS = ["obsmount", "obsmount-wbc", "s3fs", "s3fs-tuned", "rclone-writes", "rclone-off", "curl", "awscli"]
CLIENT_LABELS = {
    "obsmount": "obsmount", "obsmount-wbc": "obsmount `-o writeback_cache`", "s3fs": "s3fs (defaults)", "s3fs-tuned": "s3fs tuned",
    "rclone-writes": "rclone, vfs-cache writes", "rclone-off": "rclone, vfs-cache off",
    "curl": "curl (one PUT / GET)", "awscli": "awscli `s3 cp`",
}
FIELDS = ["server", "client", "workload", "outcome", "seconds", "bytes", "daemon_cpu", "server_cpu", "rss",
          "requests", "bytes_in", "bytes_out", "operations", "detail"]


def load(path):
    with open(path, newline="") as handle:
        rows = [dict(zip(FIELDS, line)) for line in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    for row in rows:
        row["ok"] = row["outcome"] == "ok"
        for field in ("seconds", "bytes", "daemon_cpu", "server_cpu"):
            row[field] = float(row[field])
    return median_rounds(rows)


def median_rounds(rows):
    """One row per server, client and workload: a workload measured in several rounds (read)
    keeps its median round by time (the lower of the two middle ones for an even count) among
    those that succeeded, or its first row when none did."""
    groups = {}
    for row in rows:
        groups.setdefault((row["server"], row["client"], row["workload"]), []).append(row)
    kept = []
    for group in groups.values():
        succeeded = sorted((row for row in group if row["ok"]), key=lambda row: row["seconds"])
        kept.append(succeeded[(len(succeeded) - 1) // 2] if succeeded else group[0])
    return kept


def mbps(row):
    return row["bytes"] / row["seconds"] / 1e6 if row["ok"] and row["seconds"] > 0 else None


def per_gib(row, field):
    return row[field] / (row["bytes"] / GIB) if row["bytes"] else None


def number(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def requests(row, breakdown=False):
    if row["requests"] == "-":
        return "-"
    text = row["requests"]
    if breakdown and row["operations"] != "-":
        text += f" ({row['operations']})"
    return text


def mib(count, digits=0):
    return "-" if count == "-" else f"{int(count) / (1 << 20):.{digits}f}"


def outcome_cell(row, value):
    return value if row["ok"] else f"{row['outcome']}"


def ordered(rows, server, workload):
    found = {row["client"]: row for row in rows if row["server"] == server and row["workload"] == workload}
    return [found[client] for client in CLIENTS if client in found]


def workload_table(rows, server, labels, headers, cells):
    """Rows of the workloads in labels (workload → label), client by client: workload, client,
    seconds, then the columns named by headers, whose cells cells(row) gives."""
    lines = ["| workload | client | seconds | " + " | ".join(headers) + " |", "|---" * (3 + len(headers)) + "|"]
    for workload, label in labels.items():
        for row in ordered(rows, server, workload):
            lines.append(f"| {label} | {CLIENT_LABELS[row['client']]} | {outcome_cell(row, number(row['seconds']))} | "
                         + " | ".join(cells(row)) + " |")
    return lines


def throughput_table(rows, server, size_mib, small_mib):
    def cells(row):
        received = "-" if row["bytes_in"] == "-" else f"{requests(row)}, {mib(row['bytes_in'])}/{mib(row['bytes_out'])}"
        return [number(mbps(row), 0), number(per_gib(row, "daemon_cpu")), number(per_gib(row, "server_cpu")),
                row["rss"], received]

    labels = {"write-1M": f"write {size_mib} MiB, `dd bs=1M`", "write-4k": f"write {small_mib} MiB, `dd bs=4k`",
              "read": f"read {size_mib} MiB, `dd bs=1M`"}
    return workload_table(rows, server, labels, ["MB/s", "daemon CPU s/GiB", "server CPU s/GiB",
                                                 "daemon peak RSS MiB", "requests, MiB in/out"], cells)


def small_files_table(rows, server, files):
    def cells(row):
        rate = files / row["seconds"] if row["ok"] and row["seconds"] > 0 else None
        return [number(rate, 0), number(row["daemon_cpu"]), number(row["server_cpu"]), row["rss"],
                requests(row, breakdown=True)]

    labels = {"creates": f"{files} creates of 4 KiB", "ls": f"`ls -l` of {files} files, fresh mount",
              "ls-warm": f"`ls -l` of {files} files, warm", "ls-remount": f"`ls -l` of {files} files after a remount"}
    return workload_table(rows, server, labels, ["files/s", "daemon CPU s", "server CPU s", "daemon peak RSS MiB",
                                                 "requests (by operation)"], cells)


def extras_table(rows, server):
    by_workload = {workload: {row["client"]: row for row in ordered(rows, server, workload)}
                   for workload in ("random", "append", "busy")}
    lines = ["| client | random 4 KiB reads/s | random: requests, MiB sent by the server | append 1 MiB: seconds | append: MiB received by the server "
             "| append: requests (by operation) | busy: slowest stat/ls ms (median, count) | busy: daemon peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for client in CLIENTS:
        random_row, append_row, busy_row = (by_workload[workload].get(client) for workload in ("random", "append", "busy"))
        if not (random_row or append_row or busy_row):
            continue
        rate = random_traffic = seconds = received = count = busy = "-"
        if random_row:
            rate = outcome_cell(random_row, number(int(random_row["detail"]) / random_row["seconds"], 0)
                                if random_row["ok"] else None)
            if random_row["bytes_out"] != "-":
                random_traffic = f"{requests(random_row)}, {mib(random_row['bytes_out'])}"
        if append_row:
            seconds = outcome_cell(append_row, number(append_row["seconds"]))
            received = mib(append_row["bytes_in"], 2)
            count = requests(append_row, breakdown=True)
        if busy_row:
            slowest, median, probes = busy_row["detail"].split() if busy_row["ok"] else ("", "", "")
            busy = outcome_cell(busy_row, f"{slowest} ({median}, {probes})")
        lines.append(f"| {CLIENT_LABELS[client]} | {rate} | {random_traffic} | {seconds} | {received} | {count} | {busy} "
                     f"| {busy_row['rss'] if busy_row else '-'} |")
    return lines


def goals_table(rows, servers, files):
    def get(server, client, workload):
        for row in rows:
            if (row["server"], row["client"], row["workload"]) == (server, client, workload) and row["ok"]:
                return row
        return None

    def ratio(server, workload, client, other_workload, other_client):
        ours, theirs = get(server, client, workload), get(server, other_client, other_workload)
        return mbps(ours) / mbps(theirs) if ours and theirs else None

    lines = ["| server | goal (issue) | measured | target | |", "|---|---|---|---|---|"]

    def add(server, goal, value, target, at_least=True, unit="x"):
        if value is None:
            verdict, shown = "not measured", "-"
        else:
            verdict = "met" if (value >= target if at_least else value <= target) else "**missed**"
            shown = f"{value:.2f}{unit}"
        lines.append(f"| {server} | {goal} | {shown} | {'≥' if at_least else '≤'} {target}{unit} | {verdict} |")

    for server in servers:
        put_goal = 0.95 if server == "obs-local" else 0.90
        add(server, "write-1M: obsmount / curl PUT (10)", ratio(server, "write-1M", "obsmount", "write-1M", "curl"),
            put_goal)
        add(server, "write-1M: obsmount / s3fs tuned (10)",
            ratio(server, "write-1M", "obsmount", "write-1M", "s3fs-tuned"), 2.5)
        written = get(server, "obsmount", "write-1M")
        add(server, "write-1M: obsmount CPU s per GiB (10)", per_gib(written, "daemon_cpu") if written else None,
            1.0, at_least=False, unit=" s")
        add(server, "write-4k: obsmount `bs=4k` / obsmount `bs=1M` (10)",
            ratio(server, "write-4k", "obsmount", "write-1M", "obsmount"), 0.8)
        add(server, "write-4k: obsmount / s3fs tuned (10)",
            ratio(server, "write-4k", "obsmount", "write-4k", "s3fs-tuned"), 1.5)
        add(server, "write-4k: obsmount `-o writeback_cache` `bs=4k` / obsmount `bs=1M` (10)",
            ratio(server, "write-4k", "obsmount-wbc", "write-1M", "obsmount"), 0.8)
        add(server, "write-4k: obsmount `-o writeback_cache` / s3fs tuned (10)",
            ratio(server, "write-4k", "obsmount-wbc", "write-4k", "s3fs-tuned"), 1.5)
        add(server, "read: obsmount / curl GET (9, 10)", ratio(server, "read", "obsmount", "read", "curl"), 0.9)
        add(server, "read: obsmount / s3fs defaults (9)", ratio(server, "read", "obsmount", "read", "s3fs"), 1.5)
        ours, theirs = get(server, "obsmount", "creates"), get(server, "s3fs", "creates")
        add(server, "creates: obsmount / s3fs defaults, files per second (8)",
            theirs["seconds"] / ours["seconds"] if ours and theirs else None, 1.5)
        ours, theirs = get(server, "obsmount", "ls-warm"), get(server, "s3fs", "ls-warm")
        add(server, "`ls -l` warm: s3fs time / obsmount time (8)",
            theirs["seconds"] / ours["seconds"] if ours and theirs else None, 1.0)
        busy = get(server, "obsmount", "busy")
        add(server, "busy: obsmount's slowest `stat`/`ls` while 4 files are written, ms (10)",
            float(busy["detail"].split()[0]) if busy else None, 50, at_least=False, unit=" ms")
        listed = get(server, "obsmount", "ls-remount")
        if listed and listed["operations"] != "-":
            heads = re.search(r"\bHeadObject (\d+)", listed["operations"])
            add(server, "`ls -l` after a remount: HEAD requests per listed file (8: no HEAD per entry)",
                (int(heads.group(1)) if heads else 0) / files, 0.1, at_least=False, unit="")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--size-mib", type=int, required=True)
    parser.add_argument("--small-mib", type=int, required=True)
    parser.add_argument("--files", type=int, required=True)
    options = parser.parse_args()
    rows = load(options.results)
    servers = list(dict.fromkeys(row["server"] for row in rows))
    for server in servers:
        print(f"\n#### {server}\n")
        print("\n".join(throughput_table(rows, server, options.size_mib, options.small_mib)))
        print()
        print("\n".join(small_files_table(rows, server, options.files)))
        print()
        print("\n".join(extras_table(rows, server)))
    print("\n#### Goals (ratios of MB/s in this run unless said otherwise)\n")
    print("\n".join(goals_table(rows, servers, options.files)))


if __name__ == "__main__":
    main()
