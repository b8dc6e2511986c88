#!/usr/bin/env python3
"""Parses bench/compare's raw guest output into <prefix>.json and <prefix>.csv.

    aggregate.py RAWDIR PREFIX

One row per system/test/size/metric: median, min, max over the repetitions
that succeeded, the values themselves, and how many runs were missing.
Metrics (where the tool lets us know them):
  bw_gbps, bw_peak_gbps, msg_rate_mpps, lat_typical_us, lat_p99_us,
  cpu_{user,sys}_{client,server}_s_per_gb, cpu_{user,sys}_s_per_gb (both sides),
  and for zc_perf library runs: cpu_us_per_op (user+sys, both sides, per
  iteration), wall_us_per_op, credit_msgs_per_op, rcache_hits/misses_per_op;
  per message (both sides, both directions of a round trip): pkts_per_msg
  (rxe hw_counters sent_pkts of both devices), and for the library
  send_wrs/doorbells/recv_wrs/cqes_per_msg (zc_ctx_stats).
Python 3 standard library only.
"""
import csv
import json
import os
import re
import statistics
import sys


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def time_file(path):
    """/usr/bin/time -f '%U %S %e' -> (user, sys, elapsed) or None."""
    txt = read(path)
    if not txt:
        return None
    for line in reversed(txt.strip().splitlines()):
        parts = line.split()
        if len(parts) == 3:
            try:
                return tuple(float(p) for p in parts)
            except ValueError:
                continue
    return None


def table_rows(txt, header_word="#bytes"):
    """The numeric rows under perftest/zc_perf's '#bytes' table head."""
    rows, on = [], False
    for line in txt.splitlines():
        if line.strip().startswith(header_word):
            on = True
            continue
        if on:
            parts = line.split()
            if parts and re.fullmatch(r"\d+", parts[0]):
                try:
                    rows.append([float(p) for p in parts])
                except ValueError:
                    pass
            elif rows or line.startswith("-"):
                on = False
    return rows


def cpu_metrics(m, bytes_moved, cli, srv):
    gb = bytes_moved / 1e9
    if gb <= 0:
        return
    if cli:
        m["cpu_user_client_s_per_gb"] = cli[0] / gb
        m["cpu_sys_client_s_per_gb"] = cli[1] / gb
    if srv:
        m["cpu_user_server_s_per_gb"] = srv[0] / gb
        m["cpu_sys_server_s_per_gb"] = srv[1] / gb
    if cli and srv:
        m["cpu_user_s_per_gb"] = (cli[0] + srv[0]) / gb
        m["cpu_sys_s_per_gb"] = (cli[1] + srv[1]) / gb


def messages(test, args):
    """Messages a run moved, both directions: -n (perftest's count) times
    the connections (-q), and two per round trip of a latency run."""
    n, q = None, 1
    for i, a in enumerate(args):
        if a == "-n" and i + 1 < len(args):
            n = int(args[i + 1])
        elif a.startswith("-n") and a[2:].isdigit():
            n = int(a[2:])
        elif a == "-q" and i + 1 < len(args):
            q = int(args[i + 1])
    if n is None:  # perftest's plan lines: BINARY N ...
        n = int(args[1])
    return n * q * (2 if test == "lat" else 1)


def pkts_per_msg(d, test, args, m):
    """rxe packets (data and ACKs, both devices) per message, from the
    hw_counters bench/lib/guest-run read around the run."""
    t = (read(os.path.join(d, "pkts")) or "").split()
    if len(t) == 2:
        m["pkts_per_msg"] = (int(t[1]) - int(t[0])) / messages(test, args)


def parse_perftest(d, test, size, args):
    txt = read(os.path.join(d, "client.out")) or ""
    rows = table_rows(txt)
    if not rows:
        raise ValueError("no result row in client.out")
    r = rows[-1]
    m = {}
    n = int(args[1])
    if test == "lat":
        # bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
        m["lat_min_us"] = r[2]
        m["lat_typical_us"] = r[4]
        m["lat_avg_us"] = r[5]
        m["lat_p99_us"] = r[7]
        moved = 2 * size * n
    else:
        # bytes iters peak avg msgrate
        m["bw_peak_gbps"] = r[2]
        m["bw_gbps"] = r[3]
        m["msg_rate_mpps"] = r[4]
        moved = size * n
    # whole-process CPU (perftest reports none outside duration mode): includes setup
    cpu_metrics(m, moved, time_file(os.path.join(d, "client.time")), time_file(os.path.join(d, "server.time")))
    return m


def parse_zcperf(d, test, size, args):
    js = read(os.path.join(d, "client.json"))
    if not js:
        raise ValueError("no client.json")
    j = json.loads(js)
    r = j["results"][0]
    m = {}
    if j.get("mode") == "lat":
        m["lat_min_us"] = r["t_min_us"]
        m["lat_typical_us"] = r["t_typical_us"]
        m["lat_avg_us"] = r["t_avg_us"]
        m["lat_p99_us"] = r["t_p99_us"]
    else:
        m["bw_gbps"] = r["bw_avg_gbps"]
        m["bw_peak_gbps"] = r["bw_peak_gbps"]
        m["msg_rate_mpps"] = r["msg_rate_mpps"]
    m["cpu_user_client_s_per_gb"] = r["cpu_user_s_per_gb"]
    m["cpu_sys_client_s_per_gb"] = r["cpu_sys_s_per_gb"]
    if "peer_cpu_user_s_per_gb" in r:
        m["cpu_user_server_s_per_gb"] = r["peer_cpu_user_s_per_gb"]
        m["cpu_sys_server_s_per_gb"] = r["peer_cpu_sys_s_per_gb"]
        m["cpu_user_s_per_gb"] = r["cpu_user_s_per_gb"] + r["peer_cpu_user_s_per_gb"]
        m["cpu_sys_s_per_gb"] = r["cpu_sys_s_per_gb"] + r["peer_cpu_sys_s_per_gb"]
        iters = r["iterations"] or 1
        gb = r["bytes_moved"] / 1e9
        m["cpu_us_per_op"] = (m["cpu_user_s_per_gb"] + m["cpu_sys_s_per_gb"]) * gb / iters * 1e6
    iters = r["iterations"] or 1
    m["wall_us_per_op"] = r["seconds"] / iters * 1e6
    if "reg_s" in r:  # time inside ibv_reg_mr/ibv_dereg_mr, both sides (zc_stats reg_ns)
        m["reg_us_per_op"] = (r["reg_s"] + r["peer_reg_s"]) / iters * 1e6
        m["reg_calls_per_op"] = (r["reg_calls"] + r["peer_reg_calls"]) / iters
    if j.get("library"):
        # zc_ctx_stats per side: rc_hits rc_misses rc_evict rc_inval rc_live mw_binds eager inline rndv credit
        # mr_fallbk reg+dereg reg_ms send_wrs doorbells recv_wrs cqes put adv
        credit, work = 0, {}
        for side in ("client", "server"):
            rows = [x for x in table_rows(read(os.path.join(d, side + ".out")) or "") if len(x) == 20]
            if rows:
                c = rows[-1]
                credit += c[10]
                for k, col in (("send_wrs", 14), ("doorbells", 15), ("recv_wrs", 16), ("cqes", 17)):
                    work[k] = work.get(k, 0) + c[col]
                if side == "client":
                    m["rcache_hits_per_op"] = c[1] / iters
                    m["rcache_misses_per_op"] = c[2] / iters
        m["credit_msgs_per_op"] = credit / iters
        msgs = messages(test, args)
        for k, v in work.items():  # both sides, per message
            m[k + "_per_msg"] = v / msgs
    return m


def parse_rstream(d, test, size, args):
    txt = read(os.path.join(d, "client.out")) or ""
    line = next((l for l in txt.splitlines() if l.startswith("custom")), None)
    if not line:
        raise ValueError("no 'custom' result line in client.out")
    f = line.split()
    # name bytes xfers iters total time Gb/sec usec/xfer
    t = re.fullmatch(r"([\d.]+)(s|ms|us)", f[5])
    if not t:
        raise ValueError("cannot read rstream time %r" % f[5])
    secs = float(t.group(1)) * {"s": 1, "ms": 1e-3, "us": 1e-6}[t.group(2)]
    count = int(args[1])
    moved = 2 * size * count  # client -> server, then back
    m = {"bw_gbps": moved * 8 / secs / 1e9, "msg_rate_mpps": 2 * count / secs / 1e6,
         "bw_reported_gbps": float(f[6])}
    cpu_metrics(m, moved, time_file(os.path.join(d, "client.time")), time_file(os.path.join(d, "server.time")))
    return m


def parse_iperf(d, test, size, args):
    j = json.loads(read(os.path.join(d, "client.json")) or "{}")
    if "end" not in j or "error" in j:
        raise ValueError("iperf3: %s" % j.get("error", "no result"))
    e = j["end"]
    rx = e["sum_received"]
    secs = rx["seconds"]
    m = {"bw_gbps": rx["bits_per_second"] / 1e9, "msg_rate_mpps": rx["bytes"] / size / secs / 1e6}
    cpu = e.get("cpu_utilization_percent", {})
    gb = rx["bytes"] / 1e9
    if cpu and gb > 0:
        cs = e["sum_sent"]["seconds"]
        cli = (cpu["host_user"] / 100 * cs, cpu["host_system"] / 100 * cs)
        srv = (cpu["remote_user"] / 100 * secs, cpu["remote_system"] / 100 * secs)
        cpu_metrics(m, rx["bytes"], cli, srv)
    return m


PARSERS = {"perftest": parse_perftest, "zc_perf": parse_zcperf, "rstream": parse_rstream, "iperf3": parse_iperf}


def kv(path):
    out = {}
    for line in (read(path) or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def main():
    raw, prefix = sys.argv[1], sys.argv[2]
    plan = {}
    order = []
    for line in (read(os.path.join(raw, "plan.txt")) or "").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        jid, system, test, size, kind, args = line.split("|", 5)
        plan[jid] = dict(system=system, test=test, size=int(size), kind=kind, args=args.split())
        order.append(jid)
    runs = {}
    failures = []
    man = read(os.path.join(raw, "manifest.tsv")) or ""
    for line in man.splitlines()[1:]:
        f = line.split("\t")
        if len(f) < 8:
            continue
        rep, jid, rc, secs, d = int(f[0]), f[1], int(f[5]), float(f[6]), f[7]
        p = plan.get(jid)
        if not p:
            continue
        res = runs.setdefault(jid, [])
        why = None
        if rc != 0:
            why = "exit status %d%s" % (rc, " (timeout)" if rc in (124, 137) else "")
        else:
            try:
                m = PARSERS[p["kind"]](os.path.join(raw, d), p["test"], p["size"], p["args"])
                if p["kind"] in ("perftest", "zc_perf"):
                    pkts_per_msg(os.path.join(raw, d), p["test"], p["args"], m)
                for k in ("bw_gbps", "lat_typical_us"):
                    if k in m and not m[k] > 0:
                        raise ValueError("%s is %s (perftest: failed TSC calibration?)" % (k, m[k]))
                res.append((rep, m))
            except Exception as ex:  # a run that printed no result is missing, not fatal
                why = "unparsable output: %s" % ex
        if why:
            tail = ""
            for name in ("client.out", "client.err", "server.out"):
                t = read(os.path.join(raw, d, name))
                if t and t.strip():
                    tail = "%s: %s" % (name, t.strip().splitlines()[-1][:160])
                    break
            failures.append(dict(id=jid, system=p["system"], test=p["test"], size=p["size"], rep=rep,
                                 reason=why, seconds=secs, detail=tail, dir=d))
    meta = kv(os.path.join(raw, "host.env"))
    meta.update(kv(os.path.join(raw, "guest.env")))
    reps_planned = int(meta.get("reps", "3"))
    rows = []
    for jid in order:
        p = plan[jid]
        got = runs.get(jid, [])
        metrics = []
        for _, m in got:
            for k in m:
                if k not in metrics:
                    metrics.append(k)
        if not got:
            rows.append(dict(id=jid, system=p["system"], test=p["test"], size=p["size"], kind=p["kind"],
                             metric=None, median=None, min=None, max=None, n=0, missing=reps_planned, values=[]))
            continue
        for k in metrics:
            vals = [m[k] for _, m in sorted(got, key=lambda x: x[0]) if k in m and m[k] is not None]
            rows.append(dict(id=jid, system=p["system"], test=p["test"], size=p["size"], kind=p["kind"],
                             metric=k, median=statistics.median(vals) if vals else None,
                             min=min(vals) if vals else None, max=max(vals) if vals else None,
                             n=len(vals), missing=reps_planned - len(vals), values=vals))
    doc = dict(meta=meta, plan=[dict(id=j, **plan[j]) for j in order], rows=rows, failures=failures)
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(prefix + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "test", "size", "metric", "median", "min", "max", "n_ok", "n_missing", "values", "id"])
        for r in rows:
            w.writerow([r["system"], r["test"], r["size"], r["metric"] or "",
                        "" if r["median"] is None else "%.6g" % r["median"],
                        "" if r["min"] is None else "%.6g" % r["min"],
                        "" if r["max"] is None else "%.6g" % r["max"], r["n"], r["missing"],
                        " ".join("%.6g" % v for v in r["values"]), r["id"]])
    nmiss = len(failures)
    print("aggregate: %d measurements, %d rows, %d failed runs -> %s.json/.csv" % (len(order), len(rows), nmiss, prefix))
    for fl in failures:
        print("aggregate: MISSING %s rep %d: %s %s" % (fl["id"], fl["rep"], fl["reason"], fl["detail"]))


if __name__ == "__main__":
    main()
