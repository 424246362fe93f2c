"""Draw a figure spec (bench.report_specs) to PNG bytes, deterministically.

Same spec + same matplotlib/FreeType/Pillow -> same bytes: the Agg backend, matplotlib's default
style plus the fixed RC below (no user matplotlibrc), and no 'Software' text chunk or date in the PNG.
"""
from __future__ import annotations

import io
import math

RC = {"font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 9, "figure.titlesize": 10,
      "legend.fontsize": 7, "figure.dpi": 100, "savefig.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
      "svg.hashsalt": "bench.report", "figure.autolayout": False}
ROLE_COLORS = {"naive": "tab:gray", "best contest": "tab:blue", "best serving": "tab:green",
               "torch eager": "tab:orange", "torch.compile": "tab:red"}


def renderer() -> dict[str, str]:
    """The versions PNG bytes depend on (recorded in the manifest; bytes are compared only when equal)."""
    import matplotlib
    import PIL
    from matplotlib import ft2font
    return {"matplotlib": matplotlib.__version__, "freetype": ft2font.__freetype_version__,
            "pillow": PIL.__version__}


def _latency(plt, spec):
    fig, axes = plt.subplots(1, len(spec["panels"]), figsize=(13, 4.8), squeeze=False)
    for ax, p in zip(axes[0], spec["panels"]):
        for s in p["series"]:
            pts = [(i, v, g) for i, (v, g) in enumerate(zip(s["latency_ms"], s["good"])) if v is not None]
            color = ROLE_COLORS.get(s["role"], "black")
            ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", color=color,
                    label=f"{s['role']}: {s['label']}")
            bad = [q for q in pts if not q[2]]
            if bad:
                ax.scatter([q[0] for q in bad], [q[1] for q in bad], s=70, facecolors="white",
                           edgecolors=color, zorder=3)
        ax.set_xticks(range(len(p["shapes"])), p["shapes"], rotation=45)
        ax.set_yscale("log")
        ax.set_xlabel("batch x frames")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(p["model"])
        ax.legend(loc="upper left")
    fig.suptitle(spec["title"])
    return fig


def _speedup(plt, spec):
    n = len(spec["panels"])
    fig, axes = plt.subplots(math.ceil(n / 2), 2, figsize=(14, 4.2 * math.ceil(n / 2)), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, p in zip(axes.flat, spec["panels"]):
        bars = p["bars"][::-1]
        colors = ["tab:orange" if b["torch"] else "tab:blue" if b["all_good"] else "lightgrey" for b in bars]
        y = range(len(bars))
        ax.barh(y, [b["speedup"] for b in bars], color=colors, edgecolor="black", linewidth=0.4)
        for i, b in enumerate(bars):
            ax.text(b["speedup"], i, f" {b['speedup']:.2f}x", va="center", fontsize=6)
        ax.set_yticks(y, [b["label"] for b in bars], fontsize=6)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(right=max(b["speedup"] for b in bars) * 1.6)
        ax.set_xlabel("speed-up (log; > 1 = faster than the baseline)")
        ax.set_title(f"{p['model']}: vs {p['baseline']}{p['note']}")
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


def _build(plt, spec):
    fig, axes = plt.subplots(1, len(spec["panels"]), figsize=(13, 4.2), squeeze=False)
    for ax, p in zip(axes[0], spec["panels"]):
        bars = p["bars"][::-1]
        y = range(len(bars))
        ax.barh(y, [b["wall_s"] or 0 for b in bars], color="lightsteelblue", label="build process wall time")
        ax.barh(y, [b["build_s"] or 0 for b in bars], height=0.5, color="tab:blue", label="TensorRT build")
        for i, b in enumerate(bars):
            text = f" {b['build_s']:.0f} s" if b["build_s"] is not None else f" {b['status']}: {b['reason']}"
            ax.text(b["wall_s"] or 0, i, text, va="center", fontsize=6)
        ax.set_yticks(y, [b["label"] for b in bars], fontsize=7)
        ax.set_xlabel("seconds")
        ax.set_title(p["model"])
        ax.legend(loc="lower right")
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


def _layers(plt, spec):
    names = spec["order"] + ["all other layers"]
    profs = spec["profiles"]
    fig, ax = plt.subplots(figsize=(11, 0.2 * len(names) * len(profs) + 2.2))
    h = 0.8 / len(profs)
    for j, p in enumerate(profs):
        vals = [p["top"].get(n, 0.0) for n in names[:-1]] + [max(p["other_ms"] or 0.0, 0.0)]
        ax.barh([i + j * h for i in range(len(names))], vals, height=h,
                label=f"{p['key']} ({p['harness']}, profile {p['profile']}): latency {p['latency_ms']:.2f} ms, "
                      f"host {p['host_ms']:.2f} ms, {p['layers']} layers sum {p['sum_ms']:.2f} ms")
    ax.set_yticks([i + h * (len(profs) - 1) / 2 for i in range(len(names))], names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms per layer (TensorRT IProfiler)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title(spec["title"])
    fig.tight_layout()
    return fig


def _pareto(plt, spec):
    fig, axes = plt.subplots(1, len(spec["panels"]), figsize=(13, 5.2), squeeze=False)
    for ax, p in zip(axes[0], spec["panels"]):
        for q in p["points"]:
            ax.scatter(q["worst_ratio"], q["sum_ms"], marker="^" if q["torch"] else "o",
                       color="tab:orange" if q["torch"] else "tab:blue" if q["front"] else "lightsteelblue",
                       edgecolors="black", linewidths=0.4, zorder=3)
            ax.annotate(q["label"], (q["worst_ratio"], q["sum_ms"]), fontsize=5.5, xytext=(3, 2),
                        textcoords="offset points")
        front = sorted((q for q in p["points"] if q["front"]), key=lambda q: q["worst_ratio"])
        if front:
            ax.step([q["worst_ratio"] for q in front], [q["sum_ms"] for q in front], where="post",
                    color="tab:blue", linewidth=1)
        ax.axvline(1.0, color="tab:red", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("worst metric/threshold ratio over the grid (log; Good iff < 1)")
        ax.set_ylabel("sum of latency over the grid, ms (log)")
        ax.set_title(p["model"] + ("\nnot shown: " + "; ".join(p["left_out"]) if p["left_out"] else ""),
                     fontsize=7)
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


def _study(plt, spec):
    from matplotlib.ticker import MaxNLocator

    present = {s["model"] for s in spec["series"]}
    models = [m for m in ("encoder", "decoder") if m in present] + sorted(present - {"encoder", "decoder"})
    fig, axes = plt.subplots(1, len(models), figsize=(12, 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        for s in (s for s in spec["series"] if s["model"] == model):
            name = s["study"] + ("" if s["sampler"] == "not recorded" else f" ({s['sampler']})")
            best = [(t, b) for t, b in zip(s["trial"], s["best_so_far"]) if b is not None]
            line, = ax.step([b[0] for b in best], [b[1] for b in best], where="post", label=f"{name}: best so far")
            for t, v, ok, seed in zip(s["trial"], s["value"], s["feasible"], s["seed"]):
                ax.scatter(t, v, marker="o" if ok else "x", color=line.get_color(), zorder=3)
                if seed:
                    ax.annotate(seed, (t, v), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0.12, y=0.08)
        shapes = next(s["shapes"] for s in spec["series"] if s["model"] == model)
        ax.set_ylabel(f"objective, ms ({shapes} shapes)")
        ax.scatter([], [], marker="x", color="black", label="infeasible trial (penalised objective)")
        ax.set_title(model)
        ax.legend(loc="best")
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


DRAW = {"latency": _latency, "speedup": _speedup, "layers": _layers, "build": _build, "pareto": _pareto,
        "study": _study}


def render(spec: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.style.context("default"), matplotlib.rc_context(RC):
        fig = DRAW[spec["figure"]](plt, spec)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        plt.close(fig)
    return buf.getvalue()
