"""Chapter 4's tables, sanity checks and verdicts, from what the ``attack`` stage measured.

    from sdnet.chapters.attack_report import AttackResults
    results = AttackResults.load(study.results("attacks"))
    results.worst_case_table()      # robust accuracy per radius and test-time lambda
    results.sanity_checks()         # the checks a gradient-masking defence would fail
    results.claims()                # the verdict rows

Two threat models at every test-time setting (:mod:`sdnet.attacks`): *transfer*, the examples
crafted on the network as it was trained (SDNet-18 at its training lambda, the bare ResNet-18), the
paper's protocol; *white-box*, the attacker knows the setting. The rival (issue of every reader):
the same ResNet-18 behind a test-time Gaussian blur (:mod:`sdnet.denoise`), attacked both ways
like SDNet-18's lambda, compared at equal clean accuracy. A lambda chosen per radius is reported
chosen on the scored images (the paper's protocol) and held out (:mod:`sdnet.chapters.protocols`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdnet.attacks import WORST
from sdnet.chapters.protocols import at_edge, pooled, tune
from sdnet.chapters.results import Compared, read_about, read_table
from sdnet.chapters.verdicts import beyond_noise, noise_level

SCORES = ["clean", "white_box", "transfer"]
PAPER_RADII = [("Linf", 8 / 255), ("L2", 0.5)]  # the paper's: PGD at L-inf 8/255 and L2 0.5
THREATS = {"transfer": "the paper's protocol (crafted on the trained network)", "white_box": "white-box (the attacker knows the setting)"}


def radius(norm: str, eps: float) -> str:
    return f"{norm} {eps * 255:.0f}/255" if norm == "Linf" else f"{norm} {eps:g}"


def at_radius(frame: pd.DataFrame, norm: str, eps: float) -> pd.DataFrame:
    return frame[(frame["norm"] == norm) & ((frame["eps"] - eps).abs() < 1e-6)]


def compare_at_equal_clean(ours: pd.DataFrame, rival: pd.DataFrame, y: str) -> pd.DataFrame:
    """``ours``' robust accuracy ``y`` at each clean accuracy of ``rival``'s points, linearly
    interpolated between ``ours``' neighbouring points (both: columns ``clean`` and ``y``). Rival
    points outside ``ours``' range of clean accuracy are left out (no extrapolation).
    Columns: ``clean``, ``rival``, ``ours``, ``value`` (the rival's knob value)."""
    ours = ours.sort_values("clean")
    low, high = ours["clean"].min(), ours["clean"].max()
    rows = []
    for _, r in rival.iterrows():
        if low <= r["clean"] <= high:
            rows.append({"value": r["value"], "clean": r["clean"], "rival": r[y], "ours": float(np.interp(r["clean"], ours["clean"], ours[y]))})
    return pd.DataFrame(rows, columns=["value", "clean", "rival", "ours"])


@dataclass(frozen=True)
class AttackResults(Compared):
    """The stage's tables (``attacks`` and ``filters`` per half of the images) and ``about``."""

    attacks: pd.DataFrame
    filters: pd.DataFrame
    stronger: pd.DataFrame
    autoattack: pd.DataFrame | None
    about: dict[str, Any]

    @classmethod
    def load(cls, folder: Path) -> AttackResults:
        filters = read_table(folder, "filters", optional=True)
        return cls(read_table(folder, "attacks"), pd.DataFrame() if filters is None else filters, read_table(folder, "stronger"),
                   read_table(folder, "autoattack", optional=True), read_about(folder))

    # -- what was run ------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.about["test_images"]

    @property
    def kinds(self) -> list[str]:
        return [a["kind"] for a in self.about["attacks"]]

    @property
    def worst(self) -> str:
        """The attack name of the per-image worst case (the only attack when there is one)."""
        return WORST if len(self.kinds) > 1 else self.kinds[0]

    @property
    def pgd(self) -> str:
        """The paper's attack where the profile runs it, else the worst case."""
        return "pgd" if "pgd" in self.kinds else self.worst

    @property
    def train_lam(self) -> float:
        return self.about["train_lam"]

    def whole(self) -> pd.DataFrame:
        """``attacks`` on all the images (halves pooled)."""
        return pooled(self.attacks, SCORES)

    def filters_whole(self) -> pd.DataFrame:
        return pooled(self.filters, SCORES) if not self.filters.empty else self.filters

    def paper_radii(self) -> list[tuple[str, float]]:
        whole = self.whole()
        return [(norm, eps) for norm, eps in PAPER_RADII if len(at_radius(whole[whole["model"] == self.sdnet], norm, eps))]

    # -- tables ------------------------------------------------------------------------------
    def worst_case_table(self) -> pd.DataFrame:
        """Robust top-1 (%) under the worst case: rows clean, then each radius white-box and transfer;
        columns ResNet-18 (and behind each blur), SDNet-18 at each lambda."""
        whole = self.whole()
        sd = whole[(whole["model"] == self.sdnet) & (whole["attack"] == self.worst)]
        base = whole[(whole["model"] == self.baseline) & (whole["attack"] == self.worst)]
        blur = self.filters_whole()
        blur = blur[(blur["attack"] == self.worst) & (blur["strength"] > 0)] if not blur.empty else blur
        columns = {lam: f"SDNet-18 λ={lam:g}" for lam in sorted(sd["lam"].unique())}
        sigmas = sorted(blur["strength"].unique()) if not blur.empty else []

        def row(label: str, threat: str, score: str, rn: pd.DataFrame, s: pd.DataFrame, b: pd.DataFrame) -> dict:
            out = {"radius": label, "threat": threat, "ResNet-18": rn[score].iloc[0] if len(rn) and score != "transfer" else None}
            out.update({f"ResNet-18 + blur σ={sig:g}": b[b["strength"] == sig][score].iloc[0] for sig in sigmas})
            out.update({columns[lam]: p[score].iloc[0] for lam, p in s.groupby("lam")})
            return out

        rows = [row("clean", "", "clean", base, sd, at_radius(blur, *self._first_radius()) if sigmas else blur)]
        for (norm, eps), part in sd.groupby(["norm", "eps"], sort=False):
            for threat in ("white_box", "transfer"):
                rows.append(row(radius(norm, eps), threat.replace("_", "-"), threat, at_radius(base, norm, eps), part,
                                at_radius(blur, norm, eps) if sigmas else blur))
        return pd.DataFrame(rows).round(2)

    def _first_radius(self) -> tuple[str, float]:
        first = self.attacks.iloc[0]
        return first["norm"], first["eps"]

    def sanity_checks(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every check on every (model, norm, attack, lambda) and their summary: robust accuracy
        (1) falls as the radius grows, (2) is near zero (<= 5%) at the largest radius, (3) is never
        higher under a stronger attack, (4) is never higher white-box than transfer; "higher" beyond
        the noise of two binomial estimates on these images (:func:`sdnet.chapters.verdicts.beyond_noise`)."""
        n, whole = self.n, self.whole()
        checks = []
        for (model, norm, attack, lam), part in whole.groupby(["model", "norm", "attack", "lam"], dropna=False):
            part = part.sort_values("eps")
            for threat in ("white_box", "transfer"):
                values = part[threat].tolist()
                rises = [(a, b) for a, b in zip(values, values[1:]) if beyond_noise(b, a, n)]
                checks.append({"check": "falls with eps", "model": model, "norm": norm, "attack": attack, "lam": lam, "threat": threat, "holds": not rises})
            if attack == self.worst:
                checks.append({"check": "near zero at the largest eps", "model": model, "norm": norm, "attack": attack, "lam": lam,
                               "threat": "white_box", "holds": bool(part["white_box"].iloc[-1] <= 5.0)})
        for lam, part in self.stronger.groupby("lam"):
            weak, strong = part.sort_values("steps")["white_box"].tolist()
            checks.append({"check": "stronger attack never weaker", "model": self.sdnet, "norm": part["norm"].iloc[0], "attack": part["attack"].iloc[0],
                           "lam": lam, "threat": "white_box", "holds": not beyond_noise(strong, weak, n)})
        for _, r in whole[whole["model"] == self.sdnet].iterrows():
            checks.append({"check": "white-box <= transfer", "model": self.sdnet, "norm": r["norm"], "attack": r["attack"], "lam": r["lam"],
                           "threat": "both", "holds": not beyond_noise(r["white_box"], r["transfer"], n)})
        checks = pd.DataFrame(checks)
        summary = checks.groupby("check", sort=False)["holds"].agg(["sum", "count"]).reset_index()
        summary["holds"] = summary["sum"] == summary["count"]
        return checks, summary.rename(columns={"sum": "cases passed", "count": "cases"})

    def tradeoff(self, norm: str, eps: float) -> pd.DataFrame:
        """Clean and robust accuracy at every setting, per defence and threat, at one radius (worst
        case): SDNet-18 over lambda, ResNet-18 behind the blur over sigma (sigma 0: bare). Columns:
        defence, threat, knob, value, clean, robust."""
        whole = at_radius(self.whole(), norm, eps)
        sd = whole[(whole["model"] == self.sdnet) & (whole["attack"] == self.worst)]
        rows = []
        for threat in ("transfer", "white_box"):
            for _, r in sd.iterrows():
                rows.append({"defence": f"SDNet-18, {threat.replace('_', '-')}", "threat": threat, "knob": "λ", "value": r["lam"], "clean": r["clean"], "robust": r[threat]})
            if not self.filters.empty:
                blur = at_radius(self.filters_whole(), norm, eps)
                for _, r in blur[blur["attack"] == self.worst].iterrows():
                    rows.append({"defence": f"ResNet-18 + blur, {threat.replace('_', '-')}", "threat": threat, "knob": "σ", "value": r["strength"], "clean": r["clean"], "robust": r[threat]})
        return pd.DataFrame(rows)

    # -- the claims --------------------------------------------------------------------------
    def lambda_gain(self, norm: str, eps: float, threat: str, attack: str) -> dict[str, Any]:
        """SDNet-18's robust accuracy at the training lambda and at the best lambda, chosen on the
        scored images (``same``) and on the other half (``held``), with the clean accuracy there."""
        rows = at_radius(self.attacks, norm, eps)
        rows = rows[(rows["model"] == self.sdnet) & (rows["attack"] == attack)]
        whole = pooled(rows, SCORES)
        at_train = whole[np.isclose(whole["lam"], self.train_lam)].iloc[0]
        tuned = tune(rows.assign(radius=radius(norm, eps)), ["radius"], "lam", threat).iloc[0]
        clean = whole.set_index("lam")["clean"]
        held_lams = [tuned["lam_held0"], tuned["lam_held1"]]
        return {"radius": radius(norm, eps), "train": at_train[threat], "same": tuned[f"{threat}_same"], "lam_same": tuned["lam_same"],
                "clean_same": clean.loc[tuned["lam_same"]], "held": tuned[f"{threat}_held"], "lams_held": held_lams,
                "clean_held": float(np.mean([clean.loc[lam] for lam in held_lams])), "edge": at_edge([tuned["lam_same"], *held_lams], whole["lam"]),
                "clean_train": at_train["clean"]}

    def _gain_text(self, g: dict[str, Any]) -> str:
        held = " and ".join(f"{lam:g}" for lam in g["lams_held"])
        edge = "; the grid's largest lambda among them" if g["edge"] else ""
        return (f"{g['radius']}: {g['train']:.1f}% at lambda {self.train_lam:g} (clean {g['clean_train']:.1f}%) -> held out {g['held']:.1f}% "
                f"(lambda chosen on the other half: {held}; clean {g['clean_held']:.1f}%{edge}); chosen on the scored images (the paper's protocol) "
                f"{g['same']:.1f}% at lambda {g['lam_same']:g} (clean {g['clean_same']:.1f}%)")

    def _gain_verdict(self, gains: list[dict[str, Any]]) -> str:
        """Held out: the gain is substantial when over 5 points and beyond the noise of its images."""
        points = ", ".join(f"{g['held'] - g['train']:+.1f} points at {g['radius']} held out ({g['same'] - g['train']:+.1f} the paper's protocol)" for g in gains)
        held = [g for g in gains if g["held"] - g["train"] > max(5.0, noise_level(g["train"], self.n))]
        edge = "; the best lambda is the grid's largest: a larger one may do better" if any(g["edge"] for g in gains) else ""
        if len(held) == len(gains):
            return f"holds: {points}{edge}"
        if held:
            return f"holds at {' and '.join(g['radius'] for g in held)} only: {points}{edge}"
        return f"does not hold: {points}{edge}"

    def rival_comparison(self, norm: str, eps: float, threat: str) -> pd.DataFrame:
        """SDNet-18's lambda curve against the blurred ResNet-18's sigma curve, both under ``threat``,
        at the blur's clean accuracies (:func:`compare_at_equal_clean`)."""
        curves = self.tradeoff(norm, eps)
        ours = curves[(curves["defence"].str.startswith("SDNet")) & (curves["threat"] == threat)]
        rival = curves[(curves["defence"].str.startswith("ResNet")) & (curves["threat"] == threat) & (curves["value"] > 0)]
        return compare_at_equal_clean(ours, rival, "robust")

    def _rival_verdict(self, compared: pd.DataFrame) -> str:
        if compared.empty:
            return "not shown: the blur's clean accuracies lie outside SDNet-18's range (no interpolation without extrapolating)"
        n = self.n
        diffs = ", ".join(f"{r['ours'] - r['rival']:+.1f} at clean {r['clean']:.1f}% (σ {r['value']:g})" for _, r in compared.iterrows())
        above = [beyond_noise(r["ours"], r["rival"], n) for _, r in compared.iterrows()]
        below = [beyond_noise(r["rival"], r["ours"], n) for _, r in compared.iterrows()]
        if all(above):
            return f"holds: SDNet-18 higher by {diffs}"
        if any(above) and any(below):
            return f"not shown: it depends on the clean accuracy ({diffs})"
        if any(below):
            return f"does not hold: the blur earns more at some clean accuracies and as much at the others ({diffs})"
        if any(above):
            return f"not shown: SDNet-18 higher at some clean accuracies, as high at the others ({diffs})"
        return f"does not hold: the blur earns as much, within the noise of {n} images ({diffs})"

    def claims(self) -> list[dict[str, str]]:
        """The verdict rows of chapter 4."""
        whole, radii = self.whole(), self.paper_radii()
        missing = [radius(*r) for r in PAPER_RADII if r not in radii]
        not_measured = f" ({', '.join(missing)} not measured at this profile)" if missing else ""
        paper_claim = "a larger test-time lambda raises robust accuracy substantially (the paper's protocol: PGD crafted at the training lambda)"
        if not radii:
            return [{"claim": paper_claim, "paper": "PGD at L-inf 8/255 and L2 0.5, CIFAR-10", "here": "neither radius is measured at this profile", "verdict": "not tested"}]
        claims = []
        fragile = []
        for norm, eps in radii:
            sd = at_radius(whole, norm, eps)
            s = sd[(sd["model"] == self.sdnet) & (sd["attack"] == self.pgd) & np.isclose(sd["lam"], self.train_lam)]["white_box"].iloc[0]
            b = sd[(sd["model"] == self.baseline) & (sd["attack"] == self.pgd)]["white_box"]
            fragile.append((radius(norm, eps), s, b.iloc[0] if len(b) else None))
        claims.append({"claim": "at the training lambda SDNet-18 is about as fragile as ResNet-18", "paper": "PGD, CIFAR-10",
                       "here": f"{self.pgd}, {self.about['data']}: " + "; ".join(f"{r}: SDNet-18 {s:.1f}%" + (f", ResNet-18 {b:.1f}%" if b is not None else "") for r, s, b in fragile),
                       "verdict": "not tested: no ResNet-18 given" if self.baseline is None else "holds" if all(abs(s - b) <= 10 for _, s, b in fragile) else "does not hold"})
        paper_gains = [self.lambda_gain(norm, eps, "transfer", self.pgd) for norm, eps in radii]
        claims.append({"claim": paper_claim, "paper": "PGD at L-inf 8/255 and L2 0.5, CIFAR-10",
                       "here": "; ".join(self._gain_text(g) for g in paper_gains) + not_measured, "verdict": self._gain_verdict(paper_gains)})
        white_gains = [self.lambda_gain(norm, eps, "white_box", self.worst) for norm, eps in radii]
        claims.append({"claim": "a larger test-time lambda raises robust accuracy substantially (white-box)",
                       "paper": "(not tested in the paper: there the attacker does not know lambda)",
                       "here": f"worst case of {', '.join(self.kinds)}, lambda known to the attacker; " + "; ".join(self._gain_text(g) for g in white_gains),
                       "verdict": self._gain_verdict(white_gains).replace("does not hold", "does not hold against the worst case", 1)})
        if self.autoattack is not None:
            claims.append(self._autoattack_claim(whole))
        paper_gain = max(g["held"] - g["train"] for g in paper_gains)
        white_gain = max(g["held"] - g["train"] for g in white_gains)
        claims.append({"claim": "(ours) the gain under the paper's protocol survives an attacker who knows lambda", "paper": "(not separated in the paper)",
                       "here": f"largest held-out gain {paper_gain:+.1f} points (paper's protocol) vs {white_gain:+.1f} (white-box worst case)",
                       "verdict": "does not hold: most of the gain comes from the attacker not knowing lambda" if paper_gain - white_gain > 5
                       else "holds: white-box and the paper's protocol agree within 5 points"})
        if not self.filters.empty and ("Linf", 8 / 255) in radii:
            transfer, white = self.rival_comparison("Linf", 8 / 255, "transfer"), self.rival_comparison("Linf", 8 / 255, "white_box")
            claims.append({"claim": "(ours) under the paper's protocol, SDNet-18's test-time lambda earns more than an unknown blur earns ResNet-18, at equal clean accuracy",
                           "paper": "(not in the paper)",
                           "here": f"Linf 8/255, worst case, SDNet-18 interpolated between grid lambdas at the blurred ResNet-18's clean accuracies; "
                                   f"white-box (both defences known): {self._rival_verdict(white)}",
                           "verdict": self._rival_verdict(transfer)})
        return claims

    def _autoattack_claim(self, whole: pd.DataFrame) -> dict[str, str]:
        ours = at_radius(whole[whole["attack"] == self.worst], "Linf", 8 / 255)
        parts, overstated = [], []
        for _, row in self.autoattack.iterrows():
            model_rows = ours[ours["model"] == row["model"]]
            mine = model_rows["white_box"].iloc[0] if row["model"] == self.baseline else model_rows[np.isclose(model_rows["lam"], row["lam"])]["white_box"].iloc[0]
            name = "ResNet-18" if row["model"] == self.baseline else f"SDNet-18 at lambda {row['lam']:g}"
            parts.append(f"{name} {row['white_box']:.1f}% (ours {mine:.1f}%)")
            if beyond_noise(mine, row["white_box"], self.n):
                overstated.append((name, mine - row["white_box"]))
        return {"claim": "(ours) AutoAttack confirms the worst case of our attacks (L-inf 8/255)", "paper": "(not in the paper)",
                "here": f"AutoAttack (standard), {self.n} images: " + ", ".join(parts),
                "verdict": "holds: AutoAttack finds no more adversarial examples, beyond noise" if not overstated
                else "does not hold: AutoAttack leaves fewer images robust, so our worst-case rows overstate robustness by up to "
                f"{max(gap for _, gap in overstated):.1f} points (" + "; ".join(f"{name}: {gap:.1f}" for name, gap in overstated) + ")"}


