"""Evaluate the answers of a running flowchat service on a question set.

``python -m ops.evaluate --base-url URL [--api-key K] --questions FILE.jsonl
[--baseline FILE] [--json OUT] [--markdown OUT] [--tolerance 0.05]``

Asks every question through the public API (``POST /v1/chat/completions``, a follow-up with
its ``history`` as the earlier messages) and scores, per question and over the set:
retrieval (hit@1, hit@k, MRR of the expected document among the answer's sources), citations
(the share of cited ``[n]`` whose passage supports the sentence citing it; answers citing
nothing; answers citing the expected document), groundedness and relevance (an LLM judge
through Flow applying ``app/rag/prompts/judge_rubric.md``; without FLOW_* credentials the
Flow emulator's deterministic judge of the same rubric), refusals (unanswerable questions
answered with the refusal sentence; answerable ones wrongly refused), latency and tokens.

Prints a table and a one-line summary (and appends them to the GitHub job summary). With
``--baseline`` (a JSON report of an earlier run) it prints the per-question differences and
exits 1 when a score fell more than ``--tolerance`` below the baseline. It also exits 1 when
the service failed to answer a question. ``--pushgateway URL --stack NAME`` pushes the scores
as metrics. The API key may come from ``FLOWCHAT_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from app.rag.judge import is_refusal, rubric_version
from ops.evaluation.asking import ask
from ops.evaluation.export import push
from ops.evaluation.judging import Judge, open_judge
from ops.evaluation.questions import DEFAULT_QUESTIONS, read_questions
from ops.evaluation.report import (
    DEFAULT_TOLERANCE,
    EvalRun,
    differences,
    differences_table,
    drops,
    figures_table,
    markdown,
    one_line,
    question_table,
    read_run,
)
from ops.evaluation.scoring import QuestionResult, score_answer, summarise
from ops.summary import fail, say, write_summary

API_KEY_ENV = "FLOWCHAT_API_KEY"
REQUEST_TIMEOUT_SECONDS = 180.0  # above the service's JOB_TIMEOUT_SECONDS default (120 s)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--base-url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=None, help=f"chat API key (default: ${API_KEY_ENV})")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="JSONL set")
    parser.add_argument("--baseline", type=Path, default=None, help="JSON report to compare to")
    parser.add_argument("--json", type=Path, default=None, help="write this run's JSON report")
    parser.add_argument("--markdown", type=Path, default=None, help="write the Markdown report")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"how far a 0-1 score may fall below the baseline (default {DEFAULT_TOLERANCE})",
    )
    parser.add_argument("--no-judge", action="store_true", help="skip groundedness/relevance")
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions")
    parser.add_argument("--pushgateway", default=None, help="push the scores to this gateway")
    parser.add_argument("--stack", default=None, help="stack label of the pushed metrics")
    return parser


def evaluate(
    base_url: str, api_key: str | None, questions_file: Path, judge: Judge | None, limit: int | None
) -> EvalRun:
    questions = read_questions(questions_file)[:limit]
    headers = {"X-API-Key": api_key} if api_key else {}
    results: list[QuestionResult] = []
    with httpx.Client(
        base_url=base_url.rstrip("/"), headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        for number, item in enumerate(questions, start=1):
            asked = ask(client, item)
            verdict = judge_error = None
            if judge is not None and asked.error is None and not is_refusal(asked.answer):
                passages = {s.n: s.text for s in asked.sources}
                verdict, judge_error = judge.grade(
                    item.question, asked.answer, passages, item.earlier_questions
                )
            result = score_answer(item, asked, verdict)
            result.judge_error = judge_error
            results.append(result)
            outcome = asked.error or (
                f"rank {result.rank or '-'}, refused {'yes' if result.refused else 'no'}, "
                f"citations {result.supported}/{result.cited}, "
                f"judge {result.groundedness or '-'}/{result.relevance or '-'}"
            )
            say(f"[{number}/{len(questions)}] {item.kind}: {outcome} ({asked.seconds:.2f} s)")
            if judge_error:
                say(f"  judge: {judge_error}")
    return EvalRun(
        base_url=base_url,
        questions_file=str(questions_file),
        rubric_version=rubric_version(),
        judge=judge.description if judge else "none (--no-judge)",
        summary=summarise(results),
        results=results,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tolerance < 0 or args.tolerance > 1:
        return fail("--tolerance must be between 0 and 1", 2)
    if bool(args.pushgateway) != bool(args.stack):
        return fail("--pushgateway and --stack go together", 2)
    baseline = read_run(args.baseline) if args.baseline else None
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    say(f"evaluating {args.base_url} with {args.questions}")
    try:
        if args.no_judge:
            run = evaluate(args.base_url, api_key, args.questions, None, args.limit)
        else:
            with open_judge() as judge:
                say(f"judge: {judge.description}")
                run = evaluate(args.base_url, api_key, args.questions, judge, args.limit)
    except SystemExit as exc:  # a bad questions file: one sentence
        return fail(str(exc), 2)
    print()
    print(question_table(run.results))
    print(figures_table(run, baseline))
    dropped: list[str] = []
    if baseline is not None:
        print(differences_table(differences(run, baseline)))
        dropped = drops(run, baseline, args.tolerance)
    print(one_line(run.summary))
    if args.json:
        args.json.write_text(run.model_dump_json(indent=2) + "\n", encoding="utf-8")
    report = markdown(run, baseline, dropped, args.tolerance)
    if args.markdown:
        args.markdown.write_text(report, encoding="utf-8")
    write_summary(report)
    if args.pushgateway:
        try:
            push(args.pushgateway, args.stack, run.summary)
        except OSError as exc:
            return fail(f"cannot push the scores to {args.pushgateway}: {exc}")
        say(f"pushed the scores to {args.pushgateway} (stack {args.stack})")
    if run.summary.errors:
        return fail(f"the service failed {run.summary.errors} question(s); see the table")
    if dropped:
        return fail("scores dropped beyond the tolerance: " + "; ".join(dropped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
