"""Test helpers: services, processes, the simulator."""
