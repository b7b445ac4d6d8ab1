"""``autoscaler simulate``: the real control loop on a simulated clock, queue and node group.

Modules:

* :mod:`~autoscaler.simulator.scenario` — the scenario YAML model and the trace CSV loader;
* :mod:`~autoscaler.simulator.world` — the queue and node-group model, stepped second by second;
* :mod:`~autoscaler.simulator.run` — wiring with :class:`~autoscaler.loop.ControlLoop`, the
  figures, and the command-line entry point;
* :mod:`~autoscaler.simulator.report` — the HTML report with inline SVG plots.

User documentation: ``docs/simulator.md``.
"""

from autoscaler.simulator.run import (
    EPOCH,
    Figures,
    SimulationError,
    SimulationResult,
    load,
    simulate,
)
from autoscaler.simulator.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "EPOCH",
    "Figures",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "SimulationResult",
    "load",
    "load_scenario",
    "simulate",
]
