"""The HTML report: its numbers, its sections, the banner, atomic writes, and a real browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.fitted import build_datatree
from bayes_scaling.model import covariates
from bayes_scaling.report import DEFAULT_SECTIONS, Section, default_budgets, render_report, write_report
from bayes_scaling.report import sections as sec
from bayes_scaling.report.html import write_files

from .conftest import IN_CI

SECTION_KEYS = ["headline", "data", "posterior-predictive", "frontier", "parameters", "calibration",
                "diagnostics", "provenance"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


@pytest.fixture(scope="module")
def written(small_fit: bs.Fit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default report of the small fit, written once."""
    return write_report(small_fit, tmp_path_factory.mktemp("report") / "report.html")


def _json(page: Path) -> dict:
    return json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))


def _variant(fit: bs.Fit, group: str, **values: np.ndarray) -> bs.Fit:
    """A copy of ``fit`` with variables of one group of its tree replaced."""
    tree = fit.tree.copy(deep=True)
    ds = tree[group].to_dataset()
    tree[group] = ds.assign({k: ds[k].copy(data=v) for k, v in values.items()})
    return bs.Fit(tree, card=fit.card, method=fit.method, seed=fit.seed, elapsed_s=fit.elapsed_s, attrs=fit.attrs)


def _assert_rows_equal_allocate(rows: list[dict], fit: bs.Fit, budgets, level: float) -> None:
    expected = fit.allocate(budgets, level=level)
    assert [r["compute"] for r in rows] == pytest.approx(expected["compute"].tolist(), rel=1e-12)
    for q in ("params_opt", "tokens_opt", "tokens_per_param", "loss_opt"):
        for key, col in (("median", q), ("lo", f"{q}_lo"), ("hi", f"{q}_hi")):
            np.testing.assert_allclose([r[q][key] for r in rows], expected[col], rtol=1e-12)


def test_report_writes_html_json_and_markdown_beside_each_other(written: Path) -> None:
    names = sorted(p.name for p in written.parent.iterdir())
    assert names == ["report.html", "report.json", "report.md"]  # and no temporary file left behind


def test_json_headline_equals_allocate_for_default_budgets(written: Path, small_fit: bs.Fit) -> None:
    data = _json(written)
    budgets = default_budgets(small_fit.runs)
    assert budgets[1] == small_fit.runs["flops"].max() and budgets[-1] == pytest.approx(100 * budgets[1])
    _assert_rows_equal_allocate(data["sections"]["headline"]["rows"], small_fit, budgets, 0.9)
    # the default card's learnt discrepancy is stated where the loss beyond the data is shown
    tau = small_fit.extra["discrepancy"]["tau_mean"]
    how = "tau learnt from the law's misfit to the runs and leave-future-out splits"
    assert f"{how} (posterior mean {tau:.4f}" in written.read_text()
    misfit = small_fit.extra["discrepancy"]["misfit"]
    # the default card reads the misfit of every run (no misfit_window)
    assert misfit["n_runs"] == len(small_fit.runs) and "window" not in misfit
    assert (f"misfit to the {len(small_fit.runs):,} runs has amplitude "
            f"{misfit['amplitude_mle']:.2%}") in written.read_text()
    assert "e-folds beyond the largest run in compute or model size or tokens" in written.read_text()


def test_every_section_present_in_order(written: Path) -> None:
    page = written.read_text(encoding="utf-8")
    positions = [page.index(f'<section id="{key}">') for key in SECTION_KEYS]
    assert positions == sorted(positions)
    assert list(_json(written)["sections"]) == SECTION_KEYS
    md = written.with_suffix(".md").read_text(encoding="utf-8")
    assert "| compute C (FLOPs) |" in md and "predictive interval" in md


def test_page_is_self_contained_and_every_image_is_a_png(written: Path) -> None:
    page = written.read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(u.startswith(("data:image/png;base64,", "#")) for u in links)
    images = [base64.b64decode(u.split(",", 1)[1]) for u in links if u.startswith("data:")]
    assert len(images) == 7  # predictive x2, frontier, marginals, pairs, calibration, traces
    for png in images:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 300 and height > 150


def test_predictive_check_lists_a_run_moved_outside_its_band(small_fit: bs.Fit) -> None:
    observed = small_fit.tree["observed_data"]["log_loss"].to_numpy().copy()
    observed[5] += 0.3  # 35% above its observed loss: far outside a ~2% predictive band
    moved = _variant(small_fit, "observed_data", log_loss=observed)
    report = render_report(moved, sections=(sec.posterior_predictive,))
    outside = [r["name"] for r in report.data["sections"]["posterior-predictive"]["outside"]]
    name = str(small_fit.tree["observed_data"]["run"].values[5])
    assert name in outside
    assert f"<td>{name}</td>" in report.html


def test_calibration_gives_k_hat_and_pit_of_every_run(written: Path, small_fit: bs.Fit) -> None:
    cal = _json(written)["sections"]["calibration"]
    names = small_fit.runs["name"].tolist()
    assert list(cal["pareto_k"]) == names and list(cal["loo_pit"]) == names
    assert all(0 <= p <= 1 for p in cal["loo_pit"].values())
    assert cal["good_k"] <= 0.7
    assert cal["influential"] == [n for n, k in cal["pareto_k"].items() if k > cal["good_k"]]


def test_forced_divergences_show_the_red_banner(small_fit: bs.Fit) -> None:
    diverging = np.zeros_like(small_fit.tree["sample_stats"]["diverging"].to_numpy())
    diverging[0, :7] = True
    broken = _variant(small_fit, "sample_stats", diverging=diverging)
    report = render_report(broken, sections=(sec.diagnostics,))
    banner = re.search(r'<div class="banner" id="diagnostics-banner".*?</div>', report.html)
    assert banner is not None and "7 divergent transition(s)" in banner.group(0)
    assert report.html.index("diagnostics-banner") < report.html.index('<section id="diagnostics">')
    assert report.data["ok"] is False and report.data["sections"]["diagnostics"]["divergences"] == 7


def test_clean_diagnostics_show_no_banner(example_runs) -> None:
    # Independent draws from a narrow normal: R-hat ~ 1 and ESS ~ the draw count, by construction.
    card = bs.load_card("chinchilla")
    rng = np.random.default_rng(0)
    shape = (2, 1000)
    centre = {**bs.EXAMPLE_TRUTH, "sigma": 0.01}
    posterior = {k: v * (1 + 0.01 * rng.standard_normal(shape)) for k, v in centre.items()}
    stats = {"diverging": np.zeros(shape, bool), "tree_depth": np.full(shape, 3)}
    x = covariates(example_runs, card)
    tree = build_datatree(card, example_runs, x, np.log(example_runs["loss"].to_numpy()), posterior, stats, seed=0)
    clean = bs.Fit(tree, card=card, method="nuts", seed=0, elapsed_s=0.0)
    assert not clean.diagnostics().has_errors
    report = render_report(clean, sections=(sec.diagnostics,))
    assert "diagnostics-banner" not in report.html and "all checks passed" in report.html
    assert report.data["ok"] is True


def test_extra_sections_go_before_provenance_and_keys_must_differ(small_fit: bs.Fit) -> None:
    def decision(ctx) -> Section:
        return Section("decision", "Decision", "<p>train 70B on 1.4T tokens</p>", {"budgets": ctx.budgets})

    report = render_report(small_fit, [1e22], sections=(sec.headline, sec.provenance), extra_sections=(decision,))
    assert list(report.data["sections"]) == ["headline", "decision", "provenance"]
    assert report.data["sections"]["decision"]["budgets"] == [1e22]
    with pytest.raises(bs.InputError, match="distinct keys"):
        render_report(small_fit, sections=(sec.headline,), extra_sections=(sec.headline,))
    assert [fn.__name__ for fn in DEFAULT_SECTIONS] == [k.replace("-", "_") for k in SECTION_KEYS]


def test_report_rejects_a_non_html_path_a_bad_level_and_a_stray_group(small_fit: bs.Fit, tmp_path: Path) -> None:
    with pytest.raises(bs.InputError, match=r"\.html"):
        write_report(small_fit, tmp_path / "report.pdf")
    with pytest.raises(bs.InputError, match="level"):
        write_report(small_fit, tmp_path / "report.html", level=1.5)
    with pytest.raises(bs.InputError, match="does not pool over groups"):
        write_report(small_fit, tmp_path / "report.html", group="a")
    assert not any(tmp_path.iterdir())


def test_write_files_is_all_or_nothing(tmp_path: Path) -> None:
    old = {tmp_path / "a.html": "old a", tmp_path / "a.json": "old json"}
    for path, text in old.items():
        path.write_text(text)
    with pytest.raises(TypeError):
        write_files({tmp_path / "a.json": "new json", tmp_path / "a.html": None})  # second write fails
    assert {p: p.read_text() for p in old} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "a.json"]


def test_cli_report_with_budgets_and_level(small_fit: bs.Fit, tmp_path: Path, capsys) -> None:
    saved = small_fit.save(tmp_path / "fit.nc")
    page = tmp_path / "out" / "fit-report.html"
    rc = main(["report", str(saved), "--out", str(page), "--budget", "1e21", "--budget", "5.76e23", "--level", "0.8"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(page)
    data = _json(page)
    assert page.with_suffix(".md").is_file() and data["level"] == 0.8
    _assert_rows_equal_allocate(data["sections"]["headline"]["rows"], small_fit, [1e21, 5.76e23], 0.8)
    assert "5.76e23" in page.read_text(encoding="utf-8")


def _chromium() -> str:
    found = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
    if found is None:
        if IN_CI:
            pytest.fail("no Chromium on PATH; `make test` installs it with scripts/ensure-chromium.sh")
        pytest.skip("no Chromium on PATH (run scripts/ensure-chromium.sh)")
    return found


# Injected into a copy of the page (the report itself has no scripts): records script
# and resource errors, then writes what it saw into the DOM once everything has loaded.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src))), true);
const origError = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); origError(...a); };
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length;
  const net = performance.getEntriesByType("resource").filter(r => !r.name.startsWith("data:")).length;
  const p = document.createElement("pre");
  p.id = "probe";
  p.textContent = JSON.stringify({images: imgs.length, rendered: ok, network: net, errors: window.__errors});
  document.body.appendChild(p);
});
</script>"""


def test_report_renders_in_headless_chromium(written: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(written.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=180, check=True)
    probe = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert probe is not None, dom.stderr[-2000:]
    seen = json.loads(probe.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["images"] == 7 and seen["rendered"] == seen["images"], seen
    assert seen["network"] == 0 and seen["errors"] == [], seen
    assert not [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1280,2000", f"--screenshot={shot}", written.as_uri()],
                   capture_output=True, timeout=180, check=True)
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape == (2000, 1280) and pixels.std() > 20  # not a blank page


def test_frontier_draws_the_classic_approaches_fitted_to_the_same_runs(written: Path, small_fit: bs.Fit) -> None:
    grid = _json(written)["sections"]["frontier"]["grid"]
    # The example grid has one run per model size, so approach 1 (fixed-size curves) cannot apply and is left out.
    assert "approach 1 params_opt" not in grid
    for approach in ("approach 2", "approach 3"):
        assert f"{approach} params_opt" in grid, sorted(grid)
    expected = bs.approach2(small_fit.runs, bootstrap=0).frontier(grid["compute"])
    np.testing.assert_allclose(grid["approach 2 params_opt"], expected["params_opt"], rtol=1e-12)
    assert expected["params_opt_lo"].isna().all()
