"""The report built from the fixture of conftest.py; expected numbers worked out by hand from it."""

import struct
from html.parser import HTMLParser

import pytest

from sampo_verl import plots
from sampo_verl.arena.__main__ import main
from sampo_verl.arena.layout import find_cells
from sampo_verl.arena.markdown import RESULTS_MD
from sampo_verl.arena.report import build_report, load_results
from sampo_verl.arena.summary import success_metric, summarise_methods
from sampo_verl.metrics import TRAIN_SUCCESS, VAL_SUCCESS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VAL_KEY = "val-core/frozenlake/acc/mean@1"


class Tables(HTMLParser):
    """Rows of every <table> by class, each row a list of cell texts; plus img sources."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self._table, self._cell = {}, [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("class"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._table[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def report(arena_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    index = build_report(arena_dir, out)
    parser = Tables()
    parser.feed(index.read_text(encoding="utf-8"))
    return index, parser


def section_rows(html_text, env, table):
    """Rows (without header) of one environment's table."""
    start = html_text.index(f'<section id="env-{env}">')
    parser = Tables()
    parser.feed(html_text[start : html_text.index("</section>", start)])
    return parser.tables[table][1:]


def test_cells_found_and_unfinished_cell_marked(arena_dir):
    cells = find_cells(arena_dir)
    assert len(cells) == 6 + 9
    unfinished = [(c.env, c.method, c.seed) for c in cells if c.done() is None]
    assert unfinished == [("sokoban", "sapo_seqmask", 1)]


def test_success_metric_choice(arena_dir):
    results = load_results(arena_dir)
    assert success_metric(results["frozenlake"]) == VAL_SUCCESS
    assert success_metric(results["sokoban"]) == TRAIN_SUCCESS
    # validation only before training (step 0) does not count, but only a finished cell's history decides
    early = {0: {"val-core/x/acc/mean@1": 1.0}, 1: {"sampo/success_rate": 0.5}}
    finished = next(cell for cell, _ in results["frozenlake"] if cell.done() is not None)
    unfinished = next(cell for cell, _ in results["sokoban"] if cell.done() is None)
    assert success_metric([(finished, early)]) == TRAIN_SUCCESS
    assert success_metric([*results["frozenlake"], (unfinished, early)]) == VAL_SUCCESS


def test_sokoban_summary_numbers(arena_dir):
    summaries = summarise_methods(load_results(arena_dir)["sokoban"], TRAIN_SUCCESS)
    assert [s.method for s in summaries] == ["gspo", "sapo_seqmask", "sapo"]
    gspo, seqmask, sapo = summaries
    # sapo: final (0.2, 0.3), best (0.8, 0.9), collapse steps (2, 1), lowest format (0.3, 0.5)
    assert [x.final for x in sapo.seeds] == [0.2, 0.3] and [x.best for x in sapo.seeds] == [0.8, 0.9]
    assert sapo.final.mean == pytest.approx(0.25) and sapo.final.std == pytest.approx(0.0707107, abs=1e-6)
    assert sapo.estimate("drop").mean == pytest.approx(0.6)
    assert [x.collapses for x in sapo.seeds] == [2, 1] and sapo.collapses.mean == 1.5
    assert sapo.format_min.mean == pytest.approx(0.4)
    # sapo_seqmask: final (0.7, 0.55) -> 0.625 +- 0.1061; best (0.7, 0.6); one seed unfinished, no wall time
    assert seqmask.final.mean == pytest.approx(0.625) and seqmask.final.std == pytest.approx(0.1060660, abs=1e-6)
    assert seqmask.estimate("drop").mean == pytest.approx(0.025) and seqmask.finished == 1
    assert not sapo.per_task and sapo.tasks == 0  # training success: no per-task outcomes
    assert gspo.final.mean == pytest.approx(0.65) and gspo.estimate("drop").mean == pytest.approx(0.0)


def test_ranking_tables_match_fixture(report):
    index, _ = report
    text = index.read_text(encoding="utf-8")
    sokoban = section_rows(text, "sokoban", "ranking")
    # two seeds without per-task outcomes: the seed bootstrap's 95% interval spans the two seeds' values
    basis = "2 seed(s), no per-task outcomes"
    assert sokoban == [
        ["1", "gspo", "2/2", "0.650 [0.600, 0.700]", "0.650 [0.600, 0.700]", "0.000 [0.000, 0.000]", "0 (0, 0)",
         "0.900 [0.900, 0.900]", "110 (15 / 0 / 95)", basis],
        ["2", "sapo_seqmask", "1/2", "0.625 [0.550, 0.700]", "0.650 [0.600, 0.700]", "0.025 [0.000, 0.050]",
         "0 (0, 0)", "0.950 [0.950, 0.950]", "130 (15 / 0 / 115)", basis],
        ["3", "sapo", "2/2", "0.250 [0.200, 0.300]", "0.850 [0.800, 0.900]", "0.600 [0.600, 0.600]", "1.5 (2, 1)",
         "0.400 [0.300, 0.500]", "100 (15 / 0 / 85)", basis],
    ]  # fmt: skip
    # frozenlake ranks by validation success (training success is 0.9 everywhere), intervals over seeds x tasks
    frozenlake = section_rows(text, "frozenlake", "ranking")
    means = [[row[0], row[1], row[2], *(cell.split(" [")[0] for cell in row[3:6])] for row in frozenlake]
    assert means == [
        ["1", "gigpo_filter", "2/2", "0.750", "0.750", "0.000"],
        ["2", "gigpo", "2/2", "0.550", "0.550", "0.000"],
        ["3", "grpo_filter", "2/2", "0.400", "0.400", "0.000"],
        ["4", "grpo", "2/2", "0.350", "0.350", "0.000"],
        ["5", "empg", "1/1", "0.300", "0.300", "0.000"],
    ]
    assert [row[9] for row in frozenlake] == ["2 seed(s) x 40 tasks"] * 4 + ["1 seed(s) x 40 tasks"]
    low, high = (float(x) for x in frozenlake[1][3].split(" [")[1].rstrip("]").split(", "))
    assert 0.3 < low < 0.55 < high < 0.8  # gigpo: 0.55 on 2 seeds x 40 tasks (the same hard tasks in both): ~ +-0.17
    assert frozenlake[2][6:8] == ["0.5 (1, 0)", "0.650 [0.600, 0.700]"]  # grpo_filter: lowest format (0.6, 0.7)
    assert frozenlake[3][7] == "0.875 [0.850, 0.900]"  # grpo: lowest format (0.9, 0.85)
    # empg, one seed of 60 s: 4 steps x 2 s; validations 4 + 6 s timed, step 0's counted at their mean 5 s
    assert frozenlake[4][8] == "60 (8 / 15 / 37)"


def test_findings_verdicts(report):
    index, _ = report
    text = index.read_text(encoding="utf-8")
    verdicts = {env: [row[1] for row in section_rows(text, env, "findings")] for env in ("sokoban", "frozenlake")}
    not_tested = "not tested on this run"
    # order: 1, 2, mask, 3a, 3b, 4, 5a, 5b (no sampo cell: 5a and 5b are not tested)
    # sokoban: gspo drops [0, 0] below 0.1: stable; sapo drops [0.6, 0.6] above: collapsed (cispo not run) -> 2 held;
    # sapo_seqmask drops [0, 0.05]: stable -> mask held
    assert verdicts["sokoban"] == [not_tested, "held", "held", *[not_tested] * 5]
    # frozenlake, paired per seed and task: 3a gigpo_filter - gigpo +0.2 (4 and 12 of 40 tasks better, none worse);
    # 3b lowest format, per seed: +0.3, +0.15; 4 gigpo - grpo (the higher rival): 8 of 40 tasks better in both seeds
    assert verdicts["frozenlake"] == [*[not_tested] * 3, "held", "held", "held", not_tested, not_tested]
    evidence = section_rows(text, "sokoban", "findings")[1][2]
    assert "sapo collapsed: best 0.850 [0.800, 0.900] final 0.250 [0.200, 0.300] drop 0.600 [0.600, 0.600]" in evidence
    assert "collapse steps 1.500 [1.000, 2.000]" in evidence and "not tested: cispo" in evidence
    evidence_3a = section_rows(text, "frozenlake", "findings")[3][2]
    assert "gigpo_filter - gigpo = +0.200 [" in evidence_3a and "(paired over 2 seed(s) x 40 tasks)" in evidence_3a


def test_figures_png_and_embedded(report):
    index, parser = report
    names = sorted(p.name for p in index.parent.glob("*.png"))
    assert names == [
        "frozenlake_stability.png",
        "frozenlake_success.png",
        "frozenlake_success_by_method.png",
        "sokoban_stability.png",
        "sokoban_success.png",
        "sokoban_success_by_method.png",
    ]
    # width: 5 in per panel column (3 columns for 3+ stability metrics); height: 3.2 in per panel row + 0.4 in
    # header + 0.25 in per legend row (legend columns: width // 1.7 in), at 100 dpi
    sizes = {
        "sokoban_success.png": (500, 410),  # 1 panel; 3 methods in 2 legend columns: 2 rows
        "sokoban_stability.png": (1500, 705),  # all 5 metrics logged: 3 x 2 panels; 8 legend columns: 1 row
        "frozenlake_success.png": (500, 435),  # 5 methods: 3 legend rows
        "frozenlake_stability.png": (1500, 385),  # only grad norm, entropy, format logged: 3 x 1 panels
        # one 3.5 x 2.56 in panel per method, at most 4 columns, + 0.4 in header
        "sokoban_success_by_method.png": (1050, 296),  # 3 methods: 3 x 1 panels
        "frozenlake_success_by_method.png": (1400, 552),  # 5 methods: 4 x 2 panels
    }
    for name in names:
        data = (index.parent / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert struct.unpack(">II", data[16:24]) == sizes[name]
    assert len(parser.images) == 6 and all(src.startswith("data:image/png;base64,") for src in parser.images)


def test_figure_contents(arena_dir, tmp_path, monkeypatch):
    figures = []
    make_figure = plots.make_figure
    monkeypatch.setattr(plots, "make_figure", lambda *a, **k: figures.append(make_figure(*a, **k)) or figures[-1])
    build_report(arena_dir, tmp_path)
    success = {fig.get_suptitle(): fig for fig in figures}["sokoban: success rate"]
    (ax,) = success.axes
    curves = [line for line in ax.get_lines() if line.get_gid() == "curve"]
    assert [line.get_label() for line in curves] == ["gspo", "sapo", "sapo_seqmask"]
    assert list(curves[1].get_ydata()) == pytest.approx([0.3, 0.65, 0.85, 0.45, 0.25])  # sapo mean over 2 seeds
    assert len([c for c in ax.collections if c.get_gid() == "band"]) == 3
    events = [line.get_xdata()[0] for line in ax.get_lines() if line.get_gid() == "event"]
    assert sorted(events) == [4, 5]  # sapo's collapse steps over both seeds
    stability = {fig.get_suptitle(): fig for fig in figures}["sokoban: stability"]
    counts = {
        ax.get_title(): sum(line.get_gid() == "curve" for line in ax.get_lines()) for ax in stability.axes if ax.axison
    }
    assert counts == {
        "gradient norm": 3,
        "entropy": 3,
        "masked fraction (sequence masking)": 1,  # only sapo_seqmask logs it
        "negative-advantage low-ratio fraction": 2,
        "valid-format rate": 3,
    }


def test_cli(arena_dir, tmp_path, capsys):
    assert main(["report", str(arena_dir), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").is_file()
    assert str(tmp_path / "r" / "index.html") in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no arena cells under"):
        main(["report", str(tmp_path / "empty")])


def test_a_served_models_summary_is_a_reference_row(arena_dir, tmp_path):
    import json
    import shutil

    root = tmp_path / "results"
    shutil.copytree(arena_dir, root)
    served = root / "sokoban" / "_served" / "gpt"
    served.mkdir(parents=True)
    summary = {"model": "gpt-x", "episodes": 128, "success_rate": 0.5, "success_ci95": [0.414, 0.586],
               "invalid_action_rate": 0.1, "failed_request_rate": 0.0}  # fmt: skip
    (served / "summary.json").write_text(json.dumps(summary))
    text = build_report(root, tmp_path / "report").read_text(encoding="utf-8")
    assert section_rows(text, "sokoban", "served") == [["gpt-x", "0.500 [0.414, 0.586]", "128", "0.100", "0.000"]]
    start = text.index('<section id="env-frozenlake">')
    assert 'class="served"' not in text[start : text.index("</section>", start)]
    assert len(find_cells(root)) == len(find_cells(arena_dir))  # not mistaken for a cell


def test_per_task_outcomes_of_a_resumed_cell(tmp_path):
    """A cell killed after its step-4 validation and resumed from the step-2 checkpoint: both attempts
    appended to val_outcomes.jsonl (the first's last line torn); step 4's second record is the final one."""
    import json

    from sampo_verl.arena.layout import cell_dir
    from sampo_verl.trainer.val_outcomes import ValOutcomes, append_outcomes

    cell = cell_dir(tmp_path, "frozenlake", "grpo", 0)
    cell.mkdir(parents=True)
    lines = [{"step": step, "data": {VAL_KEY: value}} for step, value in ((0, 0.0), (2, 0.5), (4, 0.5))]
    (cell / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    tasks = [7, 8, 9, 10]
    for step, acc in ((0, [0, 0, 0, 0]), (2, [1, 1, 0, 0]), (4, [1, 1, 1, 0]), (4, [0, 1, 1, 0])):
        append_outcomes(cell / "val_outcomes.jsonl", ValOutcomes(step, ["frozenlake"] * 4, tasks, acc))
    with open(cell / "val_outcomes.jsonl", "a") as torn:
        torn.write('{"step": 6, "data_source": ["froz')
    (summary,) = summarise_methods(load_results(tmp_path)["frozenlake"], VAL_SUCCESS)
    (seed,) = summary.seeds
    assert seed.final_tasks == (0.0, 1.0, 1.0, 0.0)  # the resumed attempt's step 4
    assert seed.best_tasks == (1.0, 1.0, 0.0, 0.0)  # steps 2 and 4 tie at 0.5: the earlier one
    assert seed.drop == 0.0 and seed.drop_tasks == (0.0,) * 4  # the mean never fell
    assert summary.tasks == 4


def write_validated_cell(root, env: str, method: str, acc: dict[int, list[int]]):
    """One seed-0 cell validated at ``acc``'s steps on tasks 7-10 (episodes named ``frozenlake``): its
    metrics.jsonl with each validation's mean and its val_outcomes.jsonl with the per-task outcomes."""
    from conftest import write_cell

    from sampo_verl.arena.layout import cell_dir
    from sampo_verl.trainer.val_outcomes import ValOutcomes, append_outcomes

    write_cell(root, env, method, 0, [{"step": step, "data": {VAL_KEY: sum(a) / 4}} for step, a in acc.items()], None)
    cell = cell_dir(root, env, method, 0)
    for step, a in acc.items():
        append_outcomes(cell / "val_outcomes.jsonl", ValOutcomes(step, ["frozenlake"] * 4, [7, 8, 9, 10], a))


def test_per_task_drop_is_read_across_the_largest_fall(tmp_path):
    """A cell at 0.5, 0.75, 0.0, 0.5: its drop is step 2 minus step 4 (0.75), per task too, not best - final."""
    write_validated_cell(
        tmp_path, "frozenlake", "sapo", {0: [1, 1, 0, 0], 2: [1, 1, 1, 0], 4: [0, 0, 0, 0], 6: [0, 1, 1, 0]}
    )
    (summary,) = summarise_methods(load_results(tmp_path)["frozenlake"], VAL_SUCCESS)
    (seed,) = summary.seeds
    assert seed.drop == pytest.approx(0.75) and seed.best - seed.final == pytest.approx(0.25)
    assert seed.drop_tasks == (1.0, 1.0, 1.0, 0.0)
    assert summary.estimate("drop").mean == pytest.approx(0.75)
    assert seed.low == 0.0 and seed.low_tasks == (0.0,) * 4  # step 4: the lowest after the start


def test_a_testbed_cell_reads_its_environments_outcomes(tmp_path):
    """A CPU testbed's cell is named for the testbed (frozenlake_long_big) while its episodes' data source is
    the environment (frozenlake): its per-task values are the validations' own, not zeros."""
    write_validated_cell(tmp_path, "frozenlake_long_big", "sampo", {0: [1, 0, 0, 0], 2: [1, 1, 0, 0], 4: [1, 1, 1, 0]})
    (summary,) = summarise_methods(load_results(tmp_path)["frozenlake_long_big"], VAL_SUCCESS)
    (seed,) = summary.seeds
    assert seed.final_tasks == (1.0, 1.0, 1.0, 0.0) and seed.low_tasks == (1.0, 1.0, 0.0, 0.0)
    assert summary.estimate("final").mean == pytest.approx(0.75)


def test_the_lowest_success_after_the_start_counts_a_fall_before_any_rise(tmp_path):
    """A cell at 0.5, 0.25, 0.5, 0.75 fell from its start before it rose: drop and lowest both say 0.25; one
    that only rose has its lowest above the start and no drop; the start itself is never the lowest."""
    runs = {"sapo": {0: [1, 1, 0, 0], 2: [1, 0, 0, 0], 4: [0, 1, 1, 0], 6: [1, 1, 1, 0]},
            "gspo": {0: [1, 1, 0, 0], 2: [1, 1, 1, 0], 4: [1, 1, 1, 1]}}  # fmt: skip
    for method, acc in runs.items():
        write_validated_cell(tmp_path, "frozenlake", method, acc)
    summaries = {s.method: s for s in summarise_methods(load_results(tmp_path)["frozenlake"], VAL_SUCCESS)}
    (fell,), (rose,) = summaries["sapo"].seeds, summaries["gspo"].seeds
    assert fell.low == 0.25 and fell.low_tasks == (1.0, 0.0, 0.0, 0.0) and fell.drop == 0.25
    assert rose.low == 0.75 and rose.low_tasks == (1.0, 1.0, 1.0, 0.0) and rose.drop == 0.0
    assert summaries["gspo"].estimate("low").mean == pytest.approx(0.75)


def test_a_damaged_results_folder_still_gives_a_report_that_lists_what_it_left_out(arena_dir, tmp_path, capsys):
    """A marker that is not JSON, records that are JSON but not records, a line cut inside a UTF-8
    character, a torn last metrics line (its validation still in the outcomes), a broken served summary."""
    import shutil

    from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE

    root = tmp_path / "results"
    shutil.copytree(arena_dir, root)
    lake = root / "frozenlake"
    (lake / "grpo" / "seed0" / "done.json").write_text("{not json")
    with open(lake / "gigpo" / "seed0" / OUTCOMES_FILE, "ab") as outcomes:
        outcomes.write(b'[1, 2]\n{"step": 9, "acc": "x"}\n' + '{"step": 9, "data_source": ["é'.encode()[:-1])
    metrics = lake / "gigpo_filter" / "seed1" / "metrics.jsonl"
    text = metrics.read_bytes()
    metrics.write_bytes(text[: len(text) - len(text.rstrip(b"\n").rsplit(b"\n", 1)[1]) // 2 - 1])  # step 4 torn
    served = root / "sokoban" / "_served" / "broken"
    served.mkdir(parents=True)
    (served / "summary.json").write_text('{"model": "x", "success_rate": "high"}')

    assert main(["report", str(root), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr()
    expected = [
        f"{lake}/grpo/seed0/done.json: not a marker",
        f"{lake}/gigpo/seed0/{OUTCOMES_FILE}: line 4 is not a validation record",
        f"{lake}/gigpo/seed0/{OUTCOMES_FILE}: line 5 is not a validation record",
        f"{lake}/gigpo/seed0/{OUTCOMES_FILE}: line 6 is not UTF-8",
        f"{metrics}: line 5 is not JSON",
        f"frozenlake/gigpo_filter/seed1: the validation of step 4 is in {OUTCOMES_FILE} but not in metrics.jsonl",
        f"{served}/summary.json: not an evaluation summary",
        f"{root}/sokoban/sapo_seqmask/seed1/metrics.jsonl: line 6 is not JSON",  # the fixture's torn line
    ]
    notes = [line.removeprefix("arena report: left out: ") for line in printed.err.splitlines()]
    assert len(notes) == len(expected) and all(any(n.startswith(e) for n in notes) for e in expected)
    assert f"({len(expected)} item(s) left out, listed there)" in printed.out
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    listed = page[page.index('<section id="skipped">') : page.index('<section id="definitions">')]
    assert f"Left out ({len(expected)})" in listed and listed.count("<li>") == len(expected)
    # the unreadable marker counts as unfinished; the torn cell ranks and tabulates from the same validations
    rows = {row[1]: row for row in section_rows(page, "frozenlake", "ranking")}
    assert rows["grpo"][2] == "1/2"
    summaries = {s.method: s for s in summarise_methods(load_results(root)["frozenlake"], VAL_SUCCESS)}
    torn = summaries["gigpo_filter"].seeds[1]
    assert torn.final == 0.5 and sum(torn.final_tasks) / len(torn.final_tasks) == 0.5  # step 2 in both
    assert summaries["gigpo"].seeds[0].final_tasks == tuple(float(k < 24) for k in range(40))  # step 4, 0.6


def markdown_rows(text, env, heading):
    """Rows (without header and rule) of the Markdown table under ``### heading`` in ``## env``."""
    section = text[text.index(f"## {env}\n") :]
    section = section[section.index(f"### {heading}\n") + 1 :]
    body = section[: section.index("\n#")] if "\n#" in section else section
    lines = [line for line in body.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("| ").split(" | ")] for line in lines[2:]]


def test_the_markdown_report_sets_the_paper_beside_the_ranking(report):
    index, _ = report
    text = (index.parent / RESULTS_MD).read_text(encoding="utf-8")
    assert not text.startswith("#")  # no title: a docs page takes it in under its own
    rows = markdown_rows(text, "frozenlake", "Ranking, beside the paper")
    assert [row[1] for row in rows] == ["`gigpo_filter`", "`gigpo`", "`grpo_filter`", "`grpo`", "`empg`"]
    gigpo_filter, empg = rows[0], rows[4]
    assert gigpo_filter[7] == "s0: .100 .600 .700<br>s1: .100 .500 .800"  # the fixture's validations per seed
    assert empg[8] == "s0: 60 (8 / 15 / 37)"  # as the HTML table's mean, per seed
    assert gigpo_filter[9:12] == ["60.55", "76.82", "86.20"]  # the paper's ALFWorld, WebShop, Sokoban
    # here 1..5; the paper's ranks among these five, per task (ALFWorld / WebShop / Sokoban), averaged:
    # gigpo_filter 3,1,1; gigpo 1,4,3; grpo_filter 5,5,4; grpo 2,3,2; empg 4,2,5
    assert [row[12] for row in rows] == ["1 / 1.7", "2 / 2.7", "3 / 4.7", "4 / 2.3", "5 / 3.7"]
    findings = markdown_rows(text, "frozenlake", "Findings")
    assert [row[1] for row in findings][3:6] == ["**held**"] * 3 and [row[3] for row in findings][3:6] == ["–"] * 3
    assert "![frozenlake: validation success rate per method](frozenlake_success.png)" in text
    html_findings = section_rows(index.read_text(encoding="utf-8"), "frozenlake", "findings")
    assert {len(row) for row in html_findings} == {4}  # claim, verdict, evidence, what would decide it
