#!/usr/bin/env python3
"""report.py: the quality study's results (bench/quality/run.sh) as results.json, results.md (the
README's table) and results.svg (the plot).

  report.py WORK OUT [--device cuda] [--smoke 0|1]

Reads WORK/runs/*/summary.json (speed-*, grid-*, final-*), WORK/eval/*.json (owlore eval --json of
the base model, the grid's held-out slice and the final models) and WORK/data/counts.json.
Per method: the learning rate the grid chose (lowest answer cross-entropy on the held-out slice),
per test set the accuracy and the answer cross-entropy (mean and sample standard deviation over
seeds), their means over the four sets, and the speed run's tokens/s and peak device memory. A
difference between a method and OwLore is called significant when it exceeds twice the standard
error of the difference of the two means (Welch), a rough bar for 3 seeds that the table states."""
import json
import math
import os
import sys

METHODS = ["full", "lisa", "galore", "owlore", "owlore-fullrank", "owlore-uniform"]
SETS = ["boolq", "ARC-Easy", "ARC-Challenge", "openbookqa"]
SHORT = {"boolq": "BoolQ", "ARC-Easy": "ARC-E", "ARC-Challenge": "ARC-C", "openbookqa": "OBQA"}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def set_results(ev):
    """{set: (acc, answer_ce)} from an owlore eval --json of the four test sets."""
    if ev is None:
        return None
    sets = ev.get("sets") or [ev]
    out = {}
    for s in sets:
        name = os.path.basename(str(s.get("data", "")))
        for k in SETS:
            if name in (f"test_{k}.json", f"{k}.json"):
                out[k] = (s.get("acc"), s.get("answer_ce"))
    return out if len(out) == len(SETS) else None


def mean_sd(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd, len(xs)


def runs_of(work, prefix):
    d = os.path.join(work, "runs")
    return sorted(n for n in os.listdir(d) if n.startswith(prefix)) if os.path.isdir(d) else []


def seed_results(work, name_prefix):
    """[(seed run name, {set: (acc, ce)}, summary)] for final runs named name_prefix + 's<seed>'."""
    out = []
    for n in runs_of(work, name_prefix):
        rest = n[len(name_prefix):]
        if not (rest.startswith("s") and rest[1:].isdigit()):
            continue
        r = set_results(load(os.path.join(work, "eval", n + ".json")))
        if r:
            out.append((n, r, load(os.path.join(work, "runs", n, "summary.json")) or {}))
    return out


def aggregate(seeds):
    agg = {}
    for k in SETS:
        agg[k] = {"acc": mean_sd([r[k][0] for _, r, _ in seeds]), "answer_ce": mean_sd([r[k][1] for _, r, _ in seeds])}
    agg["avg_acc"] = mean_sd([sum(r[k][0] for k in SETS) / len(SETS) for _, r, _ in seeds])
    agg["avg_answer_ce"] = mean_sd([sum(r[k][1] for k in SETS) / len(SETS) for _, r, _ in seeds])
    agg["train_seconds"] = mean_sd([s.get("train_seconds") for _, _, s in seeds])
    return agg


def welch_significant(a, b):
    (ma, sa, na), (mb, sb, nb) = a, b
    if ma is None or mb is None or na < 2 or nb < 2:
        return None
    se = math.sqrt(sa * sa / na + sb * sb / nb)
    return abs(ma - mb) > 2 * se if se > 0 else ma != mb


def fmt(ms, scale=1.0, digits=1):
    m, sd, n = ms
    if m is None:
        return "-"
    return f"{m * scale:.{digits}f} ± {sd * scale:.{digits}f}" if n > 1 else f"{m * scale:.{digits}f}"


def svg_plot(rows, base, path):
    """Two panels: mean accuracy over the four sets and mean answer cross-entropy, per method, with
    one dot per seed and the mean ± sd as a bar."""
    W, H, pad, top = 760, 330, 60, 40
    panel_w = (W - 3 * pad) / 2
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    panels = [("avg_acc", "accuracy, mean of 4 sets (%)", 100.0), ("avg_answer_ce", "answer cross-entropy (nats/token)", 1.0)]
    for p, (key, title, scale) in enumerate(panels):
        x0 = pad + p * (panel_w + pad)
        vals = [v * scale for r in rows for v in r["seed_" + key]]
        if not vals:
            continue
        base_v = None
        if base:
            k = 0 if key == "avg_acc" else 1
            base_v = sum(base[s][k] for s in SETS) / len(SETS) * scale
        # the base model on the scale unless it would squeeze the methods' spread below a tenth of the panel
        lo, hi = min(vals), max(vals)
        if base_v is not None and (hi - lo) * 10 >= max(hi, base_v) - min(lo, base_v):
            lo, hi = min(lo, base_v), max(hi, base_v)
        span = (hi - lo) or 1.0
        lo, hi = lo - 0.15 * span, hi + 0.15 * span
        digits = 2 if span > 0.05 else 4
        y = lambda v: top + (H - top - pad) * (1 - (v - lo) / (hi - lo))
        out.append(f'<text x="{x0 + panel_w / 2}" y="20" text-anchor="middle" font-size="13">{title}</text>')
        out.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{H - pad}" stroke="#888"/>')
        for t in range(5):
            v = lo + (hi - lo) * t / 4
            out.append(f'<text x="{x0 - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.{digits}f}</text>')
            out.append(f'<line x1="{x0}" y1="{y(v):.1f}" x2="{x0 + panel_w}" y2="{y(v):.1f}" stroke="#eee"/>')
        if base_v is not None and not lo <= base_v <= hi:
            out.append(f'<text x="{x0 + panel_w}" y="{top + 12}" text-anchor="end" fill="#888">base model: '
                       f'{base_v:.{digits}f} (off the scale)</text>')
        elif base_v is not None:
            out.append(f'<line x1="{x0}" y1="{y(base_v):.1f}" x2="{x0 + panel_w}" y2="{y(base_v):.1f}" stroke="#888" '
                       f'stroke-dasharray="4 3"/><text x="{x0 + panel_w}" y="{y(base_v) - 3:.1f}" text-anchor="end" '
                       f'fill="#888">base model</text>')
        step = panel_w / max(1, len(rows))
        for i, r in enumerate(rows):
            cx = x0 + step * (i + 0.5)
            color = "#c0392b" if r["method"].startswith("owlore") else "#2c3e50"
            for v in r["seed_" + key]:
                out.append(f'<circle cx="{cx:.1f}" cy="{y(v * scale):.1f}" r="3" fill="{color}" opacity="0.5"/>')
            m, sd, n = r[key]
            if m is not None:
                out.append(f'<line x1="{cx - 9:.1f}" y1="{y(m * scale):.1f}" x2="{cx + 9:.1f}" y2="{y(m * scale):.1f}" '
                           f'stroke="{color}" stroke-width="2"/>')
                out.append(f'<line x1="{cx:.1f}" y1="{y((m - sd) * scale):.1f}" x2="{cx:.1f}" y2="{y((m + sd) * scale):.1f}" '
                           f'stroke="{color}"/>')
            out.append(f'<text transform="translate({cx:.1f},{H - pad + 12}) rotate(30)" font-size="10">{r["method"]}</text>')
    out.append("</svg>")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(path + ".tmp", path)


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    work, out = args[0], args[1]
    device = args[args.index("--device") + 1] if "--device" in args else "?"
    smoke = args[args.index("--smoke") + 1] == "1" if "--smoke" in args else False
    res = {"device": device, "smoke": smoke, "counts": load(os.path.join(work, "data", "counts.json")),
           "base": set_results(load(os.path.join(work, "eval", "base.json"))), "methods": {}, "gamma": {}}
    rows = []
    variants = [(m, f"final-{m}-") for m in METHODS]
    for m, prefix in variants:
        grid = {}
        for n in runs_of(work, f"grid-{m}-lr"):
            ev = load(os.path.join(work, "eval", n + ".json"))
            if ev and "answer_ce" in ev:
                grid[n[len(f"grid-{m}-lr"):]] = {"answer_ce": ev["answer_ce"], "acc": ev.get("acc")}
        lr = min(grid, key=lambda k: grid[k]["answer_ce"]) if grid else None
        seeds = seed_results(work, prefix)
        speed = load(os.path.join(work, "runs", f"speed-{m}", "summary.json")) or {}
        if not seeds and not speed and not grid:
            continue
        agg = aggregate(seeds) if seeds else None
        row = {"method": m, "lr": lr, "grid": grid, "seeds": [n for n, _, _ in seeds],
               "tokens_per_s": speed.get("tokens_per_s"), "avg_tokens_per_s": speed.get("avg_tokens_per_s"),
               "peak_bytes": speed.get("peak_bytes"), "device_used_peak_bytes": speed.get("device_used_peak_bytes")}
        if agg:
            row.update(agg)
            row["seed_avg_acc"] = [sum(r[k][0] for k in SETS) / len(SETS) for _, r, _ in seeds]
            row["seed_avg_answer_ce"] = [sum(r[k][1] for k in SETS) / len(SETS) for _, r, _ in seeds]
        rows.append(row)
        res["methods"][m] = row
    for n in runs_of(work, "final-owlore-g"):
        g = n[len("final-owlore-g"):].split("-")[0]
        if g in res["gamma"]:
            continue
        seeds = seed_results(work, f"final-owlore-g{g}-")
        if seeds:
            res["gamma"][g] = aggregate(seeds)
    owl = res["methods"].get("owlore")
    for row in rows:
        if owl and row is not owl and "avg_answer_ce" in row and "avg_answer_ce" in owl:
            row["vs_owlore"] = {"acc": welch_significant(row["avg_acc"], owl["avg_acc"]),
                                "answer_ce": welch_significant(row["avg_answer_ce"], owl["avg_answer_ce"])}

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json.tmp"), "w") as f:
        json.dump(res, f, indent=1)
    os.replace(os.path.join(out, "results.json.tmp"), os.path.join(out, "results.json"))

    md = []
    if smoke:
        md.append("**SMOKE RUN (a pipeline check: its numbers mean nothing)**\n")
    md.append(f"Device: {device}. Accuracy (%) and answer cross-entropy (nats/token of the correct answer's tokens), "
              "mean ± sample sd over seeds; tokens/s and peak from each method's speed run, alone on the device.\n")
    head = "| method | lr | " + " | ".join(SHORT[k] for k in SETS) + " | avg acc | avg answer CE | tok/s | peak GiB |"
    md += [head, "|" + " --- |" * (head.count("|") - 1)]
    if res["base"]:
        b = res["base"]
        md.append("| base (no fine-tuning) | - | " + " | ".join(f"{b[k][0] * 100:.1f}" for k in SETS) +
                  f" | {sum(b[k][0] for k in SETS) / 4 * 100:.1f} | {sum(b[k][1] for k in SETS) / 4:.4f} | - | - |")
    for row in rows:
        if "avg_acc" not in row:
            continue
        sig = row.get("vs_owlore", {})
        mark = lambda k: " *" if sig.get(k) else ""
        tok = f"{row['tokens_per_s']:,.0f}" if row.get("tokens_per_s") else "-"
        peak = f"{row['peak_bytes'] / 2**30:.2f}" if row.get("peak_bytes") else "-"
        md.append(f"| {row['method']} | {row['lr'] or '-'} | " +
                  " | ".join(fmt(row[k]["acc"], 100) for k in SETS) +
                  f" | {fmt(row['avg_acc'], 100)}{mark('acc')} | {fmt(row['avg_answer_ce'], 1, 4)}{mark('answer_ce')} "
                  f"| {tok} | {peak} |")
    md.append("\n`*`: differs from OwLore by more than twice the standard error of the difference (Welch).\n")
    if res["gamma"]:
        md.append("| OwLore blocks at a time (of 30) | avg acc | avg answer CE |")
        md.append("| --- | --- | --- |")
        if owl and "avg_acc" in owl:
            md.append(f"| 5 (recipe) | {fmt(owl['avg_acc'], 100)} | {fmt(owl['avg_answer_ce'], 1, 4)} |")
        for g in sorted(res["gamma"], key=int):
            a = res["gamma"][g]
            md.append(f"| {g} | {fmt(a['avg_acc'], 100)} | {fmt(a['avg_answer_ce'], 1, 4)} |")
        md.append("")
    md.append("Learning-rate grid (answer CE on the held-out slice of the train mix):\n")
    for row in rows:
        if row["grid"]:
            md.append(f"- {row['method']}: " + ", ".join(f"{lr}: {v['answer_ce']:.4f}" for lr, v in
                                                        sorted(row["grid"].items(), key=lambda kv: float(kv[0]))))
    with open(os.path.join(out, "results.md.tmp"), "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(os.path.join(out, "results.md.tmp"), os.path.join(out, "results.md"))
    svg_plot([r for r in rows if "avg_acc" in r], res["base"], os.path.join(out, "results.svg"))
    print("\n".join(md))


if __name__ == "__main__":
    main()
