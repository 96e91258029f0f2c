#!/usr/bin/env python3
"""Ends what one script run started, and cleans its temporary directory.

A run marks every process it starts with the environment variable OBSMOUNT_RUN_TOKEN=<token>
(children inherit it, daemonized FUSE servers too). Two commands:

  reaper.py reap  --token T --dir D            (from the script's exit trap)
  reaper.py watch --token T --dir D --pid P    (a watchdog started beside the script)

`reap` sends SIGTERM to every process carrying the token (never itself nor its parent, the
script calling it), lazily unmounts FUSE mounts under D, sends SIGKILL to what is left after a
few seconds, and removes D. `watch` waits until process P is gone (however it ended, SIGKILL
included) and then reaps, so nothing outlives the run by more than about two seconds plus the
grace period. Run both without the token in their own environment.
"""
import argparse
import os
import signal
import subprocess
import time

TOKEN_VARIABLE = b"OBSMOUNT_RUN_TOKEN="
GRACE_SECONDS = 5.0


def marked_processes(token):
    """PIDs of processes whose environment carries the run token, other than this one and its parent."""
    wanted = TOKEN_VARIABLE + token.encode()
    spared = {os.getpid(), os.getppid()}
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if wanted in environ.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # gone meanwhile, or a kernel thread
            continue
    return pids


def signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def unescape_mount_field(field):
    """/proc/self/mountinfo writes space, tab, newline and backslash as \\ooo octal escapes."""
    out, i = bytearray(), 0
    raw = field.encode()
    while i < len(raw):
        if raw[i] == 0x5C and len(raw[i + 1:i + 4]) == 3 and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def fuse_mounts_under(directory):
    """FUSE mount points at or below directory, deepest first."""
    root = os.path.realpath(directory)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            before, _, after = line.partition(" - ")
            mount_point = unescape_mount_field(before.split()[4])
            fs_type = after.split()[0]
            if fs_type.startswith("fuse") and (mount_point == root or mount_point.startswith(root + "/")):
                found.append(mount_point)
    return sorted(found, key=len, reverse=True)


def unmount_all(directory):
    for mount_point in fuse_mounts_under(directory):
        for command in (["fusermount3", "-u", "-z", mount_point], ["umount", "-l", mount_point]):
            try:
                if subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  timeout=10).returncode == 0:
                    break
            except (OSError, subprocess.TimeoutExpired):
                continue


def reap(token, directory):
    pids = marked_processes(token)
    signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = marked_processes(token)
    if os.path.isdir(directory):
        unmount_all(directory)
    signal_all(marked_processes(token), signal.SIGKILL)
    if os.path.isdir(directory):
        unmount_all(directory)
        if not fuse_mounts_under(directory):
            subprocess.run(["rm", "-rf", "--one-file-system", directory], check=False)


def start_time(pid):
    """The process's start time in clock ticks, or None when it is gone (guards against PID reuse)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except OSError:
        return None


def watch(token, directory, pid):
    started = start_time(pid)
    while started is not None and start_time(pid) == started:
        time.sleep(1)
    reap(token, directory)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["reap", "watch"])
    parser.add_argument("--token", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    if len(args.token) < 16:
        parser.error("--token must be at least 16 characters")
    if args.command == "watch":
        if args.pid is None:
            parser.error("watch needs --pid")
        watch(args.token, args.dir, args.pid)
    else:
        reap(args.token, args.dir)


if __name__ == "__main__":
    main()
