#!/usr/bin/python3
"""Floods an HTTP server with connections that hold its slots, and probes it.

Used by http_flood.sh against cuepoint's admin port. Single-threaded (one
selectors loop), standard library only (Debian 12's python3).

Flood connections, spread round-robin over --sources (client addresses; all
of 127.0.0.0/8 is local on Linux, so one host can be many clients):
  idle    makes one keep-alive request, reads the answer, then sits idle
  slow    dribbles a request head that never ends, one byte per --slow-every s
  silent  connects and sends nothing
With --reconnect, a flood connection the server closes is opened again after
--reconnect-after s, so the pressure lasts the whole --hold; --rate bounds
how many are opened again per second (as flood tools do; 0: no bound).

Probes: one at a time, every --probe-every s, a new connection from
--probe-source asking for --paths in turn; each must bring a whole 200
answer within --deadline s. Probes run during the hold and for --after s
after every flood connection was closed. They run in a process of their own
with blocking sockets, so that, like a kubelet's, each request is sent the
moment its connection is up, however busy the flood keeps this one.

Prints one summary line (and the first failures) and exits 0 if every probe
answered in time, 1 otherwise.
"""
import argparse
import errno
import os
import selectors
import socket
import sys
import tempfile
import time

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Slow: " + b"a" * 4096


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", required=True, help="HOST:PORT of the server")
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--silent", type=int, default=0)
    p.add_argument("--sources", default="127.0.0.1", help="comma-separated client addresses")
    p.add_argument("--hold", type=float, default=5.0, help="seconds the flood is held")
    p.add_argument("--after", type=float, default=2.0, help="seconds probed after the flood")
    p.add_argument("--reconnect", action="store_true")
    p.add_argument("--reconnect-after", type=float, default=0.2)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--slow-every", type=float, default=1.0)
    p.add_argument("--probe-source", default="127.0.0.1")
    p.add_argument("--probe-every", type=float, default=0.25)
    p.add_argument("--paths", default="/healthz,/metrics")
    p.add_argument("--deadline", type=float, default=1.0)
    return p.parse_args()


def response_complete(buf):
    """(status, whole) of an HTTP/1.1 response read so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, False
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ")[1])
    except (IndexError, ValueError):
        return None, True
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, len(buf) >= end + 4 + length


def probe_once(args, target, path):
    """(ok, ms, why) of one probe."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(args.deadline)
    try:
        s.bind((args.probe_source, 0))
        s.connect(target)
        s.sendall(("GET %s HTTP/1.1\r\nHost: probe\r\n\r\n" % path).encode())
        buf = b""
        while True:
            left = args.deadline - (time.monotonic() - t0)
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            data = s.recv(65536)
            if not data:
                return False, (time.monotonic() - t0) * 1000, "closed by the server"
            buf += data
            status, whole = response_complete(buf)
            if whole:
                ok = status == 200
                return ok, (time.monotonic() - t0) * 1000, "" if ok else "status %s" % status
    except socket.timeout:
        return False, (time.monotonic() - t0) * 1000, "no answer within %.1f s" % args.deadline
    except OSError as e:
        return False, (time.monotonic() - t0) * 1000, "%s" % e
    finally:
        s.close()


def probe_all(args, target, end_hold, end, out):
    """Probes until `end`, writing one line per probe to `out`."""
    paths = args.paths.split(",")
    n = 0
    while time.monotonic() < end:
        started = time.monotonic()
        # A probe that overlaps the flood's end counts as "during".
        phase = "during" if started < end_hold else "after"
        ok, ms, why = probe_once(args, target, paths[n % len(paths)])
        out.write("%s %s %d %.1f %s\n" % (phase, paths[n % len(paths)], ok, ms, why))
        out.flush()
        n += 1
        time.sleep(max(0.0, args.probe_every - (time.monotonic() - started)))


class Flood:
    def __init__(self, args):
        self.args = args
        host, _, port = args.addr.rpartition(":")
        self.target = (host, int(port))
        self.sel = selectors.DefaultSelector()
        self.sources = args.sources.split(",")
        self.stats = {"opened": 0, "closed_by_server": 0, "connect_errors": 0, "idle_answered": 0}
        self.reopen = []  # (when, kind, source)
        self.flooding = True

    # ---- connections --------------------------------------------------------

    def open_flood(self, kind, source):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((source, 0))
            rc = s.connect_ex(self.target)
        except OSError as e:
            rc = e.errno
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.stats["connect_errors"] += 1
            self.again(kind, source)
            return
        c = {"sock": s, "kind": kind, "source": source, "state": "connecting", "buf": b"",
             "sent": 0, "next_byte": 0.0}
        self.sel.register(s, selectors.EVENT_WRITE, c)
        self.stats["opened"] += 1

    def again(self, kind, source):
        if self.flooding and self.args.reconnect:
            self.reopen.append((time.monotonic() + self.args.reconnect_after, kind, source))

    def close(self, c):
        try:
            self.sel.unregister(c["sock"])
        except (KeyError, ValueError):
            pass
        c["sock"].close()

    def server_closed(self, c):
        self.close(c)
        self.stats["closed_by_server"] += 1
        self.again(c["kind"], c["source"])

    # ---- events -------------------------------------------------------------

    def on_event(self, c, mask):
        s = c["sock"]
        if c["state"] == "connecting":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                self.close(c)
                self.stats["connect_errors"] += 1
                self.again(c["kind"], c["source"])
                return
            c["state"] = "open"
            self.on_open(c)
            return
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.server_closed(c)
            return
        c["buf"] += data
        status, whole = response_complete(c["buf"])
        if whole and c["kind"] == "idle":
            self.stats["idle_answered"] += 1
            c["buf"] = b""

    def on_open(self, c):
        s = c["sock"]
        if c["kind"] == "idle":
            try:
                s.send(b"GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n")
            except OSError:
                self.server_closed(c)
                return
        self.sel.modify(s, selectors.EVENT_READ, c)
        c["next_byte"] = time.monotonic()

    def dribble(self, now):
        for key in list(self.sel.get_map().values()):
            c = key.data
            if c["kind"] != "slow" or c["state"] != "open" or c["next_byte"] > now:
                continue
            try:
                c["sock"].send(SLOW_HEAD[c["sent"] % len(SLOW_HEAD):][:1])
                c["sent"] += 1
                c["next_byte"] = now + self.args.slow_every
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.server_closed(c)

    # ---- the run ------------------------------------------------------------

    def run(self):
        a = self.args
        start = time.monotonic()
        end_hold = start + a.hold
        end = end_hold + a.after
        results = tempfile.TemporaryFile(mode="w+")
        child = os.fork()
        if child == 0:
            try:
                probe_all(a, self.target, end_hold, end, results)
            finally:
                os._exit(0)
        kinds = ["idle"] * a.idle + ["slow"] * a.slow + ["silent"] * a.silent
        # Interleaved, so that every source gets every kind.
        kinds = [kinds[i] for i in sorted(range(len(kinds)), key=lambda i: (i % 7, i))]
        for i, kind in enumerate(kinds):
            self.open_flood(kind, self.sources[i % len(self.sources)])
        budget, last = 0.0, time.monotonic()
        while time.monotonic() < end_hold:
            now = time.monotonic()
            due = [r for r in self.reopen if r[0] <= now]
            if a.rate > 0:
                budget = min(budget + a.rate * (now - last), max(1.0, a.rate / 10))
                due = due[:int(budget)]
                budget -= len(due)
            last = now
            for r in due:
                self.reopen.remove(r)
            for _, kind, source in due:
                self.open_flood(kind, source)
            self.dribble(now)
            for key, mask in self.sel.select(timeout=0.02):
                self.on_event(key.data, mask)
        self.flooding = False
        for key in list(self.sel.get_map().values()):
            self.close(key.data)
        os.waitpid(child, 0)
        results.seek(0)
        probes = []
        for line in results:
            phase, path, ok, ms, why = line.rstrip("\n").split(" ", 4)
            probes.append((phase, path, ok == "1", float(ms), why))
        return self.report(probes, time.monotonic() - start)

    def report(self, probes, seconds):
        failed = [p for p in probes if not p[2]]
        ms = sorted(p[3] for p in probes if p[2])

        def count(phase):
            return sum(1 for p in probes if p[0] == phase)

        print("flood: %d probes (%d during, %d after), %d failed, answered in max %.0f ms, "
              "median %.0f ms; flood connections opened %d, closed by the server %d, "
              "connect errors %d, idle requests answered %d, %.1f s"
              % (len(probes), count("during"), count("after"), len(failed),
                 ms[-1] if ms else 0, ms[len(ms) // 2] if ms else 0, self.stats["opened"],
                 self.stats["closed_by_server"], self.stats["connect_errors"],
                 self.stats["idle_answered"], seconds))
        for phase, path, _, ms_taken, why in failed[:5]:
            print("  probe %s %s failed after %.0f ms: %s" % (phase, path, ms_taken, why))
        missing = count("during") == 0 or (self.args.after > 0 and count("after") == 0)
        if missing:
            print("  a phase had no probe")
        return 0 if not failed and not missing else 1


if __name__ == "__main__":
    sys.exit(Flood(parse_args()).run())
