"""The reason an RQ job failed, as one sentence for an API response."""

from __future__ import annotations

from rq.job import Job


def failure_reason(job: Job, default: str = "the job failed without a reason") -> str:
    """The message of the exception that failed ``job`` (without the exception's module path),
    or a sentence for a job abandoned by a killed worker."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or job.exc_info or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return default
    if "AbandonedJobError" in text:
        return "the worker running this job stopped and the job had no retries left"
    last = lines[-1]
    # "app.worker.runner.ChatFailed: the Flow LLM gateway did not answer: ..." -> the message part
    name, sep, message = last.partition(": ")
    if sep and "." in name and " " not in name:
        return message
    return last


# exceptions whose message is written for the user (a fixed sentence, never internal details)
# (the second name: chats failed before the worker module moved into the app.worker package)
USER_FACING_ERRORS = (
    "app.worker.runner.ChatFailed",
    "app.worker.ChatFailed",  # regroup: keep
)
INTERNAL_FAILURE = "the answer could not be produced because of an internal error; try again later"
TIMEOUT_FAILURE = "the answer took longer than the job timeout; try again later"


def chat_failure_reason(job: Job) -> str:
    """The sentence a chat client sees for a failed job: the message of a user-facing error,
    a fixed sentence for anything else (no traceback line, no internal names or URLs)."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or job.exc_info or ""
    if "AbandonedJobError" in text:
        return "the worker running this job stopped and the job had no retries left"
    if "JobTimeoutException" in text:
        return TIMEOUT_FAILURE
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        name, sep, message = lines[-1].partition(": ")
        if sep and name.strip() in USER_FACING_ERRORS:
            return message
    return INTERNAL_FAILURE
