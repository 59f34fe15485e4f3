"""The messages a model sees for one case. Pure."""

from __future__ import annotations

from .generator import Step, Task

SYSTEM = (
    "You are an agent that completes data workflows by calling the tools you are given. "
    "Call one tool at a time and wait for its result. If a call fails transiently, you may retry it. "
    "When the task is complete, reply with a short final message and no tool call."
)
COT = ("Think step by step: first work out which tools are needed and in which order, "
       "then call them one at a time.")


def workflow_text(steps: tuple[Step, ...]) -> str:
    return "\n".join(f"{i}. {s.render()}" for i, s in enumerate(steps, 1))


def build_messages(task: Task, prompt_type: str, shown: tuple[Step, ...]) -> list[dict]:
    parts = [f"Task: {task.description}"]
    if prompt_type == "cot":
        parts.append(COT)
    elif prompt_type == "optimal" or prompt_type.startswith("flawed_"):
        # flawed prompts carry a workflow with one defect; the model is scored on the task itself
        parts.append("Suggested workflow:\n" + workflow_text(shown))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]
