"""Physical imperfections of the student's circuit (issue #5, ``vle-hw explore``).

:func:`perturb_plan` takes a plan that is already built
(:func:`vle_hw.circuit.plan_behavioural` or :func:`vle_hw.opamp.plan_opamp`) and
returns a new :class:`~vle_hw.circuit.CircuitPlan` with the imperfections of a
:class:`Perturbation` applied. The input plan is never changed. The same plan,
knobs and seed give the same deck bytes.

Scope: only the student is perturbed. A section belongs to the student when its
heading starts with ``student layer`` (the headings that
:func:`~vle_hw.circuit.plan_behavioural` writes). The ``teacher layer N``
sections, which are the ideal data source, and the ``input and target`` section
are copied unchanged. Sections are told apart by their headings, not by
element names.

What each knob does to the student's elements (SPICE type letter first):

- ``r`` / ``c`` / ``g`` (linear VCCS gain): a Gaussian mismatch factor per
  element, and a process corner (one relative shift for every element of the
  class). B-sources, VCVS buffers (``e``) and current sources keep their values.
- ``x`` instances of ``vle_opamp`` (op-amp level): a Gaussian input offset per
  instance, added to its ``vos_volt``.
- weight leakage: a resistor ``rleak_<node>`` from every weight capacitor node
  (``w_l.._i.._j..``) and plastic bias node (``b_l.._n..``) to ground.
- weight resolution: every weight is read through an N-bit grid (see
  :func:`perturb_plan`).
- thermal noise: a Gaussian noise current across every student resistor, with
  the one-sided density 4 k T / R.

The plan's header records every knob that was applied (keys ``perturb_*``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from vle_hw.circuit import CircuitPlan, Element
from vle_hw.errors import VleLimitationWarning
from vle_hw.spice_expr import number

log = logging.getLogger(__name__)

BOLTZMANN_J_PER_K = 1.380649e-23
MISMATCH_FLOOR = 0.05  # smallest factor a mismatch draw may give (R, C stay > 0)
STUDENT_HEADING = "student layer"
OPAMP_CELL = "vle_opamp"  # the op-amp level's macromodel (vle_hw.opamp)
MAX_SEED = 2**31 - 2  # ngspice takes seeds 1 ... 2**31 - 1, and gets seed + 1
# One random stream per element class, so that switching one class's mismatch
# on does not move another class's draws.
_STREAMS = {"r": 0, "c": 1, "g": 2, "opamp": 3}
_WEIGHT_READ = re.compile(r"v\((w_l\d+_i\d+_j\d+)\)")
_VOS = re.compile(r"\bvos_volt=(\S+)")
_WEIGHT_CAPACITORS = ("cw_", "cb_")  # plastic weights and plastic biases
_PLASTIC_READS = ("bsyn_", "bback_")  # forward W r and backward W^T e
_FIXED_READS = ("gsyn_", "gback_")
_SUM_RESISTORS = ("risyn_", "rfb_")  # the KCL sums the synapses feed


@dataclass(frozen=True)
class Perturbation:
    """Physical imperfections applied to the student's circuit.

    Parameters
    ----------
    r_mismatch_rel, c_mismatch_rel, g_mismatch_rel : float, 1
        Gaussian relative sigma of every student resistor, capacitor and
        linear transconductance (G element gain). Each element gets the factor
        max(1 + sigma z, 0.05), z a standard normal of its own.
    opamp_offset_sigma_volt : float, V
        Gaussian input offset per student op-amp instance, added to its
        ``vos_volt`` (op-amp level only).
    r_shift_rel, c_shift_rel, g_shift_rel : float, 1
        Process corner: every student R (C, G gain) is scaled by 1 + shift,
        on top of its mismatch factor. Must be > -1.
    weight_leak_ohm : float or None, ohm
        A resistor from every weight (and plastic bias) capacitor to ground.
        The stored weight then decays toward 0 with tau = R C_w. The leak
        takes this exact value (no mismatch) but is noisy with `thermal_noise`.
    weight_bits : int or None, bits
        Weight resolution: every weight is read through an N-bit grid
        (1 to 24 bits).
    weight_full_scale : float, model units
        The grid spans [-full_scale, +full_scale): 2**N codes of
        lsb = 2 full_scale / 2**N, the top code being full_scale - lsb.
    thermal_noise : bool
        A Gaussian noise current across every student resistor, one-sided
        density 4 k T / R, in the transient run.
    temperature_kelvin : float, K
        The T of the thermal noise.
    seed : int
        Seeds the mismatch and offset draws (numpy) and ngspice's noise
        generator (which gets seed + 1, as ngspice needs a seed >= 1).
        0 to 2**31 - 2.

    Raises
    ------
    ValueError
        If a field is out of its range; the message names the field, the
        value and the fix.

    Examples
    --------
    >>> Perturbation(r_mismatch_rel=0.01, seed=3).r_mismatch_rel
    0.01
    >>> Perturbation(weight_bits=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Perturbation: weight_bits must be an integer from 1 to 24 ...
    """

    r_mismatch_rel: float = 0.0
    c_mismatch_rel: float = 0.0
    g_mismatch_rel: float = 0.0
    opamp_offset_sigma_volt: float = 0.0
    r_shift_rel: float = 0.0
    c_shift_rel: float = 0.0
    g_shift_rel: float = 0.0
    weight_leak_ohm: float | None = None
    weight_bits: int | None = None
    weight_full_scale: float = 4.0
    thermal_noise: bool = False
    temperature_kelvin: float = 300.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("r_mismatch_rel", "c_mismatch_rel", "g_mismatch_rel"):
            value = getattr(self, name)
            _require(
                name,
                value,
                _is_real(value) and 0.0 <= value <= 10.0,
                "a number from 0 to 10 (1000 %; the floor keeps parts positive)",
                "pass a relative sigma such as 0.01 (1 %), or 0 for none",
            )
        value = self.opamp_offset_sigma_volt
        _require(
            "opamp_offset_sigma_volt",
            value,
            _is_real(value) and 0.0 <= value <= 1.0,
            "a number from 0 to 1 V",
            "pass the offset sigma in volts, e.g. 1e-3, or 0 for none",
        )
        for name in ("r_shift_rel", "c_shift_rel", "g_shift_rel"):
            value = getattr(self, name)
            _require(
                name,
                value,
                _is_real(value) and value > -1.0,
                "a finite number > -1",
                "pass a relative shift such as -0.1 (10 % low) or 0.1",
            )
        value = self.weight_leak_ohm
        _require(
            "weight_leak_ohm",
            value,
            value is None or (_is_real(value) and 1.0 <= value <= 1e18),
            "a number from 1 to 1e18 ohm, or None",
            "pass a resistance in ohm, e.g. 1e9, or None for no leak",
        )
        value = self.weight_bits
        _require(
            "weight_bits",
            value,
            value is None or (_is_integer(value) and 1 <= value <= 24),
            "an integer from 1 to 24 or None",
            "pass the weight resolution in bits, e.g. 8, or None",
        )
        value = self.weight_full_scale
        _require(
            "weight_full_scale",
            value,
            _is_real(value) and 0.0 < value <= 1e6,
            "a number > 0 and at most 1e6",
            "pass the grid's half range in model units, e.g. 4.0",
        )
        _require(
            "thermal_noise",
            self.thermal_noise,
            isinstance(self.thermal_noise, bool),
            "True or False",
            "pass a bool",
        )
        value = self.temperature_kelvin
        _require(
            "temperature_kelvin",
            value,
            _is_real(value) and 1.0 <= value <= 1000.0,
            "a number from 1 to 1000 K",
            "pass the temperature in kelvin, e.g. 300.0",
        )
        value = self.seed
        _require(
            "seed",
            value,
            _is_integer(value) and 0 <= value <= MAX_SEED,
            f"an integer from 0 to {MAX_SEED} (ngspice takes seed + 1, at most "
            "2**31 - 1)",
            "pass a smaller non-negative whole number",
        )


def _is_real(x) -> bool:
    """A finite int or float (not a bool)."""
    numeric = isinstance(x, int | float | np.integer | np.floating)
    return numeric and not isinstance(x, bool) and math.isfinite(x)


def _is_integer(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _require(name: str, value, ok: bool, rule: str, fix: str) -> None:
    """Raise the field's ValueError unless `ok`."""
    if not ok:
        raise ValueError(
            f"Perturbation: {name} must be {rule}, got {value!r}; fix: {fix}."
        )


def perturbation_summary(p: Perturbation) -> dict[str, float | int | bool | None]:
    """The knobs of `p` as plain data (one column each in a result table).

    Examples
    --------
    >>> perturbation_summary(Perturbation(weight_bits=8))["weight_bits"]
    8
    """
    return dataclasses.asdict(p)


def perturb_plan(plan: CircuitPlan, p: Perturbation) -> CircuitPlan:
    """A new plan: `plan` with the imperfections `p` in the student's circuit.

    The steps run in this order: weight resolution (on the ideal values),
    mismatch and corners of R, C and G, op-amp offsets, weight leakage,
    thermal noise (on the perturbed resistors, the leak resistors included).

    Mismatch draws one standard normal z per element, from
    ``numpy.random.default_rng`` on a stream of its own per class (R, C, G,
    op-amp offsets: ``SeedSequence(seed).spawn(4)``), in the plan's section
    and element order. The element gets ``value (1 + shift) max(1 + sigma z,
    0.05)``: the floor keeps every R and C positive, and below it the draws are
    clipped. The k-th element of a class (in plan order) gets the k-th draw of
    that class's stream, so the same seed with another sigma scales the same z
    (common random numbers across a sigma sweep).

    Weight resolution models an analog accumulator read through an N-bit
    converter: each plastic weight capacitor keeps integrating the analog
    update, and every synapse B-source that reads it (``bsyn_``, ``bback_``)
    sees ``lsb floor(v(w) / lsb + 0.5)``, clipped to the 2**N codes
    [-full_scale, full_scale - lsb] (``min``/``max``, which ngspice B-sources
    have). Consequence: updates smaller than one lsb are not lost, they
    accumulate until the read moves by a code, and the synapse output moves
    in steps. Fixed weights (``gsyn_``, ``gback_`` gains g = w / r_sum, r_sum
    the plan's ``risyn_``/``rfb_`` resistor of the same sum) are rounded to the
    same grid. The initial weights in ``plan.initial`` stay analog.

    Thermal noise puts ``inoise_<r> n+ n- dc 0 trrandom(2 NT 0 sigma 0)``
    across every student resistor R: Gaussian values held for NT =
    ``plan.max_step_sec``, sigma = sqrt(4 k T / R / (2 NT)), whose one-sided
    density below 1 / (2 NT) is 4 k T / R. ngspice's generator is seeded by
    ``.options seed=`` (``plan.options["seed"]`` = seed + 1), so the same seed
    gives the same noise. (ngspice's TRNOISE is not used: ngspice 39 seeds its
    white noise from the process id, whatever ``.options seed`` says.) Every
    noise value is a breakpoint, after which ngspice restarts with small
    steps: a noise run takes 4 to 12 times the time points of a quiet one.

    Parameters
    ----------
    plan : CircuitPlan
        From :func:`vle_hw.circuit.plan_behavioural` or
        :func:`vle_hw.opamp.plan_opamp`; not changed.
    p : Perturbation
        The knobs.

    Returns
    -------
    CircuitPlan
        A deep copy with the perturbed student elements and ``perturb_*``
        header lines (none when no knob is applied).

    Raises
    ------
    ValueError
        If the plan has no student section, was perturbed already, or a knob
        has nothing to act on (an op-amp offset without op-amps, a leak
        without weight capacitors).
    NotImplementedError
        If `weight_bits` is asked of weights read by transistor-level cells.

    Examples
    --------
    >>> from vle_hw.circuit import CircuitPlan, Element
    >>> plan = CircuitPlan(title="demo", header={}, sections=[
    ...     ("teacher layer 1", [Element("rtmem_l1_n0", ("tu_l1_n0", "0"), "1e4")]),
    ...     ("student layer 1", [Element("rmem_l1_n0", ("u_l1_n0", "0"), "1e4")]),
    ... ], max_step_sec=1e-8)
    >>> out = perturb_plan(plan, Perturbation(r_shift_rel=0.25))
    >>> [e.value for _, elements in out.sections for e in elements]
    ['1e4', '12500.0']
    >>> out.header["perturb_r"]
    'shift 0.25 rel on 1 resistors'
    >>> plan.sections[1][1][0].value  # the input plan is unchanged
    '1e4'
    """
    student = [
        k
        for k, (heading, _) in enumerate(plan.sections)
        if heading.startswith(STUDENT_HEADING)
    ]
    if not student:
        raise ValueError(
            f"perturb_plan: plan {plan.title!r} has no section headed "
            f"'{STUDENT_HEADING} N', so there is no student to perturb; fix: pass "
            "a plan from plan_behavioural or plan_opamp."
        )
    done = sorted(key for key in plan.header if key.startswith("perturb_"))
    if done:
        raise ValueError(
            f"perturb_plan: plan {plan.title!r} is perturbed already (header "
            f"{', '.join(done)}); fix: perturb the unperturbed plan once, with all "
            "knobs in one Perturbation."
        )
    out = copy.deepcopy(plan)
    notes: dict[str, str] = {}

    # --- weight resolution, on the ideal values -----------------------------------
    if p.weight_bits is not None:
        notes["perturb_weight_bits"] = _quantise_weights(out, student, p)

    # --- mismatch and process corners ---------------------------------------------
    # LIMITATION(perturb): B-source expressions keep their ideal coefficients:
    #   the prospective readouts (F2, B3), alpha, phi, the plastic synapse
    #   multipliers and the weight updates. Consequence: at the behavioural
    #   level an R/C mismatch moves a node's tau but not the readout's kappa
    #   that should cancel its lag, and plastic synapses carry no gain
    #   mismatch (only linear G gains do). Cells in the library (the op-amp
    #   macromodel's internals, the transistor level's MOS cells) are not
    #   mismatched either. Issue #5.
    for letter, sigma, shift, what in (
        ("r", p.r_mismatch_rel, p.r_shift_rel, "resistors"),
        ("c", p.c_mismatch_rel, p.c_shift_rel, "capacitors"),
        ("g", p.g_mismatch_rel, p.g_shift_rel, "transconductances"),
    ):
        if sigma > 0.0 or shift != 0.0:
            count = _scale_class(out, student, letter, sigma, shift, p.seed)
            notes[f"perturb_{letter}"] = _class_note(sigma, shift, count, what)

    # --- op-amp input offsets -------------------------------------------------------
    if p.opamp_offset_sigma_volt > 0.0:
        count = _offset_opamps(out, student, p.opamp_offset_sigma_volt, p.seed)
        notes["perturb_opamp_offset"] = (
            f"Gaussian sigma {number(p.opamp_offset_sigma_volt)} V added to "
            f"vos_volt of {count} op-amps"
        )

    # --- weight leakage -------------------------------------------------------------
    if p.weight_leak_ohm is not None:
        count = _add_leaks(out, student, p.weight_leak_ohm)
        notes["perturb_weight_leak"] = (
            f"{number(p.weight_leak_ohm)} ohm from {count} weight capacitors to 0"
        )

    # --- thermal noise --------------------------------------------------------------
    if p.thermal_noise:
        count, nt_sec = _add_thermal_noise(out, student, p.temperature_kelvin)
        out.options["seed"] = str(p.seed + 1)
        notes["perturb_thermal_noise"] = (
            f"4kT/R of {count} resistors at {number(p.temperature_kelvin)} K, "
            f"trrandom Gaussian held {number(nt_sec)} s, ngspice seed {p.seed + 1}"
        )

    _warn_limitations(out, p)
    if notes:
        random = (
            max(p.r_mismatch_rel, p.c_mismatch_rel, p.g_mismatch_rel) > 0.0
            or p.opamp_offset_sigma_volt > 0.0
            or p.thermal_noise
        )
        scope = "student layers only, teacher and sources exact"
        if random:
            scope += (
                f", seed {p.seed} (numpy SeedSequence streams r c g opamp, "
                f"factor floor {number(MISMATCH_FLOOR)})"
            )
        out.header["perturb_scope"] = scope
        out.header.update(notes)
        log.info(
            "perturb plan=%s seed=%d knobs=%s",
            plan.raw_name,
            p.seed,
            ",".join(key.removeprefix("perturb_") for key in notes),
        )
    return out


def _warn_limitations(plan: CircuitPlan, p: Perturbation) -> None:
    """Say once per call which limitation changes the numbers of this run."""
    level = plan.header.get("level", "unknown")
    mismatch = (p.r_mismatch_rel, p.c_mismatch_rel, p.g_mismatch_rel)
    shifts = (p.r_shift_rel, p.c_shift_rel, p.g_shift_rel)
    if level == "behavioural" and (max(mismatch) > 0.0 or any(shifts)):
        warnings.warn(
            f"{plan.raw_name}: at the behavioural level the B-source readouts and "
            "plastic synapses keep their ideal coefficients, so R/C/G mismatch "
            "moves the nodes but not the readouts that should track them "
            "[LIMITATION(perturb), #5]. The op-amp level mismatches the readouts' "
            "resistors too.",
            VleLimitationWarning,
            stacklevel=3,
        )
    biases = [
        e.name
        for heading, elements in plan.sections
        if heading.startswith(STUDENT_HEADING)
        for e in elements
        if e.name.startswith(("gbias_", "ibias_"))
    ]
    if p.weight_bits is not None and biases:
        warnings.warn(
            f"{plan.raw_name}: weight_bits = {p.weight_bits} quantises the weights "
            f"but not the {len(biases)} biases ({biases[0]}, ...), which stay "
            "analog [LIMITATION(perturb), #5].",
            VleLimitationWarning,
            stacklevel=3,
        )


def _students(plan: CircuitPlan, student: list[int]):
    """(section index, element index, element) of every student element."""
    for k in student:
        for j, element in enumerate(plan.sections[k][1]):
            yield k, j, element


def _set(plan: CircuitPlan, k: int, j: int, element: Element) -> None:
    plan.sections[k][1][j] = element


def _normals(seed: int, stream: str, count: int) -> np.ndarray:
    """`count` standard normals of one class's stream (fixed for a seed)."""
    child = np.random.SeedSequence(seed).spawn(len(_STREAMS))[_STREAMS[stream]]
    return np.random.default_rng(child).standard_normal(count)


def _plain_value(element: Element) -> float:
    try:
        return float(element.value)
    except ValueError:
        raise ValueError(
            f"perturb_plan: element {element.name} has the value "
            f"{element.value!r}, not a plain number, so it cannot be scaled; fix: "
            "perturb a plan from plan_behavioural or plan_opamp."
        ) from None


def _scale_class(
    plan: CircuitPlan,
    student: list[int],
    letter: str,
    sigma: float,
    shift: float,
    seed: int,
) -> int:
    """Scale every student element of type `letter` by its factor; the count."""
    targets = [(k, j, e) for k, j, e in _students(plan, student) if e.name[0] == letter]
    z = _normals(seed, letter, len(targets))
    for (k, j, element), z_k in zip(targets, z, strict=True):
        factor = (1.0 + shift) * max(1.0 + sigma * float(z_k), MISMATCH_FLOOR)
        value = _plain_value(element) * factor
        _set(plan, k, j, dataclasses.replace(element, value=number(value)))
    return len(targets)


def _class_note(sigma: float, shift: float, count: int, what: str) -> str:
    parts = []
    if sigma > 0.0:
        parts.append(f"mismatch sigma {number(sigma)} rel")
    if shift != 0.0:
        parts.append(f"shift {number(shift)} rel")
    return f"{', '.join(parts)} on {count} {what}"


def _library_offset(plan: CircuitPlan) -> float:
    """The macromodel's default ``vos_volt`` (the ``opamp.offset_volt`` of the
    spec), read off the ``.subckt vle_opamp`` line of the plan's library."""
    for block in plan.library:
        for line in block.split("\n"):
            if line.startswith(f".subckt {OPAMP_CELL} "):
                match = _VOS.search(line)
                if match:
                    return float(match.group(1))
    return 0.0


def _offset_opamps(plan: CircuitPlan, student: list[int], sigma: float, seed: int):
    """Add a Gaussian draw to ``vos_volt`` of every student op-amp; the count."""
    targets = [
        (k, j, e)
        for k, j, e in _students(plan, student)
        if e.name[0] == "x" and e.value.split(" ")[0] == OPAMP_CELL
    ]
    if not targets:
        raise ValueError(
            f"Perturbation: opamp_offset_sigma_volt = {sigma!r} needs op-amp "
            f"instances ({OPAMP_CELL}), but the student of plan {plan.title!r} has "
            "none; fix: plan the circuit at the op-amp level (plan_opamp, --level "
            "opamp), or set opamp_offset_sigma_volt to 0."
        )
    base = _library_offset(plan)
    z = _normals(seed, "opamp", len(targets))
    for (k, j, element), z_k in zip(targets, z, strict=True):
        match = _VOS.search(element.value)
        own = float(match.group(1)) if match else base
        vos = f"vos_volt={number(own + sigma * float(z_k))}"
        if match:
            value = _VOS.sub(vos, element.value, count=1)
        else:
            value = f"{element.value} {vos}"
        _set(plan, k, j, dataclasses.replace(element, value=value))
    return len(targets)


def _add_leaks(plan: CircuitPlan, student: list[int], r_ohm: float) -> int:
    """A leak resistor beside every weight capacitor; the count."""
    count = 0
    for k in student:
        heading, elements = plan.sections[k]
        new = []
        for element in elements:
            new.append(element)
            if element.name.startswith(_WEIGHT_CAPACITORS):
                node = element.nodes[0]
                new.append(Element(f"rleak_{node}", (node, "0"), number(r_ohm)))
                count += 1
        plan.sections[k] = (heading, new)
    if count == 0:
        raise ValueError(
            f"Perturbation: weight_leak_ohm = {r_ohm!r} needs plastic weights, "
            f"but the student of plan {plan.title!r} has no weight capacitor "
            "(cw_, cb_); fix: set network.eta > 0 with plastic layers, or set "
            "weight_leak_ohm to None."
        )
    return count


def _add_thermal_noise(
    plan: CircuitPlan, student: list[int], temperature_kelvin: float
) -> tuple[int, float]:
    """A 4kT/R noise current across every student resistor; (count, NT)."""
    nt_sec = plan.max_step_sec
    if not nt_sec > 0.0:
        raise ValueError(
            f"Perturbation: thermal_noise needs the plan's max_step_sec > 0 (the "
            f"noise sample time), got {nt_sec!r}; fix: perturb a plan from "
            "plan_behavioural or plan_opamp."
        )
    # LIMITATION(perturb): ngspice 39 draws TRNOISE's white noise from a pool
    #   seeded by the process id (wallace.c initw), so no seed reproduces it;
    #   TRRANDOM type 2 (Gaussian values held for NT, seeded by .options seed)
    #   is used instead. Noise comes from the student's resistors only: not
    #   from op-amp internals, G/B sources or the teacher. A node with no
    #   capacitor sees the noise up to 1 / (2 NT), a bandwidth set by the
    #   simulator step rather than by a parasitic capacitance. Issue #5.
    count = 0
    for k in student:
        heading, elements = plan.sections[k]
        new = []
        for element in elements:
            new.append(element)
            if element.name[0] != "r":
                continue
            r_ohm = _plain_value(element)
            psd = 4.0 * BOLTZMANN_J_PER_K * temperature_kelvin / r_ohm  # A^2/Hz
            sigma_amp = math.sqrt(psd / (2.0 * nt_sec))
            new.append(
                Element(
                    f"inoise_{element.name}",
                    element.nodes,
                    f"dc 0 trrandom(2 {number(nt_sec)} 0 {number(sigma_amp)} 0)",
                )
            )
            count += 1
        plan.sections[k] = (heading, new)
    return count, nt_sec


def _quantise_weights(plan: CircuitPlan, student: list[int], p: Perturbation) -> str:
    """Read plastic weights through the N-bit grid, round fixed ones; the note."""
    bits = p.weight_bits
    assert bits is not None
    try:
        weight_volt = float(plan.header["weight_volt_per_unit"])
    except (KeyError, ValueError):
        raise ValueError(
            f"Perturbation: weight_bits needs the plan's header "
            f"'weight_volt_per_unit' (a number), got "
            f"{plan.header.get('weight_volt_per_unit')!r}; fix: perturb a plan "
            "from plan_behavioural or plan_opamp."
        ) from None
    lsb = 2.0 * p.weight_full_scale / 2**bits  # model units
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1  # codes

    # Transistor-level cells read weights through MOS devices: not quantisable.
    for _, _, element in _students(plan, student):
        role = element.name[1:]
        if role.startswith(("syn_", "back_")) and element.name[0] not in "bg":
            raise NotImplementedError(
                f"Perturbation: weight_bits = {bits} with {element.name}, a "
                f"synapse read by the cell {element.value.split(' ')[0]!r}: perturb "
                "quantises B-source and G synapses only; fix: use the behavioural "
                "or op-amp level, or weight_bits None."
            )

    # --- plastic weights: a quantised read in every synapse B-source --------------
    lsb_volt = number(lsb * weight_volt)
    read = (
        f"min(max({lsb_volt}*floor(v(\\1)/{lsb_volt} + 0.5), "
        f"{number(low * lsb * weight_volt)}), {number(high * lsb * weight_volt)})"
    )
    plastic = 0
    for k, j, element in list(_students(plan, student)):
        if element.name.startswith(_PLASTIC_READS):
            value, n = _WEIGHT_READ.subn(read, element.value)
            plastic += n
            _set(plan, k, j, dataclasses.replace(element, value=value))

    # --- fixed weights: round the gain g = w / r_sum ------------------------------
    r_sum = {
        e.nodes[0]: _plain_value(e)
        for _, _, e in _students(plan, student)
        if e.name.startswith(_SUM_RESISTORS) and e.nodes[1] == "0"
    }
    fixed = 0
    for k, j, element in list(_students(plan, student)):
        if not element.name.startswith(_FIXED_READS):
            continue
        node = element.nodes[1]
        if node not in r_sum:  # circuit.py changed its sums: fail loudly
            raise RuntimeError(
                f"perturb_plan: no risyn_/rfb_ resistor on {node}, the sum that "
                f"{element.name} feeds; cannot read its weight"
            )
        weight = _plain_value(element) * r_sum[node]
        code = min(max(math.floor(weight / lsb + 0.5), low), high)
        gain = code * lsb / r_sum[node]
        _set(plan, k, j, dataclasses.replace(element, value=number(gain)))
        fixed += 1
    # LIMITATION(perturb): plastic biases (read by gbias_ G elements) and fixed
    #   biases (ibias_ sources) are not quantised. Consequence: a network with
    #   biases keeps analog biases at any weight_bits. Issue #5.
    return (
        f"{bits} bits over +-{number(p.weight_full_scale)} model units, lsb "
        f"{number(lsb)}, {plastic} plastic reads, {fixed} fixed gains"
    )
