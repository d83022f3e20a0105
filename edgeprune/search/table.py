"""The search's table: one line per trial, the Pareto fronts and the choice."""

from __future__ import annotations


def render(report: dict) -> str:
    s = report["search"]
    fronts = s["pareto"]
    lines = [f"{'trial':>5}  {'state':9}  {'gzip B':>8}  {'x float':>7}  {'cost':>10}  {'metric':>7}  "
             f"{'drop':>7}  {'s':>5}  recipe"]
    lines.append("-" * (len(lines[0]) + 20))
    for r in s["trials"]:
        state = r["state"] if r["state"] != "complete" else ("meets" if r["violation"] == 0 else "misses")
        mark = "*" if r["number"] == s["chosen"]["trial"] else ("p" if r["number"] in fronts["metric_vs_size"]
                                                                 else " ")
        lines.append(f"{r['number']:>4}{mark}  {state:9}  {_n(r['gzip_bytes'], '{:,}'):>8}  "
                     f"{_n(r.get('size_ratio'), '{:.1f}'):>7}  {_n(r['cost'], '{:.4g}'):>10}  "
                     f"{_n(r['metric'], '{:.4f}'):>7}  {_n(r['metric_drop'], '{:+.4f}'):>7}  "
                     f"{_n(r['seconds'], '{:.0f}'):>5}  {r['label'] or ''}"
                     + (f"  [{', '.join(r['failed'])}]" if r["failed"] and state == "misses" else "")
                     + (f"  [{r['error']}]" if r.get("error") else "")
                     + (f"  (repeat of {r['repeat_of']})" if r.get("repeat_of") is not None
                        else "  (cached)" if r.get("cached") else ""))
    chosen = s["chosen"]
    lines += ["", f"* chosen: trial {chosen['trial']} ({chosen['label']}): {chosen['why']}",
              f"p: on the Pareto front of {s['metric']}"
              f" vs size: trials {fronts['metric_vs_size']}; vs cost: trials {fronts['metric_vs_cost']}",
              f"cost: {s['objectives'][1]}; x float: float32 TFLite gzip / deployed gzip",
              f"reproduce: {chosen['reproduce']}",
              f"verdict: {report.get('verdict', '?').upper()} (target {report['target']['name']}, "
              f"deploy {report['deploy']}; {len(s['trials'])} trials in {s['seconds']:.0f} s"
              + (f"; {s['skipped']} queued steps skipped unrun" if s.get("skipped") else "")
              + (f"; {s['repeats']} repeats of earlier trials, not counted" if s.get("repeats") else "")
              + ")"]
    return "\n".join(lines)


def _n(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
