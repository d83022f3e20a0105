"""JUnit XML for CI test panels, from a :class:`~edgeprune.check.CheckResult`.

One ``<testsuite>`` per target. In it, each budget of the report is a testcase
(classname ``<target>.budgets``, name ``<budget> [<artifact>]``) and each figure
compared with the baseline is one (classname ``<target>.<artifact>`` with the
artifact's dots made underscores, so that viewers which split classnames on dots show
target > artifact; name ``<figure> [<artifact>]``). A regression, a missing or
incomparable figure and a budget that is not ``pass`` are ``<failure>`` elements whose
message carries the delta and the tolerance; improvements and new figures pass, with
a line in ``<system-out>``; a latency that could not be judged (``not_compared``) is
``<skipped>`` with the reason. Figures shown for information only (host wall-clock of
a target that is not this machine) are not test cases: they are never gated.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path


def junit_xml(result) -> ET.ElementTree:
    """The JUnit document for ``result`` (an ``edgeprune.check.CheckResult``)."""
    root = ET.Element("testsuites", name="edgeprune check")
    for target in result.targets:
        suite = ET.SubElement(root, "testsuite", name=target)
        for budget in result.budgets[target]:
            _budget_case(suite, target, budget)
        for row in (r for r in result.rows if r.target == target and r.verdict != "shown"):
            _row_case(suite, row, result)
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
        suite.set("errors", "0")
        suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    for key in ("tests", "failures", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in root.findall("testsuite"))))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(result, path: str | os.PathLike) -> None:
    """Write the JUnit XML for ``result`` to ``path`` (UTF-8, with an XML declaration)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(result).write(path, encoding="utf-8", xml_declaration=True)


def _budget_case(suite: ET.Element, target: str, budget: dict) -> None:
    name = f"{budget.get('name')} [{budget.get('artifact')}]"
    case = ET.SubElement(suite, "testcase", classname=f"{target}.budgets", name=name)
    verdict = budget.get("verdict")
    text = (f"{budget.get('figure')} = {budget.get('value')} against limit "
            f"{budget.get('limit')}: {verdict}")
    if budget.get("note"):
        text += f" ({budget['note']})"
    if verdict == "not_measured":
        ET.SubElement(case, "failure", type="not_measured",
                      message=f"{name}: not measured on this target (not a pass)").text = text
    elif verdict != "pass":
        ET.SubElement(case, "failure", type="budget",
                      message=f"{name}: {budget.get('value')} exceeds "
                              f"{budget.get('limit')}").text = text
    else:
        ET.SubElement(case, "system-out").text = text


def _row_case(suite: ET.Element, row, result) -> None:
    case = ET.SubElement(suite, "testcase", name=f"{row.figure} [{row.artifact}]",
                         classname=f"{row.target}.{row.artifact.replace('.', '_')}")
    text = (f"baseline {row.baseline}, now {row.value}, delta {row.delta_text or 'n/a'}, "
            f"tolerance {row.tolerance or 'n/a'}: {row.verdict}")
    if row.detail:
        text += f"\n{row.detail}"
    growth = result.growth_for(row.target, row.artifact)
    if growth is not None and row.failed:
        text += "\ngrew:\n  " + "\n  ".join(growth.lines())
    if row.failed:
        message = f"{row.figure} {row.verdict}"
        if row.delta_text:
            message += f": {row.delta_text}, tolerance {row.tolerance}"
        ET.SubElement(case, "failure", type=row.verdict, message=message).text = text
    elif row.verdict == "not_compared":
        ET.SubElement(case, "skipped", message=f"{row.figure} not compared: {row.detail}")
    else:
        ET.SubElement(case, "system-out").text = text
