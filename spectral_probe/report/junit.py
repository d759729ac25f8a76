"""JUnit XML: one test case per checkpoint and fixed point; violation = failure, untrusted = error.

Each case reads the gate's structured findings for its fixed point and the result's check records,
never the text of a reason.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from spectral_probe.report.numbers import fmt
from spectral_probe.results import Report, failed_reasons

#: What XML 1.0 cannot hold, even escaped: control characters (a file name with ESC, an ANSI-coloured
#: exception message from a plugin) and lone surrogates (a non-UTF-8 file name).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """``text`` with each character XML cannot hold written as its escape (``\\x1b``), as the terminal shows it."""
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def _make_safe(suite: ET.Element) -> None:
    for element in suite.iter():
        element.attrib = {key: _xml_safe(value) for key, value in element.attrib.items()}
        if element.text:
            element.text = _xml_safe(element.text)


def format(report: Report) -> str:  # noqa: A001
    """The report as JUnit XML: one test case per fixed point and per unreadable checkpoint."""
    suite = ET.Element("testsuite", name=f"spectral-probe {report.command}")
    failures = errors = 0
    for r in report.results:
        where = f"{r.checkpoint}[{r.index}]"
        case = ET.SubElement(suite, "testcase", classname="spectral_probe", name=where, time=f"{r.seconds:.3f}")
        mine = [f for f in report.gate.findings if (f.checkpoint, f.index) == (r.checkpoint, r.index)]
        violations = [f.message for f in mine if f.kind == "violation"]
        untrusted = [f.message for f in mine if f.kind != "violation"]
        if not r.trusted or untrusted:
            errors += 1
            reason = "; ".join(failed_reasons(r.checks)) or r.reason
            ET.SubElement(case, "error", message="; ".join(untrusted) or f"inconclusive: {reason}")
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
    _make_safe(suite)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
