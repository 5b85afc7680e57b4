"""Model cards (the README.md of a Hub repo) written from a pipeline's training record."""

import json
from pathlib import Path

CARD_FILE = "README.md"

RESPONSIBLE_USE = """## Responsible use
This model makes synthetic video of a real person saying words they may never have said. Use it only with
the consent of the person shown, label the results as synthetic (the files it writes carry a
`synthetic=true` tag), and never to deceive, defame or impersonate."""


def write_model_card(folder: Path, pipeline_class: str, training_record: dict | None,
                     licences: dict[str, str] | None = None) -> Path:
    """Write `folder/README.md`: Hub metadata, training data, configuration, measured quality, responsible use.

    The record's optional "card" entry gives the title, licence, data description and free text; its optional
    "previous" entry (the title and evaluation of the version this one replaces, and optionally the footage it
    was measured on) adds a table of both versions' figures. `licences` gives the licence text of weights that come
    from elsewhere, by a title naming the component and where it comes from.
    """
    record = dict(training_record or {})
    card = record.pop("card", {})
    previous = record.pop("previous", None)
    title, license = card.get("title"), card.get("license", "other")
    data_description, extra_sections = card.get("data", ""), card.get("notes", "")
    lines = ["---", f"license: {license}", "library_name: diffusers", "tags:", "- talking-head", "- speech-to-video",
             f"- {pipeline_class}", "---", "", f"# {title or pipeline_class}", ""]
    if not record:
        lines += ["**This pipeline carries no training record: it may be untrained.**", ""]
    if data_description:
        lines += ["## Training data", data_description, ""]
    for stage, summary in record.items():
        if stage == "evaluation":
            continue
        lines += [f"## Training: {stage}", "```json", json.dumps(summary, indent=2), "```", ""]
    if "evaluation" in record:
        lines += ["## Measured quality on held-back footage", "```json", json.dumps(record["evaluation"], indent=2), "```", ""]
        if previous:
            lines += _comparison(previous, record["evaluation"])
    if extra_sections:
        lines += [extra_sections, ""]
    for component, text in (licences or {}).items():
        lines += [f"## Licence of the weights of {component}", "```", text.strip(), "```", ""]
    lines += [RESPONSIBLE_USE, ""]
    path = Path(folder) / CARD_FILE
    path.write_text("\n".join(lines))
    return path


def _comparison(previous: dict, evaluation: dict) -> list[str]:
    """Markdown lines: the figures both evaluations report, the previous version's beside this one's."""
    before, now = previous["evaluation"].get("mean", {}), evaluation.get("mean", {})
    lines = ["## Against the previous version",
             f"The version this one replaces, {previous['title']}, measured on "
             f"{previous.get('footage', 'the same held-back footage')} "
             f"(previous settings: {json.dumps(previous['evaluation'].get('settings', {}))}).", "",
             "| figure | previous | this version |", "|---|---|---|"]
    lines += [f"| {name} | {_figure(before[name])} | {_figure(value)} |" for name, value in now.items() if name in before]
    return lines + [""]


def _figure(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
