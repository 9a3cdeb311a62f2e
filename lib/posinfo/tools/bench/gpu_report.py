"""What the GPU bench's numbers mean: each arm's rate projected to the paper's own run
(20 epochs of 50,000 CIFAR-10 canvases), the best arm against the target, and the table.
"""
from __future__ import annotations

from ...tables import format_table

# The paper's own run: 20 epochs of 50,000 CIFAR-10 canvases; the target for it.
PAPER_EPOCHS, PAPER_CANVASES, TARGET_MINUTES = 20, 50_000, 1.0


def projected_seconds(canvases_per_s: float, epochs: int = PAPER_EPOCHS,
                      canvases: int = PAPER_CANVASES) -> float:
    """Seconds of training for ``epochs`` epochs of ``canvases`` canvases at a given rate."""
    return epochs * canvases / canvases_per_s


def summarize(arms: dict) -> dict:
    """Adds projections and ratios to every timed arm, in place; returns the best arm
    against the target (only arms whose loss check did not fail count)."""
    eager = arms.get("eager", {}).get("canvases_per_s")
    for arm in arms.values():
        if arm.get("status") == "ok":
            seconds = projected_seconds(arm["canvases_per_s"])
            arm["projected_min"] = seconds / 60
            arm["projected_min_with_setup"] = (seconds + arm["setup_s"]) / 60
            arm["vs_eager"] = arm["canvases_per_s"] / eager if eager else None
    valid = {k: a for k, a in arms.items()
             if a.get("status") == "ok" and a["check"].get("ok") is not False}
    if not valid:
        return {"best": None, "meets_target": False}
    best = max(valid, key=lambda k: valid[k]["canvases_per_s"])
    minutes = valid[best]["projected_min"]
    return {"best": best, "canvases_per_s": valid[best]["canvases_per_s"],
            "projected_min": minutes, "vs_eager": valid[best]["vs_eager"],
            "target_minutes": TARGET_MINUTES, "meets_target": minutes <= TARGET_MINUTES,
            "target_over_projected": TARGET_MINUTES / minutes}


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

