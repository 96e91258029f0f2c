"""Part sizes grow with the file: a 100 KB initial part size writes well past 10,000 × 100 KB.

OBS's smallest part is 100 KB; S3 servers (SeaweedFS, AWS) refuse parts under 5 MiB, so this
runs against obs-local only."""
import subprocess
import uuid

from conftest import head, part_sizes, uploads_in_progress

KB100 = 100 * 1024


def test_part_growth_past_ten_thousand_initial_parts(obs_local, mount_factory, tmp_path):
    server = obs_local
    mount = mount_factory(server, ["part_size=100K", "parallel=4", "memory_budget=256M"])
    size = 15_000 * KB100 + 12_345  # 1.5 × (10,000 × 100 KB)
    key = "growth-" + uuid.uuid4().hex[:8]
    # A fixed pattern from dd, so the expected ETag can be computed from a local copy.
    local = tmp_path / "pattern"
    subprocess.run(["sh", "-c", f"yes obsmount-part-growth | head -c {size} > '{local}'"], check=True)
    subprocess.run(["dd", f"if={local}", f"of={mount.path / key}", "bs=1M", "status=none"], check=True)
    info = head(server, key)
    assert info["ContentLength"] == size
    expected_parts = part_sizes(size, KB100, 256 * 1024 * 1024)
    assert len(expected_parts) < 10_000 < size // KB100
    parts = int(info["ETag"].strip('"').rsplit("-", 1)[1])
    assert parts == len(expected_parts)
    from conftest import composite_etag
    assert info["ETag"].strip('"') == composite_etag(local, expected_parts)
    assert uploads_in_progress(server, key) == []
