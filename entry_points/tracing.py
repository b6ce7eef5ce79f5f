"""Teacher calls as MLflow traces: one span per decision asked of the OpenAI teacher.

`TeacherTracer` is the `on_teacher_call` of the label phase's `LabelSetup`. It is a small
frozen dataclass, so it pickles to Ray actors; there it points MLflow at the phase's store and
links each trace to the phase's run itself (in this process the active run does that too).
The span holds what the teacher was sent and answered, the model, tokens, latency, retries and
the cache hit; never the API key (a `TeacherCall` does not hold it).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.entities import SpanStatusCode, SpanType
from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey

from teachable.policy.teacher.openai_teacher import TeacherCall

SPAN_NAME = "teacher"


@dataclass(frozen=True)
class TeacherTracer:
    """Records each `TeacherCall` as a trace of run `run_id` in experiment `experiment_id`."""

    run_id: str
    experiment_id: str
    tracking_uri: str

    def __call__(self, call: TeacherCall) -> None:
        if mlflow.get_tracking_uri() != self.tracking_uri:  # a Ray actor's own process
            mlflow.set_tracking_uri(self.tracking_uri)
        attributes = {"model": call.model, "cache_hit": call.cache_hit, "latency_s": call.latency_s,
                      "requests": call.requests, "retries": call.retries, "invalid_replies": call.invalid_replies}
        if call.prompt_tokens is not None or call.completion_tokens is not None:
            usage = {"input_tokens": call.prompt_tokens or 0, "output_tokens": call.completion_tokens or 0}
            attributes |= {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                           SpanAttributeKey.CHAT_USAGE: {**usage, "total_tokens": sum(usage.values())}}
        if call.error is not None:
            attributes["error"] = call.error
        span = mlflow.start_span_no_context(
            SPAN_NAME, span_type=SpanType.CHAT_MODEL, inputs={"messages": call.messages}, attributes=attributes,
            metadata={TraceMetadataKey.SOURCE_RUN: self.run_id}, experiment_id=self.experiment_id,
            start_time_ns=call.start_ns)
        outputs = {"reply": call.reply, "advice": call.advice.to_dict() if call.advice else None}
        span.end(outputs=outputs, status=SpanStatusCode.ERROR if call.error else SpanStatusCode.OK,
                 end_time_ns=call.end_ns)


def teacher_tracer() -> TeacherTracer:
    """A tracer for the active run."""
    run = mlflow.active_run()
    return TeacherTracer(run.info.run_id, run.info.experiment_id, mlflow.get_tracking_uri())
