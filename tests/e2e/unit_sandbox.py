#!/usr/bin/python3
"""Runs a command confined as dist/systemd/netevd.service confines netevd,
where systemd is not there to do it (this machine, CI): the unit's
SystemCallFilter= (its groups expanded by systemd-analyze itself) with
SystemCallErrorNumber=, RestrictAddressFamilies= and UMask=, read from the
unit, then exec. The capability bounding set and no-new-privileges come
from setpriv, which the test runs first.

    unit_sandbox.py UNIT -- COMMAND [ARGS...]
"""
import errno
import os
import socket
import subprocess
import sys

import seccomp


def values(unit, key):
    """Every value of KEY= in the [Service] section, in order."""
    out = []
    for line in unit.splitlines():
        line = line.strip()
        if line.startswith(key + "="):
            out.append(line[len(key) + 1:])
    return out


def expand(name, seen):
    """A syscall name, or a @group expanded recursively as systemd does."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name],
        check=True, capture_output=True, text=True,
    ).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names |= expand(line, seen)
    return names


def main():
    unit_path, sep, *command = sys.argv[1:]
    assert sep == "--" and command, __doc__
    unit = open(unit_path).read()
    allow, deny = set(), set()
    for v in values(unit, "SystemCallFilter"):
        if v.startswith("~"):
            for n in v[1:].split():
                deny |= expand(n, set())
        else:
            for n in v.split():
                allow |= expand(n, set())
    assert allow, "the unit has an allow list (SystemCallFilter=)"
    err = getattr(errno, values(unit, "SystemCallErrorNumber")[-1])
    families = [getattr(socket, f) for f in values(unit, "RestrictAddressFamilies")[-1].split()]
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(err))
    known = 0
    for name in sorted(allow - deny - {"socket"}):
        try:
            f.add_rule(seccomp.ALLOW, name)
            known += 1
        except (RuntimeError, ValueError):
            pass  # not a syscall of this architecture
    # RestrictAddressFamilies=: socket() of other families fails (with the
    # filter's errno; systemd's is EAFNOSUPPORT)
    if "socket" in allow - deny:
        for fam in families:
            f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, fam))
    os.umask(int(values(unit, "UMask")[-1], 8))
    print(f"unit_sandbox: {known} syscalls allowed, socket() for {len(families)} families, "
          f"others fail with {errno.errorcode[err]}", file=sys.stderr, flush=True)
    f.load()
    os.execvp(command[0], command)


main()
