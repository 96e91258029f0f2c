"""Random operations on one open file (as fsx does), checked against a model in memory: pwrite
anywhere (also past the end), append, pread, ftruncate up and down, fsync, close and reopen; on an
existing object and on a new file being streamed. Every read and size must match the model, and the
object on the server must hold the model's bytes at the end."""
import os
import random

import pytest

from conftest import EVERY_SERVER, MiB, named_server


OPERATIONS = 150


# Every test of this file runs on obs-local (OBS dialect), its parallel file system bucket and SeaweedFS (V4).
server = pytest.fixture(name="server", params=EVERY_SERVER)(named_server)


def run_random_operations(path, seed, new_file):
    generator = random.Random(seed)
    model = bytearray(generator.randbytes(generator.randrange(0, 3 * MiB)))
    if new_file:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        os.write(descriptor, model)
    else:
        with open(path, "wb") as out:
            out.write(model)
        descriptor = os.open(path, os.O_RDWR)
    history = []
    try:
        for _ in range(OPERATIONS):
            operation = generator.choice(["pwrite", "pwrite", "pread", "ftruncate", "append", "reopen", "fsync"])
            history.append(operation)
            if operation == "pwrite":
                offset, data = generator.randrange(0, len(model) + 100_000), generator.randbytes(generator.randrange(1, 300_000))
                os.pwrite(descriptor, data, offset)
                model.extend(bytes(max(0, offset - len(model))))
                model[offset:offset + len(data)] = data
            elif operation == "append":
                data = generator.randbytes(generator.randrange(1, 200_000))
                os.lseek(descriptor, 0, os.SEEK_END)
                os.write(descriptor, data)
                model.extend(data)
            elif operation == "pread":
                offset, count = generator.randrange(0, len(model) + 10), generator.randrange(1, 400_000)
                assert os.pread(descriptor, count, offset) == bytes(model[offset:offset + count]), (seed, history[-6:], offset, count)
            elif operation == "ftruncate":
                size = generator.randrange(0, len(model) + 200_000)
                os.ftruncate(descriptor, size)
                del model[size:]
                model.extend(bytes(size - len(model)))
            elif operation == "fsync":
                os.fsync(descriptor)
            else:
                os.close(descriptor)
                descriptor = os.open(path, os.O_RDWR)
                assert os.fstat(descriptor).st_size == len(model), (seed, history[-6:])
    finally:
        os.close(descriptor)
    return bytes(model)


@pytest.mark.parametrize("new_file", [False, True], ids=["existing-object", "new-file"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_a_model(server, mount_factory, seed, new_file):
    mount = mount_factory(server, [f"part_size={server.part_size}", "parallel=4", "memory_budget=64M"])
    key = f"random-{'new' if new_file else 'old'}-{seed}-{os.urandom(3).hex()}"
    expected = run_random_operations(mount.path / key, seed, new_file)
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == expected
    with open(mount.path / key, "rb") as back:
        assert back.read() == expected
