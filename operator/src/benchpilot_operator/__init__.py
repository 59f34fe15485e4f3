"""benchpilot operator: BenchmarkRun -> sharded Jobs, sized from the measured footprint."""

GROUP, VERSION, PLURAL, KIND = "benchpilot.io", "v1alpha1", "benchmarkruns", "BenchmarkRun"
