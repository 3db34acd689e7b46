"""The native stack (no Docker engine): services as local processes under supervisord.

``dpe_pipeline.stack`` is the entry point (``./dpe up``, ``down``, ``status``, ``logs``);
this package holds its parts:

- ``registry``: what a service is (command, ports, health check, dependencies) and the
  ``@register`` decorator that adds one;
- ``services``: the course's services, one factory function each;
- ``health``: readiness checks (TCP, HTTP, SQL, Kafka metadata);
- ``supervisor``: the generated ``supervisord.conf`` and the XML-RPC client;
- ``postgres``, ``kafka``: one-time preparation (initdb, jars from Maven Central, storage
  format) and post-start initialisation (databases, topics).
"""
