"""The HTML report in a real browser: Debian's chromium driven through chromium-driver by selenium.

A real text2sql sweep (simulated models, a model answering with prose, one whose endpoint answers
garbage so its cases end in error) is reported as JSON and as the page; the page must load with no
console error, show the numbers of the JSON, filter its case list, expand a case to its SQL, and be
photographed (the screenshot is kept beside the test's files).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from benchpilot_runner.report import fmt
from tests.helpers import run_cli, wait_for, write_manifest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and not os.environ.get("CI"),
    reason="Debian's chromium and chromium-driver are not installed (make test installs them)")]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,2000")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, fake_llm):
    tmp = tmp_path_factory.mktemp("page")
    models = ["sim/strong", "sim/weak", {"name": "gw/prose", "model": "sql-prose"},
              {"name": "gw/garbage", "model": "garbage"}]
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "page"},
           "spec": {"suite": "text2sql", "endpoint": {"baseURL": fake_llm.base_url, "qps": 200, "maxRetries": 0},
                    "matrix": {"models": models, "promptTypes": ["zero_shot", "few_shot", "misleading_column_hint"],
                               "taskTypes": ["filter", "join", "aggregate"], "difficulties": ["simple", "moderate"],
                               "instances": 2},
                    "limits": {"caseTimeoutSeconds": 60},
                    "output": {"flushEveryRows": 50, "flushEverySeconds": 1}}}
    out = tmp / "out"
    res = run_cli("run", str(write_manifest(tmp / "m.yaml", doc)), "--output", str(out), "--no-progress",
                  timeout=240, env={"BENCHPILOT_DATA_DIR": str(tmp / "data")})
    assert res.returncode == 3, res.stderr[-3000:]  # the garbage endpoint's cases end in error, as meant
    page = tmp / "report.html"
    made = run_cli("report", str(out), "--html", str(page))
    assert made.returncode == 0, made.stderr[-2000:]
    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    assert summary["counts"].get("error") and summary["cases"]["listed"] > 20
    return page, summary, tmp


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def opened(sweep, browser):
    page, summary, tmp = sweep
    browser.get(page.as_uri())
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete", 20, "the page to load")
    wait_for(lambda: browser.find_element("id", "case-count").text, 10, "the case filter to run once")
    return browser, summary, tmp


def _cells(driver, css: str) -> list[dict]:
    """Every cell matching ``css``: its text and its data attributes."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll(arguments[0])).map(function (td) {
          var d = {text: td.textContent};
          for (var k in td.dataset) { d[k] = td.dataset[k]; }
          var tr = td.closest('tr'); for (var k2 in tr.dataset) { d['row_' + k2] = tr.dataset[k2]; }
          return d; });""", css)


def _num(s: str):
    return None if s in ("", None) else float(s)


def test_the_page_loads_offline_with_no_console_error(opened):
    driver, summary, tmp = opened
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    assert driver.title.startswith("benchpilot report")
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched
    shot = tmp / "report.png"
    driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_the_numbers_on_the_page_are_the_json_s(opened):
    driver, summary, _ = opened
    seen = 0
    for key, first in (("by_model_prompt_type", "prompt_type"), ("by_task_type", "task_type"), ("by_model", None)):
        groups = {(g["model"], g[first] if first else None): g for g in summary[key]}
        row_key = {"prompt_type": "row_promptType", "task_type": "row_taskType", None: None}[first]
        for cell in _cells(driver, f"#{key} td[data-measure]"):
            g = groups[cell["row_model"], cell[row_key] if row_key else None]
            measure = cell["measure"]
            j = g["flags"][measure[5:]] if measure.startswith("flag-") else g[measure]
            assert (_num(cell["est"]), _num(cell["low"]), _num(cell["high"])) == (j["estimate"], j["low"], j["high"])
            shown = fmt.rate(j) if measure in ("success", "partial") or measure.startswith("flag-") else fmt.mean(j)
            assert cell["text"] == shown
            seen += 1
    block = summary["comparisons"][0]
    pairs = {(p["a"], p["b"]): p for p in block["pairs"]}
    for cell in _cells(driver, f"#pairs-{block['uid']} td[data-measure]"):
        p = pairs[cell["row_a"], cell["row_b"]]
        j = p[cell["measure"]]
        assert (_num(cell["est"]), _num(cell["low"]), _num(cell["high"])) == (j["estimate"], j["low"], j["high"])
        assert _num(cell["pHolm"]) == (p["p_holm"] if cell["measure"] == "success_diff" else p["score_p_holm"])
        seen += 1
    rob = summary["robustness"][0]
    rows = {(r["model"] or "", r["prompt_type"]): r for r in rob["rows"]}
    for cell in _cells(driver, f"#robustness-{rob['uid']} td[data-measure]"):
        r = rows[cell["model"], cell["prompt"]]
        assert _num(cell["est"]) == r["success_diff"]["estimate"] and cell["significant"] == str(r["significant"]).lower()
        assert cell["text"] == fmt.diff(r["success_diff"], r["significant"])
        seen += 1
    assert seen >= 3 * (len(summary["by_model_prompt_type"]) + len(summary["by_task_type"])) + len(rows)


def _visible(driver) -> list[dict]:
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#case-list details.case')).filter(function (d) {
          return !d.hidden; }).map(function (d) { return Object.assign({}, d.dataset); });""")


def test_the_filters_narrow_the_case_list_and_a_case_opens_to_its_sql(opened):
    from selenium.webdriver.support.ui import Select

    driver, summary, _ = opened
    cases = summary["cases"]
    assert len(_visible(driver)) == cases["listed"]
    Select(driver.find_element("id", "f-status")).select_by_value("error")
    shown = _visible(driver)
    assert shown and {c["status"] for c in shown} == {"error"}
    assert len(shown) == sum(c["status"] == "error" for c in cases["list"])
    count = driver.find_element("id", "case-count")
    assert int(count.get_attribute("data-matching")) == sum(b["cases"] for b in cases["buckets"]
                                                             if b["status"] == "error")
    Select(driver.find_element("id", "f-status")).select_by_value("")
    Select(driver.find_element("id", "f-model")).select_by_value("gw/prose")
    prose = [c for c in cases["list"] if c["model"] == "gw/prose"]
    assert len(_visible(driver)) == len(prose) > 0
    driver.find_element("id", "f-reset").click()
    one = next(c for c in cases["list"] if c["details"] and c["details"].get("sql"))
    driver.find_element("id", "f-text").send_keys(one["case_id"])
    wait_for(lambda: len(_visible(driver)) == 1, 5, "the text filter to leave one case")
    case = driver.find_element("css selector", "#case-list details.case:not([hidden])")
    case.find_element("tag name", "summary").click()
    wait_for(lambda: case.get_attribute("open") is not None, 5, "the case to open")
    assert one["details"]["sql"].splitlines()[0] in case.text and one["case_id"] in case.text
