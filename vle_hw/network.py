"""The network a spec describes, as numeric layers and as a networkx graph.

``build_network`` turns a validated :class:`~vle_hw.spec.Spec` into plain
arrays (per-neuron time constants, initial weights and biases) for the student
and, when the spec has one, for the teacher. ``network_graph`` gives the same
network as a directed graph of neurons and synapses for inspection and
for structural checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from vle_hw.spec import LayerSpec, RandomInit, Spec, TeacherSpec


@dataclass(frozen=True)
class Layer:
    """One layer l >= 1 of a network, in model units."""

    index: int
    size: int
    phi: str
    tau_m: np.ndarray
    tau_r: np.ndarray
    gamma: float
    plastic: bool
    weights: np.ndarray  # (size, size of layer index - 1): initial W_l
    biases: np.ndarray | None  # initial b_l, None when the network has no biases


@dataclass(frozen=True)
class Network:
    """Student (and optional teacher) layers with the learning constants."""

    name: str
    inputs: int
    layers: tuple[Layer, ...]
    beta: float
    eta: float
    teacher: tuple[Layer, ...] | None
    eta_tau: float = 0.0  # learning rate of tau_m (0: tau_m fixed)

    @property
    def sizes(self) -> list[int]:
        return [self.inputs] + [layer.size for layer in self.layers]

    def neuron_count(self) -> int:
        return sum(layer.size for layer in self.layers)


def _per_neuron(value: float | list[float], size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), (size,)).copy()


def _weights(init, sizes: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    if isinstance(init, RandomInit):
        if init.seed is not None:
            rng = np.random.default_rng(init.seed)
        return [
            init.mean
            + init.std
            / np.sqrt(sizes[i])
            * rng.standard_normal((sizes[i + 1], sizes[i]))
            for i in range(len(sizes) - 1)
        ]
    return [np.asarray(matrix, dtype=float) for matrix in init]


def _biases(
    init, sizes: list[int], rng: np.random.Generator
) -> list[np.ndarray | None]:
    if init is None or init == "none":
        return [None] * (len(sizes) - 1)
    if init == "zero":
        return [np.zeros(n) for n in sizes[1:]]
    if isinstance(init, RandomInit):
        if init.seed is not None:
            rng = np.random.default_rng(init.seed)
        return [init.mean + init.std * rng.standard_normal(n) for n in sizes[1:]]
    return [np.asarray(vector, dtype=float) for vector in init]


def _layers(
    specs: list[LayerSpec], weights: list[np.ndarray], biases, default_gamma: float
) -> tuple[Layer, ...]:
    return tuple(
        Layer(
            index=i + 1,
            size=spec.size,
            phi=spec.phi,
            tau_m=_per_neuron(spec.tau_m, spec.size),
            tau_r=_per_neuron(spec.tau_r, spec.size),
            gamma=default_gamma if spec.gamma is None else spec.gamma,
            plastic=spec.plastic,
            weights=weights[i],
            biases=biases[i],
        )
        for i, spec in enumerate(specs)
    )


def _teacher_layers(spec: Spec, teacher: TeacherSpec, rng) -> tuple[Layer, ...]:
    net = spec.network
    sizes = [net.inputs] + [layer.size for layer in net.layers]
    merged = []
    for i, layer in enumerate(net.layers):
        override = teacher.layers[i] if teacher.layers else None
        updates = {}
        if override is not None:
            updates = {
                key: value
                for key, value in override.model_dump().items()
                if value is not None
            }
        merged.append(layer.model_copy(update=updates))
    biases_init = teacher.biases if teacher.biases is not None else net.biases
    return _layers(
        merged,
        _weights(teacher.weights, sizes, rng),
        _biases(biases_init, sizes, rng),
        default_gamma=0.0,
    )


def build_network(spec: Spec) -> Network:
    """Resolve a validated spec into numeric layers (seeded for random inits).

    Examples
    --------
    >>> from vle_hw.spec import load_spec
    >>> net = build_network(load_spec()[0])
    >>> net.sizes, float(net.teacher[1].weights[0, 0])
    ([1, 1, 1], 2.0)
    """
    net = spec.network
    rng = np.random.default_rng(spec.seed)
    sizes = [net.inputs] + [layer.size for layer in net.layers]
    layers = _layers(
        net.layers,
        _weights(net.weights, sizes, rng),
        _biases(net.biases, sizes, rng),
        net.gamma,
    )
    teacher_rng = np.random.default_rng([spec.seed, 1])
    teacher = (
        _teacher_layers(spec, spec.teacher, teacher_rng)
        if spec.teacher is not None
        else None
    )
    return Network(
        name=spec.name,
        inputs=net.inputs,
        layers=layers,
        beta=net.beta,
        eta=net.eta,
        teacher=teacher,
        eta_tau=net.eta_tau,
    )


def network_graph(network: Network) -> nx.DiGraph:
    """The student network as a DAG: nodes ``(layer, neuron)``, edges = synapses.

    Node attributes: ``phi``, ``tau_m``, ``tau_r`` (model units); edge attribute
    ``weight`` (initial W) and ``plastic``.

    Examples
    --------
    >>> from vle_hw.spec import load_spec
    >>> g = network_graph(build_network(load_spec()[0]))
    >>> sorted(g.edges)
    [((0, 0), (1, 0)), ((1, 0), (2, 0))]
    """
    graph = nx.DiGraph(name=network.name)
    for j in range(network.inputs):
        graph.add_node((0, j), kind="input")
    for layer in network.layers:
        for i in range(layer.size):
            graph.add_node(
                (layer.index, i),
                kind="neuron",
                phi=layer.phi,
                tau_m=float(layer.tau_m[i]),
                tau_r=float(layer.tau_r[i]),
            )
            for j in range(layer.weights.shape[1]):
                graph.add_edge(
                    (layer.index - 1, j),
                    (layer.index, i),
                    weight=float(layer.weights[i, j]),
                    plastic=layer.plastic and network.eta > 0,
                )
    return graph
