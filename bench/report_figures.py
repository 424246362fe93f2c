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


def _shape_line(ax, s: dict, color, label: str, bad_size: int, **line) -> None:
    """One series of latency per shape (a gap where it has no time), its Bad shapes as hollow markers."""
    pts = [(i, v, g) for i, (v, g) in enumerate(zip(s["latency_ms"], s["good"])) if v is not None]
    ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", color=color, label=label, **line)
    bad = [q for q in pts if not q[2]]
    if bad:
        ax.scatter([q[0] for q in bad], [q[1] for q in bad], s=bad_size, facecolors="white", edgecolors=color,
                   zorder=3)


def _latency(plt, spec):
    fig, axes = plt.subplots(1, len(spec["panels"]), figsize=(13, 4.8), squeeze=False)
    for ax, p in zip(axes[0], spec["panels"]):
        for s in p["series"]:
            _shape_line(ax, s, ROLE_COLORS.get(s["role"], "black"), f"{s['role']}: {s['label']}", 70)
        ax.set_xticks(range(len(p["shapes"])), p["shapes"], rotation=45)
        ax.set_yscale("log")
        ax.set_xlabel("batch x frames")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(p["model"])
        ax.legend(loc="upper left")
    fig.suptitle(spec["title"])
    return fig


def _latency_all(plt, spec):
    models = list(dict.fromkeys(p["model"] for p in spec["panels"]))
    cols = max(sum(p["model"] == m for p in spec["panels"]) for m in models)
    fig, axes = plt.subplots(len(models), cols, figsize=(6 * cols, 4.6 * len(models)), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for m_i, model in enumerate(models):
        for ax, p in zip(axes[m_i], [p for p in spec["panels"] if p["model"] == model]):
            ax.set_visible(True)
            colors = plt.get_cmap("tab20").colors
            for i, s in enumerate(p["series"]):
                _shape_line(ax, s, colors[i % len(colors)], s["label"], 30, markersize=3, linewidth=1)
            ax.set_xticks(range(len(p["shapes"])), p["shapes"], rotation=45, fontsize=7)
            ax.set_yscale("log")
            ax.set_ylabel("latency, ms (log)")
            ax.set_title(f"{model}: {p['harness']}")
            ax.legend(loc="upper left", fontsize=6)
    fig.suptitle(spec["title"])
    fig.tight_layout()
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
    fig, axes = plt.subplots(1, len(spec["panels"]), figsize=(13, 5.6), squeeze=False)
    for ax, p in zip(axes[0], spec["panels"]):
        for q in p["points"]:
            plug = q.get("source") == "plugins"
            ax.scatter(q["worst_ratio"], q["sum_ms"], marker="^" if q["torch"] else "s" if plug else "o",
                       color="tab:orange" if q["torch"] else ("tab:green" if plug else "tab:blue") if q["front"]
                       else ("palegreen" if plug else "lightsteelblue"),
                       edgecolors="black", linewidths=0.4, zorder=3)
            if q["front"] or q["torch"]:    # the others stay unlabelled: their names overlap (the JSON has them)
                ax.annotate(q["label"], (q["worst_ratio"], q["sum_ms"]), fontsize=5.5, xytext=(3, 2),
                            textcoords="offset points")
        front = sorted((q for q in p["points"] if q["front"]), key=lambda q: q["worst_ratio"])
        if front:
            ax.step([q["worst_ratio"] for q in front], [q["sum_ms"] for q in front], where="post",
                    color="tab:blue", linewidth=1)
        for f in p.get("fronts", []):
            pts = f["points"]
            ax.step([q["worst_ratio"] for q in pts], [q["sum_ms"] for q in pts], where="post", color="tab:purple",
                    linestyle="--", linewidth=1, marker="D", markersize=4,
                    label=f"{f['study']}: front of {f['points_in_study']} trials")
            for q in pts:
                ax.annotate(f"trial {q['trial']}", (q["worst_ratio"], q["sum_ms"]), fontsize=5.5,   # plans: README
                            xytext=(3, -7), textcoords="offset points", color="tab:purple")
        ax.scatter([], [], marker="o", color="tab:blue", edgecolors="black", linewidths=0.4, label="layouts bench")
        ax.scatter([], [], marker="s", color="tab:green", edgecolors="black", linewidths=0.4, label="plugins bench")
        ax.scatter([], [], marker="^", color="tab:orange", edgecolors="black", linewidths=0.4, label="PyTorch")
        ax.axvline(1.0, color="tab:red", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("worst metric/threshold ratio over the grid (log; Good iff < 1)")
        ax.set_ylabel("sum of latency over the grid, ms (log)")
        ax.set_title(p["model"] + ("\nnot shown: " + "; ".join(p["left_out"]) if p["left_out"] else ""),
                     fontsize=7)
        ax.legend(loc="lower left", fontsize=6)
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


PLUGIN_COLORS = {"none": "tab:gray", "+ln": "tab:green", "+lsm": "tab:purple", "+ln+lsm": "tab:cyan"}


def _plugins(plt, spec):
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, len(spec["panels"]), figsize=(13, 4.6), squeeze=False)
    for ax, p in zip(axes[0], spec["panels"]):
        y, ticks, labels = 0.0, [], []
        for g in p["groups"]:
            for b in g["bars"]:
                bad = b["good"] < b["cases"]
                ax.barh(y, b["sum_ms"], color=PLUGIN_COLORS.get(b["plugins"], "tab:blue"), edgecolor="black",
                        linewidth=0.4, hatch="//" if bad else None)
                ax.text(b["sum_ms"], y, f" {b['sum_ms']:.2f} ms, {b['good']}/{b['cases']} Good", va="center",
                        fontsize=6.5, color="tab:red" if bad else "black")
                ticks.append(y)
                labels.append(b["label"])
                y += 1
            y += 0.6        # a gap between the FP32 and the FP16 group
        base = next((b for g in p["groups"] for b in g["bars"] if b["label"] == p["baseline"]), None)
        if base:
            ax.axvline(base["sum_ms"], color="black", linestyle=":", linewidth=0.8)
        ax.set_yticks(ticks, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(right=max(b["sum_ms"] for g in p["groups"] for b in g["bars"]) * 1.45)
        ax.set_xlabel("sum of latency over the judged grid, ms (dotted: the baseline)")
        ax.set_title(f"{p['model']} (baseline: {p['baseline']})")
        ax.legend(handles=[Patch(color=color, label="no plugin" if name == "none" else name)
                           for name, color in PLUGIN_COLORS.items()
                           if any(b["plugins"] == name for g in p["groups"] for b in g["bars"])], loc="lower right")
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


STATE_COLORS = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red", "WAITING": "lightgrey",
                "RUNNING": "tab:gray"}


def _decoder_study(plt, spec):
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    races = sorted({c["model"] for c in spec.get("samplers") or []})
    rows = len(spec["studies"]) + len(races)
    fig, axes = plt.subplots(rows, 2, figsize=(13, 4.4 * rows), squeeze=False)
    for (ax, ax2), model in zip(axes[len(spec["studies"]):], races):
        curves = [c for c in spec["samplers"] if c["model"] == model]
        _sampler_race(ax, curves, model)
        _own_choice_race(ax2, curves, model)
    for (ax, ax2), st in zip(axes, spec["studies"]):
        ts = st["trials"]
        done = [t for t in ts if t["value"] is not None]
        for t in done:
            ax.scatter(t["trial"], t["value"], marker="o" if t["feasible"] else "x", color="tab:blue", zorder=3)
            ax.annotate(t["label"], (t["trial"], t["value"]), fontsize=5.5, xytext=(3, 3), textcoords="offset points",
                        rotation=20)
        best = [(t["trial"], t["best_so_far"]) for t in ts if t["best_so_far"] is not None]
        if best:
            ax.step([b[0] for b in best], [b[1] for b in best], where="post", color="tab:green",
                    label="best feasible so far")
        low = min(t["value"] for t in done) if done else 1.0
        for t in (t for t in ts if t["value"] is None):
            ax.annotate(t["state"], (t["trial"], low), fontsize=6, color=STATE_COLORS.get(t["state"], "black"),
                        ha="center", va="top", rotation=90, xytext=(0, -8), textcoords="offset points")
        ax.scatter([], [], marker="o", color="tab:blue", label="complete, feasible")
        ax.scatter([], [], marker="x", color="tab:blue", label="complete, infeasible (penalised objective)")
        ax.set_xlabel("trial (no value: the state is written at the bottom)")
        ax.set_yscale(spec.get("yscale", "linear"))
        ax.set_ylabel("objective, ms (sum over the grid" + (", log)" if spec.get("yscale") == "log" else ")"))
        ax.set_xlim(-0.7, max(t["trial"] for t in ts) + 0.7)
        ax.margins(y=0.25)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{st['study']}: objective per trial")
        ax.legend(loc="upper right", fontsize=6)
        ran = [t for t in ts if t["duration_s"] is not None]
        ax2.bar([t["trial"] for t in ran], [t["duration_s"] for t in ran],
                color=[STATE_COLORS.get(t["state"], "black") for t in ran], edgecolor="black", linewidth=0.4)
        ax2.bar([t["trial"] for t in ran], [t["build_s"] or 0 for t in ran], width=0.4, color="white", alpha=0.6,
                edgecolor="black", linewidth=0.4)
        handles = [Patch(facecolor="white", edgecolor="black", linewidth=0.4, label="of which engine build")]
        handles += [Patch(color=color, label=state) for state, color in STATE_COLORS.items()
                    if any(t["state"] == state for t in ran)]
        ax2.set_xlim(-0.7, max(t["trial"] for t in ts) + 0.7)
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_xlabel("trial")
        ax2.set_ylabel("trial duration, s")
        ax2.set_title(f"{st['study']}: duration per trial")
        ax2.legend(handles=handles, loc="upper right", fontsize=6)
    fig.suptitle(spec["title"])
    fig.tight_layout()
    return fig


def _sampler_race(ax, curves, model):
    """Best feasible so far vs trials run, one line per study (sampler): TPE against random at equal trials."""
    _race(ax, curves, "best_so_far", "trials run (any state)", "best feasible objective so far, ms",
          f"{model}: samplers at equal trials")


def _own_choice_race(ax, curves, model):
    """The same race over the trials each sampler chose itself (no seed, no plan, no stale trial)."""
    _race(ax, curves, "chosen_best", "trials the sampler chose itself", "best feasible among them, ms",
          f"{model}: samplers on their own choices", counted="own trials")


def _race(ax, curves, key, xlabel, ylabel, title, counted=None):
    """One step line per study of curve[key] (best so far after 1, 2, ... trials); a study with no feasible
    point is still named in the legend."""
    from matplotlib.ticker import MaxNLocator

    drawn = 0
    for c in curves:
        pts = [(i + 1, b) for i, b in enumerate(c.get(key) or []) if b is not None]
        label = f"{c['study']} ({c['sampler']})" + (f": {len(c.get(key) or [])} {counted}" if counted else "")
        if pts:
            drawn += 1
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=label)
        else:
            ax.plot([], [], label=label + ", none feasible")
    if not drawn:
        ax.text(0.5, 0.5, "no feasible trial yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)


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


DRAW = {"latency": _latency, "latency-all": _latency_all, "latency-all-h100": _latency_all,
        "speedup": _speedup, "layers": _layers, "build": _build,
        "pareto": _pareto, "pareto-h100": _pareto, "study": _study, "plugins": _plugins, "plugin-layers": _layers,
        "decoder-study": _decoder_study, "decoder-serving-study": _decoder_study}


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
