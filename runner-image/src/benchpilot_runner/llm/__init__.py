"""LLM access: an OpenAI-compatible client with an injectable transport, retries and limits."""
