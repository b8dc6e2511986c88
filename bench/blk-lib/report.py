#!/usr/bin/env python3
"""Host half of bench/blk-compare: turns the guest's raw results into tables.

    report.py RAWDIR CSV JSON BENCHMARKS_MD

RAWDIR holds what bench/blk-lib/guest.sh wrote (fio JSON per system, job and
rep; zc_blk_bench JSON per target; ib_read_bw output; CPU accounting;
env.txt; status-SYS). Writes one CSV row per measurement (every rep,
then the medians), a JSON with the same plus ratios and goals, and replaces
the section between <!-- blk:begin --> and <!-- blk:end --> of
BENCHMARKS_MD (creating the file or the section; nothing outside the markers
changes). Medians are taken per metric over the reps that produced a result.
"""
import csv
import glob
import json
import os
import re
import statistics
import sys

SYSTEMS = [
    ("zc", "zcrdma: zc_blk_target + the kernel's nvme-rdma host (nvme connect)"),
    ("nvmf", "Linux NVMe-oF RDMA (nvmet-rdma + nvme-rdma)"),
    ("iser", "tgt iSER + open-iscsi ib_iser"),
    ("nbd", "nbd-server + nbd-client over TCP (context)"),
]
SHORT = {"zc": "zc_blk_target", "nvmf": "nvmet-rdma", "iser": "tgt iSER", "nbd": "nbd TCP",
         "zcb-zc": "zc_blk_bench → zc_blk_target", "zcb-nvmf": "zc_blk_bench → nvmet-rdma"}
BENCH_JOBS = ["rr4k-qd1", "rr4k-qd32", "rw4k-qd32"]
JOBS = [
    ("rr4k-qd1", "4 KiB randread QD1"),
    ("rr4k-qd32", "4 KiB randread QD32"),
    ("rw4k-qd1", "4 KiB randwrite QD1"),
    ("rw4k-qd32", "4 KiB randwrite QD32"),
    ("sr128k-qd8", "128 KiB seq read QD8"),
    ("sw128k-qd8", "128 KiB seq write QD8"),
]
BEGIN, END = "<!-- blk:begin -->", "<!-- blk:end -->"
HZ = 100  # USER_HZ of /proc/stat and /proc/PID/stat


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def read_env(raw):
    env = {}
    try:
        with open(os.path.join(raw, "env.txt")) as f:
            for line in f:
                for m in re.finditer(r"(\w+)=(.*?)(?= \w+=|$)", line.strip()):
                    env[m.group(1)] = m.group(2)
    except OSError:
        pass
    return env


def fio_rows(raw):
    rows = []
    for path in sorted(glob.glob(os.path.join(raw, "fio-*-r*.json"))):
        m = re.match(r"fio-(\w+)-([\w-]+)-r(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        try:
            with open(path) as f:
                txt = f.read()
            j = json.loads(txt[txt.index("{"):])["jobs"][0]
        except (OSError, ValueError, KeyError, IndexError):
            continue
        d = j["read"] if j["read"]["io_bytes"] else j["write"]
        pct = d["clat_ns"].get("percentile", {})
        rows.append({
            "system": m.group(1), "job": m.group(2), "rep": int(m.group(3)),
            "iops": d["iops"], "mbps": d["bw_bytes"] / 1e6,
            "p50_us": pct.get("50.000000", 0) / 1e3, "p99_us": pct.get("99.000000", 0) / 1e3,
            "mean_us": d["clat_ns"]["mean"] / 1e3, "max_us": d["clat_ns"]["max"] / 1e3,
        })
    return rows


def zcbench_rows(raw):
    rows = []
    for path in sorted(glob.glob(os.path.join(raw, "zcbench-*-r*.json"))):
        m = re.match(r"zcbench-(zc|nvmf)-([\w-]+)-r(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        try:
            with open(path) as f:
                j = json.load(f)
        except (OSError, ValueError):
            continue
        lat = j.get("lat_us", {})
        rows.append({
            "system": "zcb-" + m.group(1), "job": m.group(2), "rep": int(m.group(3)),
            "iops": j.get("iops"), "mbps": j.get("mb_per_s", j.get("mbps")),
            "p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "mean_us": lat.get("mean"),
            "max_us": lat.get("max"),
        })
    return rows


def ib_read_bw(raw):
    out = {}
    for label in ("start", "end"):
        try:
            with open(os.path.join(raw, f"ib_read_bw-{label}.txt")) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 5 and p[0] == "4096":
                        out[label] = {"bw_avg_mbps": float(p[3]), "msg_per_s": float(p[4]) * 1e6}
        except (OSError, ValueError):
            pass
    return out


def cpu_rows(raw, env):
    """Per fio run: guest CPU busy %, kernel share, the system's processes."""
    out = {}
    try:
        lines = open(os.path.join(raw, "cpu.txt")).read().splitlines()
    except OSError:
        return out
    secs = float(env.get("time_s", 10)) + float(env.get("ramp_s", 2))
    ncpu = int(env.get("vcpus", 2))
    for line in lines:
        try:
            head, a, b = line.split("|")
            sysname, job, rep, rc = head.split()
            a, b = [int(x) for x in a.split()], [int(x) for x in b.split()]
        except ValueError:
            continue
        d = [y - x for x, y in zip(a, b)]
        # user nice system idle iowait irq softirq steal guest guest_nice, then the pids' ticks
        total = sum(d[:8]) or 1
        busy = total - d[3] - d[4]
        out[(sysname, job, int(rep))] = {
            "cpu_busy_pct": 100.0 * busy / total,
            "cpu_kernel_pct": 100.0 * (d[2] + d[5] + d[6]) / total,
            "server_cpu_pct_of_one": 100.0 * d[-1] / HZ / secs,
            "busy_cpu_s": busy / HZ,
            # a target that is a process of its own (zc_blk_target, tgtd, nbd-server); nvmet is kernel threads
            "target_cpu_s": d[-1] / HZ if sysname not in ("nvmf", "zcb-nvmf") else None,
            "ncpu": ncpu,
        }
    return out


def status(raw):
    st = {}
    for s, _ in SYSTEMS:
        try:
            st[s] = open(os.path.join(raw, f"status-{s}")).read().strip()
        except OSError:
            st[s] = "not run"
    return st


def fmt(v, nd=0):
    if v is None:
        return "–"
    return f"{v:,.{nd}f}"


def verdict(g):
    if g["ratio"] is None:
        return "n/a (no data)"
    return "PASS" if g["pass"] else "MISS"


def ratio_s(r):
    return "–" if r is None else f"{r:.2f}×"


def main():
    raw, csv_path, json_path, md_path = sys.argv[1:5]
    env = read_env(raw)
    rows = fio_rows(raw) + zcbench_rows(raw)
    cpu = cpu_rows(raw, env)
    for r in rows:
        r.update(cpu.get((r["system"], r["job"], r["rep"]), {}))
        secs = float(env.get("time_s", 10)) + float(env.get("ramp_s", 2))
        if r.get("busy_cpu_s") and r.get("iops"):
            r["cpu_us_per_io"] = r["busy_cpu_s"] * 1e6 / (r["iops"] * secs)
        if r.get("target_cpu_s") is not None and r.get("iops"):
            r["target_cpu_us_per_io"] = r["target_cpu_s"] * 1e6 / (r["iops"] * secs)
    keys = ["iops", "mbps", "p50_us", "p99_us", "mean_us", "max_us", "cpu_busy_pct", "cpu_kernel_pct",
            "server_cpu_pct_of_one", "cpu_us_per_io", "target_cpu_us_per_io"]
    groups = {}
    for r in rows:
        groups.setdefault((r["system"], r["job"]), []).append(r)
    medians = {}
    for (s, j), rs in groups.items():
        m = {"system": s, "job": j, "rep": "median", "reps": len(rs)}
        for k in keys:
            m[k] = med([r.get(k) for r in rs])
        medians[(s, j)] = m
    ib = ib_read_bw(raw)
    ib_rate = med([v["msg_per_s"] for v in ib.values()])
    st = status(raw)

    def iops(s, j):
        m = medians.get((s, j))
        return m["iops"] if m else None

    def ratio(a, b):
        return a / b if a and b else None

    def p99(s, j):
        m = medians.get((s, j))
        return m["p99_us"] if m else None

    # Issue 14's targets: the kernel host in front of both, so these compare the targets.
    goals = []
    for j, jname in JOBS:
        want = 0.9 if j.startswith("s") else 1.0
        r = ratio(iops("zc", j), iops("nvmf", j))
        goals.append({"goal": f"zc_blk_target ≥ {want}× nvmet-rdma IOPS, {jname}", "ratio": r, "target": want,
                      "strict": False, "pass": r is not None and r >= want})
        r = ratio(p99("zc", j), p99("nvmf", j))
        goals.append({"goal": f"zc_blk_target p99 latency no worse than nvmet-rdma, {jname}", "ratio": r,
                      "target": 1.0, "strict": False, "pass": r is not None and r <= 1.0})
    r = ratio(iops("zcb-zc", "rr4k-qd32"), ib_rate)
    goals.append({"goal": "zc_blk_bench → zc_blk_target 4 KiB randread QD32 ≥ 0.7× ib_read_bw 4 KiB msg rate",
                  "ratio": r,
                  "target": 0.7, "strict": False, "pass": r is not None and r >= 0.7})

    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "job", "rep"] + keys)
        for r in sorted(rows, key=lambda r: (r["system"], r["job"], r["rep"])):
            w.writerow([r["system"], r["job"], r["rep"]] + [r.get(k) for k in keys])
        for m in medians.values():
            w.writerow([m["system"], m["job"], "median"] + [m.get(k) for k in keys])
        for label, v in ib.items():
            w.writerow(["ib_read_bw", "read4k", label, v["msg_per_s"], v["bw_avg_mbps"]] + [None] * (len(keys) - 2))
    doc = {"env": env, "status": st, "runs": rows, "medians": list(medians.values()),
           "ib_read_bw_4k": ib, "ib_read_bw_4k_msg_per_s_median": ib_rate, "goals": goals,
           "raw_dir": os.path.relpath(raw, os.path.dirname(os.path.abspath(json_path)))}
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)

    md = section(env, st, medians, ib, ib_rate, goals, raw, csv_path, json_path, md_path)
    try:
        old = open(md_path).read()
    except OSError:
        old = "# zcrdma benchmarks\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + md + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + md + "\n"
    with open(md_path, "w") as f:
        f.write(new)
    for g in goals:
        print(f"{verdict(g):<13} {ratio_s(g['ratio']):>7}  {g['goal']}")


def section(env, st, medians, ib, ib_rate, goals, raw, csv_path, json_path, md_path):
    here = os.path.dirname(os.path.abspath(md_path))
    host = {}
    try:
        for line in open(os.path.join(raw, "host.txt")):
            for m in re.finditer(r"(\w+)=(.*?)(?= \w+=|$)", line.strip()):
                host[m.group(1)] = m.group(2)
    except OSError:
        pass
    rel = lambda p: os.path.relpath(p, here)
    reps = env.get("reps", "?")
    L = [BEGIN, "## Block storage: zc_blk_target vs nvmet-rdma, tgt iSER, nbd (`bench/blk-compare`)", "",
         "Generated by `bench/blk-compare` (do not edit between the markers). Raw results: "
         f"`{rel(csv_path)}`, `{rel(json_path)}`, `{rel(raw)}/`.", ""]
    L += [f"- **When / where:** {env.get('date_utc', '?')}; one guest boot; guest kernel {env.get('kernel', '?')}, "
          f"accel **{env.get('accel', '?')}**, {env.get('vcpus', '?')} vCPU ({env.get('cpu', '?')}), "
          f"{env.get('mem_mib', '?')} MiB, clocksource {env.get('clocksource', '?')}; {env.get('fio', 'fio')}.",
          f"- **Method:** fio `--direct=1 --ioengine=libaio --time_based --runtime={env.get('time_s', '?')} "
          f"--ramp_time={env.get('ramp_s', '?')} --norandommap --randrepeat=0`, one job, whole device; "
          f"{reps} rep(s), systems interleaved job by job (order rotated); each cell is the **median over reps** "
          "(per metric). Latency = fio completion latency (clat). MB/s = 10^6 B/s.",
          f"- **Backing (same for all):** {env.get('backing', '?')}; nvmet uses `buffered_io=1` (tmpfs has no "
          "O_DIRECT), tgt `rdwr`, nbd-server a plain export, zc_blk_target `--file`. Everything (initiators, "
          "targets, rxe) shares the guest's vCPUs; the host has 2 cores shared with other guests, so only "
          "same-run ratios mean anything.",
          "- **Status:** " + "; ".join(f"{SHORT[s]}: {st[s]}" for s, _ in SYSTEMS),
          f"- **Host load:** other qemu guests running at start/end: {host.get('other_qemu_at_start', '?')}/"
          f"{host.get('other_qemu_at_end', '?')} (host {host.get('host_cpus', '?')} CPUs, {host.get('qemu', '?')}).", ""]
    active = [s for s, _ in SYSTEMS if any((s, j) in medians for j, _ in JOBS)]
    L.append("| job | metric | " + " | ".join(SHORT[s] for s in active) + " |")
    L.append("|---|---|" + "---:|" * len(active))
    for j, jname in JOBS:
        for metric, key, nd in (("IOPS", "iops", 0), ("MB/s", "mbps", 1), ("p50 µs", "p50_us", 0),
                                ("p99 µs", "p99_us", 0), ("CPU µs/IO", "cpu_us_per_io", 0),
                                ("target CPU µs/IO", "target_cpu_us_per_io", 1)):
            cells = [fmt(medians.get((s, j), {}).get(key), nd) for s in active]
            L.append(f"| {jname if metric == 'IOPS' else ''} | {metric} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("CPU µs/IO = busy guest CPU time (all vCPUs, /proc/stat, over ramp + runtime) ÷ I/Os: what one I/O "
             "costs the whole guest, initiator + target + rxe. Target CPU µs/IO = the target process's own CPU "
             "time ÷ I/Os (zc_blk_target, tgtd, nbd-server; nvmet-rdma runs in kernel threads and softirq, "
             "so it has none of its own: compare the whole-guest column).")
    L.append("")
    L.append("**`zc_blk_bench`, the user-space NVMe-oF host (no kernel block layer), against both targets "
             "(same boot):**")
    L.append("")
    L.append("| run | IOPS / msg/s | p50 µs | p99 µs | CPU µs/IO | target CPU µs/IO |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for t in ("zcb-zc", "zcb-nvmf"):
        for j in BENCH_JOBS:
            m = medians.get((t, j), {})
            L.append(f"| {SHORT[t]} {j} | {fmt(m.get('iops'))} | {fmt(m.get('p50_us'))} | "
                     f"{fmt(m.get('p99_us'))} | {fmt(m.get('cpu_us_per_io'))} | "
                     f"{fmt(m.get('target_cpu_us_per_io'), 1)} |")
    for label in ("start", "end"):
        v = ib.get(label)
        L.append(f"| `ib_read_bw` 4 KiB rxe0→rxe1 ({label} of run) | {fmt(v['msg_per_s']) if v else 'missing'} "
                 "| – | – | – | – |")
    L.append("")
    L.append("**Goals** (issue 14; ratios of medians: IOPS zc_blk_target ÷ nvmet-rdma, p99 latency "
             "zc_blk_target ÷ nvmet-rdma, both behind the same kernel host):")
    L.append("")
    L.append("| goal | ratio | result |")
    L.append("|---|---:|---|")
    for g in goals:
        v = verdict(g)
        L.append(f"| {g['goal']} | {ratio_s(g['ratio'])} | {v if v != 'MISS' else '**MISS**'} |")
    L.append("")
    prof = sorted(glob.glob(os.path.join(raw, "profile-*-comm.txt")))
    if prof:
        L.append("**CPU profile, 4 KiB randread QD32** (`perf record -a -e cpu-clock`, share of all samples by "
                 "command, top entries):")
        L.append("")
        for p in prof:
            s = re.match(r"profile-(\w+)-comm\.txt", os.path.basename(p)).group(1)
            top = []
            for line in open(p):
                m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
                if m and not line.startswith("#"):
                    top.append(f"{m.group(2)} {m.group(1)}%")
            L.append(f"- {SHORT.get(s, s)}: " + ", ".join(top[:8]))
        L.append("")
    L.append(END)
    return "\n".join(L)


if __name__ == "__main__":
    main()
