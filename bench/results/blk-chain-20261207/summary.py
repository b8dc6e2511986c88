#!/usr/bin/env python3
"""Summarises ab.sh's log.txt: per job, each system's IOPS per round, its ratio to
nvmet-rdma in the same round, the median of those ratios, and the zc targets'
median doorbells and work requests per command and CPU (user + system, polling
included) per command.   summary.py RUNDIR"""
import re
import statistics as st
import sys

rows = {}
pat = re.compile(r'^(\S+) (\S+) round (\d+): iops=(\d+) p99=(\d+)us'
                 r'(?: cmds=\d+ doorbells/cmd=([\d.]+) wrs/cmd=([\d.]+) cpu_ticks/1k_cmds=([\d.]+))?')
for line in open(sys.argv[1] + '/log.txt'):
    m = pat.match(line)
    if m:
        s, job, r, iops, p99, db, wr, cpu = m.groups()
        rows[(s, job, int(r))] = (int(iops), int(p99), db and float(db), wr and float(wr), cpu and float(cpu))
systems = sorted({k[0] for k in rows}, key=lambda s: (s != 'nvmf', s))
jobs = sorted({k[1] for k in rows})
rounds = sorted({k[2] for k in rows})
for job in jobs:
    print(f'{job}:')
    for s in systems:
        iops = [rows[(s, job, r)][0] for r in rounds if (s, job, r) in rows]
        ratios = [rows[(s, job, r)][0] / rows[('nvmf', job, r)][0] for r in rounds
                  if (s, job, r) in rows and ('nvmf', job, r) in rows]
        p99 = st.median(rows[(s, job, r)][1] for r in rounds if (s, job, r) in rows)
        line = f'  {s:9} IOPS {" ".join(f"{v:5d}" for v in iops)}  median {st.median(iops):6.0f}  p99 {p99:6.0f} us'
        if s != 'nvmf':
            db = st.median(rows[(s, job, r)][2] for r in rounds if (s, job, r) in rows)
            wr = st.median(rows[(s, job, r)][3] for r in rounds if (s, job, r) in rows)
            cpu = st.median(rows[(s, job, r)][4] for r in rounds if (s, job, r) in rows)
            line += (f'  / nvmet per round {" ".join(f"{v:.2f}" for v in ratios)}  median {st.median(ratios):.2f}'
                     f'  doorbells/cmd {db:.3f}  WRs/cmd {wr:.3f}  target CPU {cpu * 10:.0f} us/cmd')
        print(line)
