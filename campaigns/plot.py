"""``crowd costs --plot``: cumulative spend against budget and forecast (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

from campaigns.errors import CrowdError


def plot_spend(records, summaries: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the optional extra
        raise CrowdError("--plot needs matplotlib: pip install 'crowdbridge[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for summary in summaries:
        mine = sorted((r for r in records if r.campaign == summary["campaign"] and r.state in ("sent", "confirmed")),
                      key=lambda r: r.created_at)
        total, xs, ys = 0, [], []
        for r in mine:
            total += float(r.amount)
            xs.append(r.created_at)
            ys.append(total)
        if xs:
            ax.step(xs, ys, where="post", label=f"{summary['campaign']} spent")
            ax.axhline(float(summary["forecast_total"]), linestyle="--", label=f"{summary['campaign']} forecast")
        if summary["budget_cap"] is not None:
            ax.axhline(float(summary["budget_cap"]), color="red", label=f"{summary['campaign']} budget")
    ax.set_ylabel(summaries[0]["currency"] if summaries else "USD")
    ax.set_title("Cumulative spend")
    ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
