"""The shipped tool registry: 30 tools with typed parameters, grouped by category.

Each tool takes named parameters of a JSON type; ``produces``/``consumes`` name the kind of
artefact a tool makes or needs, which is what the generator chains workflows on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # JSON schema type: string | integer | number | boolean | array
    description: str
    required: bool = True
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    category: str
    description: str
    params: tuple[Param, ...]
    consumes: str | None  # artefact kind it needs as input ("" for none)
    produces: str | None

    @functools.cached_property
    def openai_schema(self) -> dict:
        """The tool as an OpenAI chat-completions ``tools`` entry (built once; do not mutate)."""
        props = {}
        for p in self.params:
            prop: dict = {"type": p.type, "description": p.description}
            if p.type == "array":
                prop["items"] = {"type": "string"}
            if p.enum:
                prop["enum"] = list(p.enum)
            props[p.name] = prop
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": props,
                           "required": [p.name for p in self.params if p.required]}}}

    def text(self) -> str:
        """What is embedded for retrieval."""
        params = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        return f"{self.name} ({self.category}): {self.description} Parameters: {params}."


def _p(name: str, type_: str, description: str, required: bool = True, enum: tuple[str, ...] | None = None) -> Param:
    return Param(name, type_, description, required, enum)


FORMATS = ("csv", "json", "parquet", "xml")

TOOLS: tuple[Tool, ...] = (
    # file operations
    Tool("file_reader", "file", "Read a file from storage and return its raw contents.",
         (_p("path", "string", "Path of the file to read"),
          _p("encoding", "string", "Text encoding", False)), None, "raw"),
    Tool("file_writer", "file", "Write contents to a file in storage.",
         (_p("path", "string", "Destination path"),
          _p("format", "string", "Output format", True, FORMATS)), "table", "file"),
    Tool("directory_lister", "file", "List the files in a directory that match a pattern.",
         (_p("directory", "string", "Directory to list"),
          _p("pattern", "string", "Glob pattern", False)), None, "listing"),
    Tool("file_compressor", "file", "Compress a file into a gzip or zip archive.",
         (_p("path", "string", "File to compress"),
          _p("method", "string", "Compression method", True, ("gzip", "zip"))), "file", "archive"),
    Tool("file_deleter", "file", "Delete a file from storage permanently.",
         (_p("path", "string", "File to delete"),), "file", None),
    # parsing and validation
    Tool("csv_parser", "parse", "Parse CSV text into a table of records.",
         (_p("delimiter", "string", "Field delimiter"),
          _p("has_header", "boolean", "Whether the first row is a header")), "raw", "table"),
    Tool("json_parser", "parse", "Parse JSON text into a table of records.",
         (_p("root_key", "string", "Key holding the records", False),), "raw", "table"),
    Tool("xml_parser", "parse", "Parse XML text into a table of records.",
         (_p("record_tag", "string", "Tag of one record"),), "raw", "table"),
    Tool("schema_validator", "parse", "Validate records against a named schema and reject bad rows.",
         (_p("schema", "string", "Schema name"),
          _p("strict", "boolean", "Reject on unknown fields")), "table", "table"),
    # transformation
    Tool("data_filter", "transform", "Keep only the records that satisfy a condition.",
         (_p("condition", "string", "Filter expression such as 'amount > 100'"),), "table", "table"),
    Tool("data_transformer", "transform", "Apply a mapping of field transformations to each record.",
         (_p("operation", "string", "Transformation", True, ("normalize", "uppercase", "round", "rename")),
          _p("fields", "array", "Fields to transform")), "table", "table"),
    Tool("data_aggregator", "transform", "Group records and compute an aggregate per group.",
         (_p("group_by", "string", "Grouping field"),
          _p("function", "string", "Aggregate function", True, ("sum", "mean", "count", "max", "min"))),
         "table", "table"),
    Tool("data_sorter", "transform", "Sort records by a field.",
         (_p("field", "string", "Sort key"),
          _p("descending", "boolean", "Sort in descending order")), "table", "table"),
    Tool("deduplicator", "transform", "Remove duplicate records by key.",
         (_p("key", "string", "Key field"),), "table", "table"),
    Tool("data_joiner", "transform", "Join the records with another dataset on a key.",
         (_p("other", "string", "Name of the other dataset"),
          _p("on", "string", "Join key"),
          _p("how", "string", "Join type", True, ("inner", "left", "outer"))), "table", "table"),
    Tool("format_converter", "transform", "Convert a table between data formats.",
         (_p("target_format", "string", "Target format", True, FORMATS),), "table", "table"),
    # network and APIs
    Tool("api_authenticator", "network", "Obtain an access token for a web API.",
         (_p("service", "string", "API service name"),
          _p("scope", "string", "Requested scope", False)), None, "token"),
    Tool("network_fetcher", "network", "Fetch a URL over HTTP and return the response body.",
         (_p("url", "string", "URL to fetch"),
          _p("method", "string", "HTTP method", True, ("GET", "POST"))), "token", "raw"),
    Tool("api_paginator", "network", "Fetch every page of a paginated API endpoint.",
         (_p("endpoint", "string", "API endpoint"),
          _p("page_size", "integer", "Records per page")), "token", "raw"),
    Tool("rate_limiter", "network", "Wait so that requests stay under a rate limit.",
         (_p("requests_per_second", "number", "Allowed request rate"),), None, None),
    Tool("webhook_sender", "network", "Send a JSON payload to a webhook URL.",
         (_p("url", "string", "Webhook URL"),), "table", "receipt"),
    # storage
    Tool("database_query", "storage", "Run a SQL query against a database and return the rows.",
         (_p("query", "string", "SQL query"),
          _p("database", "string", "Database name")), None, "table"),
    Tool("database_writer", "storage", "Insert records into a database table.",
         (_p("table", "string", "Destination table"),
          _p("mode", "string", "Write mode", True, ("append", "overwrite"))), "table", "receipt"),
    Tool("cache_store", "storage", "Store a result in the cache under a key.",
         (_p("key", "string", "Cache key"),
          _p("ttl_seconds", "integer", "Time to live")), "table", "receipt"),
    # text and ML
    Tool("text_summarizer", "ml", "Summarize a text into a short abstract.",
         (_p("max_words", "integer", "Length of the summary"),), "raw", "text"),
    Tool("text_classifier", "ml", "Classify each record's text into labels.",
         (_p("labels", "array", "Candidate labels"),
          _p("field", "string", "Text field")), "table", "table"),
    Tool("entity_extractor", "ml", "Extract named entities such as people and places from text.",
         (_p("entity_types", "array", "Entity types to extract"),), "raw", "table"),
    # reporting and notification
    Tool("report_generator", "report", "Generate a formatted report from records.",
         (_p("title", "string", "Report title"),
          _p("format", "string", "Report format", True, ("pdf", "html", "markdown"))), "table", "report"),
    Tool("email_sender", "report", "Send an email with an optional attachment.",
         (_p("to", "string", "Recipient address"),
          _p("subject", "string", "Subject line")), "report", "receipt"),
    Tool("event_logger", "report", "Record an event in the audit log.",
         (_p("message", "string", "Event message"),
          _p("level", "string", "Log level", True, ("info", "warning", "error"))), None, "receipt"),
)

BY_NAME: dict[str, Tool] = {t.name: t for t in TOOLS}
assert len(BY_NAME) == len(TOOLS) == 30
