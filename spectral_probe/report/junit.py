"""JUnit XML: one test case per checkpoint and fixed point; violation = failure, inconclusive = error."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from spectral_probe.report.numbers import fmt
from spectral_probe.results import Report
from spectral_probe.verdict import INCONCLUSIVE


def format(report: Report) -> str:  # noqa: A001
    """The report as JUnit XML: one test case per fixed point and per unreadable checkpoint."""
    suite = ET.Element("testsuite", name=f"spectral-probe {report.command}")
    failures = errors = 0
    for r in report.results:
        where = f"{r.checkpoint}[{r.index}]"
        case = ET.SubElement(suite, "testcase", classname="spectral_probe", name=where, time=f"{r.seconds:.3f}")
        violations = [v for v in report.gate.violations if v.startswith(where + ":")]
        untrusted = [u for u in report.gate.untrusted if u.startswith(where + ":")]
        if r.verdict == INCONCLUSIVE or untrusted:
            errors += 1
            ET.SubElement(case, "error", message="; ".join(untrusted) or f"inconclusive: {r.reason}")
        elif violations:
            failures += 1
            ET.SubElement(case, "failure", message="; ".join(violations))
        ET.SubElement(
            case, "system-out"
        ).text = f"verdict={r.verdict} rho={fmt(r.rho)} alpha={fmt(r.alpha)} omega={fmt(r.omega)}"
    for e in report.errors:
        errors += 1
        case = ET.SubElement(suite, "testcase", classname="spectral_probe", name=e.checkpoint)
        ET.SubElement(case, "error", message=e.error)
    suite.set("tests", str(len(report.results) + len(report.errors)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
