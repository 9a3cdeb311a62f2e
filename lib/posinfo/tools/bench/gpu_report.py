"""What the GPU bench's numbers mean: each arm's rate projected to the paper's own run
(20 epochs of 50,000 CIFAR-10 canvases), the best arm against the target, and the table;
for the arms that train several models at once, their sum against one graphed run.
"""
from __future__ import annotations

from ...tables import format_table

# The paper's own run: 20 epochs of 50,000 CIFAR-10 canvases; the target for it.
PAPER_EPOCHS, PAPER_CANVASES, TARGET_MINUTES = 20, 50_000, 1.0


def projected_seconds(canvases_per_s: float, epochs: int = PAPER_EPOCHS,
                      canvases: int = PAPER_CANVASES) -> float:
    """Seconds of training for ``epochs`` epochs of ``canvases`` canvases at a given rate."""
    return epochs * canvases / canvases_per_s


def concurrent_rates(per_process, single: float | None = None, epochs: int = PAPER_EPOCHS,
                     canvases: int = PAPER_CANVASES) -> dict:
    """K runs trained at once, each at its own canvases/s (``per_process``): the aggregate
    (their sum: canvases trained per second, all models together), against ``single`` (one
    graphed run alone, measured in the same bench run), and the paper's run projected in
    minutes: each model's (at the mean rate of one run among K), all K models' (the slowest
    run ends last) and K models one after another at the single rate."""
    rates = [float(r) for r in per_process]
    if not rates or not all(r > 0 for r in rates):
        raise ValueError(f"per_process must be one positive canvases/s per run, got "
                         f"{per_process!r}")
    runs, aggregate = len(rates), sum(rates)
    mean = aggregate / runs
    result = {"runs": runs, "per_process_canvases_per_s": rates, "canvases_per_s": aggregate,
              "mean_per_process_canvases_per_s": mean,
              "projected_min_per_model": projected_seconds(mean, epochs, canvases) / 60,
              "projected_min_all_models": projected_seconds(min(rates), epochs, canvases) / 60,
              "vs_single": None, "per_process_vs_single": None,
              "projected_min_one_after_another": None}
    if single:
        result.update(vs_single=aggregate / single, per_process_vs_single=mean / single,
                      projected_min_one_after_another=runs * projected_seconds(
                          single, epochs, canvases) / 60)
    return result


def window_overlap(windows) -> float:
    """The share of the span from the first start to the last end of ``windows`` ((start,
    end) pairs on one clock) during which all of them ran: 1 when they ran together
    throughout, 0 when some never met. Per-process rates add up to the machine's rate only
    for windows that overlap."""
    windows = [(float(a), float(b)) for a, b in windows]
    if not windows or any(b < a for a, b in windows):
        raise ValueError(f"windows must be (start, end) pairs with end >= start, got {windows!r}")
    span = max(b for _, b in windows) - min(a for a, _ in windows)
    common = min(b for _, b in windows) - max(a for a, _ in windows)
    return 1.0 if span == 0 else max(0.0, common) / span


def summarize(arms: dict) -> dict:
    """Adds projections and ratios to every timed arm, in place; returns the best arm
    against the target (only arms whose loss check did not fail count, and only arms that
    train one model: a sum over several models is no model's speed) and, where arms trained
    several models at once, the one with the most canvases/s in all (``most_canvases``)."""
    eager = arms.get("eager", {}).get("canvases_per_s")
    for arm in arms.values():
        if arm.get("status") == "ok":
            seconds = projected_seconds(arm["canvases_per_s"])
            arm["projected_min"] = seconds / 60
            arm["projected_min_with_setup"] = (seconds + arm["setup_s"]) / 60
            arm["vs_eager"] = arm["canvases_per_s"] / eager if eager else None
    valid = {k: a for k, a in arms.items()
             if a.get("status") == "ok" and a["check"].get("ok") is not False}
    several = {k: a for k, a in valid.items() if a.get("runs", 1) > 1}
    single = {k: a for k, a in valid.items() if k not in several}
    summary = {"best": None, "meets_target": False}
    if single:
        best = max(single, key=lambda k: single[k]["canvases_per_s"])
        minutes = single[best]["projected_min"]
        summary = {"best": best, "canvases_per_s": single[best]["canvases_per_s"],
                   "projected_min": minutes, "vs_eager": single[best]["vs_eager"],
                   "target_minutes": TARGET_MINUTES, "meets_target": minutes <= TARGET_MINUTES,
                   "target_over_projected": TARGET_MINUTES / minutes}
    if several:
        most = max(several, key=lambda k: several[k]["canvases_per_s"])
        arm = several[most]
        summary["most_canvases"] = {
            "arm": most, "runs": arm["runs"], "canvases_per_s": arm["canvases_per_s"],
            "vs_single": arm.get("vs_single"), "vs_eager": arm["vs_eager"],
            "projected_min_all_models": arm["projected_min_all_models"]}
    return summary


def concurrent_line(arm: dict) -> str:
    """An arm of K runs at once in words: each run's rate, their sum, against one graphed
    run, the paper's run projected, how far their timed windows overlapped."""
    k = arm["runs"]
    rates = " + ".join(f"{r:.0f}" for r in arm["per_process_canvases_per_s"])
    line = f"{k} at once: {rates} = {arm['canvases_per_s']:.0f} canvases/s"
    if arm.get("vs_single"):
        line += f", {arm['vs_single']:.2f}x one graphed run ({arm['single']['arm']})"
    line += (f"; the paper's run {arm['projected_min_per_model']:.2f} min per model, all {k} "
             f"in {arm['projected_min_all_models']:.2f} min")
    if arm.get("projected_min_one_after_another"):
        line += f" ({arm['projected_min_one_after_another']:.2f} min one after another)"
    if arm.get("overlap") is not None:
        line += f"; timed windows overlap {arm['overlap']:.0%}"
    return line


def gpu_table(result: dict) -> str:
    rows = {}
    for name, arm in result["arms"].items():
        if arm["status"] != "ok":
            rows[name] = {"status": arm["status"]}
            continue
        ok = arm["check"].get("ok")
        rows[name] = {"canvases/s": round(arm["canvases_per_s"]),
                      "ms/step": arm["ms_per_step"], "setup s": arm["setup_s"],
                      "vs eager": arm["vs_eager"], "20 ep min": arm["projected_min"],
                      "+ setup": arm["projected_min_with_setup"],
                      "check": "-" if ok is None else "ok" if ok else "FAILED",
                      "status": "ok"}
    return format_table(rows, index="arm", digits=2)


def gpu_report(result: dict) -> str:
    cfg, s = result["config"], result["summary"]
    lines = [f"the step timed (the paper's unless --quick): width {cfg['width']}, blocks "
             f"{tuple(cfg['blocks'])}, {cfg['image_size'] * cfg['grid']} px canvases, batch "
             f"{cfg['batch_size']}, flips {cfg['hflip']}, bf16 autocast + channels_last on CUDA",
             gpu_table(result)]
    for name, arm in result["arms"].items():
        if arm["status"] != "ok":
            lines.append(f"  {name}: {arm.get('reason') or arm.get('error')}")
        elif arm.get("note"):
            lines.append(f"  {name}: {arm['note']}")
    if s.get("most_canvases"):
        m = s["most_canvases"]
        lines.append(f"most canvases/s, several models at once: {m['arm']}, "
                     f"{m['canvases_per_s']:.0f} canvases/s in all"
                     + (f", {m['vs_single']:.2f}x one graphed run" if m["vs_single"] else "")
                     + f" -> {m['runs']} paper runs in {m['projected_min_all_models']:.2f} min")
    if s["best"] is None:
        lines.append("no arm ran")
    else:
        lines.append(f"best: {s['best']}, {s['canvases_per_s']:.0f} canvases/s, "
                     f"{s['vs_eager'] or float('nan'):.2f}x eager -> the paper's run "
                     f"({PAPER_EPOCHS} x {PAPER_CANVASES:,} canvases) in "
                     f"{s['projected_min']:.2f} min; target {TARGET_MINUTES:g} min: "
                     f"{'met' if s['meets_target'] else 'missed'} "
                     f"({s['target_over_projected']:.2f}x the needed speed)")
    return "\n".join(lines)

