"""Study files: validation, expansion order, seeds and the errors a user sees."""

from pathlib import Path

import pytest
import yaml

from vle_hw.errors import SpecError
from vle_hw.study import load_study, reference_key, sample_seed

ANALYSIS = Path(__file__).resolve().parent.parent / "analysis" / "studies"


def write_study(folder: Path, data: dict, name: str = "study.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def basic(**extra) -> dict:
    data = {"name": "demo", "fixed": {"simulation.t_stop": 5.0}}
    data.update(extra)
    return data


def test_axes_cross_knobs_in_one_axis_zip_and_samples_vary_fastest(tmp_path):
    path = write_study(
        tmp_path,
        basic(
            sweep=[
                {"opamp.gbw_hz": [1e6, 1e7], "opamp.a0_db": [60.0, 80.0]},
                {"network.eta": [0.0, 5.0, 10.0]},
            ],
            monte_carlo={"samples": 2},
        ),
    )
    study = load_study(path)
    assert len(study.runs) == 2 * 3 * 2
    first = [(r.knobs["opamp.gbw_hz"], r.knobs["opamp.a0_db"]) for r in study.runs]
    assert set(first) == {(1e6, 60.0), (1e7, 80.0)}  # zipped, never crossed
    assert [r.sample for r in study.runs[:4]] == [0, 1, 0, 1]
    assert [r.knobs["network.eta"] for r in study.runs[:6]] == [
        0.0,
        0.0,
        5.0,
        5.0,
        10.0,
        10.0,
    ]
    assert [r.run_id for r in study.runs] == list(range(12))
    # the knob reached the validated spec
    assert study.runs[-1].spec.opamp.gbw_hz == 1e7
    assert study.runs[-1].spec.network.eta == 10.0
    assert study.runs[0].spec.simulation.t_stop == 5.0


def test_a_sample_is_the_same_circuit_at_every_sweep_point(tmp_path):
    path = write_study(
        tmp_path,
        basic(
            sweep=[{"network.eta": [0.0, 10.0]}],
            fixed={"simulation.t_stop": 5.0, "mismatch.r_rel": 0.01},
            monte_carlo={"samples": 3},
            seed=11,
        ),
    )
    runs = load_study(path).runs
    seeds = {(r.knobs["network.eta"], r.sample): r.perturbation.seed for r in runs}
    for s in range(3):
        assert seeds[(0.0, s)] == seeds[(10.0, s)] == sample_seed(11, s)
    assert len({seeds[(0.0, s)] for s in range(3)}) == 3
    assert runs[0].perturbation.r_mismatch_rel == 0.01


def test_the_same_file_expands_to_the_same_runs(tmp_path):
    path = write_study(tmp_path, basic(sweep=[{"network.eta": [0.0, 1.0]}]))
    a, b = load_study(path), load_study(path)
    assert a.study_hash == b.study_hash
    assert [(r.knobs, r.perturbation) for r in a.runs] == [
        (r.knobs, r.perturbation) for r in b.runs
    ]


def test_the_reference_is_shared_by_runs_that_differ_only_in_hardware(tmp_path):
    path = write_study(
        tmp_path,
        basic(
            sweep=[
                {"hardware.time_sec_per_unit": [1e-6, 1e-5]},
                {"network.eta": [0.0, 1.0]},
            ]
        ),
    )
    runs = load_study(path).runs
    keys = {(r.knobs["network.eta"], r.reference_key) for r in runs}
    assert len(keys) == 2  # one per eta, whatever the time scale
    assert reference_key(runs[0].spec) == runs[0].reference_key


def test_corners_shift_the_circuit_and_the_opamp(tmp_path):
    path = write_study(tmp_path, basic(sweep=[{"corner": ["tt", "ss", "ff"]}]))
    runs = load_study(path).runs
    tt, ss, ff = runs
    assert ss.perturbation.r_shift_rel == 0.10 and ff.perturbation.c_shift_rel == -0.10
    assert ss.spec.opamp.gbw_hz == pytest.approx(0.8 * tt.spec.opamp.gbw_hz)
    assert ff.spec.opamp.gbw_hz == pytest.approx(1.2 * tt.spec.opamp.gbw_hz)


def test_list_indices_reach_one_layer(tmp_path):
    path = write_study(tmp_path, basic(sweep=[{"network.layers[1].tau_m": [1.5, 3.0]}]))
    runs = load_study(path).runs
    assert [r.spec.network.layers[1].tau_m for r in runs] == [1.5, 3.0]
    assert runs[0].spec.network.layers[0].tau_m == 1.0


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"sweep": [{"opamp.gbw_hzz": [1e6]}]}, "did you mean 'gbw_hz'"),
        ({"sweep": [{"mismatch.r": [0.01]}]}, "'mismatch' is not a field of the spec"),
        ({"sweep": [{"opamp.gbw_hz": [-1.0]}]}, "opamp.gbw_hz"),
        ({"sweep": [{"opamp.gbw_hz": ["fast"]}]}, "opamp.gbw_hz"),
        ({"sweep": [{"weights.bits": [2.5]}]}, "weights.bits"),
        ({"sweep": [{"mismatch.r_rel": [-0.1]}]}, "mismatch.r_rel"),
        ({"sweep": [{"corner": ["xx"]}]}, "not a defined corner"),
        (
            {"sweep": [{"opamp.gbw_hz": [1e6, 1e7], "opamp.a0_db": [60.0]}]},
            "different numbers of values",
        ),
        (
            {"sweep": [{"network.eta": [1.0]}], "fixed": {"network.eta": 2.0}},
            "set in both",
        ),
        ({"sweep": [{"network.layers[7].tau_m": [1.0]}]}, "[7] does not exist"),
        ({"sweep": [{"opamp.gbw_hz.x": [1.0]}]}, "is a value, not a section"),
        ({"sweep": [{"Opamp;shell": [1.0]}]}, "is not a knob name"),
        ({"monte_carlo": {"samples": 0}}, "monte_carlo.samples"),
        ({"level": "spice"}, "level"),
        ({"sweeps": []}, "did you mean 'sweep'"),
        ({"name": "Bad Name"}, "name"),
        ({"base": "missing.yaml"}, "does not exist"),
        ({"output_window": 50.0}, "output_window"),
        (
            {"figures": [{"kind": "sweep", "x": "opamp.gbw_hz", "y": ["nrmse_worst"]}]},
            "is not a knob of this study",
        ),
        ({"figures": [{"kind": "violin"}]}, "figures"),
        ({"fixed": {"simulation.t_stop": float("nan")}}, "simulation.t_stop"),
    ],
)
def test_bad_studies_name_the_knob_and_the_fix(tmp_path, change, needle):
    data = basic()
    data.update(change)
    if "fixed" in change:
        data["fixed"] = {"simulation.t_stop": 5.0, **change["fixed"]}
    path = write_study(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_study(path)
    assert needle in str(info.value)
    assert "fix" in str(info.value) or "should" in str(info.value)


def test_the_shipped_studies_load(tmp_path):
    names = sorted(p.name for p in ANALYSIS.glob("*.yaml"))
    assert names == ["mismatch_learning.yaml", "opamp_gbw.yaml", "timescale_noise.yaml"]
    sizes = {name: len(load_study(ANALYSIS / name).runs) for name in names}
    assert sizes == {
        "mismatch_learning.yaml": 200,
        "opamp_gbw.yaml": 21,
        "timescale_noise.yaml": 15,
    }


def test_a_study_moved_to_another_folder_keeps_its_hash_until_a_csv_changes(
    tmp_path,
):
    import shutil

    from tests.helpers import single_neuron

    first = tmp_path / "first"
    first.mkdir()
    (first / "drive.csv").write_text("t,x\n0,0\n1,1\n2,0\n", encoding="utf-8")
    base = single_neuron(input_={"kind": "csv", "path": "drive.csv"}, t_stop=2.0)
    write_study(first, base, name="base.yaml")
    write_study(first, {"name": "moved", "base": "base.yaml"})
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(first, moved)
    original = load_study(first / "study.yaml").study_hash
    assert load_study(moved / "study.yaml").study_hash == original
    (moved / "drive.csv").write_text("t,x\n0,0\n1,2\n2,0\n", encoding="utf-8")
    assert load_study(moved / "study.yaml").study_hash != original
