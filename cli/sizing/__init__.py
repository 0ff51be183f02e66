"""Sizing a fleet before buying it: one server model, a fleet simulator and a planner.

- :mod:`.profile`: :class:`~.profile.ServerProfile`, the one timing model of an
  inference server, read by the local emulator, the simulator and the planner.
- :mod:`.simulator`: a discrete-event simulation of replicas behind a load balancer.
- :mod:`.fit`: a profile fitted from a bench run of any endpoint.
- :mod:`.catalog`: shipped profiles from public Neuron figures and roofline estimates.
- :mod:`.planner`: replicas, instances, chips and cost for a load and an SLO.
"""
