"""Spec builders shared by the tests."""

import copy

import yaml

from vle_hw.spec import Spec, default_spec_text, parse_spec_text


def default_dict() -> dict:
    return yaml.safe_load(default_spec_text())


def spec_from(data: dict) -> tuple[Spec, str]:
    text = yaml.safe_dump(data, sort_keys=False)
    return parse_spec_text(text, "test", "yaml"), text


def single_neuron(
    phi="linear",
    tau_m=1.0,
    tau_r=0.1,
    weight=2.0,
    input_=None,
    t_stop=10.0,
    eta=0.0,
    beta=0.01,
    gamma=0.0,
    initial_state="zero",
) -> dict:
    data = copy.deepcopy(default_dict())
    data["name"] = "single"
    data["network"].update(
        layers=[{"size": 1, "phi": phi, "tau_m": tau_m, "tau_r": tau_r}],
        weights=[[[weight]]],
        eta=eta,
        beta=beta,
        gamma=gamma,
    )
    data["teacher"] = {"weights": [[[weight]]]}
    data["input"] = input_ or {
        "kind": "sines",
        "amplitudes": [0.0],
        "omegas": [1.0],
        "offset": 1.0,
    }
    data["simulation"] = {"t_stop": t_stop}
    data["initial_state"] = initial_state
    return data
