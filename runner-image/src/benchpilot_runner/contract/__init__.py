"""The contract between the operator and the runner: everything both processes must agree on, each in
one module. Pure: no I/O, no network or storage library. The operator imports the runner only
through this package (and ``redact``, ``logs``); an import-linter contract says so.

=============  ==============================================================================
module         the agreement it owns
=============  ==============================================================================
api            the Kubernetes API names (group, version, kind) and the progress metric's name
fields         the field toolkit (:class:`Fields`, :class:`SpecError`): how a manifest is read and refused
tree           every field a manifest may hold and its default, as the manifest writes it
types          the spec as frozen dataclasses: the one place each default is written
parse          the one parser (manifest, resolved copy, command-line overrides)
models         models and endpoints of a spec; providers are found through :mod:`registry`
resolved       the resolved form a pod reads (``run.json``): the spec written back as a manifest
cases          the expansion order, case ids, and which shard holds which case
sizing         a pod's memory: the footprint formula
outcomes       case statuses, exit codes, ConfigError, why a shard ended (termination messages)
podenv         a pod's environment variables and mount paths
layout         where results live (run folder, shard folders, part names, markers, leases)
shares         a shard's share of an endpoint's run-wide limits
registry       plug-ins by name: suites and model providers
estimate       what a run will use before it runs (``benchpilot plan`` and ``status.estimate``)
=============  ==============================================================================
"""
