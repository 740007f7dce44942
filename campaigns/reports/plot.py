"""``crowd costs --plot``: each stage's cumulative spend and the campaign's total over the
marketplace's clock (simulated hours on a local marketplace), against the budget cap and the
forecast: what ops need to see whether a campaign will finish inside its cap (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

from campaigns.errors import CrowdError


def plot_spend(series: list[dict], summaries: list[dict], path: Path) -> None:
    """``series``: ``campaigns.reports.status.spend_series`` per campaign; ``summaries``: their cost summaries."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise CrowdError("--plot needs matplotlib: pip install 'crowdbridge[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    forecasts = {s["campaign"]: s["forecast_total"] for s in summaries}
    for data in series:
        name = data["campaign"]
        if data["total"]:
            xs, ys = zip(*((h, float(v)) for h, v in data["total"]), strict=True)
            line, = ax.step(xs, ys, where="post", linewidth=2, label=f"{name} total")
            if len(data["stages"]) > 1:
                for stage, points in data["stages"].items():
                    sx, sy = zip(*((h, float(v)) for h, v in points), strict=True)
                    ax.step(sx, sy, where="post", linewidth=1, label=f"{name} / {stage}")
            ax.axhline(float(forecasts[name]), linestyle="--", color=line.get_color(), label=f"{name} forecast")
        if data["budget_cap"] is not None:
            ax.axhline(float(data["budget_cap"]), color="red", label=f"{name} budget cap")
    ax.set_xlabel("hours since the first accepted assignment (marketplace clock)")
    ax.set_ylabel(f"spent ({series[0]['currency'] if series else 'USD'})")
    ax.set_title("Cumulative spend per stage against the budget cap")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
