"""Several copies of the model on one instance, each on NeuronCores of its own.

When an instance has more NeuronCores than one copy spans (trn1.32xlarge: 32 cores,
``INFERFLEET_TP_DEGREE=8``), the task runs ``INFERFLEET_REPLICAS`` copies: Triton starts
one model instance per copy, each in its own process, and each takes the next
``tp_degree`` of the cores the task may use (``NEURON_RT_VISIBLE_CORES``) before the
Neuron runtime starts in that process.
"""


def parse_cores(cores: str) -> list[int]:
    """``"0-3,8"`` -> ``[0, 1, 2, 3, 8]``: the format of ``NEURON_RT_VISIBLE_CORES``."""
    numbers: list[int] = []
    for part in cores.split(","):
        first, _, last = part.strip().partition("-")
        numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


def format_cores(cores: list[int]) -> str:
    """A contiguous run as ``"first-last"``, anything else as a comma list."""
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0])
    return ",".join(map(str, cores))


def replica_index(instance_name: str) -> int:
    """Triton names a model's instances ``<group>_<index>``, counting from 0."""
    return int(instance_name.rsplit("_", 1)[1])


def replica_cores(visible: str | None, replica: int, tp_degree: int) -> str:
    """The NeuronCores copy ``replica`` runs on, out of the task's ``visible`` cores.

    Without ``visible`` the task may use every core, numbered from 0.
    """
    available = parse_cores(visible) if visible else list(range((replica + 1) * tp_degree))
    mine = available[replica * tp_degree : (replica + 1) * tp_degree]
    if len(mine) < tp_degree:
        raise ValueError(
            f"replica {replica} needs cores {replica * tp_degree}..{(replica + 1) * tp_degree - 1}"
            f" of NEURON_RT_VISIBLE_CORES={visible}, which lists {len(available)}; lower"
            " INFERFLEET_REPLICAS or INFERFLEET_TP_DEGREE"
        )
    return format_cores(mine)
