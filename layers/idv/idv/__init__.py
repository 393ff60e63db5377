"""idv: the shared layer of the verification gateway (provider clients, results, validation, images, privacy).

Importing the package is cheap on purpose: submodules are imported where used, and Pillow /
pycryptodome load only when an image or AES field is actually processed.
"""


def reset() -> None:
    """Forget this container's state (settings, AWS clients, the provider secret, provider clients), as a
    new Lambda container would start. For the local stack and tests after the environment changed."""
    from idv import aws, config, provider_secret, providers

    config.get_settings.cache_clear()
    aws.reset()
    provider_secret.secrets_provider.cache_clear()
    providers.juhe_client.cache_clear()
    providers.apetime_client.cache_clear()
