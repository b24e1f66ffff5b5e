"""The run as JSON (``EvalRun``), as a table and a one-line summary, and compared with a
baseline run: per-question differences and the figures that dropped beyond the tolerance."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from app.contracts import EVAL_DROP_TOLERANCE
from ops.evaluation.scoring import QuestionResult, Summary
from ops.summary import md_table

DEFAULT_TOLERANCE = EVAL_DROP_TOLERANCE  # a score (0-1) may fall this much below the baseline


class EvalRun(BaseModel):
    base_url: str
    questions_file: str
    rubric_version: str
    judge: str
    summary: Summary
    results: list[QuestionResult]


def read_run(path: Path) -> EvalRun:
    try:
        return EvalRun.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SystemExit(f"cannot read the baseline {path}: {exc.strerror}") from None
    except ValidationError as exc:
        problems = exc.error_count()
        raise SystemExit(
            f"{path} is not an ops.evaluate JSON report: {problems} error(s)"
        ) from None


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _judged(value: int | None) -> str:
    return "-" if value is None else str(value)


def question_table(results: list[QuestionResult]) -> str:
    rows = [
        (
            r.kind,
            _short(r.question),
            r.doc or "-",
            r.error or ("-" if r.rank is None else r.rank),
            "yes" if r.refused else "no",
            f"{r.supported}/{r.cited}",
            _judged(r.groundedness),
            _judged(r.relevance),
            f"{r.seconds:.2f}",
            r.total_tokens,
        )
        for r in results
    ]
    headers = (
        "Kind",
        "Question",
        "Expected doc",
        "Rank",
        "Refused",
        "Citations supported",
        "Grounded",
        "Relevant",
        "Seconds",
        "Tokens",
    )
    return md_table(headers, rows)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def figures(summary: Summary) -> dict[str, str]:
    return {
        "hit@1": _fmt(summary.hit_at_1),
        "hit@k": _fmt(summary.hit_at_k),
        "MRR": _fmt(summary.mrr),
        "citation support": _fmt(summary.citation_support),
        "answers citing nothing": str(summary.citing_nothing),
        "cites expected doc": _fmt(summary.cites_expected),
        "unanswerable refused": _fmt(summary.unanswerable_refused),
        "answerable refused": _fmt(summary.answerable_refused),
        "groundedness (1-5)": _fmt(summary.groundedness),
        "relevance (1-5)": _fmt(summary.relevance),
        "latency p50 / p95 (s)": f"{summary.latency_p50:.2f} / {summary.latency_p95:.2f}",
        "mean tokens": f"{summary.mean_tokens:.0f}",
        "errors": str(summary.errors),
    }


def figures_table(run: EvalRun, baseline: EvalRun | None = None) -> str:
    now = figures(run.summary)
    if baseline is None:
        return md_table(("Score", "This run"), list(now.items()))
    before = figures(baseline.summary)
    return md_table(
        ("Score", "This run", "Baseline"), [(k, v, before.get(k, "-")) for k, v in now.items()]
    )


def one_line(summary: Summary) -> str:
    grounded = _fmt(summary.groundedness)
    relevant = _fmt(summary.relevance)
    return (
        f"{summary.questions} questions ({summary.answerable} answerable, "
        f"{summary.unanswerable} unanswerable, {summary.errors} errors): "
        f"hit@1 {summary.hit_at_1:.3f}, hit@k {summary.hit_at_k:.3f}, MRR {summary.mrr:.3f}; "
        f"citations supported {summary.citation_support:.3f}, "
        f"{summary.citing_nothing} answers cite nothing, "
        f"expected doc cited {summary.cites_expected:.3f}; "
        f"refused {summary.unanswerable_refused:.0%} of unanswerable, "
        f"{summary.answerable_refused:.0%} of answerable; "
        f"groundedness {grounded}, relevance {relevant} ({summary.judged} judged); "
        f"latency p50 {summary.latency_p50:.2f} s, p95 {summary.latency_p95:.2f} s; "
        f"{summary.mean_tokens:.0f} tokens per answer"
    )


_COMPARED = ("rank", "refused", "supported", "cited", "groundedness", "relevance", "error")


def differences(run: EvalRun, baseline: EvalRun) -> list[tuple[str, str, str, str]]:
    """(question, field, baseline, this run) for every field that changed; questions only in
    one of the runs are named too."""
    before = {r.key: r for r in baseline.results}
    now = {r.key: r for r in run.results}
    rows = []
    for key, result in now.items():
        old = before.get(key)
        if old is None:
            rows.append((_short(key), "question", "(not in baseline)", "new"))
            continue
        for field in _COMPARED:
            a, b = getattr(old, field), getattr(result, field)
            if a != b:
                rows.append((_short(key), field, str(a), str(b)))
    rows += [
        (_short(k), "question", "present", "(not in this run)") for k in before.keys() - now.keys()
    ]
    return rows


def differences_table(rows: list[tuple[str, str, str, str]]) -> str:
    if not rows:
        return "No per-question differences from the baseline.\n"
    return md_table(("Question", "Field", "Baseline", "This run"), rows)


JUDGED_FIGURES = ("groundedness", "relevance")  # gated figures only a judge gives


def drops(run: EvalRun, baseline: EvalRun, tolerance: float) -> list[str]:
    """One sentence per gated figure that fell more than ``tolerance`` below the baseline; the
    judge's figures only when both runs judged (``--no-judge`` has nothing to compare)."""
    if (
        run.summary.judged
        and baseline.summary.judged
        and run.rubric_version != baseline.rubric_version
    ):
        raise SystemExit(
            f"the baseline was judged with rubric version {baseline.rubric_version}, this run "
            f"with {run.rubric_version}: re-run the baseline"
        )
    now, before = run.summary.gated(), baseline.summary.gated()
    both_judged = bool(run.summary.judged and baseline.summary.judged)
    return [
        f"{name} fell from {before[name]:.3f} to {now[name]:.3f} (tolerance {tolerance:g})"
        for name in now
        if (both_judged or name not in JUDGED_FIGURES)
        and before[name] - now[name] > tolerance + 1e-9
    ]


def markdown(run: EvalRun, baseline: EvalRun | None, dropped: list[str], tolerance: float) -> str:
    verdict = "FAILED" if dropped or run.summary.errors else "passed"
    text = f"### Answer evaluation {verdict}: {run.base_url}\n\n{one_line(run.summary)}\n\n"
    text += f"Judge: {run.judge}, rubric version {run.rubric_version}.\n\n"
    text += figures_table(run, baseline)
    if baseline is not None:
        text += f"\nTolerance: a score may fall {tolerance:g} below the baseline.\n"
        for sentence in dropped:
            text += f"\n- **Drop:** {sentence}"
        text += "\n\n<details><summary>Per-question differences from the baseline</summary>\n\n"
        text += differences_table(differences(run, baseline))
        text += "\n</details>\n"
    text += "\n<details><summary>Every question</summary>\n\n"
    text += question_table(run.results)
    text += "\n</details>\n"
    return text
