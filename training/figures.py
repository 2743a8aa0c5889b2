"""The model card's pictures: confusion matrices and per-class accuracy, as PNG files.

Written by ``make evaluate`` beside docs/model.md from the same cross-validation results
the card's tables come from, so the pictures and the numbers never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from training.evaluate import PAPER_REFERENCE, PROTOCOL_TITLES, ProtocolResult
from training.features import WINE_TYPES

CONFUSION_PNG: Final = "model-confusion.png"
PER_CLASS_PNG: Final = "model-per-class-accuracy.png"
# The leakage-free protocol: the one whose errors production will show.
CONFUSION_PROTOCOL: Final = "grouped"
DPI: Final = 110
COLOURS: Final = {"paper": "#4c72b0", "grouped": "#dd8452"}


def _save(figure: object, path: Path) -> None:
    # No creation date or library version in the file: the same results give the same bytes.
    figure.savefig(path, dpi=DPI, metadata={"Software": None})  # type: ignore[attr-defined]


def write_figures(results: Sequence[ProtocolResult], directory: Path) -> list[tuple[str, str]]:
    """Write the PNG files into ``directory``; (file name, caption) of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_protocol = {r.protocol: r for r in results}
    directory.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, str]] = []

    grouped = by_protocol.get(CONFUSION_PROTOCOL)
    if grouped is not None and grouped.confusion:
        figure, axes = plt.subplots(1, len(WINE_TYPES), figsize=(11, 4.8))
        for axis, wine_type in zip(axes, WINE_TYPES, strict=True):
            matrix = grouped.confusion[wine_type]
            totals = [max(sum(row), 1) for row in matrix.counts]
            shares = [
                [c / total for c in row] for row, total in zip(matrix.counts, totals, strict=True)
            ]
            axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            for i, row in enumerate(matrix.counts):
                for j, count in enumerate(row):
                    colour = "white" if shares[i][j] > 0.6 else "black"
                    axis.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=8)
            ticks = range(len(matrix.grades))
            axis.set_xticks(ticks, [str(g) for g in matrix.grades])
            axis.set_yticks(ticks, [str(g) for g in matrix.grades])
            axis.set_xlabel("predicted grade")
            axis.set_ylabel("true grade")
            axis.set_title(f"{wine_type} wine")
        figure.suptitle("Out-of-fold predictions, leakage-free protocol (b); colour: row share")
        figure.tight_layout()
        _save(figure, directory / CONFUSION_PNG)
        plt.close(figure)
        written.append(
            (CONFUSION_PNG, "Confusion matrix per wine type, protocol (b) (leakage-free)")
        )

    if all(r.confusion for r in results) and results:
        figure, axes = plt.subplots(1, len(WINE_TYPES), figsize=(11, 4.5), sharey=True)
        for axis, wine_type in zip(axes, WINE_TYPES, strict=True):
            grades = sorted({g for r in results for g in r.confusion[wine_type].support()})
            width = 0.8 / len(results)
            for index, result in enumerate(results):
                accuracy = result.confusion[wine_type].per_class_accuracy()
                positions = [g + (index - (len(results) - 1) / 2) * width for g in grades]
                axis.bar(
                    positions,
                    [accuracy.get(g, 0.0) for g in grades],
                    width=width,
                    color=COLOURS.get(result.protocol),
                    label=PROTOCOL_TITLES[result.protocol].split(":")[0],
                )
            paper = PAPER_REFERENCE[wine_type]["accuracy"]
            axis.axhline(paper, color="black", linestyle="--", linewidth=1)
            axis.text(grades[0] - 0.4, paper + 0.02, f"paper, all grades: {paper:.1%}", fontsize=8)
            support = results[0].confusion[wine_type].support()
            axis.set_xticks(grades, [f"{g}\n(n={support.get(g, 0)})" for g in grades])
            axis.set_xlabel("true grade")
            axis.set_ylim(0, 1)
            axis.set_title(f"{wine_type} wine")
        axes[0].set_ylabel("share predicted exactly")
        axes[0].legend(loc="upper left", fontsize=8)
        figure.suptitle(
            "Per-grade accuracy under both protocols; dashed: the paper's SVM accuracy (T = 0.5)"
        )
        figure.tight_layout()
        _save(figure, directory / PER_CLASS_PNG)
        plt.close(figure)
        written.append(
            (
                PER_CLASS_PNG,
                "Per-grade accuracy, protocols (a) and (b), against the paper's overall accuracy",
            )
        )
    return written
