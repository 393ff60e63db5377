"""The embedded default: a faithful provider sandbox (`sandbox.providers`) and the local stack."""
