#!/usr/bin/env python3
"""bench/plot.py — PNG figures from bench/results/*.json, drawn with gnuplot.

Each figure is drawn only when its JSON exists; figures say what they compare
and carry the machine's measured numbers, nothing else.
"""
import json
import os
import subprocess
import sys


def load(d, name):
    try:
        with open(os.path.join(d, name + ".json")) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def bars(d, png, title, ylabel, rows, log=False):
    """rows: list of (label, value, colour)."""
    dat = os.path.join(d, png + ".dat")
    with open(dat, "w") as f:
        for i, (label, value, colour) in enumerate(rows):
            f.write(f'{i} "{label}" {value} {colour}\n')
    gnuplot(f"""
set terminal pngcairo size 900,500 font "sans,10" noenhanced
set output "{os.path.join(d, png + '.png')}"
set title "{title}"
set ylabel "{ylabel}"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set yrange [{"1:*" if log else "0:*"}]
{"set logscale y" if log else ""}
set xtics rotate by -20
unset key
plot "{dat}" using 1:3:4:xtic(2) with boxes lc rgb variable, \\
     "{dat}" using 1:3:(sprintf("%.3g", $3)) with labels offset 0,0.8
""")


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    ours, theirs, ceil = 0x1f77b4, 0xd62728, 0x7f7f7f

    t = load(d, "table")
    if t:
        bars(d, "table", f"Recipient table vs DPDK rte_hash, {t['entries']} entries, one core",
             "million lookups per second", [
                 ("ours single hit", t["ours_lookup_mops"], ours),
                 ("rte_hash single hit", t["rte_hash_lookup_mops"], theirs),
                 ("ours burst hit", t["ours_burst_mops"], ours),
                 ("rte_hash burst hit", t["rte_hash_burst_mops"], theirs),
                 ("ours burst miss", t.get("ours_burst_miss_mops", 0), ours),
                 ("rte_hash burst miss", t.get("rte_hash_burst_miss_mops", 0), theirs),
                 ("ours burst, writer at %dk/s" % (t["churn_updates_per_s"] / 1000),
                  t["ours_burst_churn_mops"], ours),
             ])

    p = load(d, "dataplane")
    if p:
        bars(d, "dataplane", "rcptgate-dp worker cost per packet (in-memory traffic, one core, log scale)",
             "nanoseconds per packet", log=True, rows=[
                 ("io-forward", p["iofwd_ns_per_pkt"], ceil),
                 ("macswap-forward", p.get("macswap_ns_per_pkt", 0), ceil),
                 ("pass-through", p["passthrough_ns_per_pkt"], ours),
                 ("SMTP (95% invalid)", p["smtp_ns_per_pkt"], ours),
             ])

    q = load(d, "peer")
    if q and "postfix_rcpt_per_s" in q:
        rows = [("Postfix front line", q["postfix_rcpt_per_s"], theirs)]
        if "rcptgate_rcpt_per_s" in q:
            rows.append(("rcptgate inline", q["rcptgate_rcpt_per_s"], ours))
        if "iofwd_ceiling_rcpt_per_s" in q:
            rows.append(("testpmd io-fwd + smtp-sink", q["iofwd_ceiling_rcpt_per_s"], ceil))
        bars(d, "peer", "RCPT answers per second at %d%% invalid (%d sessions x %d RCPTs)" % (
            q["invalid_share"] * 100, q["sessions"], q["rcpts_per_session"]),
            "RCPT answers per second", rows)
        sweep = {}
        for s in q.get("sweep", []):
            if s["phase"] in ("postfix", "rcptgate"):
                sweep.setdefault(s["invalid_share"], {})[s["phase"]] = s["backend_cpu_s"]["median"]
        dat = os.path.join(d, "backend_cpu.dat")
        with open(dat, "w") as f:
            for share in sorted(sweep):
                v = sweep[share]
                f.write(f'{share * 100:g} {v.get("postfix", "NaN")} {v.get("rcptgate", "NaN")}\n')
        gnuplot(f"""
set terminal pngcairo size 900,500 font "sans,10" noenhanced
set output "{os.path.join(d, 'backend_cpu.png')}"
set title "Destination Postfix CPU for the same workload ({q['sessions']} sessions x {q['rcpts_per_session']} RCPTs)"
set xlabel "invalid recipients (%)"
set ylabel "destination CPU seconds"
set grid
set yrange [0:*]
set key top right
plot "{dat}" using 1:2 with linespoints lw 2 pt 7 lc rgb "#d62728" title "without rcptgate", \\
     "{dat}" using 1:3 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "with rcptgate inline"
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
