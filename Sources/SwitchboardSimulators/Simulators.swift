// Simulators.
