"""The local stack: emulated AWS (moto server) provisioned from template.yaml, the provider sandbox,
and a local HTTP API that routes like the template to the real handlers."""
