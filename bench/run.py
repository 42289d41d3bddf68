#!/usr/bin/env python3
"""phpeek-pm benchmark harness (run by hand, not in CI).

Measures SPEC §10 on this machine, each figure beside a raw baseline taken
in the same run, and prints a Markdown table for docs/benchmarks.md.

    cargo build --release
    python3 bench/run.py [--bin target/release/phpeek-pm] [--only NAME ...] [--repeat 5]

Rows (--only): cold, scale, shutdown, idle, restart, schedule, autoscale,
logs, logpipe (or logpipe-text / logpipe-json), api, api-scaling, storm.
Each figure is the median of --repeat runs with the range in brackets, and
rows with a floor give the ratio to it (measured in the same run).

Everything runs on loopback with ephemeral ports, in a temp directory, and
ends only the processes it started.
"""

import argparse
import math
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Manager:
    """A phpeek-pm started on a generated config."""

    def __init__(self, binary, processes_yaml, globals_yaml="", stdout=None):
        self.dir = tempfile.mkdtemp(prefix="phpeek-bench-")
        self.config = os.path.join(self.dir, "phpeek-pm.yaml")
        # The "API listening on" line is info level and the bench runs at
        # warn (so the manager's own chatter is not measured): pick the port
        # here instead of reading it back from stderr.
        self.port = free_port()
        with open(self.config, "w") as f:
            f.write(
                f"global:\n  api_host: 127.0.0.1\n  api_port: {self.port}\n  metrics_host: 127.0.0.1\n  metrics_port: 0\n"
                "  max_process_scale: 5000\n  log_level: warn\n" + globals_yaml + "processes:\n" + processes_yaml
            )
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.stdout = stdout if stdout is not None else subprocess.DEVNULL
        self.binary = binary
        self.proc = None
        self.api = None

    def start(self):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "-c", self.config],
            stdout=self.stdout,
            stderr=open(self.stderr_path, "w"),
            stdin=subprocess.DEVNULL,
        )
        return self

    def wait_api(self, deadline=30):
        url = f"http://127.0.0.1:{self.port}"
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"manager exited {self.proc.returncode}: {open(self.stderr_path).read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/api/v1/health", timeout=1) as r:
                    if r.status == 200:
                        self.api = url
                        return url
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError("API never answered")

    def get(self, path):
        with urllib.request.urlopen(self.api + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.api + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())

    def running(self, process):
        return sum(1 for i in self.get("/api/v1/processes") if i["process"] == process and i["state"] == "running")

    def total(self, process):
        return sum(1 for i in self.get("/api/v1/processes") if i["process"] == process)

    def stop(self, deadline=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(deadline)


def exit_guard(proc, deadline=120):
    """A started timer that kills `proc` if it is still there after
    `deadline`. Start it before a measured window: starting a thread takes
    this script a few hundred microseconds of CPU, which the kernel may
    take from the very thread the measured process just woke."""
    guard = threading.Timer(deadline, lambda: proc.poll() is None and proc.kill())
    guard.start()
    return guard


def wait_exit(proc, deadline=120, guard=None):
    """Waits for `proc` to exit and returns its code, woken by the exit
    itself: Popen.wait(timeout) polls with sleeps doubling from 0.5 ms to
    50 ms, which quantized every shutdown figure (about 16 ms, 32 ms, ...).
    A timer (`guard`, or one started here) kills the process if it is still
    there after `deadline`."""
    if guard is None:
        guard = exit_guard(proc, deadline)
    try:
        _, status = os.waitpid(proc.pid, 0)
    finally:
        guard.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode


def children_of(pid):
    """Pids whose parent is `pid`, zombies included, from the `children`
    list of each of its threads (a child's parent is the thread that
    cloned it). Costs a read per thread of the manager, not per process
    on the machine."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            continue
    return out


def spawned_count(pid):
    """How many children `pid` has (zombies included): what the spawn rows
    wait for. Their sleepers do not exit, so there are no zombies to count
    out, and a scan of /proc per poll (one open and read per process, with
    1000 of them) took a quarter of a core from the manager being timed,
    which the posix_spawn loop it is compared with never paid."""
    return len(children_of(pid))


def live_children_of(pid):
    """Children of `pid` that are not zombies."""
    out = []
    for c in children_of(pid):
        try:
            with open(f"/proc/{c}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] != "Z":
            out.append(c)
    return out


def wait_until(cond, deadline=120, step=0.001):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    raise RuntimeError("condition not reached")


# Poll interval while timing: the /proc scan and the API listing cost CPU that
# the manager needs on a 2-core machine, so do not spin.
POLL = 0.01
IDLE_SECONDS = 30

SLEEPER = '["sleep", "3600"]'
TERM_EXIT = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1 & wait $!; done"]'


def baseline_spawn(n, threads=1):
    """Raw: posix_spawn n sleepers (from `threads` threads; CPython drops the
    GIL around posix_spawn), then SIGTERM and reap them all."""
    pids = []

    def spawn(k):
        for _ in range(k):
            pids.append(os.posix_spawn("/bin/sleep", ["sleep", "3600"], os.environ))

    t0 = time.monotonic()
    ths = [threading.Thread(target=spawn, args=(n // threads + (i < n % threads),)) for i in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    spawn_t = time.monotonic() - t0
    t0 = time.monotonic()
    for p in pids:
        os.kill(p, signal.SIGTERM)
    for p in pids:
        os.waitpid(p, 0)
    stop = time.monotonic() - t0
    return spawn_t, stop


def baseline_spawn_both(n):
    s1, stop = baseline_spawn(n, 1)
    s2, _ = baseline_spawn(n, 2)
    return s1, s2, stop


def bench_cold_start(binary, n=1000):
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: {n}\n").start()
    m.wait_api()
    wait_until(lambda: spawned_count(m.proc.pid) >= n, step=POLL)
    t_spawned = time.monotonic() - m.t0
    wait_until(lambda: m.running("w") == n, step=POLL)
    t_running = time.monotonic() - m.t0
    guard = exit_guard(m.proc)
    t0 = time.monotonic()
    os.kill(m.proc.pid, signal.SIGTERM)
    code = wait_exit(m.proc, guard=guard)
    t_stop = time.monotonic() - t0
    return t_spawned, t_running, t_stop, code


def bench_runtime_scale(binary, n=1000):
    # `keep` (one more sleeper) keeps the manager up whatever `w` does: build
    # 004b924 exited as soon as `w` was scaled to 0 ("every process has
    # ended; exiting"), which ended the run before the API count could be
    # read (fixed by d8d9f89). See docs/benchmarks.md.
    m = Manager(binary, f"  keep:\n    command: {SLEEPER}\n  w:\n    command: {SLEEPER}\n    scale: 0\n").start()
    m.wait_api()
    wait_until(lambda: m.running("keep") == 1, step=POLL)
    t0 = time.monotonic()
    m.post("/api/v1/processes/w/scale", {"desired": n})
    wait_until(lambda: spawned_count(m.proc.pid) >= n + 1, step=POLL)
    up_procs = time.monotonic() - t0
    wait_until(lambda: m.running("w") == n, step=POLL)
    up_api = time.monotonic() - t0
    t0 = time.monotonic()
    m.post("/api/v1/processes/w/scale", {"desired": 0})
    wait_until(lambda: len(live_children_of(m.proc.pid)) == 1, step=POLL)
    down_procs = time.monotonic() - t0
    wait_until(lambda: m.total("w") == 0, step=POLL)
    down_api = time.monotonic() - t0
    m.stop()
    return up_procs, up_api, down_procs, down_api


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def sched_ns(pid):
    """CPU time in ns summed over the live threads (/proc/PID/task/*/schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def bench_idle(binary, n=100, seconds=None):
    """RSS and CPU of the manager with n idle instances. n=0 is the baseline:
    the same binary and config with nothing to run."""
    seconds = IDLE_SECONDS if seconds is None else seconds
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: {n}\n").start()
    m.wait_api()
    if n:
        wait_until(lambda: m.running("w") == n, step=0.05)
    time.sleep(2)
    rss, anon, filek, _ = rss_parts(m.proc.pid)
    c0, s0, w0 = cpu_ticks(m.proc.pid), sched_ns(m.proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, s1, w1 = cpu_ticks(m.proc.pid), sched_ns(m.proc.pid), time.monotonic()
    hz = os.sysconf("SC_CLK_TCK")
    wall = w1 - w0
    cpu_pct = (c1 - c0) / hz / wall * 100
    sched_pct = (s1 - s0) / 1e9 / wall * 100
    m.stop()
    return rss, cpu_pct, sched_pct, anon, filek


def bench_idle_schedule(binary, n=100, seconds=60):
    """Idle CPU with n idle instances plus a `* * * * *` schedule (its run
    is `true`): the schedule's timer must not cost a polling loop."""
    procs = f"  w:\n    command: {SLEEPER}\n    scale: {n}\n  cron:\n    command: [\"true\"]\n    schedule: \"* * * * *\"\n"
    m = Manager(binary, procs).start()
    m.wait_api()
    wait_until(lambda: m.running("w") == n, step=0.05)
    time.sleep(2)
    c0, s0, w0 = cpu_ticks(m.proc.pid), sched_ns(m.proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, s1, w1 = cpu_ticks(m.proc.pid), sched_ns(m.proc.pid), time.monotonic()
    hz = os.sysconf("SC_CLK_TCK")
    wall = w1 - w0
    m.stop()
    return (s1 - s0) / 1e9 / wall * 100, (c1 - c0) / hz / wall * 100


def bench_schedule_latency(binary, seconds=300):
    """A per-second schedule whose run records its start (CLOCK_REALTIME):
    latency = start - the second it was due. Baseline: a Python loop that
    sleeps to each second boundary and posix_spawns the same script."""
    d = tempfile.mkdtemp(prefix="phpeek-sched-")
    log = os.path.join(d, "t.log")
    script = os.path.join(d, "stamp.sh")
    with open(script, "w") as f:
        f.write("#!/bin/bash\nprintf '%s\\n' \"$EPOCHREALTIME\" >> \"$1\"\n")
    os.chmod(script, 0o755)
    m = Manager(binary, f'  tick:\n    command: ["{script}", "{log}"]\n    schedule: "* * * * * *"\n').start()
    m.wait_api()
    time.sleep(seconds)
    m.stop()
    blog = os.path.join(d, "b.log")
    end = time.time() + min(seconds, 60)
    while time.time() < end:
        now = time.time()
        time.sleep(math.ceil(now) - now)
        pid = os.posix_spawn(script, [script, blog], os.environ)
        os.waitpid(pid, 0)

    def lat(path):
        out = []
        for l in open(path):
            try:
                t = float(l.strip().replace(",", "."))
            except ValueError:
                continue
            out.append((t - math.floor(t)) * 1000)
        return sorted(out)

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")

    g, b = lat(log), lat(blog)
    return pct(g, 0.5), pct(g, 0.99), pct(b, 0.5), pct(b, 0.99), len(g)


def redis_server():
    """A throw-away redis-server on a free loopback port, or None."""
    if not shutil.which("redis-server"):
        return None, None
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True).stdout.strip() == b"PONG", deadline=30, step=0.05)
    return proc, port


def bench_autoscale(binary, rounds=10, idle_seconds=60):
    """Jobs appear in Redis -> the first new instance running (interval 1 s,
    so the target is <= 1 s + 50 ms); then idle CPU while an autoscaler
    samples Redis every 15 s."""
    redis, port = redis_server()
    if redis is None:
        return None
    url = f"redis://127.0.0.1:{port}/0"
    procs = (
        f"  q:\n    command: {SLEEPER}\n    scale: 1\n    autoscale:\n      min: 1\n      max: 5\n      interval: 1s\n"
        f"      metrics:\n        - redis: {{ url: \"{url}\", llen: jobs }}\n          per_instance: 10\n"
        "      behavior:\n        scale_up: { stabilization: 0s, max_step: 4, period: 1s }\n"
        "        scale_down: { stabilization: 0s, max_step: 100%, period: 1s }\n"
    )
    m = Manager(binary, procs).start()
    m.wait_api()
    wait_until(lambda: m.running("q") == 1, step=0.05)
    lat = []
    for _ in range(rounds):
        subprocess.run(["redis-cli", "-p", str(port), "RPUSH", "jobs"] + [str(i) for i in range(20)], capture_output=True)
        t0 = time.monotonic()
        wait_until(lambda: m.running("q") >= 2, deadline=30, step=0.005)
        lat.append((time.monotonic() - t0) * 1000)
        subprocess.run(["redis-cli", "-p", str(port), "DEL", "jobs"], capture_output=True)
        wait_until(lambda: m.running("q") == 1 and m.total("q") == 1, deadline=30, step=0.05)
    m.stop()
    procs15 = procs.replace("interval: 1s", "interval: 15s")
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: 100\n" + procs15).start()
    m.wait_api()
    wait_until(lambda: m.running("w") == 100, step=0.05)
    time.sleep(2)
    s0, w0 = sched_ns(m.proc.pid), time.monotonic()
    time.sleep(idle_seconds)
    s1, w1 = sched_ns(m.proc.pid), time.monotonic()
    m.stop()
    redis.terminate()
    redis.wait()
    lat.sort()
    return lat[len(lat) // 2], lat[-1], (s1 - s0) / 1e9 / (w1 - w0) * 100


def bench_restart_latency(binary, runs=300):
    """Each run writes its start time (CLOCK_REALTIME ns) then exits at once;
    latency = next start - previous exit as the child recorded them."""
    d = tempfile.mkdtemp(prefix="phpeek-lat-")
    log = os.path.join(d, "t.log")
    prog = os.path.join(d, "blip.py")
    # A tiny C-speed child: /bin/sh printing two timestamps via date would add
    # fork/exec of date; use the shell's own printf of EPOCHREALTIME if bash.
    script = os.path.join(d, "blip.sh")
    with open(script, "w") as f:
        f.write("#!/bin/bash\nprintf 's %s\\ne %s\\n' \"$EPOCHREALTIME\" \"$EPOCHREALTIME\" >> " + log + "\n")
    os.chmod(script, 0o755)
    m = Manager(
        binary,
        f'  blip:\n    command: ["{script}"]\n    restart: always\n',
        globals_yaml="  restart_backoff_initial: 0\n",
    ).start()
    m.wait_api()
    wait_until(lambda: os.path.exists(log) and sum(1 for _ in open(log)) >= 2 * runs, deadline=300, step=0.01)
    m.stop()
    # Baseline: the same script spawned and waited in a tight Python loop.
    blog = os.path.join(d, "b.log")
    with open(script, "w") as f:
        f.write("#!/bin/bash\nprintf 's %s\\ne %s\\n' \"$EPOCHREALTIME\" \"$EPOCHREALTIME\" >> " + blog + "\n")
    for _ in range(runs):
        pid = os.posix_spawn(script, [script], os.environ)
        os.waitpid(pid, 0)

    def gaps(path):
        vals = [(l.split()[0], float(l.split()[1])) for l in open(path) if len(l.split()) == 2]
        out = []
        for i in range(1, len(vals) - 1):
            if vals[i][0] == "e" and vals[i + 1][0] == "s":
                out.append((vals[i + 1][1] - vals[i][1]) * 1000)
        return sorted(out)

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(len(xs) * p))]

    g, b = gaps(log), gaps(blog)
    return pct(g, 0.5), pct(g, 0.99), pct(b, 0.5), pct(b, 0.99), len(g)


def bench_logs(binary, writers=8, lines=2_000_000):
    """8 instances write `lines` lines each flat out; the manager's stdout
    goes to a file that is checked for every line."""
    d = tempfile.mkdtemp(prefix="phpeek-logs-")
    out_path = os.path.join(d, "out.log")
    out = open(out_path, "wb")
    cmd = f'["sh", "-c", "seq 1 {lines}"]'
    m = Manager(binary, f"  w:\n    command: {cmd}\n    scale: {writers}\n    restart: never\n", stdout=out)
    t0 = time.monotonic()
    m.start()
    wait_exit(m.proc, 600)
    elapsed = time.monotonic() - t0
    out.close()
    total = 0
    per = {}
    bad = 0
    with open(out_path, "rb") as f:
        for line in f:
            total += 1
            name, _, rest = line.partition(b"] ")
            nxt = per.get(name, 0) + 1
            if rest != b"%d\n" % nxt:
                bad += 1
            per[name] = nxt
    ok = bad == 0 and total == writers * lines and len(per) == writers and all(v == lines for v in per.values())
    if not ok:
        print(f"logs: {total} lines, {bad} out of order/garbled, per instance {per}", file=sys.stderr)
    # Baseline: the same writers straight into one file, in parallel.
    t0 = time.monotonic()
    bout = open(os.path.join(d, "base.log"), "wb")
    procs = [subprocess.Popen(["sh", "-c", f"seq 1 {lines}"], stdout=bout) for _ in range(writers)]
    for p in procs:
        p.wait()
    base = time.monotonic() - t0
    bout.close()
    shutil.rmtree(d, ignore_errors=True)
    return writers * lines / elapsed, ok, writers * lines / base


def check_lines(path, writers, lines, fmt):
    """Every writer's lines 1..lines, in order, whole, one per line.
    Returns (ok, total, other): other counts lines from no instance."""
    per = {}
    bad = other = total = 0
    with open(path, "rb") as f:
        for line in f:
            total += 1
            if fmt == "json":
                try:
                    obj = json.loads(line)
                    name, msg = obj["instance"], obj["msg"]
                except (ValueError, KeyError):
                    other += 1
                    continue
            else:
                if not line.startswith(b"[w-"):
                    other += 1
                    continue
                name, _, rest = line.partition(b"] ")
                msg = rest[:-1].decode() if rest.endswith(b"\n") else None
            nxt = per.get(name, 0) + 1
            if msg != str(nxt):
                bad += 1
            per[name] = nxt
    ok = bad == 0 and other == 0 and len(per) == writers and all(v == lines for v in per.values())
    if not ok:
        print(f"logs ({fmt}): {total} lines, {bad} out of order/garbled, {other} foreign, per instance {per}", file=sys.stderr)
    return ok, total, other


# Prints 1..N, one write(2) per line.
PERL_WRITER = '$| = 1; print "$_\\n" for 1 .. %d'


def bench_logs_pipe(binary, fmt="text", writers=4, lines=200_000):
    """`writers` instances print `lines` lines each flat out, one write(2)
    per line (perl with autoflush: what a logger that flushes every line does;
    a write below PIPE_BUF is atomic, so even the raw pipe keeps lines
    whole); the manager's stdout is a pipe read by a separate consumer
    (`cat` into a file, as `docker logs` reads a container's stdout).
    Baseline in the same run: the same writers into one pipe read by the
    same consumer, no manager. Returns (manager lines/s, ok, raw lines/s,
    ratio)."""
    d = tempfile.mkdtemp(prefix="phpeek-logpipe-")
    try:
        # Baseline: writers -> one pipe -> cat -> file.
        bpath = os.path.join(d, "base.log")
        with open(bpath, "wb") as bout:
            t0 = time.monotonic()
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=bout)
            procs = [subprocess.Popen(["perl", "-e", PERL_WRITER % lines], stdout=cat.stdin) for _ in range(writers)]
            cat.stdin.close()
            for p in procs:
                p.wait()
            cat.wait()
            base = time.monotonic() - t0
        bok, _, _ = check_lines_raw(bpath, writers, lines)
        if not bok:
            print("logs: the raw pipe baseline lost or cut lines", file=sys.stderr)
        # The manager: instances -> manager -> pipe -> cat -> file.
        mpath = os.path.join(d, "out.log")
        cmd = json.dumps(["perl", "-e", PERL_WRITER % lines])
        with open(mpath, "wb") as mout:
            cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=mout)
            m = Manager(
                binary,
                f"  w:\n    command: {cmd}\n    scale: {writers}\n    restart: never\n",
                globals_yaml=f"  log_format: {fmt}\n",
                stdout=cat.stdin,
            )
            t0 = time.monotonic()
            m.start()
            cat.stdin.close()
            wait_exit(m.proc, 600)
            cat.wait()
            elapsed = time.monotonic() - t0
        ok, _, _ = check_lines(mpath, writers, lines, fmt)
        total = writers * lines
        return total / elapsed, ok, total / base, base / elapsed
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_lines_raw(path, writers, lines):
    """The baseline's output: every number 1..lines exactly `writers` times."""
    counts = {}
    with open(path, "rb") as f:
        for line in f:
            counts[line] = counts.get(line, 0) + 1
    ok = len(counts) == lines and all(v == writers for v in counts.values())
    return ok, sum(counts.values()), 0


# How long every sleeper of the shutdown row lives before it is stopped, in
# both arms. On the 2-core VM, killing and reaping 100 sleepers 0.2 s old
# took 4.5-4.9 ms, and 5.4-6.3 ms once they were 0.5 s old or more (the
# reaper's share of release_task grows: their /proc entries have been
# visited by then); the manager's sleepers were always the older ones.
SHUTDOWN_SETTLE = 1.0


def bench_shutdown(binary, n=100):
    """SIGTERM → manager exit with n sleepers, beside a kill+waitpid loop
    over n sleepers posix_spawned by this script, the sleepers of both arms
    equally old. Returns (manager s, loop s, ratio)."""
    pids = [os.posix_spawn("/bin/sleep", ["sleep", "3600"], os.environ) for _ in range(n)]
    time.sleep(SHUTDOWN_SETTLE)
    t0 = time.monotonic()
    for p in pids:
        os.kill(p, signal.SIGTERM)
    for p in pids:
        os.waitpid(p, 0)
    base = time.monotonic() - t0
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: {n}\n").start()
    m.wait_api()
    wait_until(lambda: m.running("w") == n, step=POLL)
    time.sleep(SHUTDOWN_SETTLE)
    guard = exit_guard(m.proc)
    t0 = time.monotonic()
    os.kill(m.proc.pid, signal.SIGTERM)
    wait_exit(m.proc, guard=guard)
    stop = time.monotonic() - t0
    return stop, base, stop / base


def bench_cold_ratio(binary, n=1000):
    """Cold start of n beside posix_spawn loops in the same run; ratios to
    the faster loop."""
    bs, bs2, bstop = baseline_spawn_both(n)
    sp, run, stop, code = bench_cold_start(binary, n)
    floor = min(bs, bs2)
    return sp, run, stop, code, bs, bs2, bstop, sp / floor, stop / bstop


def bench_scale_ratio(binary, n=1000):
    bs, bs2, bstop = baseline_spawn_both(n)
    up_p, up_a, down_p, down_a = bench_runtime_scale(binary, n)
    floor = min(bs, bs2)
    return up_p, up_a, down_p, down_a, bs, bs2, bstop, up_p / floor, down_p / bstop


def wrk_run(url, seconds, conns):
    """(req/s, p99 ms) of wrk -t2 against `url`."""
    r = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True,
    )
    if "Non-2xx" in r.stdout or "Socket errors" in r.stdout:
        print(r.stdout, file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", r.stdout)
    return rps, float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]


def start_nginx(body):
    """nginx (2 workers) on a free loopback port serving `body` as a static
    file; (process, url, dir), or None without nginx."""
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not exe:
        return None
    d = tempfile.mkdtemp(prefix="phpeek-bench-nginx-")
    # Its workers run as nobody: mkdtemp's 0700 would make every answer 403.
    os.chmod(d, 0o755)
    # nginx opens <prefix>/logs/error.log before it reads the config.
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    with open(os.path.join(d, "www", "processes.json"), "wb") as f:
        f.write(body)
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(
            f"worker_processes 2; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n"
        )
    proc = subprocess.Popen([exe, "-c", f"{d}/nginx.conf", "-p", d], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/processes.json"
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return proc, url, d
        except OSError:
            time.sleep(0.02)
    # SIGTERM, not SIGKILL: the master takes its workers down with it.
    proc.terminate()
    proc.wait()
    shutil.rmtree(d, ignore_errors=True)
    return None


# Each scale cycle of the API-under-scaling row starts this long after the
# one before (or at once, when that one took longer). Unpaced, the loop ran
# three to four times as many cycles beside the manager as beside nginx
# (each step waits until it is reached, and how fast that goes depends on
# what else the two cores do), so the two p99 figures were taken under
# different loads. Both arms now run the same cycles; the count of each is
# reported, and so is the manager under the unpaced loop.
SCALE_CYCLE = 1.5


def bench_api_scaling(binary, n=100, seconds=10, conns=16, span=200):
    """GET /api/v1/processes while another process `s` is scaled 0 ↔ span
    in a paced loop (each step waits until it is reached), beside nginx
    serving the manager's listing as a static file under the same loop:
    the floor this machine gives any HTTP server while hundreds of
    processes start and stop on its two cores. The loop's every poll of
    the listing also rewrites nginx's file, so nginx serves the bytes the
    manager would serve at that moment (100 to 300 instances), not the
    100-instance listing of before the loop. Returns (req/s, p99 ms,
    cycles, nginx req/s, nginx p99 ms, nginx cycles, p99 ratio, unpaced
    req/s, unpaced p99 ms, unpaced cycles); the nginx figures are None
    without nginx."""
    if not shutil.which("wrk"):
        return None
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: {n}\n  s:\n    command: {SLEEPER}\n    scale: 0\n").start()
    m.wait_api()
    wait_until(lambda: m.running("w") == n, step=0.05)
    with urllib.request.urlopen(m.api + "/api/v1/processes", timeout=30) as r:
        body = r.read()
    ng = start_nginx(body)
    mirror = [None]

    def listing():
        with urllib.request.urlopen(m.api + "/api/v1/processes", timeout=30) as r:
            raw = r.read()
        if mirror[0]:
            tmp = mirror[0] + ".new"
            with open(tmp, "wb") as f:
                f.write(raw)
            os.replace(tmp, mirror[0])
        return json.loads(raw)

    def count(running):
        return sum(1 for i in listing() if i["process"] == "s" and (i["state"] == "running" or not running))

    def measure(url, pace):
        stop = threading.Event()
        cycles = [0]

        def churn():
            while not stop.is_set():
                began = time.monotonic()
                m.post("/api/v1/processes/s/scale", {"desired": span})
                wait_until(lambda: stop.is_set() or count(True) == span, step=0.02)
                m.post("/api/v1/processes/s/scale", {"desired": 0})
                wait_until(lambda: stop.is_set() or count(False) == 0, step=0.02)
                if not stop.is_set():
                    cycles[0] += 1
                while pace and not stop.is_set() and time.monotonic() < began + pace:
                    time.sleep(0.01)

        th = threading.Thread(target=churn)
        th.start()
        try:
            rps, p99 = wrk_run(url, seconds, conns)
        finally:
            stop.set()
            th.join()
        # Back to the start: the next arm begins where this one did.
        m.post("/api/v1/processes/s/scale", {"desired": 0})
        wait_until(lambda: count(False) == 0, step=0.02)
        return rps, p99, float(cycles[0])

    try:
        rps, p99, done = measure(m.api + "/api/v1/processes", SCALE_CYCLE)
        nrps = np99 = ndone = None
        if ng:
            mirror[0] = os.path.join(ng[2], "www", "processes.json")
            nrps, np99, ndone = measure(ng[1], SCALE_CYCLE)
            mirror[0] = None
        urps, up99, udone = measure(m.api + "/api/v1/processes", 0)
    finally:
        m.stop()
        if ng:
            ng[0].terminate()
            ng[0].wait()
            shutil.rmtree(ng[2], ignore_errors=True)
    return rps, p99, done, nrps, np99, ndone, (p99 / np99 if np99 else None), urps, up99, udone


def rss_parts(pid):
    """(RSS, anonymous, file-backed, shmem) KiB from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        t = f.read()
    g = lambda k: int(re.search(k + r":\s+(\d+)", t).group(1))
    return g("VmRSS"), g("RssAnon"), g("RssFile"), g("RssShmem")


def bench_api(binary, n=100, seconds=10, conns=16):
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: {n}\n").start()
    m.wait_api()
    wait_until(lambda: m.running("w") == n, step=0.05)
    url = m.api + "/api/v1/processes"
    assert len(m.get("/api/v1/processes")) == n
    res = None
    if subprocess.run(["which", "wrk"], capture_output=True).returncode == 0:

        def wrk(u):
            r = subprocess.run(
                ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", u], capture_output=True, text=True
            )
            if "Non-2xx" in r.stdout or "Socket errors" in r.stdout:
                print(r.stdout, file=sys.stderr)
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
            p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", r.stdout)
            val = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
            return rps, val

        rps, p99 = wrk(url)
        hrps, hp99 = wrk(m.api + "/api/v1/health")
        res = (rps, p99, hrps, hp99)
    m.stop()
    return res


def bench_storm(binary, rounds=5, requests=2000, settle=37, seed=7):
    """RSS at `settle` instances on a fresh manager, then after each round of
    `requests` random scale requests between 0 and 200 (issue: memory must
    come back after load). Returns (fresh KiB, [KiB after each round])."""
    import random

    rnd = random.Random(seed)
    m = Manager(binary, f"  w:\n    command: {SLEEPER}\n    scale: {settle}\n").start()
    try:
        m.wait_api()
        wait_until(lambda: m.running("w") == settle, step=POLL)
        time.sleep(1)
        fresh = rss_kib(m.proc.pid)
        after = []
        for _ in range(rounds):
            for _ in range(requests):
                m.post("/api/v1/processes/w/scale", {"desired": rnd.randint(0, 200)})
            m.post("/api/v1/processes/w/scale", {"desired": settle})
            wait_until(lambda: m.running("w") == settle and m.total("w") == settle, step=POLL)
            wait_until(lambda: len(live_children_of(m.proc.pid)) == settle, step=POLL)
            time.sleep(1)
            after.append(rss_kib(m.proc.pid))
        return fresh, after
    finally:
        m.stop()


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except Exception:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.platform()}"


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval`, from /proc/stat."""

    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]

    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit=0.10, patience=240):
    """Other people build and test on this machine: wait (up to `patience` s)
    until the CPUs are idle before a measured run. Returns the busy fraction
    seen just before the run."""
    end = time.monotonic() + patience
    busy = cpu_busy()
    while busy > limit and time.monotonic() < end:
        time.sleep(2)
        busy = cpu_busy()
    return busy


class Stat:
    """The median of a row's runs with their range; formats as
    `median (min–max)` and scales with * and /."""

    def __init__(self, vals):
        vals = [v for v in vals if v == v]  # drop NaN
        self.med = statistics.median(vals) if vals else float("nan")
        self.lo = min(vals) if vals else float("nan")
        self.hi = max(vals) if vals else float("nan")
        self.n = len(vals)

    def _map(self, f):
        out = Stat([])
        out.med, out.lo, out.hi, out.n = f(self.med), f(self.lo), f(self.hi), self.n
        if out.lo > out.hi:
            out.lo, out.hi = out.hi, out.lo
        return out

    def __truediv__(self, k):
        return self._map(lambda v: v / k)

    def __mul__(self, k):
        return self._map(lambda v: v * k)

    __rmul__ = __mul__

    def __float__(self):
        return float(self.med)

    def __format__(self, spec):
        if self.n <= 1 or self.lo == self.hi:
            return format(self.med, spec)
        return f"{format(self.med, spec)} ({format(self.lo, spec)}–{format(self.hi, spec)})"


def median_of(runs):
    """Element-wise median and range of a list of result tuples (all() for
    booleans)."""
    out = []
    for vals in zip(*runs):
        if isinstance(vals[0], bool):
            out.append(all(vals))
        elif isinstance(vals[0], (int, float)):
            out.append(Stat(vals))
        else:
            out.append(vals[0])
    return tuple(out)


def main():
    global IDLE_SECONDS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/phpeek-pm"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the table shows the median and the range")
    ap.add_argument("--idle-seconds", type=int, default=IDLE_SECONDS, help="length of the idle CPU window")
    ap.add_argument("--no-quiet", dest="quiet", action="store_false", help="do not wait for an idle machine before each run")
    a = ap.parse_args()
    IDLE_SECONDS = a.idle_seconds
    want = lambda k: not a.only or k in a.only

    def rep(name, fn):
        runs = []
        for i in range(a.repeat):
            busy = wait_quiet() if a.quiet else 0
            r = fn()
            print(f"  {name} run {i + 1} (CPU busy before: {busy:.0%}): {r}", file=sys.stderr, flush=True)
            runs.append(r)
        return median_of(runs)

    print(f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d')}\nruns per row: {a.repeat} (median, range in brackets)\n")
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        print(f"commit: {commit}, binary {os.path.getsize(a.bin) / 2**20:.2f} MiB ({a.bin})\n")
    except OSError:
        pass
    rows = []
    if want("cold"):
        sp, run, stop, code, bs, bs2, bstop, r_up, r_stop = rep("cold", lambda: bench_cold_ratio(a.bin))
        rows.append(("cold start, 1000 instances (all spawned / all `running` in API)", f"{sp:.3f} s / {run:.3f} s", f"posix_spawn loop, 1 / 2 threads: {bs:.3f} s / {bs2:.3f} s", f"{r_up:.2f}× (spawned / faster loop)"))
        rows.append(("shutdown of 1000 (SIGTERM → exit)", f"{stop:.3f} s (exit {float(code):.0f})", f"kill+waitpid loop: {bstop:.3f} s", f"{r_stop:.2f}×"))
    if want("scale"):
        up_p, up_a, down_p, down_a, bs, bs2, bstop, r_up, r_down = rep("scale", lambda: bench_scale_ratio(a.bin))
        rows.append(("runtime scale 0 → 1000 via API (processes / API count)", f"{up_p:.3f} s / {up_a:.3f} s", f"posix_spawn loop, 1 / 2 threads: {bs:.3f} s / {bs2:.3f} s", f"{r_up:.2f}× (processes / faster loop)"))
        rows.append(("runtime scale 1000 → 0 via API (processes / API count)", f"{down_p:.3f} s / {down_a:.3f} s", f"kill+waitpid loop: {bstop:.3f} s", f"{r_down:.2f}×"))
    if want("shutdown"):
        stop, base, ratio = rep("shutdown 100", lambda: bench_shutdown(a.bin))
        rows.append(("shutdown of 100 (SIGTERM → manager exit)", f"{stop * 1000:.1f} ms", f"kill+waitpid loop over 100: {base * 1000:.1f} ms", f"{ratio:.2f}×"))
    if want("idle"):
        rss, cpu, sched, anon, filek = rep("idle 100", lambda: bench_idle(a.bin))
        brss, bcpu, bsched, banon, bfile = rep("idle 0", lambda: bench_idle(a.bin, n=0))
        rows.append(("manager RSS with 100 instances (anonymous + file-backed)", f"{rss / 1024:.2f} MiB ({anon / 1024:.2f} + {filek / 1024:.2f})", f"same manager, 0 instances: {brss / 1024:.2f} MiB ({banon / 1024:.2f} + {bfile / 1024:.2f})", "target < 8 MiB"))
        rows.append((f"manager CPU, 100 idle instances ({IDLE_SECONDS} s; schedstat / stat ticks)", f"{sched:.4f} % / {cpu:.3f} %", f"same manager, 0 instances: {bsched:.4f} % / {bcpu:.3f} %", ""))
    if want("restart"):
        p50, p99, b50, b99, n = rep("restart", lambda: bench_restart_latency(a.bin))
        rows.append((f"exit → replacement started, backoff 0 (~{float(n):.0f} restarts/run)", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", f"spawn+wait loop: p50 {b50:.2f} ms, p99 {b99:.2f} ms", f"p50 − floor: {float(p50) - float(b50):+.2f} ms"))
    if want("schedule"):
        sched, ticks = rep("idle + schedule", lambda: bench_idle_schedule(a.bin))
        rows.append(("manager CPU, 100 idle instances + a `* * * * *` schedule (60 s; schedstat / stat ticks)", f"{sched:.4f} % / {ticks:.3f} %", "target < 0.1 %", ""))
        p50, p99, b50, b99, n = rep("schedule latency", lambda: bench_schedule_latency(a.bin))
        rows.append((f"per-second schedule: tick → run started (~{float(n):.0f} runs over 5 min)", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", f"sleep-to-the-second + posix_spawn loop: p50 {b50:.2f} ms, p99 {b99:.2f} ms", ""))
    if want("autoscale"):
        r = rep("autoscale", lambda: bench_autoscale(a.bin) or (float("nan"),) * 3)
        rows.append(("autoscale (interval 1 s): jobs pushed → first new instance running (10 rounds)", f"median {r[0]:.0f} ms, max {r[1]:.0f} ms", "target ≤ 1 interval + 50 ms = 1050 ms", ""))
        rows.append(("manager CPU, 100 idle instances + an autoscaler sampling Redis every 15 s (60 s, schedstat)", f"{r[2]:.4f} %", "target < 0.1 %", ""))
    if want("logs"):
        rate, ok, base = rep("logs", lambda: bench_logs(a.bin))
        rows.append(("log lines, 8 writers flat out, stdout a file", f"{rate / 1e6:.2f} M lines/s, {'none lost' if ok else 'LINES LOST'}", f"same writers to a file: {base / 1e6:.2f} M lines/s", ""))
    for fmt in ("text", "json"):
        if want("logpipe") or want(f"logpipe-{fmt}"):
            rate, ok, base, ratio = rep(f"logpipe {fmt}", lambda: bench_logs_pipe(a.bin, fmt))
            rows.append((f"log lines, 4 writers × 200 000, {fmt} format, stdout a pipe read by `cat`", f"{rate / 1e6:.2f} M lines/s, {'none lost' if ok else 'LINES LOST'}", f"same writers into one pipe read by `cat`: {base / 1e6:.2f} M lines/s", f"{ratio:.2f}×"))
    if want("api"):
        r = rep("api", lambda: bench_api(a.bin)) if shutil.which("wrk") else None
        if r:
            rows.append(("GET /api/v1/processes, 100 instances (wrk -t2 -c16)", f"{r[0]:.0f} req/s, p99 {r[1]:.2f} ms", f"GET /api/v1/health, same server: {r[2]:.0f} req/s, p99 {r[3]:.2f} ms", ""))
        else:
            rows.append(("GET /api/v1/processes, 100 instances", "wrk not installed", "", ""))
    if want("api-scaling"):
        r = rep("api under scaling", lambda: bench_api_scaling(a.bin)) if shutil.which("wrk") else None
        if r:
            floor = f"nginx serving the manager's current listing as a static file, same loop: {r[3]:.0f} req/s, p99 {r[4]:.2f} ms ({r[5]:.0f} cycles)" if r[3] is not None else "nginx not installed"
            ratio = f"p99 {r[6]:.2f}× nginx's" if r[3] is not None else ""
            rows.append((f"GET /api/v1/processes, 100 instances, while another process scales 0 ↔ 200, a cycle every {SCALE_CYCLE:g} s", f"{r[0]:.0f} req/s, p99 {r[1]:.2f} ms ({r[2]:.0f} cycles in 10 s)", floor, ratio + " (target ≥ 20 k req/s, p99 < 5 ms)"))
            rows.append(("the same, the loop unpaced (each cycle starts when the last is done)", f"{r[7]:.0f} req/s, p99 {r[8]:.2f} ms ({r[9]:.0f} cycles in 10 s)", "", ""))
    if want("storm"):
        fresh, after = bench_storm(a.bin)
        rounds = ", ".join(f"{k / 1024:.1f}" for k in after)
        rows.append(("RSS at 37 instances after rounds of 2000 random scale requests 0–200 (MiB, per round)", rounds, f"same manager fresh at 37: {fresh / 1024:.1f} MiB", ""))
    print("| what | phpeek-pm | baseline (same run) | ratio |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")


if __name__ == "__main__":
    sys.exit(main())
