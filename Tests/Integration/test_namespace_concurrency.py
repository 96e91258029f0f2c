"""Several processes hammer one directory of a mount (issue 8) with lookup, readdir, create,
unlink and rename over a small pool of names, for a bounded time; afterwards the listing through
the hammered mount, through a fresh mount and on the server are the same, every object's body is
what whole writes at offset 0 leave, and no upload is left over."""
import errno
import multiprocessing
import os
import random
import re
import time

from namespace_checks import assert_no_upload_left, server_body, server_objects, unique

WORKERS = 4
SECONDS = 15
NAMES = [f"n{index:02}" for index in range(24)]
# What a race between the workers may answer; anything else is a failure.
EXPECTED_ERRNOS = {errno.ENOENT, errno.EBUSY, errno.EEXIST}
LISTED_MISSING = "listed, but stat answers ENOENT"
BODY_LINE = re.compile(rb"(n\d\d) (\d) (\d{6})\n")


def body_of(name, worker, serial):
    """A body that says who wrote it, in lines of 13 bytes; from 13 bytes to 52 KB."""
    line = f"{name} {worker} {serial:06}\n".encode()
    return line * (serial * 37 % 4000 + 1)


def hammer(directory, worker, deadline, results):
    rng = random.Random(worker)
    counts, unexpected, serial = {}, [], 0
    while time.monotonic() < deadline:
        operation = rng.choice(["create", "create", "unlink", "rename", "listdir", "stat"])
        name, other = rng.choice(NAMES), rng.choice(NAMES)
        path = os.path.join(directory, name)
        try:
            if operation == "create":
                serial += 1
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, body_of(name, worker, serial))
                finally:
                    os.close(fd)
            elif operation == "unlink":
                os.unlink(path)
            elif operation == "rename":
                os.rename(path, os.path.join(directory, other))
            elif operation == "listdir":
                for listed in os.listdir(directory):
                    assert listed in NAMES, f"listed {listed!r}"
            else:
                os.stat(path)
            counts[operation] = counts.get(operation, 0) + 1
        except OSError as error:
            if error.errno not in EXPECTED_ERRNOS:
                unexpected.append(f"{operation} {name} {other}: {error!r}")
            counts[operation + " failed"] = counts.get(operation + " failed", 0) + 1
        except AssertionError as error:
            unexpected.append(str(error))
    results.put((worker, counts, unexpected))


def test_hammering_one_directory_leaves_listing_equal_to_server(mount, mount_factory):
    server = mount.server
    directory = mount.path / unique("hammer")
    directory.mkdir()
    prefix = directory.name + "/"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    deadline = time.monotonic() + SECONDS
    workers = [context.Process(target=hammer, args=(str(directory), worker, deadline, results)) for worker in range(WORKERS)]
    for process in workers:
        process.start()
    reports = [results.get(timeout=SECONDS + 120) for _ in workers]
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    unexpected = [line for _, _, lines in reports for line in lines]
    assert unexpected == [], "\n".join(unexpected[:20]) + "\n" + "\n".join(complaints(mount.log_text()))
    totals = {}
    for _, counts, _ in reports:
        for operation, count in counts.items():
            totals[operation] = totals.get(operation, 0) + count
    assert totals.get("create", 0) >= 20 and totals.get("rename", 0) >= 5 and totals.get("unlink", 0) >= 5, totals

    objects = server_objects(server, prefix)
    on_server = {name: item["Size"] for name, item in objects.items()}
    for name in on_server:
        body = server_body(server, prefix + name)
        assert overlay_problem(body) is None, (name, overlay_problem(body), body[:100])
    assert_no_upload_left(server, prefix)
    # No stale negative entry: a name the mount created is found by stat at once (a lookup's miss
    # racing a create or rename onto the name is not cached after it).
    assert sizes_listed(directory) == on_server

    mount.unmount()
    fresh = mount_factory(server)
    assert sizes_listed(fresh.path / directory.name) == on_server


def overlay_problem(body):
    """Why `body` is not what whole bodies written at offset 0 leave, or None. One writer's body
    usually; two creates with O_TRUNC of one name that both open before either writes share the
    file, as on a local disk, and the later write covers the start of the earlier, longer one
    (seen in CI: writer 3's 3,286 lines, then the rest of writer 2's 3,915)."""
    lines = body.splitlines(keepends=True)
    if not lines:
        return "empty"
    for index, line in enumerate(lines):
        match = BODY_LINE.fullmatch(line)
        if not match:
            return f"line {index} is {line[:20]!r}"
        if match[1] != lines[0][:3]:
            return f"line {index} names {match[1]!r}, line 0 {lines[0][:3]!r}"
        # Each line lies within the body of the write that left it.
        if index >= body_of(match[1].decode(), int(match[2]), int(match[3])).count(b"\n"):
            return f"line {index} lies beyond the body of {line!r}"
    last = BODY_LINE.fullmatch(lines[-1])
    if len(lines) != body_of(last[1].decode(), int(last[2]), int(last[3])).count(b"\n"):
        return f"{len(lines)} lines: the file does not end where the write of its last line ended"
    return None


def complaints(log):
    """The log's warnings and errors, the last 40 of them (what explains an unexpected errno)."""
    return [line for line in log.splitlines() if " warning " in line or " error " in line][-40:]


def sizes_listed(directory):
    """name → size of what readdir lists; a listed name that stat cannot find says so."""
    sizes = {}
    for name in os.listdir(directory):
        try:
            sizes[name] = os.stat(os.path.join(directory, name)).st_size
        except FileNotFoundError:
            sizes[name] = LISTED_MISSING
    return sizes
