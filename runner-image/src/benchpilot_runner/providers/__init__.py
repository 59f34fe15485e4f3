"""Model providers, found by name (the ``benchpilot.providers`` entry-point group).

A model written as ``<provider>/<id>`` in ``spec.matrix.models`` is resolved by the provider named
``<provider>`` (:meth:`Provider.model`); an endpoint's requests go through the client its models'
provider makes (:meth:`Provider.client`). The built-in providers are ``sim`` (simulated models,
no endpoint) and ``openai`` (any OpenAI-compatible chat-completions endpoint). Another package adds
one without touching benchpilot::

    [project.entry-points."benchpilot.providers"]
    myapi = "mypackage.provider:PROVIDER"

A provider has ``name``, ``simulated``, ``model(model_id, path, simulation) -> ModelSpec`` and,
unless simulated, ``client(endpoint, key, *, transport, limiter, observer)`` returning an object
with ``async chat(model, messages, tools, *, label, params) -> ChatResult``, ``health`` and
``name``. Importing a provider module must stay light (import the HTTP client inside ``client``).
"""
