"""mdbcheck — is an LMDB data directory clean? Used by the crash and
full-storage tests after a kill or a refused write.

check_data_file(dir) returns None when `mdb_stat -efffa` and `mdb_dump -a`
(Debian's lmdb-utils) read the whole file and LMDB's page accounting adds
up: 2 meta pages + the pages of every tree (the free list's included) + the
free pages = the pages used, with the free pages distinct and in range.
Otherwise a message saying what is wrong, with mdb_stat's output.
"""
import re
import subprocess

MDB_NUM = re.compile(r"^\s*(Number of pages used|Branch pages|Leaf pages|Overflow pages|Free pages):\s*(\d+)")


def check_data_file(data_dir):
    """mdb_stat and mdb_dump read it all; LMDB's page accounting adds up."""
    p = subprocess.run(["mdb_stat", "-efffa", data_dir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        return "mdb_stat -efffa exit %d:\n%s" % (p.returncode, out)
    used = None
    tree_pages = free = 0
    freelist = []
    in_free = False
    for line in out.splitlines():
        m = MDB_NUM.match(line)
        if m:
            k, v = m.group(1), int(m.group(2))
            if k == "Number of pages used":
                used = v
            elif k == "Free pages":
                free = v
            else:
                tree_pages += v
            continue
        if line.startswith("Freelist Status"):
            in_free = True
        elif line.startswith("Status of"):
            in_free = False
        elif in_free:
            m = re.match(r"^\s+(\d+)(?:\[(\d+)\])?\s*$", line)
            if m:
                first, cnt = int(m.group(1)), int(m.group(2) or 1)
                freelist.extend(range(first, first + cnt))
    if used is None:
        return "mdb_stat printed no page count:\n" + out
    if 2 + tree_pages + free != used:
        return ("pages do not add up: 2 meta + %d in trees + %d free != %d used\n%s"
                % (tree_pages, free, used, out))
    if len(freelist) != free or len(set(freelist)) != len(freelist) or \
            any(pg < 2 or pg >= used for pg in freelist):
        return "free list inconsistent (%d listed, %d counted)\n%s" % (len(freelist), free, out)
    p = subprocess.run(["mdb_dump", "-a", data_dir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        return "mdb_dump -a exit %d: %s" % (p.returncode, p.stderr.decode("utf-8", "replace"))
    return None
